"""One response function per family, identical on numpy and torch, checked at known points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.devices.response import (
    AFFINE_FAMILIES,
    FAMILIES,
    affine_step,
    expected_step,
    symmetry_point,
)

PARAMS = {
    "delta_up": 0.01,
    "delta_down": 0.008,
    "b_max": 0.6,
    "b_min": -0.5,
    "gamma_up": 0.3,
    "gamma_down": 0.2,
    "ref_max": 0.6,
    "ref_min": -0.6,
    "A_up": 0.00081,
    "A_down": 0.36833,
    "a": 0.244,
    "b": 0.2425,
    "pow_gamma_up": 1.5,
    "pow_gamma_down": 0.7,
    "piecewise_up": [1.2, 1.0, 0.5],
    "piecewise_down": [0.4, 1.0, 1.3],
}
if True:  # exp-step uses its own gamma meaning; keep a separate dict for it
    EXP = dict(PARAMS, gamma_up=12.44625, gamma_down=12.78785)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("up", [True, False])
def test_numpy_and_torch_agree(family: str, up: bool) -> None:
    p = EXP if family == "exp-step" else PARAMS
    w = np.linspace(-0.5, 0.6, 23)
    a = expected_step(family, w, up, p)
    b = expected_step(family, torch.tensor(w), up, p).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert np.all(a >= 0) if up else np.all(a <= 0)


def test_soft_bounds_reaches_zero_at_own_bounds_and_delta_at_zero() -> None:
    w = np.array([0.6, 0.0, -0.5])
    up = expected_step("soft-bounds", w, True, PARAMS)
    down = expected_step("soft-bounds", w, False, PARAMS)
    np.testing.assert_allclose(up, [0.0, 0.01, 0.01 * (1 + 0.5 / 0.6)])
    np.testing.assert_allclose(down, [-0.008 * (1 + 0.6 / 0.5), -0.008, 0.0])


def test_linear_step_gamma_meaning() -> None:
    # gamma 0.3: the up step at the mean bound is 30 % smaller than at w = 0
    step = expected_step("linear-step", np.array([0.0, 0.6]), True, PARAMS)
    np.testing.assert_allclose(step, [0.01, 0.007])


def test_pow_step_midpoint_and_piecewise_nodes() -> None:
    sym = dict(PARAMS, b_min=-0.6, pow_gamma_up=2.0)
    np.testing.assert_allclose(expected_step("pow-step", np.array([0.0]), True, sym), [0.0025])
    nodes = expected_step("piecewise-step", np.array([-0.5, 0.05, 0.6]), True, PARAMS) / 0.01
    np.testing.assert_allclose(nodes, [1.2, 1.0, 0.5])


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown device family"):
        expected_step("magic", np.zeros(1), True, PARAMS)


@pytest.mark.parametrize("family", AFFINE_FAMILIES)
@pytest.mark.parametrize("up", [True, False])
def test_affine_coefficients_reproduce_the_step(family: str, up: bool) -> None:
    w = np.linspace(-0.5, 0.6, 23)
    c, a = affine_step(family, up, PARAMS)
    np.testing.assert_allclose(c - a * w, expected_step(family, w, up, PARAMS), atol=1e-15)
    assert affine_step("exp-step", up, EXP) is None


@pytest.mark.parametrize("family", FAMILIES)
def test_symmetry_point_balances_up_and_down_steps(family: str) -> None:
    p = EXP if family == "exp-step" else PARAMS
    sp = symmetry_point(family, {k: np.asarray(v) if not isinstance(v, list) else v
                                 for k, v in p.items()})  # fmt: skip
    net = expected_step(family, sp, True, p) + expected_step(family, sp, False, p)
    assert abs(float(net)) < 1e-9 or sp in (p["b_min"], p["b_max"])
    # soft bounds: the closed form of REFERENCES.md [R6]
    if family == "soft-bounds":
        du, dd, bp, bm = 0.01, 0.008, 0.6, -0.5
        assert float(sp) == pytest.approx((du - dd) / (du / bp - dd / bm))
