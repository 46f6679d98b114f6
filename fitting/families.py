"""The six pulsed-device families as fit models, on top of the shared response functions.

The equations live in one place, :func:`simulator.devices.response.expected_step`; this
module only says which quantities of each family are free, how they map to the arguments of
that function, and how they become aihwkit's population parameters.

Internal units: the fitter works in *normalized weight* ``w = (G − g0)/scale`` (dimension-
less, span about 1). Every family has four per-device parameters: the step sizes Δ⁺, Δ⁻
(``delta_up``, ``delta_down``, as aihwkit defines them after device-to-device sampling) and
the device's own bounds b⁺ > b⁻ (``b_max``, ``b_min``). Shape parameters are either shared by
all devices (aihwkit has no device-to-device spread for them: exp-step's A and γ,
piecewise-step's nodes) or vary per device around a population mean (linear-step's γ,
pow-step's exponents; aihwkit's ``gamma_*_dtod``, ``pow_*_dtod``).

Parametrizations chosen for identifiability:

* linear-step: ``kappa_up`` = γ⁺/w_max and ``kappa_down`` = γ⁻/|w_min| (γ and the
  reference bound only enter as their ratio); γ follows once the population bounds are known.
* exp-step: only A⁺e^{γ⁺b}, A⁻e^{−γ⁻b}, a·γ⁺ and a·γ⁻ are identifiable (z = 2a·w/R + b), so
  ``a`` and ``b`` are fixed at aihwkit's defaults and ``log A_up``, ``log A_down``,
  ``gamma_up``, ``gamma_down`` are fitted.
* pow-step: ``log γ⁺``, ``log γ⁻`` (exponents stay positive).
* piecewise-step: node values; the middle node of each direction is fixed to 1 so that Δ±
  is the step at the middle of the device's range (aihwkit's granularity convention).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.devices.response import FAMILIES, expected_step

__all__ = [
    "DEVICE_PARAMS",
    "EXP_STEP_FIXED",
    "FAMILY_MODELS",
    "FamilyModel",
    "family_model",
    "piecewise_nodes",
]

#: Per-device parameters every family has (normalized units).
DEVICE_PARAMS = ("delta_up", "delta_down", "b_max", "b_min")

#: aihwkit ExpStepDevice defaults for the parameters that cannot be identified.
EXP_STEP_FIXED = {"a": 0.244, "b": 0.2425}

PIECEWISE_NODES = 5


@dataclass(frozen=True)
class FamilyModel:
    """Which parameters of a family are fitted, and how they feed ``expected_step``."""

    name: str
    shape: tuple[str, ...] = ()  # shape parameters (shared in model selection)
    per_device_shape: tuple[str, ...] = ()  # of those, the ones aihwkit varies per device
    clip: bool = True  # the step is non-zero at the bounds, so clipping shapes the trace
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def step_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments of :func:`expected_step` from fitted values (arrays broadcast)."""
        v = dict(self.fixed)
        v.update(values)
        p: dict[str, Any] = {k: v[k] for k in DEVICE_PARAMS}
        if self.name == "linear-step":
            p.update(gamma_up=v["kappa_up"], gamma_down=v["kappa_down"], ref_max=1.0, ref_min=-1.0)
        elif self.name == "exp-step":
            p.update(
                A_up=np.exp(v["log_A_up"]),
                A_down=np.exp(v["log_A_down"]),
                gamma_up=v["gamma_up"],
                gamma_down=v["gamma_down"],
                a=v["a"],
                b=v["b"],
            )
        elif self.name == "pow-step":
            p.update(
                pow_gamma_up=np.exp(v["log_gamma_up"]), pow_gamma_down=np.exp(v["log_gamma_down"])
            )
        elif self.name == "piecewise-step":
            up, down = piecewise_nodes(v)
            p.update(piecewise_up=up, piecewise_down=down)
        return p

    def step(self, w: np.ndarray, up: bool, values: Mapping[str, Any]) -> np.ndarray:
        """Expected signed step of one pulse at normalized state ``w``."""
        return expected_step(self.name, w, up, self.step_params(values))

    @property
    def n_shape(self) -> int:
        return len(self.shape)


def _piecewise_shape(n_nodes: int) -> tuple[str, ...]:
    mid = n_nodes // 2
    names = [f"node_up_{j}" for j in range(n_nodes) if j != mid]
    names += [f"node_down_{j}" for j in range(n_nodes) if j != mid]
    return tuple(names)


def piecewise_nodes(values: Mapping[str, Any], n_nodes: int = PIECEWISE_NODES) -> tuple[list, list]:
    """Node lists (up, down) with the fixed middle node 1, from fitted node values."""
    mid = n_nodes // 2
    up = [1.0 if j == mid else values[f"node_up_{j}"] for j in range(n_nodes)]
    down = [1.0 if j == mid else values[f"node_down_{j}"] for j in range(n_nodes)]
    return up, down


FAMILY_MODELS: dict[str, FamilyModel] = {
    "constant-step": FamilyModel(
        "constant-step", clip=True, description="constant step, hard bounds by clipping"
    ),
    "soft-bounds": FamilyModel(
        "soft-bounds", clip=False, description="step shrinks linearly to zero at own bounds"
    ),
    "linear-step": FamilyModel(
        "linear-step",
        shape=("kappa_up", "kappa_down"),
        per_device_shape=("kappa_up", "kappa_down"),
        clip=True,
        description="step linear in w relative to the mean bounds; hard bounds clip",
    ),
    "exp-step": FamilyModel(
        "exp-step",
        shape=("log_A_up", "log_A_down", "gamma_up", "gamma_down"),
        clip=True,
        fixed=dict(EXP_STEP_FIXED),
        description="exponential step shape (global), hard bounds clip",
    ),
    "pow-step": FamilyModel(
        "pow-step",
        shape=("log_gamma_up", "log_gamma_down"),
        per_device_shape=("log_gamma_up", "log_gamma_down"),
        clip=False,
        description="step ∝ distance to the bound to a power",
    ),
    "piecewise-step": FamilyModel(
        "piecewise-step",
        shape=_piecewise_shape(PIECEWISE_NODES),
        clip=True,
        description=f"piecewise-linear step multiplier, {PIECEWISE_NODES} nodes (global)",
    ),
}
assert set(FAMILY_MODELS) == set(FAMILIES)


def family_model(name: str) -> FamilyModel:
    """The fit model of family ``name``."""
    try:
        return FAMILY_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown device family {name!r}; expected one of {FAMILIES}") from None
