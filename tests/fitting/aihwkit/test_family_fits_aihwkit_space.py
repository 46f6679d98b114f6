"""Each family's whole aihwkit parameter space is fitted (issue 13, item 2).

Known populations are recovered from noisy synthetic traces made with aihwkit's sampling and
update rules (the catalogue's sampler, :mod:`simulator.devices.families`, and the shared step
equations; per pulse, c2c noise 0.3, white read noise), and from traces aihwkit 1.2.0 itself
produced (``tests/fixtures/aihwkit``, see its README). Protocol: 256 devices (fixtures: as
generated), 2 cycles of 200 up and 200 down pulses, a read after every pulse.

Tolerances: the statistical errors at this size are several times smaller than the bounds
used (population means of 256 devices with 30 % device-to-device spread: ~2 % for a
mean, ~0.01-0.02 for a shape parameter); the step-curve bound (5 % rms of the largest step
over the visited range) is the issue's conformance criterion.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fitting import PulseTraces, fit_pulse_response
from fitting.families import exp_step_representative, piecewise_model, piecewise_nodes
from fitting.synthetic import sample_devices, simulate_traces
from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
from simulator.devices.families import NumpyDraws, sample_population
from simulator.devices.response import expected_step

PULSES = pulse_sequence(
    PulseTrainSpec(200, PulseSpec(1.2, 1e-6), 200, PulseSpec(-1.2, 1e-6), cycles=2)
)
FIXTURES = Path(__file__).parents[2] / "fixtures" / "aihwkit"
BASE = {  # dw_min 0.008: 200 pulses cross the range, most devices touch both bounds
    "dw_min": 0.008,
    "up_down": 0.0,
    "w_max": 0.6,
    "w_min": -0.6,
    "dw_min_dtod": 0.3,
    "up_down_dtod": 0.01,
    "w_max_dtod": 0.3,
    "w_min_dtod": 0.3,
}


def synthetic(family: str, params: dict, seed: int, n: int = 256, read_noise: float = 0.006):
    rng = np.random.default_rng(seed)
    dev = sample_devices(family, params, n, rng)
    w = simulate_traces(family, dev, PULSES, np.zeros(n), rng, 0.3, 0.0, read_noise)
    return PulseTraces(w, PULSES, units="normalized"), w


def mean_device_steps(family: str, params: dict, w: np.ndarray, offset: float = 0.0):
    """(up, down) expected steps of the population's mean device at aihwkit-frame ``w``."""
    mean = {k: v for k, v in params.items() if not k.endswith("_dtod")}
    mean["corrupt_devices_prob"] = 0.0
    dev = sample_population(family, mean, NumpyDraws(np.random.default_rng(0), 1))
    x = w - offset
    return expected_step(family, x, True, dev), expected_step(family, x, False, dev)


def curve_error(fit, family: str, truth: dict, reads: np.ndarray) -> float:
    """rms difference of the mean-device step curves over the visited range / largest step."""
    w = np.linspace(*np.percentile(reads, [5, 95]), 200)
    t_up, t_dn = mean_device_steps(family, truth, w)
    f_up, f_dn = mean_device_steps(fit.model, fit.parameters, w, fit.g_offset_s)
    scale = max(np.max(np.abs(t_up)), np.max(np.abs(t_dn)))
    return float(np.sqrt(np.mean(np.r_[f_up - t_up, f_dn - t_dn] ** 2)) / scale)


def test_exp_step_representative_is_the_same_device() -> None:
    rng = np.random.default_rng(0)
    w = np.linspace(-0.9, 0.9, 50)
    for _ in range(20):
        fields = {
            "A_up": rng.uniform(-0.2, 0.5),
            "A_down": rng.uniform(-0.2, 0.5),
            "gamma_up": rng.uniform(1, 12),
            "gamma_down": rng.uniform(1, 12),
            "a": rng.uniform(0.1, 0.8),
            "b": rng.uniform(-0.3, 0.3),
        }
        rep = exp_step_representative(fields)
        for b_max, b_min in ((0.6, -0.6), (0.9, -0.4)):
            base = {"delta_up": 0.01, "delta_down": 0.01, "b_max": b_max, "b_min": b_min}
            for up in (True, False):
                a = expected_step("exp-step", w, up, {**base, **fields})
                b = expected_step("exp-step", w, up, {**base, **rep})
                assert np.allclose(a, b, rtol=1e-9, atol=1e-15)


