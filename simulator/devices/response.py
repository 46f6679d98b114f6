"""Response functions of the pulsed-device families: the one source of truth.

Each family defines the expected (noise-free) step of one pulse as a function of the
device state ``w``, following aihwkit's per-pulse update rules (``aihwkit_spec.md`` §1.6).
The functions work on numpy arrays and on torch tensors alike (``xp`` is the array
module), so the fitter (numpy) and the simulator (torch) share them.

Per-device parameters (arrays broadcastable against ``w``), in weight units:

``delta_up``, ``delta_down``
    Δ⁺, Δ⁻ ≥ 0, the step sizes at w = 0 (for soft bounds) after d2d sampling.
``b_max``, ``b_min``
    the device's own bounds b⁺ > 0 > b⁻.

Family-specific parameters (scalars or arrays):

``linear-step``: ``gamma_up``, ``gamma_down`` and the reference bounds ``ref_max``, ``ref_min``
(aihwkit's ``mean_bound_reference``: the population means ``w_max``/``w_min``).
``exp-step``: ``A_up``, ``A_down``, ``gamma_up``, ``gamma_down``, ``a``, ``b``.
``pow-step``: ``pow_gamma_up``, ``pow_gamma_down`` (per-device exponents γ⁺, γ⁻).
``piecewise-step``: ``piecewise_up``, ``piecewise_down`` (node multipliers, equal length).

The returned step is signed: positive for up pulses, negative for down pulses. Callers
multiply by (1 + σξ) for cycle-to-cycle noise and clip to [b⁻, b⁺].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["FAMILIES", "expected_step", "granularity"]

FAMILIES = (
    "constant-step",
    "linear-step",
    "soft-bounds",
    "exp-step",
    "pow-step",
    "piecewise-step",
)

Array = Any  # numpy.ndarray or torch.Tensor


def _is_torch(x: Array) -> bool:
    return type(x).__module__.startswith("torch")


def _ops(w: Array):
    if _is_torch(w):
        import torch

        return torch
    import numpy

    return numpy


def expected_step(family: str, w: Array, up: bool, p: Mapping[str, Array]) -> Array:
    """Expected signed change of ``w`` for one pulse (up if ``up`` else down)."""
    xp = _ops(w)
    if family == "constant-step":
        return p["delta_up"] + 0 * w if up else -p["delta_down"] + 0 * w
    if family == "soft-bounds":
        if up:
            return p["delta_up"] * (1.0 - w / p["b_max"])
        return -p["delta_down"] * (1.0 - w / p["b_min"])
    if family == "linear-step":
        if up:
            return p["delta_up"] * (1.0 - p["gamma_up"] * w / p["ref_max"])
        return -p["delta_down"] * (1.0 - p["gamma_down"] * w / p["ref_min"])
    if family == "exp-step":
        z = 2.0 * p["a"] * w / (p["b_max"] - p["b_min"]) + p["b"]
        if up:
            y = xp.maximum(1.0 - p["A_up"] * xp.exp(p["gamma_up"] * z), 0.0 * z)
            return y * p["delta_up"]
        y = xp.maximum(1.0 - p["A_down"] * xp.exp(-p["gamma_down"] * z), 0.0 * z)
        return -y * p["delta_down"]
    if family == "pow-step":
        span = p["b_max"] - p["b_min"]
        if up:
            x = xp.maximum((p["b_max"] - w) / span, 0.0 * w)
            return p["delta_up"] * x ** p["pow_gamma_up"]
        x = xp.maximum((w - p["b_min"]) / span, 0.0 * w)
        return -p["delta_down"] * x ** p["pow_gamma_down"]
    if family == "piecewise-step":
        nodes = p["piecewise_up"] if up else p["piecewise_down"]
        n_sec = len(nodes) - 1
        if n_sec == 0:
            mult = nodes[0] + 0 * w
        else:
            s = xp.maximum((w - p["b_min"]) / (p["b_max"] - p["b_min"]) * n_sec, 0.0 * w)
            k = xp.minimum(xp.floor(s), 0 * s + (n_sec - 1))
            q = xp.minimum(s - k, 0 * s + 1.0)
            mult = 0 * w
            for j in range(n_sec):  # loop over nodes (a handful), not over devices
                sel = k == j
                seg = (1.0 - q) * nodes[j] + q * nodes[j + 1]
                mult = xp.where(sel, seg, mult)
        return mult * (p["delta_up"] if up else -p["delta_down"])
    raise ValueError(f"unknown device family {family!r}; expected one of {FAMILIES}")


def granularity(family: str, params: Mapping[str, Any]) -> float:
    """Nominal weight change of one pulse (aihwkit's weight granularity), weight units."""
    dw_min = float(params["dw_min"])
    if family == "pow-step":
        return dw_min * 0.5 ** float(params.get("pow_gamma", 1.0))
    if family == "piecewise-step":
        nodes = params.get("piecewise_up", [1.0])
        return dw_min * float(nodes[len(nodes) // 2])
    return dw_min
