"""Values stated at the midpoint of the mean bounds lose their interval when a bound is a limit.

Found by benchmarks/bench_coverage.py (seed 0, 2026-12-07): on 3 of 200 linear-step chips the
lower bound was reached by fewer than 3 devices and reported as a limit (the furthest read
plateau); dw_min, up_down and γ± are stated at the midpoint of the mean bounds, which then
moves with the unseen bound, yet they kept Fisher errors that hold it fixed: up_down 0.196
came out −0.009 ± 0.010 (20 standard errors off). Constant-step's step does not depend on w,
so its dw_min and up_down keep their intervals when a bound is a limit.
"""

from __future__ import annotations

import pytest

from tests.emulated_chip import fit_emulated_chip

LIMIT = "not identified (stated at the midpoint of the mean bounds; w_min a limit)"


def _chip(family: str, seed: int, **extra):
    """64 emulated devices; the lower bound lies 0.3 of the window beyond where the down
    pulses take the devices (not reached)."""
    fields = dict(
        response=family,
        dw_min=0.65e-6,
        up_down=0.2,
        w_max=40e-6,
        w_min=-40e-6,
        dw_min_dtod=0.14,
        up_down_dtod=0.03,
        w_max_dtod=0.08,
        w_min_dtod=0.10,
        dw_min_std=0.35,
        **extra,
    )
    truth, _, fit = fit_emulated_chip(fields, 64, seed)
    return truth, fit


def test_linear_step_values_at_the_midpoint_have_no_interval_when_w_min_is_a_limit():
    truth, fit = _chip("linear-step", 7, gamma_up=0.4, gamma_down=0.35)
    assert fit.uncertainty_method["w_min"] == "not identified"
    for name in ("dw_min", "up_down", "gamma_up", "gamma_down"):
        assert fit.uncertainty.get(name) is None, name
        assert fit.uncertainty_method[name] == LIMIT, name
    assert any("is only a limit" in n for n in fit.notes)
    # the bound that was reached keeps its interval, and holds the truth (95 %)
    se = fit.uncertainty["w_max"]
    assert abs(fit.g_offset_s + fit.parameters["w_max"] - truth.g_offset_s - 40e-6) < 1.96 * se


@pytest.mark.parametrize("seed", [7])
def test_constant_step_keeps_its_intervals_when_w_min_is_a_limit(seed):
    _, fit = _chip("constant-step", seed)
    assert fit.uncertainty_method["w_min"] == "not identified"
    # the step does not depend on w: the midpoint does not enter dw_min or up_down
    for name in ("dw_min", "up_down"):
        assert fit.uncertainty.get(name) is not None, name
    assert abs(fit.parameters["up_down"] - 0.2) < 1.96 * fit.uncertainty["up_down"]
