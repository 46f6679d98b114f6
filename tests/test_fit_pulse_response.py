"""Recover known soft-bounds parameters from noisy emulator traces (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from fitting import FitInputError, PulseTraces, fit_pulse_response
from fitting.population import fit_random_effect
from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
from instruments.emulator.physics import PulsedDeviceArray, chip_truth

SPEC = PulseTrainSpec(200, PulseSpec(1.2, 1e-6), 200, PulseSpec(-1.2, 1e-6), cycles=3)


def _traces(seed: int, n: int = 256, **overrides: float) -> tuple[PulseTraces, PulsedDeviceArray]:
    truth = chip_truth("reram", **overrides)
    array = PulsedDeviceArray(truth, (16, n // 16), seed)
    idx = np.arange(n)
    g = array.pulse_train(idx, SPEC.n_up, SPEC.n_down, SPEC.cycles, 1, (1.2, 1e-6), (-1.2, 1e-6))
    return PulseTraces(g.T, pulse_sequence(SPEC)), array


@pytest.mark.parametrize("seed", [1, 2])
def test_soft_bounds_population_is_recovered_within_issue_bounds(seed: int) -> None:
    traces, array = _traces(seed)
    fit = fit_pulse_response(traces)
    t = array.truth
    p = fit.parameters
    # Accuracy bounds of the fitting issue (256 devices x 3 cycles x 200+200 pulses).
    assert p["dw_min"] == pytest.approx(t.dw_min, rel=0.10)
    assert abs(p["up_down"] - t.up_down) < 0.03
    assert p["w_max"] == pytest.approx(t.w_max, rel=0.10)
    assert p["w_min"] == pytest.approx(t.w_min, rel=0.10)
    assert abs(p["dw_min_dtod"] - t.dw_min_dtod) < 0.05
    assert p["dw_min_std"] == pytest.approx(t.dw_min_std, rel=0.25)
    assert fit.read_noise_s == pytest.approx(t.read_noise_s, rel=0.15)
    assert fit.excluded["stuck"] == int(array.stuck[:256].sum())


def test_bound_spread_matches_realized_sample_after_error_removal() -> None:
    traces, array = _traces(4)
    fit = fit_pulse_response(traces)
    ok = ~array.stuck[:256]
    realized = array.b_max[:256][ok].std() / abs(array.b_max[:256][ok].mean())
    # 256 devices: the fitted relative spread should match the sample's within ~10 %
    assert fit.parameters["w_max_dtod"] == pytest.approx(realized, rel=0.10)
    assert fit.diagnostics["naive_w_max_dtod"] >= fit.parameters["w_max_dtod"]


def test_linear_device_shows_no_spurious_soft_bounds_bias() -> None:
    """Read noise must not create fake saturation (anchors.md §3 pitfall 1)."""
    traces, array = _traces(5, read_noise_s=1.0e-6)
    fit = fit_pulse_response(traces)
    assert fit.parameters["w_max"] == pytest.approx(array.truth.w_max, rel=0.10)


def test_random_effect_removes_estimation_noise_from_spread() -> None:
    rng = np.random.default_rng(0)
    n, tau = 2000, 0.5
    se = rng.uniform(0.3, 1.0, n)
    theta = 3.0 + tau * rng.standard_normal(n) + se * rng.standard_normal(n)
    eff = fit_random_effect(theta, se)
    # n = 2000: SE(mean) ~ 0.02, SE(tau) ~ 0.03 from the Fisher information
    assert eff.mean == pytest.approx(3.0, abs=0.08)
    assert eff.spread == pytest.approx(tau, abs=0.1)
    assert eff.naive_spread > 0.8
    assert eff.spread_stderr < 0.06


def test_bad_inputs_give_clear_errors_or_counted_exclusions() -> None:
    traces, _ = _traces(6, n=32)
    g = traces.conductance_s.copy()
    g[3, 10] = np.nan
    fit = fit_pulse_response(PulseTraces(g, traces.pulses))
    assert fit.diagnostics["masked_reads"] == 1  # a missing read is masked and counted
    with pytest.raises(FitInputError, match="both up"):
        PulseTraces(g[:, :201], traces.pulses[:201])
    with pytest.raises(FitInputError, match="respond"):
        fit_pulse_response(PulseTraces(np.full_like(g, 5e-5), traces.pulses))
    with pytest.raises(FitInputError, match="entries"):
        PulseTraces(g, traces.pulses[:-1])
    with pytest.raises(FitInputError, match="unknown model"):
        fit_pulse_response(traces, model="magic-step")
