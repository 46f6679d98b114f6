"""The random-effect cost of a per-device shape is never negative (fitting.selection).

Found 2026-12-07 on constant-step traces (no curvature, read noise one step): pow-step's
exponent per device is degenerate there (ln γ −117 on one device, its error matrix ~1e-42
and asymmetric after the pseudo-inverse), the quadratic form (κ̂ − κ̄)ᵀ(V + T)⁻¹(κ̂ − κ̄)
came out −4.7e46, and ``auto`` picked the per-device pow-step over constant-step by a BIC
difference of 4.8e46.
"""

from __future__ import annotations

import numpy as np
import pytest

from fitting import PulseTraces, fit_pulse_response
from fitting.selection import _population_deviance


def test_deviance_is_not_negative_for_a_degenerate_error_matrix():
    # the device's values as they came out of that fit (ln γ⁺, ln γ⁻ and their error matrix)
    kappa = np.array([[-116.75966970556297, -91.06751830603642], [-1.2, -4.1]])
    v = np.array(
        [
            [[8.460696558287859e-43, 3.748271186376617e-42], [3.613412439354203e-75, 5.89e-43]],
            [[0.02, 0.001], [0.001, 0.03]],
        ]
    )
    x = np.array(
        [-0.9896590603347719, -4.419094865301409, -57.64820411848628, -57.8288708841, -0.16]
    )
    dev = _population_deviance(kappa, v, x, np.array([116.19137332, 88.53349137]))
    assert np.all(dev >= 0.0)


@pytest.mark.slow  # 18 s; with 48 devices the rounding did not occur
def test_auto_does_not_pick_pow_step_on_constant_steps():
    rng = np.random.default_rng(1)
    cycle = np.r_[np.ones(150), -np.ones(150)]
    pulses = np.r_[0, np.tile(cycle, 2)].astype(int)
    w = np.cumsum(pulses * 0.005)[None, :].repeat(96, 0)  # 96 identical constant-step devices
    reads = w + rng.normal(0.0, 0.005, w.shape)  # read noise of one step, bounds not reached
    fit = fit_pulse_response(PulseTraces(reads, pulses), model="auto", seed=0, n_boot=0)
    assert all(s["random_effect_penalty"] >= 0.0 for s in fit.model_selection)
    assert fit.model_selection[0]["family"] in ("constant-step", "linear-step")
