"""The statistical PCM inference-noise model as numpy functions (the forms the fitter uses).

x = g / g_max (normalized conductance), natural logarithms, siemens and seconds, as in
``datasets/PRESET.md`` (``pcm`` section) and aihwkit's ``PCMLikeNoiseModel``
(REFERENCES.md [R8]):

- programming noise σ_prog(x_T) = Σ_k c_k x_T^k (S);
- drift exponent ν ~ |N(μ_ν(x_T), σ_ν(x_T))| with μ_ν, σ_ν either ``clipped-log``
  (clip(a·ln x + b, lo, hi)) or a ``table`` (linear in ln x, constant outside);
- read noise of one read σ_read(t) = g(t)·Q_s(x)·sqrt(ln((t + t_read)/(2 t_read))), with
  Q_s(x) = min(a / max(x, x_floor)^b, c).

:func:`evaluate_section` evaluates a preset ``pcm`` section at given target conductances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PUBLISHED",
    "X_MIN",
    "clipped_log",
    "drift_curves",
    "evaluate_section",
    "interp_log_table",
    "min_power_q",
    "polynomial_sigma",
    "read_time_factor",
]

#: ln(x) is taken of max(x, X_MIN) (aihwkit clamps the normalized conductance there).
X_MIN = 1e-7

#: aihwkit's PCMLikeNoiseModel constants (REFERENCES.md [R8]) in SI units.
PUBLISHED: dict[str, Any] = {
    "g_max_s": 25e-6,
    "t0_s": 20.0,
    "t_read_s": 250e-9,
    "prog_coefficients_s": (0.26348e-6, 1.9650e-6, -1.1731e-6),
    "mu_nu": {"a": -0.0155, "b": 0.0244, "lo": 0.049, "hi": 0.1},
    "sigma_nu": {"a": -0.0125, "b": -0.0059, "lo": 0.008, "hi": 0.045},
    "read_q": {"a": 0.0088, "b": 0.65, "c": 0.2, "x_floor": 1e-3},
}


def polynomial_sigma(coefficients: Sequence[float] | np.ndarray, x: np.ndarray) -> np.ndarray:
    """Σ_k c_k x^k, lowest order first (same units as the coefficients); not clipped."""
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    for c in reversed(list(coefficients)):
        out = out * x + c
    return out


def clipped_log(x: np.ndarray, a: float, b: float, lo: float, hi: float) -> np.ndarray:
    """clip(a·ln(max(x, X_MIN)) + b, lo, hi)."""
    ln_x = np.log(np.maximum(np.asarray(x, dtype=float), X_MIN))
    return np.clip(a * ln_x + b, lo, hi)


def interp_log_table(x: np.ndarray, x_table: np.ndarray, y_table: np.ndarray) -> np.ndarray:
    """Linear interpolation in ln x through (x_table, y_table); constant outside."""
    ln_x = np.log(np.maximum(np.asarray(x, dtype=float), X_MIN))
    return np.interp(ln_x, np.log(np.asarray(x_table, dtype=float)), np.asarray(y_table, float))


def min_power_q(x: np.ndarray, a: float, b: float, c: float, x_floor: float) -> np.ndarray:
    """Relative read-noise amplitude Q_s(x) = min(a / max(x, x_floor)^b, c)."""
    x = np.maximum(np.asarray(x, dtype=float), x_floor)
    return np.minimum(a / x**b, c)


def read_time_factor(t: np.ndarray, t_read: float) -> np.ndarray:
    """sqrt(ln((t + t_read)/(2 t_read))) for t seconds since programming (0 where log < 0)."""
    t = np.maximum(np.asarray(t, dtype=float), 0.0)
    return np.sqrt(np.maximum(np.log((t + t_read) / (2.0 * t_read)), 0.0))


def drift_curves(drift: Mapping[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def evaluate_section(pcm: Mapping[str, Any], g_target_s: np.ndarray) -> dict[str, np.ndarray]:
    """σ_prog (S), μ_ν, σ_ν and Q_s of a preset ``pcm`` section at target conductances (S).

    Q_s is evaluated at x = g_T/g_max (the value a device of that level has on average,
    whichever conductance the section's read-noise convention names).
    """
    g = np.asarray(g_target_s, dtype=float)
    x = g / float(pcm["g_max_s"])
    mu, sig = drift_curves(pcm["drift"], x)
    rn = pcm["read_noise"]
    return {
        "sigma_prog_s": np.maximum(polynomial_sigma(pcm["prog_noise"]["coefficients_s"], x), 0),
        "mu_nu": mu,
        "sigma_nu": sig,
        "q_s": min_power_q(x, rn["a"], rn["b"], rn["c"], rn.get("x_floor", 1e-3)),
    }