def test_piecewise_nodes_work_for_any_count() -> None:
    for n in (2, 3, 9):
        model = piecewise_model(n)
        values = {name: 0.5 + 0.1 * j for j, name in enumerate(model.shape)}
        up, down = piecewise_nodes(values)
        assert len(up) == len(down) == n and up[n // 2] == down[n // 2] == 1.0
        p = model.step_params(
            {**values, "delta_up": 1.0, "delta_down": 1.0, "b_max": 1, "b_min": -1}
        )
        assert p["piecewise_up"] == up


def test_exp_step_with_growing_up_steps_and_general_a_b_is_fitted() -> None:
    # A_up < 0 (up steps grow towards the upper bound), a and b away from the defaults; the
    # old fit (log A, so A > 0 only) could not represent it. dw_min 0.003: the devices stay
    # inside their bounds (hard-bound clipping of exp-step traces is a known weak spot, see
    # the module docstring of fitting.families).
    truth = {**BASE, "dw_min": 0.003, "A_up": -0.05, "A_down": 0.05}
    truth.update(gamma_up=5.0, gamma_down=4.0, a=0.5, b=-0.1)
    traces, reads = synthetic("exp-step", truth, seed=11)
    fit = fit_pulse_response(traces, model="exp-step")
    w = np.percentile(reads, [50, 95])
    up, _ = mean_device_steps(fit.model, fit.parameters, w, fit.g_offset_s)
    true_up, _ = mean_device_steps("exp-step", truth, w)
    # growth towards the upper bound is reproduced in sign (its size, +31 % from the median
    # read to the 95th percentile, is concentrated in the last few % of the range and only
    # weakly identified: the fit gives +6 %)
    assert true_up[1] > 1.2 * true_up[0] and up[1] > up[0]
    # the conformance bound; measured 4.8 %
    assert curve_error(fit, "exp-step", truth, reads) < 0.05
    for name in ("a", "b"):  # said, not silently fixed
        assert fit.uncertainty_method[name].startswith("not identified")


def test_linear_step_with_increasing_up_steps_is_fitted() -> None:
    truth = {**BASE, "gamma_up": -0.3, "gamma_down": 0.4, "allow_increasing": True}
    truth.update(gamma_up_dtod=0.05, gamma_down_dtod=0.05)
    traces, reads = synthetic("linear-step", truth, seed=12)
    fit = fit_pulse_response(traces, model="linear-step")
    p = fit.parameters
    assert p["allow_increasing"] is True
    # γ is relative to the mean bound; the reference moves with g_offset (~1 % here)
    assert abs(p["gamma_up"] - truth["gamma_up"]) < 0.06
    assert abs(p["gamma_down"] - truth["gamma_down"]) < 0.06
    assert curve_error(fit, "linear-step", truth, reads) < 0.05


def test_pow_step_exponent_asymmetry_is_recovered() -> None:
    truth = {**BASE, "dw_min": 0.01, "pow_gamma": 2.0, "pow_up_down": 0.3}
    truth.update(pow_gamma_dtod=0.1, pow_up_down_dtod=0.0)
    traces, reads = synthetic("pow-step", truth, seed=13)
    fit = fit_pulse_response(traces, model="pow-step")
    assert fit.parameters["pow_gamma"] == pytest.approx(2.0, rel=0.15)
    assert abs(fit.parameters["pow_up_down"] - 0.3) < 0.1
    assert curve_error(fit, "pow-step", truth, reads) < 0.05


def test_constant_step_bound_reached_by_some_devices_only() -> None:
    # w_min = −1: with dw_min 0.008 about half of the devices reach it; pooling only those
    # put the mean bound ~20 % too close (issue 13); the censored estimate must be within 10 %
    truth = {**BASE, "w_min": -1.0}
    traces, _ = synthetic("constant-step", truth, seed=14)
    fit = fit_pulse_response(traces, model="constant-step")
    w_min = fit.parameters["w_min"] + fit.g_offset_s  # back in the traces' (aihwkit's) frame
    assert w_min == pytest.approx(-1.0, rel=0.10)
    assert any("did not reach this bound" in n for n in fit.notes)


def _fixture(case: str):
    pytest.importorskip("h5py")
    from calib.fit.pulse_response import load_pulse_traces

    path = FIXTURES / f"{case}.h5"
    if not path.exists():
        pytest.skip(f"fixture {case} not generated yet")
    traces, _ = load_pulse_traces(path, units="normalized")
    truth = json.loads((FIXTURES / f"{case}.json").read_text())
    return traces, truth


def test_aihwkit_constant_step_lower_bound_partly_reached() -> None:
    traces, truth = _fixture("cs_lower_bound_partly_reached")
    fit = fit_pulse_response(traces, model="constant-step")
    w_min = fit.parameters["w_min"] + fit.g_offset_s
    assert w_min == pytest.approx(truth["aihwkit_fields"]["w_min"], rel=0.10)


@pytest.mark.slow
def test_aihwkit_linear_step_with_increasing_steps_is_picked_by_auto() -> None:
    traces, truth = _fixture("ls_allow_increasing")
    fit = fit_pulse_response(traces, model="auto")
    assert fit.model == "linear-step"
    assert fit.parameters["allow_increasing"] is True
    assert abs(fit.parameters["gamma_up"] - truth["aihwkit_fields"]["gamma_up"]) < 0.06


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="open (issue 13): since the synthetic traces run through the simulator's device "
    "model (d2fc276) this realization is fitted as exp-step; over seeds 1-4 auto picks "
    "linear-step on 2 (seeds 2, 3) and exp-step on 2: the choice between linear-step with "
    "gamma spread and exp-step is not yet reliable",
)
def test_linear_step_with_gamma_spread_is_picked_by_auto() -> None:
    # aihwkit's default gamma_*_dtod = 0.05: with the shape shared by all devices, auto
    # preferred pow-step (ΔBIC ≈ 700 on this case); scored with its shape per device,
    # linear-step must win
    truth = {**BASE, "dw_min": 0.002, "gamma_up": 0.3, "gamma_down": 0.7}
    truth.update(gamma_up_dtod=0.05, gamma_down_dtod=0.05)
    traces, _ = synthetic("linear-step", truth, seed=1, read_noise=0.0024)
    fit = fit_pulse_response(traces, model="auto")
    assert fit.model == "linear-step"
