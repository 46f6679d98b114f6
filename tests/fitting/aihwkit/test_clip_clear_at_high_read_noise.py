"""The shared shape of a hard-bound family is not bent by the clip when read noise is large.

aihwkit's EcRamPresetDevice (linear-step, γ⁺ 0.115, γ⁻ 0.509, hard bounds 1.17 / −0.83):
its nominal trace, made by aihwkit itself (``tests/fixtures/aihwkit/preset_ecram.json``),
read by 96 devices with white read noise of 10 steps (1 % of the range, the conformance
grid's default). The shape is fitted on the pairs clear of the read plateaus
(``fitting.gmm.clear_of_bounds``). Two things went wrong at this noise: the margin was
measured from the plateau's 97th percentile (the bound plus 1.9σ), so the last kept pairs
were a fraction of σ from the clip at their noisy first read, biased by about 0.1σ each (a
step); and a device whose sweep turned before its bound looked as if it sat there when its
last 30 steps happened to read flat (one in eight). γ⁺ came out −0.37 (steps growing towards
the bound), the up steps 12-13 % off (rms, of the largest step) over the visited range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fitting import fit_pulse_response
from fitting.traces import PulseTraces

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aihwkit"


def _fitted_step(est: dict, g: np.ndarray, up: bool) -> np.ndarray:
    """The fitted linear-step's nominal step at conductances ``g`` (G − g_offset frame)."""
    d, beta = est["dw_min"].value, est["up_down"].value
    if up:
        return d * (1 + min(beta, 0.0)) * (1 - est["gamma_up"].value * g / est["w_max"].value)
    return -d * (1 - max(beta, 0.0)) * (1 - est["gamma_down"].value * g / est["w_min"].value)


def test_linear_step_shape_at_read_noise_of_ten_steps() -> None:
    from aihwkit_checks import aihwkit_step, load_truth

    truth = load_truth("preset_ecram")
    nominal = np.asarray(truth["nominal_trace"])
    pulses = np.r_[0, np.ones(1200), -np.ones(1200)].astype(int)
    assert nominal.size == pulses.size
    rng = np.random.default_rng(1)
    g = nominal + 0.02 * rng.standard_normal((96, nominal.size))
    fit = fit_pulse_response(PulseTraces(g, pulses), model="linear-step", n_boot=0, seed=0)
    w = np.linspace(0.0, 1.1, 23)  # the visited range of both sweeps' moving parts
    for up in (True, False):
        true = aihwkit_step("LinearStepDevice", truth["aihwkit_fields"], w, up)
        got = _fitted_step(fit.estimates, w - fit.g_offset_s, up)
        rms = np.sqrt(np.mean((got - true) ** 2)) / np.abs(true).max()
        # seeds 1-3: up 0.007-0.015, down 0.006-0.008 of the largest step (the limit of issue
        # 13: 0.05); 0.121-0.134 up and 0.012-0.018 down before
        assert rms < 0.05, (up, rms)


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
