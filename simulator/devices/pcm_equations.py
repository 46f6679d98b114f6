"""The PCM inference-noise equations, written once for numpy arrays and torch tensors alike.

aihwkit's ``PCMLikeNoiseModel`` (REFERENCES.md [R8]) in the preset ``pcm`` layout
(``datasets/PRESET.md``), siemens and seconds, x = g / g_max, natural logarithms:

- programming noise σ_prog(x_T) = Σ_k c_k x_T^k (S), not clipped here;
- drift exponent ν ~ |N(μ_ν(x_T), σ_ν(x_T))| with μ_ν, σ_ν either ``clipped-log``
  (clip(a·ln max(x, 1e-7) + b, lo, hi)) or a ``table`` (linear in ln x, constant outside);
- read noise of one read σ_read(t) = g(t)·Q_s(x)·√ln((t + t_read)/(2 t_read)), with
  Q_s(x) = min(a / max(x, x_floor)^b, c).

The fitter (numpy, :mod:`fitting.pcm_model`) and the simulator (torch,
:class:`simulator.devices.pcm.PCMNoiseModel`) both evaluate these functions, as the pulsed
families share :mod:`simulator.devices.response`. The array module follows the argument
(``x``); plain numbers and sequences are taken as numpy float64. No torch import here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simulator.devices.response import array_module

__all__ = [
    "PUBLISHED_PCM_SECTION",
    "X_MIN",
    "clipped_log",
    "drift_curves",
    "evaluate_section",
    "interp_log_table",
    "min_power_q",
    "polynomial_sigma",
    "read_time_factor",
]

Array = Any  # numpy.ndarray or torch.Tensor

#: ln(x) is taken of max(x, X_MIN) (aihwkit clamps the normalized conductance there).
X_MIN = 1e-7

#: aihwkit's PCMLikeNoiseModel constants (REFERENCES.md [R8]) in SI units, in the preset
#: ``pcm`` layout: the numbers the emulator's ``pcm`` chip truth carries.
PUBLISHED_PCM_SECTION: dict[str, Any] = {
    "g_max_s": 25e-6,
    "t0_s": 20.0,
    "t_read_s": 250e-9,
    "prog_noise": {"form": "polynomial", "coefficients_s": [0.26348e-6, 1.9650e-6, -1.1731e-6]},
    "drift": {
        "form": "clipped-log",
        "mu_nu": {"a": -0.0155, "b": 0.0244, "lo": 0.049, "hi": 0.1},
        "sigma_nu": {"a": -0.0125, "b": -0.0059, "lo": 0.008, "hi": 0.045},
    },
    "read_noise": {
        "form": "min-power",
        "a": 0.0088,
        "b": 0.65,
        "c": 0.2,
        "x_floor": 1e-3,
        "conductance": "g_prog",
    },
}


def _array(x: Any) -> tuple[Any, Array]:
    """(array module, x as an array of it: tensors kept, anything else numpy float64)."""
    xp = array_module(x)
    if xp.__name__ == "torch":
        return xp, x
    return xp, xp.asarray(x, dtype=float)


def _clip(xp: Any, x: Array, lo: float | None = None, hi: float | None = None) -> Array:
    if xp.__name__ == "torch":
        return xp.clamp(x, min=lo, max=hi)
    return xp.clip(x, lo, hi)


def _ln_x(xp: Any, x: Array) -> Array:
    return xp.log(_clip(xp, x, X_MIN))


def polynomial_sigma(coefficients: Sequence[float], x: Array) -> Array:
    """Σ_k c_k x^k, lowest order first (same units as the coefficients); not clipped."""
    _, x = _array(x)
    out = 0.0 * x
    for c in reversed([float(c) for c in coefficients]):
        out = out * x + c
    return out


def clipped_log(x: Array, a: float, b: float, lo: float, hi: float) -> Array:
    """clip(a·ln(max(x, X_MIN)) + b, lo, hi)."""
    xp, x = _array(x)
    return _clip(xp, a * _ln_x(xp, x) + b, lo, hi)


def interp_log_table(x: Array, x_table: Sequence[float], y_table: Sequence[float]) -> Array:
    """Linear interpolation in ln x through (x_table, y_table); constant outside.

    ``x_table`` positive and increasing; tables are cast to the dtype and device of ``x``.
    """
    xp, x = _array(x)
    if xp.__name__ == "torch":
        xs = xp.as_tensor(x_table, dtype=x.dtype, device=x.device)
        ys = xp.as_tensor(y_table, dtype=x.dtype, device=x.device)
    else:
        xs, ys = xp.asarray(x_table, dtype=float), xp.asarray(y_table, dtype=float)
    lx = _ln_x(xp, x)
    if xs.shape[0] == 1:
        return 0.0 * lx + float(ys[0])
    lxs = xp.log(xs)
    lx = _clip(xp, lx, float(lxs[0]), float(lxs[-1]))
    i = _clip(xp, xp.searchsorted(lxs, lx.reshape(-1)), 1, xs.shape[0] - 1).reshape(lx.shape)
    x0, x1, y0, y1 = lxs[i - 1], lxs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (lx - x0) / (x1 - x0)


def min_power_q(x: Array, a: float, b: float, c: float, x_floor: float) -> Array:
    """Relative read-noise amplitude Q_s(x) = min(a / max(x, x_floor)^b, c).

    A steep law (large b) takes the power to 0 or inf; a/0 = inf is then capped at c, the
    right value, so numpy's division warnings are silenced here.
    """
    xp, x = _array(x)
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        return _clip(xp, a / _clip(xp, x, x_floor) ** b, None, c)


def read_time_factor(t: Array, t_read: float) -> Array:
    """√ln((t + t_read)/(2 t_read)) for t seconds since programming (0 where the log < 0)."""
    xp, t = _array(t)
    t = _clip(xp, t, 0.0)
    return xp.sqrt(_clip(xp, xp.log((t + t_read) / (2.0 * t_read)), 0.0))


def drift_curves(drift: Mapping[str, Any], x: Array) -> tuple[Array, Array]:
    """(μ_ν, σ_ν) of a preset ``drift`` block at normalized targets ``x``."""
    form = drift.get("form")
    if form == "clipped-log":
        mu, sig = drift["mu_nu"], drift["sigma_nu"]
        return (
            clipped_log(x, mu["a"], mu["b"], mu["lo"], mu["hi"]),
            clipped_log(x, sig["a"], sig["b"], sig["lo"], sig["hi"]),
        )
    if form == "table":
        return (
            interp_log_table(x, drift["x"], drift["mu_nu"]),
            interp_log_table(x, drift["x"], drift["sigma_nu"]),
        )
    raise ValueError(f"unknown drift form {form!r}")


def evaluate_section(pcm: Mapping[str, Any], g_target_s: Array) -> dict[str, Array]:
    """σ_prog (S, ≥ 0), μ_ν, σ_ν and Q_s of a preset ``pcm`` section at target conductances (S).

    Q_s is evaluated at x = g_T/g_max (the value a device of that level has on average,
    whichever conductance the section's read-noise convention names).
    """
    xp, g = _array(g_target_s)
    x = g / float(pcm["g_max_s"])
    mu, sig = drift_curves(pcm["drift"], x)
    rn = pcm["read_noise"]
    sigma = polynomial_sigma(pcm["prog_noise"]["coefficients_s"], x)
    return {
        "sigma_prog_s": _clip(xp, sigma, 0.0),
        "mu_nu": mu,
        "sigma_nu": sig,
        "q_s": min_power_q(x, rn["a"], rn["b"], rn["c"], rn.get("x_floor", 1e-3)),
    }
