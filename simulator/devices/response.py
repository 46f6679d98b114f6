"""Response functions of the pulsed-device families: the equations, one function per family.

Each function gives the expected (noise-free) step of one pulse as a function of the device
state ``w``, following aihwkit's per-pulse update rules (REFERENCES.md [R4]). The
functions work on numpy arrays and on torch tensors alike (``xp`` is the array module), so the
fitter (numpy) and the simulator (torch) share them. Which function belongs to which family
(and everything else about a family) is said once, in :mod:`simulator.devices.families`;
:func:`expected_step`, :func:`affine_step`, :func:`granularity` and :func:`symmetry_point`
look the family up there.

Per-device parameters (arrays broadcastable against ``w``), in weight units:

``delta_up``, ``delta_down``
    Δ⁺, Δ⁻ ≥ 0, the step sizes at w = 0 (for soft bounds) after d2d sampling.
``b_max``, ``b_min``
    the device's own bounds b⁺ > 0 > b⁻.

Family-specific parameters (scalars or arrays):

``linear-step``: ``gamma_up``, ``gamma_down`` and the reference bounds ``ref_max``, ``ref_min``
(aihwkit's ``mean_bound_reference``: the population means ``w_max``/``w_min``, else each
device's own bounds).
``exp-step``: ``A_up``, ``A_down``, ``gamma_up``, ``gamma_down``, ``a``, ``b``.
``pow-step``: ``pow_gamma_up``, ``pow_gamma_down`` (per-device exponents γ⁺, γ⁻).
``piecewise-step``: ``piecewise_up``, ``piecewise_down`` (node multipliers, equal length).

The returned step is signed: positive for up pulses, negative for down pulses. Callers
multiply by (1 + σξ) for cycle-to-cycle noise and clip to [b⁻, b⁺].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "affine_step",
    "array_module",
    "constant_step",
    "constant_step_affine",
    "exp_step",
    "expected_step",
    "granularity",
    "linear_step",
    "linear_step_affine",
    "piecewise_step",
    "pow_step",
    "soft_bounds_affine",
    "soft_bounds_step",
    "symmetry_point",
]

Array = Any  # numpy.ndarray or torch.Tensor


def _is_torch(x: Array) -> bool:
    return type(x).__module__.startswith("torch")


def array_module(x: Array):
    """``torch`` for a tensor, else ``numpy``."""
    if _is_torch(x):
        import torch

        return torch
    import numpy

    return numpy


_ops = array_module


# ------------------------------------------------------------------------ the equations
def constant_step(xp, w: Array, up: bool, p: Mapping[str, Array]) -> Array:
    """ConstantStep: ±Δ± whatever the state."""
    return p["delta_up"] + 0 * w if up else -p["delta_down"] + 0 * w


def soft_bounds_step(xp, w: Array, up: bool, p: Mapping[str, Array]) -> Array:
    """SoftBounds: Δ⁺(1 − w/b⁺) up, −Δ⁻(1 − w/b⁻) down (own bounds)."""
    if up:
        return p["delta_up"] * (1.0 - w / p["b_max"])
    return -p["delta_down"] * (1.0 - w / p["b_min"])


def linear_step(xp, w: Array, up: bool, p: Mapping[str, Array]) -> Array:
    """LinearStep: Δ⁺(1 − γ⁺w/B⁺) up, −Δ⁻(1 − γ⁻w/B⁻) down (B the reference bounds)."""
    if up:
        return p["delta_up"] * (1.0 - p["gamma_up"] * w / p["ref_max"])
    return -p["delta_down"] * (1.0 - p["gamma_down"] * w / p["ref_min"])


def exp_step(xp, w: Array, up: bool, p: Mapping[str, Array]) -> Array:
    """ExpStep: z = 2a·w/(b⁺ − b⁻) + b; Δ⁺·max(1 − A⁺e^{γ⁺z}, 0), −Δ⁻·max(1 − A⁻e^{−γ⁻z}, 0)."""
    z = 2.0 * p["a"] * w / (p["b_max"] - p["b_min"]) + p["b"]
    if up:
        y = xp.maximum(1.0 - p["A_up"] * xp.exp(p["gamma_up"] * z), 0.0 * z)
        return y * p["delta_up"]
    y = xp.maximum(1.0 - p["A_down"] * xp.exp(-p["gamma_down"] * z), 0.0 * z)
    return -y * p["delta_down"]


def pow_step(xp, w: Array, up: bool, p: Mapping[str, Array]) -> Array:
    """PowStep: Δ⁺((b⁺ − w)/R)^{γ⁺} up, −Δ⁻((w − b⁻)/R)^{γ⁻} down, R = b⁺ − b⁻."""
    span = p["b_max"] - p["b_min"]
    if up:
        x = xp.maximum((p["b_max"] - w) / span, 0.0 * w)
        return p["delta_up"] * x ** p["pow_gamma_up"]
    x = xp.maximum((w - p["b_min"]) / span, 0.0 * w)
    return -p["delta_down"] * x ** p["pow_gamma_down"]


def piecewise_step(xp, w: Array, up: bool, p: Mapping[str, Array]) -> Array:
    """PiecewiseStep: Δ± times the node multiplier interpolated over [b⁻, b⁺] (any node count)."""
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


# -------------------------------------------------- affine forms (step = c − a·w), signed c
def constant_step_affine(up: bool, p: Mapping[str, Array]) -> tuple[Array, Array]:
    delta = p["delta_up"] if up else p["delta_down"]
    return (delta if up else -delta), 0.0 * delta


def soft_bounds_affine(up: bool, p: Mapping[str, Array]) -> tuple[Array, Array]:
    # up: Δ⁺(1 − w/b⁺) = Δ⁺ − (Δ⁺/b⁺)w;  down: −Δ⁻(1 − w/b⁻) = −Δ⁻ − (Δ⁻/|b⁻|)w
    if up:
        return p["delta_up"], p["delta_up"] / p["b_max"]
    return -p["delta_down"], -p["delta_down"] / p["b_min"]


def linear_step_affine(up: bool, p: Mapping[str, Array]) -> tuple[Array, Array]:
    if up:  # Δ⁺(1 − γ⁺w/B⁺)
        return p["delta_up"], p["delta_up"] * p["gamma_up"] / p["ref_max"]
    return -p["delta_down"], -p["delta_down"] * p["gamma_down"] / p["ref_min"]


# ------------------------------------------------------- dispatch through the catalogue
def _family(name: str):
    from simulator.devices.families import device_family  # the catalogue imports this module

    return device_family(name)


def __getattr__(name: str) -> Any:  # FAMILIES and AFFINE_FAMILIES come from the catalogue
    if name in ("FAMILIES", "AFFINE_FAMILIES"):
        from simulator.devices import families

        return getattr(families, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def expected_step(family: str, w: Array, up: bool, p: Mapping[str, Array]) -> Array:
    """Expected signed change of ``w`` for one pulse (up if ``up`` else down)."""
    return _family(family).step(_ops(w), w, up, p)


def granularity(family: str, params: Mapping[str, Any]) -> float:
    """Nominal weight change of one pulse (aihwkit's weight granularity), weight units."""
    return _family(family).granularity(params)


def affine_step(family: str, up: bool, p: Mapping[str, Array]) -> tuple[Array, Array] | None:
    """Coefficients (c, a) with ``expected_step(family, w, up, p) == c − a·w``, or None.

    Only the families of :data:`AFFINE_FAMILIES` have such a form. One pulse maps
    w → (1 − a)·w + c, so n pulses compose in closed form (the simulator uses this).
    ``c`` is signed (≥ 0 up, ≤ 0 down); ``a`` ≥ 0 for devices whose steps shrink towards
    their bound.
    """
    fam = _family(family)
    return None if fam.affine is None else fam.affine(up, p)


def symmetry_point(family: str, p: Mapping[str, Array], iterations: int = 40) -> Array:
    """Weight w* where the expected up and down steps cancel (per device), clipped to bounds.

    Closed form for the affine families, (c⁺ + c⁻)/(a⁺ + a⁻); bisection on
    step_up(w) + step_down(w) over [b⁻, b⁺] otherwise. Repeated up/down pulse pairs drive a
    device towards w*.
    """
    b_min, b_max = p["b_min"], p["b_max"]
    xp = _ops(b_max)
    coef = affine_step(family, True, p)
    if coef is not None:
        (cu, au), (cd, ad) = coef, affine_step(family, False, p)
        total, drift = au + ad, cu + cd
        safe = xp.where(total > 0, total, 0 * total + 1.0)
        # constant steps (a = 0): pairs drift to the bound the larger step points at
        const = xp.where(drift > 0, b_max, xp.where(drift < 0, b_min, 0 * drift))
        w = xp.where(total > 0, drift / safe, const)
        return xp.minimum(xp.maximum(w, b_min), b_max)
    lo, hi = b_min + 0 * b_max, b_max + 0 * b_min
    for _ in range(iterations):  # net drift is decreasing in w: up wins below w*
        mid = 0.5 * (lo + hi)
        net = expected_step(family, mid, True, p) + expected_step(family, mid, False, p)
        lo = xp.where(net > 0, mid, lo)
        hi = xp.where(net > 0, hi, mid)
    return 0.5 * (lo + hi)
