"""Synthetic devices whose conductance windows are shifted by per-device offsets."""

from __future__ import annotations

import numpy as np

from fitting.traces import PulseTraces

PULSES = np.r_[0, np.tile(np.r_[np.ones(80), -np.ones(80)], 3)].astype(int)


def shifted_windows(
    offset_sd: float, n: int = 9, seed: int = 5, bound_sd: float = 1e-6
) -> tuple[PulseTraces, np.ndarray]:
    """Soft-bounds devices with 20 µS windows shifted by N(0, offset_sd²) (and their bounds
    by N(0, bound_sd²) each), 0.5 µS read noise, starting at their lower bound."""
    from fitting.lmfit_models import trajectory

    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, offset_sd, n)
    hi = 40e-6 + 10e-6 + offsets + rng.normal(0, bound_sd, n)
    lo = 40e-6 - 10e-6 + offsets + rng.normal(0, bound_sd, n)
    g = []
    for a, b in zip(lo, hi, strict=True):
        half, mid = 0.5 * (b - a), 0.5 * (b + a)
        v = {"delta_up": 0.12 * half, "delta_down": 0.12 * half, "w_max": half, "w_min": -half}
        w = trajectory("soft-bounds", PULSES, a + 1e-7, mid, v)
        g.append(w + 0.5e-6 * rng.standard_normal(w.size))
    return PulseTraces(np.array(g), PULSES), offsets
