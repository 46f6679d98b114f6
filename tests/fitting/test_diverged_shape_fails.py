"""A shared shape that runs away (unconstrained piecewise node) is a failed fit, not a preset."""

from __future__ import annotations

import numpy as np

from fitting.gmm import DeviceFit
from fitting.pulse_response import _implausible_shape


def _fit(phi: list[float]) -> DeviceFit:
    names = ["node_up_0", "node_up_1"]
    return DeviceFit(
        names=["dw"],
        theta=np.zeros((2, 1)),
        cov=np.zeros((2, 1, 1)),
        shared_names=names,
        phi=np.array(phi),
        phi_cov=np.eye(2),
        objective=np.zeros(2),
        converged=np.ones(2, dtype=bool),
    )


def test_runaway_and_non_finite_shapes_are_flagged_with_the_parameter_name() -> None:
    # Seen on a 4,096-device ECRAM campaign: node_up_0 = -6.2e103, which auto selection
    # must reject (and an explicit --model piecewise-step too, with this reason, when none
    # of its other node counts converges: tests/calib/fit/test_explicit_family_alternatives.py).
    assert "node_up_0" in _implausible_shape(_fit([-6.2e103, 1.1]))
    assert "node_up_1" in _implausible_shape(_fit([1.2, np.nan]))
    assert _implausible_shape(_fit([1.2, 0.4])) == ""
