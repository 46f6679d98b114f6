"""Bad input and unusual protocols: a clear error or a counted exclusion, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pulse_response_recovery import emulated

from fitting import FitInputError, PulseTraces, fit_pulse_response
from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
from instruments.emulator.physics import PulsedDeviceArray, chip_truth

ROOT = Path(__file__).resolve().parents[2]
SMALL = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), cycles=2)


def small(seed: int = 1, n: int = 64, **extra) -> tuple[PulseTraces, PulsedDeviceArray]:
    return emulated("soft-bounds", seed, n=n, spec=SMALL, dw_min=1.6e-6, **extra)


# ----------------------------------------------------------------------------- bad input
def test_missing_reads_are_masked_and_counted() -> None:
    traces, _ = small()
    g = traces.conductance_s.astype(float)
    g[3, 10] = g[5, 50] = np.nan
    g[7, 300:] = np.nan  # a shorter trace (padding)
    g[9, :] = np.nan  # a device without data
    fit = fit_pulse_response(PulseTraces(g, traces.pulses))
    assert fit.diagnostics["masked_reads"] == 2
    assert fit.excluded["no_data"] == 1
    assert 7 in fit.per_device["device_id"] and 9 not in fit.per_device["device_id"]


def test_constant_traces_are_excluded_or_refused() -> None:
    traces, _ = small()
    g = traces.conductance_s.astype(float)
    g[0] = 5e-5
    fit = fit_pulse_response(PulseTraces(g, traces.pulses))
    assert fit.excluded["constant"] == 1
    with pytest.raises(FitInputError, match="respond"):
        fit_pulse_response(PulseTraces(np.full_like(g, 5e-5), traces.pulses))


def test_mixed_units_are_refused_and_a_single_outlier_excluded() -> None:
    traces, _ = small()
    g = traces.conductance_s.astype(float)
    mixed = g.copy()
    mixed[: g.shape[0] // 2] *= 1e6  # half the devices in µS
    with pytest.raises(FitInputError, match="mixed units"):
        fit_pulse_response(PulseTraces(mixed, traces.pulses))
    one = g.copy()
    one[4] *= 1e3
    fit = fit_pulse_response(PulseTraces(one, traces.pulses))
    assert fit.excluded["scale_outlier"] == 1


def test_single_direction_and_malformed_traces_are_refused() -> None:
    traces, _ = small()
    g = traces.conductance_s
    with pytest.raises(FitInputError, match="both up"):
        PulseTraces(g[:, :101], traces.pulses[:101])
    with pytest.raises(FitInputError, match="entries"):
        PulseTraces(g, traces.pulses[:-1])
    with pytest.raises(FitInputError, match="integers"):
        PulseTraces(g, traces.pulses + 0.5)
    with pytest.raises(FitInputError, match="three reads"):
        PulseTraces(g[:, :2], traces.pulses[:2])
    with pytest.raises(FitInputError, match="every read is NaN"):
        PulseTraces(np.full(g.shape, np.nan), traces.pulses)
    with pytest.raises(FitInputError, match="unknown model"):
        fit_pulse_response(traces, model="magic-step")


def test_devices_responding_in_one_direction_only_are_counted_as_broken() -> None:
    traces, _ = small()
    g = traces.conductance_s.astype(float)
    down = traces.pulses < 0
    # device 2 moves up but never down: hold its conductance during down pulses
    row = g[2].copy()
    for k in np.nonzero(down)[0]:
        row[k] = row[k - 1]
    g[2] = row
    fit = fit_pulse_response(PulseTraces(g, traces.pulses))
    assert fit.excluded["one_direction"] == 1


# ----------------------------------------------------------------------------- protocols
def test_reads_after_every_k_pulses() -> None:
    spec = PulseTrainSpec(200, PulseSpec(1.2, 1e-6), 200, PulseSpec(-1.2, 1e-6), 3, read_every=4)
    traces, array = emulated("soft-bounds", seed=11, n=128, spec=spec)
    t = array.truth
    fit = fit_pulse_response(traces)
    # 128 devices, 4x fewer reads: statistical errors ~2-3 %
    assert fit.parameters["dw_min"] == pytest.approx(t.dw_min, rel=0.10)
    assert abs(fit.parameters["up_down"] - t.up_down) < 0.05
    assert fit.parameters["w_max"] == pytest.approx(t.w_max, rel=0.10)
    const, carray = emulated("constant-step", seed=11, n=128, spec=spec)
    cfit = fit_pulse_response(const, model="constant-step")  # numeric 4-pulse map, clipped
    assert cfit.parameters["dw_min"] == pytest.approx(carray.truth.dw_min, rel=0.10)
    assert cfit.parameters["w_max"] == pytest.approx(carray.truth.w_max, rel=0.10)


def test_unequal_up_down_counts_and_saturated_start() -> None:
    spec = PulseTrainSpec(150, PulseSpec(1.2, 1e-6), 250, PulseSpec(-1.2, 1e-6), cycles=3)
    truth = chip_truth("reram")
    array = PulsedDeviceArray(truth, (8, 16), 12)
    idx = np.arange(128)
    array.pulse_train(idx, 400, 0, 1, 400, (1.2, 1e-6), (-1.2, 1e-6))  # saturate first
    g = array.pulse_train(idx, spec.n_up, spec.n_down, spec.cycles, 1, (1.2, 1e-6), (-1.2, 1e-6))
    fit = fit_pulse_response(PulseTraces(g.T, pulse_sequence(spec)))
    assert fit.parameters["dw_min"] == pytest.approx(truth.dw_min, rel=0.10)
    assert fit.parameters["w_max"] == pytest.approx(truth.w_max, rel=0.10)
    assert fit.parameters["w_min"] == pytest.approx(truth.w_min, rel=0.10)


def test_few_pulses_per_device_still_fit_with_honest_errors() -> None:
    spec = PulseTrainSpec(20, PulseSpec(1.2, 1e-6), 20, PulseSpec(-1.2, 1e-6), cycles=2)
    traces, _ = emulated("soft-bounds", seed=13, n=64, spec=spec, dw_min=3e-6)
    fit = fit_pulse_response(traces)
    p, u = fit.parameters, fit.uncertainty
    # few pairs: only a loose check, but within 4 reported standard errors
    assert abs(p["dw_min"] - 3e-6) < max(4 * u["dw_min"], 0.15 * 3e-6)


def test_normalized_units_give_the_same_relative_parameters() -> None:
    traces, _ = small(seed=14)
    g = traces.conductance_s.astype(float)
    fit_s = fit_pulse_response(traces)
    norm = PulseTraces((g - 60e-6) / 40e-6, traces.pulses, units="normalized")
    fit_n = fit_pulse_response(norm)
    assert fit_n.conductance_unit == "normalized"
    assert fit_n.parameters["dw_min"] == pytest.approx(fit_s.parameters["dw_min"] / 40e-6, rel=1e-3)
    for name in ("up_down", "dw_min_dtod", "w_max_dtod", "dw_min_std"):
        assert fit_n.parameters[name] == pytest.approx(fit_s.parameters[name], rel=1e-3, abs=1e-6)


def test_single_direction_ramps_of_several_devices_are_fitted_direction_wise() -> None:
    traces, array = emulated("constant-step", seed=15, n=128, spec=SMALL)
    g = traces.conductance_s.astype(float)
    p = traces.pulses
    up = np.where(p[:101] > 0, 1, 0)  # read 0, then 100 up pulses
    down = np.where(p[100:201] < 0, -1, 0)
    ramps = np.full((128, 101), np.nan)
    pulses = np.zeros((128, 101), dtype=int)
    ramps[:64], pulses[:64] = g[:64, :101], up
    ramps[64:], pulses[64:] = g[64:, 100:201], down
    fit = fit_pulse_response(PulseTraces(ramps, pulses), model="auto")
    assert fit.model in ("constant-step", "linear-step", "soft-bounds")
    assert any("direction-wise" in n for n in fit.notes)
    assert fit.parameters["dw_min"] == pytest.approx(array.truth.dw_min, rel=0.15)
    with pytest.raises(FitInputError, match="single-direction"):
        fit_pulse_response(PulseTraces(ramps, pulses), model="pow-step")


# ----------------------------------------------------------------------------- measured data
def test_published_single_device_trace_is_fitted_with_notes() -> None:
    from calib.fit.pulse_response import load_pulse_traces

    traces, _ = load_pulse_traces(ROOT / "datasets/measured/gong_et_al.h5")
    fit = fit_pulse_response(traces, model="soft-bounds")
    assert fit.conductance_unit == "normalized" and fit.n_fitted == 1
    assert fit.parameters["dw_min"] > 0
    assert any("only 1 device" in n for n in fit.notes)


def test_published_set_reset_ramps_are_fitted_direction_wise() -> None:
    from calib.fit.pulse_response import load_pulse_traces

    traces, _ = load_pulse_traces(ROOT / "datasets/measured/crosssim_ramps.h5")
    fit = fit_pulse_response(traces, model="auto")
    assert fit.model == "linear-step"  # SET steps grow with conductance: γ < 0
    assert fit.parameters["gamma_up"] < 0 and fit.parameters["allow_increasing"] is True
    assert fit.n_fitted + sum(fit.excluded.values()) == 79
