"""Closed-form per-device soft-bounds estimates, vectorized over devices.

For a soft-bounds device (conductance G, bounds G_max > G_min), one up pulse gives
ΔG = α⁺ (G_max − G) and one down pulse ΔG = −α⁻ (G − G_min): within each direction the
increment is linear in the state, ΔG_k = c + s·G_k with s = −α. Regressing measured
increments on the measured G_k is biased by read noise (regression to the mean,
anchors.md §3 pitfall 1), so we use the previous read G_{k−1} as an instrument
(instrumental-variable regression): it is correlated with G_k but independent of the read
noise in G_k and G_{k+1}. When every read follows n pulses of one sign, the slope is
s = −(1 − (1 − α)ⁿ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fitting.traces import FitInputError, PulseTraces

__all__ = ["DirectionEstimate", "estimate_direction", "pulse_magnitude"]


@dataclass
class DirectionEstimate:
    """Per-device linear increment model ΔG = c + s·G for one pulse direction."""

    intercept: np.ndarray  # c (S), shape (n_devices,)
    slope: np.ndarray  # s (dimensionless)
    cov: np.ndarray  # (n_devices, 2, 2) covariance of (c, s)
    residual_var: np.ndarray  # variance of increment residuals (S²)
    residual_autocov: np.ndarray  # lag-1 autocovariance of residuals (S²)
    mean_step_sq: np.ndarray  # mean squared expected step (S²)
    swing_t: np.ndarray  # t statistic of (end of this direction's branches - end of the other's)
    n_pairs: int
    pulses_per_read: int


def pulse_magnitude(traces: PulseTraces) -> int:
    """The common number of pulses between reads; mixed counts are refused."""
    mags = np.unique(np.abs(traces.pulses[traces.pulses != 0]))
    if mags.size != 1:
        raise FitInputError(
            f"{traces.source}: reads follow different pulse counts {mags.tolist()}; "
            "the soft-bounds fitter needs the same count before every read"
        )
    return int(mags[0])


def estimate_direction(traces: PulseTraces, direction: int) -> DirectionEstimate:
    """IV estimates of ΔG = c + s·G for ``direction`` (+1 up, -1 down), per device."""
    n_pulse = pulse_magnitude(traces)
    p = traces.pulses
    g = traces.conductance_s
    target = direction * n_pulse
    # k indexes the regressor read; need read k-1 (instrument), k, k+1, with pulses
    # before k and before k+1 both in this direction (so G_{k-1}..G_{k+1} is one branch).
    k = np.nonzero((p[1:-1] == target) & (p[2:] == target))[0] + 1
    if k.size < 4:
        raise FitInputError(
            f"{traces.source}: only {k.size} consecutive "
            f"{'up' if direction > 0 else 'down'} increments; need at least 4"
        )
    x = g[:, k]
    y = g[:, k + 1] - x
    z = g[:, k - 1]
    m = k.size
    xm, ym, zm = x.mean(1, keepdims=True), y.mean(1, keepdims=True), z.mean(1, keepdims=True)
    szx = np.sum((z - zm) * (x - xm), axis=1)
    szy = np.sum((z - zm) * (y - ym), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = szy / szx
    intercept = ym[:, 0] - slope * xm[:, 0]
    resid = y - intercept[:, None] - slope[:, None] * x
    # IV covariance, sandwich form (Z'X)⁻¹ S (X'Z)⁻¹ with Z = [1, z], X = [1, x]. The
    # residuals are MA(1): read noise enters increment k and k+1 with opposite signs, so S
    # includes the lag-1 cross terms of contiguous pairs (Newey-West with one lag, exact for
    # that structure). The iid formula would overstate the errors several-fold.
    zx = np.empty((g.shape[0], 2, 2))
    zx[:, 0, 0] = m
    zx[:, 0, 1] = x.sum(1)
    zx[:, 1, 0] = z.sum(1)
    zx[:, 1, 1] = np.sum(z * x, axis=1)
    contiguous = np.diff(k) == 1
    e2 = resid**2
    lag = resid[:, :-1] * resid[:, 1:] * contiguous
    za, zb = z[:, :-1], z[:, 1:]
    meat = np.empty_like(zx)
    meat[:, 0, 0] = e2.sum(1) + 2 * lag.sum(1)
    meat[:, 0, 1] = meat[:, 1, 0] = np.sum(z * e2, 1) + np.sum((za + zb) * lag, 1)
    meat[:, 1, 1] = np.sum(z * z * e2, 1) + 2 * np.sum(za * zb * lag, 1)
    with np.errstate(all="ignore"):
        det = zx[:, 0, 0] * zx[:, 1, 1] - zx[:, 0, 1] * zx[:, 1, 0]
        safe = np.abs(det) > 0
        inv = np.full_like(zx, np.nan)
        inv[safe, 0, 0] = zx[safe, 1, 1] / det[safe]
        inv[safe, 0, 1] = -zx[safe, 0, 1] / det[safe]
        inv[safe, 1, 0] = -zx[safe, 1, 0] / det[safe]
        inv[safe, 1, 1] = zx[safe, 0, 0] / det[safe]
        cov = inv @ meat @ np.swapaxes(inv, 1, 2)
    cov[:, 0, 0] = np.maximum(cov[:, 0, 0], 0.0)
    cov[:, 1, 1] = np.maximum(cov[:, 1, 1], 0.0)
    # Residual noise structure along each contiguous run of pairs.
    r0, r1 = resid[:, :-1][:, contiguous], resid[:, 1:][:, contiguous]
    autocov = np.mean(r0 * r1, axis=1) if contiguous.any() else np.zeros(g.shape[0])
    expected = intercept[:, None] + slope[:, None] * x
    # Responsiveness: conductance after the last quarter of each branch of this direction
    # minus the same for the opposite direction, as a t statistic (about 0 for stuck devices).
    swing_t = _swing_t(g, p, target)
    return DirectionEstimate(
        intercept=intercept,
        slope=slope,
        cov=cov,
        residual_var=np.mean(resid**2, axis=1),
        residual_autocov=autocov,
        mean_step_sq=np.mean(expected**2, axis=1),
        swing_t=swing_t,
        n_pairs=m,
        pulses_per_read=n_pulse,
    )


def _branch_tails(p: np.ndarray, sign: int) -> np.ndarray:
    """Read indices in the last quarter of every branch of pulses with ``sign``."""
    in_branch = np.sign(p) == sign
    out = []
    k = 0
    while k < p.size:
        if in_branch[k]:
            end = k
            while end + 1 < p.size and in_branch[end + 1]:
                end += 1
            length = end - k + 1
            out.extend(range(end - max(length // 4, 1) + 1, end + 1))
            k = end + 1
        else:
            k += 1
    return np.asarray(out, dtype=np.int64)


def _swing_t(g: np.ndarray, p: np.ndarray, target: int) -> np.ndarray:
    sign = int(np.sign(target))
    a, b = g[:, _branch_tails(p, sign)], g[:, _branch_tails(p, -sign)]
    se = np.sqrt(a.var(1, ddof=1) / a.shape[1] + b.var(1, ddof=1) / b.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return sign * (a.mean(1) - b.mean(1)) / (se + 1e-300)
