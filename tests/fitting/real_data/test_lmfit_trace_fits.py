"""One trace, few devices: lmfit models of every family and honest errors (issue 14, item 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calib.fit.pulse_response import load_pulse_traces
from fitting.lmfit_models import fit_trace, pulse_trace_model, to_preset_parameters, trajectory
from fitting.pulse_response import fit_pulse_response
from simulator.devices.response import FAMILIES

GONG = Path(__file__).resolve().parents[3] / "datasets" / "measured" / "gong_et_al.h5"
PULSES = np.r_[0, np.tile(np.r_[np.ones(100), -np.ones(100)], 3)].astype(int)
G_REF = 100e-6  # S, the reference conductance of the synthetic truths
BASE = {"delta_up": 2e-6, "delta_down": 1.5e-6, "w_max": 60e-6, "w_min": -50e-6}


def _trace(family: str, shape: dict, rng: np.random.Generator, noise: float = 0.5e-6):
    truth = {**BASE, **shape}
    g = trajectory(family, PULSES, 50e-6, G_REF, truth)
    return g + noise * rng.standard_normal(g.size), truth


def test_every_family_is_an_lmfit_model_with_hints() -> None:
    for family in FAMILIES:
        model = pulse_trace_model(family)
        params = model.make_params(g_start=0.0, g_ref=0.0, **{k: 1.0 for k in BASE})
        assert not params["g_ref"].vary  # the reference is fixed, like a preset's g_offset_s
        assert {"delta_up", "delta_down", "w_max", "w_min"} <= set(params)
    assert not pulse_trace_model("exp-step").make_params()["a"].vary  # aihwkit default
    assert pulse_trace_model("pow-step").make_params()["pow_gamma_up"].min > 0


@pytest.mark.parametrize(
    ("family", "shape"),
    [
        ("soft-bounds", {}),
        ("linear-step", {"gamma_up": 0.3, "gamma_down": 0.8}),
        ("constant-step", {}),
    ],
)
def test_one_trace_fit_recovers_known_parameters_within_its_errors(family, shape) -> None:
    rng = np.random.default_rng(5)
    g, truth = _trace(family, shape, rng)
    result = fit_trace(g, PULSES, family, g_ref=G_REF)
    assert result.success and result.covar is not None
    assert "[[Variables]]" in result.fit_report()
    for name, value in truth.items():
        p = result.params[name]
        # 4.5 standard errors: 6-8 parameters per fit, a miss this large has p < 1e-4
        assert p.stderr is not None and p.stderr > 0
        assert abs(p.value - value) < 4.5 * p.stderr, (name, p.value, value, p.stderr)


def test_per_trace_errors_cover_the_truth_at_the_nominal_rate() -> None:
    # 40 noise realizations of one soft-bounds trace (read noise only, the model's
    # assumption): the 95 % interval of dw_min must contain the truth 95 % of the time;
    # 40 draws give a binomial SD of 3.4 %, so 85-100 % (3 SD below) is accepted.
    rng = np.random.default_rng(11)
    hits = []
    for _ in range(40):
        g, truth = _trace("soft-bounds", {}, rng)
        pp = to_preset_parameters(fit_trace(g, PULSES, "soft-bounds", g_ref=G_REF), "soft-bounds")
        est, se = pp["parameters"]["dw_min"], pp["uncertainty"]["dw_min"]
        hits.append(abs(est - truth["delta_up"]) < 1.96 * se)
    assert 0.85 <= np.mean(hits) <= 1.0


def test_gong_trace_fits_in_a_notebook_with_fixed_parameters() -> None:
    traces, _ = load_pulse_traces(GONG)
    g, p = traces.conductance_s[0], traces.pulses
    model = pulse_trace_model("soft-bounds")
    params = model.make_params(
        g_start=g[0], g_ref=0.0, delta_up=0.005, delta_down=0.005, w_max=1.0, w_min=-1.0
    )
    params["w_min"].set(value=-1.1, vary=False)  # a user fixes a bound
    params["g_start"].set(vary=False)  # and starts at the first read
    result = fit_trace(g, p, "soft-bounds", params=params)
    assert result.params["w_min"].value == -1.1 and result.params["w_min"].stderr in (0, None)
    assert result.params["delta_up"].stderr > 0
    pp = to_preset_parameters(fit_trace(g, p, "soft-bounds"), "soft-bounds")
    assert pp["uncertainty"]["dw_min"] > 0
    assert pp["uncertainty"]["w_max_dtod"] == "not available (1 device)"


def test_one_device_population_reports_no_zero_or_sandwich_errors() -> None:
    # Before: a 'sandwich over devices' of one device gave pow_up_down ± 1e-16 and the
    # stuck fraction ± 0 (issue 14, item 5).
    traces, _ = load_pulse_traces(GONG)
    fit = fit_pulse_response(traces, "pow-step", predictive_check=False)
    for name, value in fit.uncertainty.items():
        if isinstance(value, float):
            assert np.isfinite(value), name
            assert value > 1e-9 * max(abs(float(fit.parameters.get(name, 1.0) or 1.0)), 1e-30)
    for name in ("pow_gamma", "pow_up_down"):
        assert fit.uncertainty[name] is None
        assert fit.uncertainty_method[name].startswith("not available (1 device")
    assert fit.uncertainty["corrupt_devices_prob"] is None
    assert "rule of three" in fit.uncertainty_method["corrupt_devices_prob"]
    assert fit.uncertainty_method["dw_min_dtod"] == "not available (1 device(s))"


def test_exp_step_trace_with_growing_up_steps_is_recovered() -> None:
    # aihwkit's ExpStepDevice allows A < 0 (steps grow towards the bound); the trace model
    # used to bound A at 0 and could not represent it (issue 13, item 2)
    rng = np.random.default_rng(3)
    shape = {"A_up": -0.05, "A_down": 0.3, "gamma_up": 3.0, "gamma_down": 3.0}
    g, _ = _trace("exp-step", {**shape, "a": 0.244, "b": 0.2425}, rng, noise=0.3e-6)
    result = fit_trace(g, PULSES, "exp-step", g_ref=G_REF)
    assert result.success and result.covar is not None
    for name, value in shape.items():
        p = result.params[name]
        # 4.5 standard errors, as above (8 free parameters)
        assert abs(p.value - value) < 4.5 * p.stderr, (name, p.value, value, p.stderr)
    assert result.params["A_up"].value < 0
