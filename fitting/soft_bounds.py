"""Closed-form per-device estimates for increments linear in the state, vectorized.

For a soft-bounds device one up pulse gives ΔG = α⁺(G_max − G) and one down pulse
ΔG = −α⁻(G − G_min): within each direction the increment is linear in the state,
ΔG_k = c + s·G_k with s = −α (after n pulses between reads, s = −(1 − (1 − α)ⁿ), and the
fixed point −c/s is still the bound). Regressing measured increments on the measured G_k is
biased by read noise (regression to the mean, REFERENCES.md [R14]), so the earlier
instrument read of each pair (:mod:`fitting.pairs`) serves as an instrument: it is
correlated with G_k but independent of the read noise in G_k and G_{k+1}.

The same linear fit initializes every other family (step size and slope at each end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fitting.pairs import PairBlock

__all__ = ["LinearIV", "linear_iv", "soft_bounds_from_iv"]


@dataclass
class LinearIV:
    """Per-device linear increment model ΔG = c + s·G for one direction (block units)."""

    intercept: np.ndarray  # c, shape (n_dev,)
    slope: np.ndarray  # s (dimensionless)
    cov: np.ndarray  # (n_dev, 2, 2) HAC covariance of (c, s)
    n_pairs: np.ndarray  # usable pairs per device


def linear_iv(block: PairBlock) -> LinearIV:
    """IV estimates of ΔG = c + s·G per device, with a lag-1 HAC sandwich covariance."""

    def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # row-wise Σ a·b
        return np.einsum("ij,ij->i", a, b)

    w = block.weight
    x, z = block.y0, block.z  # 0 on padding
    y = (block.y1 - block.y0) * w
    m = w.sum(1)
    safe_m = np.maximum(m, 1.0)
    sx, sy, sz = x.sum(1), y.sum(1), z.sum(1)
    szx = dot(z, x) - sz * sx / safe_m
    szy = dot(z, y) - sz * sy / safe_m
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = szy / szx
    intercept = (sy - slope * sx) / safe_m
    resid = y - intercept[:, None] * w - slope[:, None] * x
    # IV covariance, sandwich form (Z'X)⁻¹ S (X'Z)⁻¹ with Z = [1, z], X = [1, x]. The
    # residuals are MA(1): read noise enters increment k and k+1 with opposite signs, so S
    # includes the lag-1 cross terms of contiguous pairs (Newey-West with one lag, exact for
    # that structure). The iid formula would overstate the errors several-fold.
    zx = np.empty((x.shape[0], 2, 2))
    zx[:, 0, 0] = m
    zx[:, 0, 1] = sx
    zx[:, 1, 0] = sz
    zx[:, 1, 1] = dot(z, x)
    e2 = resid * resid
    lag = resid[:, :-1] * resid[:, 1:] * block.contiguous
    ze2 = z * e2
    meat = np.empty_like(zx)
    meat[:, 0, 0] = e2.sum(1) + 2 * lag.sum(1)
    meat[:, 0, 1] = meat[:, 1, 0] = ze2.sum(1) + dot(z[:, :-1] + z[:, 1:], lag)
    meat[:, 1, 1] = dot(ze2, z) + 2 * dot(z[:, :-1] * z[:, 1:], lag)
    with np.errstate(all="ignore"):
        det = zx[:, 0, 0] * zx[:, 1, 1] - zx[:, 0, 1] * zx[:, 1, 0]
        safe = (np.abs(det) > 0) & (m >= 4)
        inv = np.full_like(zx, np.nan)
        inv[safe, 0, 0] = zx[safe, 1, 1] / det[safe]
        inv[safe, 0, 1] = -zx[safe, 0, 1] / det[safe]
        inv[safe, 1, 0] = -zx[safe, 1, 0] / det[safe]
        inv[safe, 1, 1] = zx[safe, 0, 0] / det[safe]
        cov = inv @ meat @ np.swapaxes(inv, 1, 2)
    cov[:, 0, 0] = np.maximum(cov[:, 0, 0], 0.0)
    cov[:, 1, 1] = np.maximum(cov[:, 1, 1], 0.0)
    slope = np.where(safe, slope, np.nan)
    intercept = np.where(safe, intercept, np.nan)
    return LinearIV(intercept, slope, cov, m)


def soft_bounds_from_iv(iv: LinearIV, direction: int, n_pulse: int) -> tuple[np.ndarray, ...]:
    """Soft-bounds (Δ, b) per device and their covariance from a linear IV fit.

    The intercept and slope are those of ``n_pulse`` pulses between reads. The bound is the
    fixed point b = −c/s; α = 1 − (1 + s)^{1/n}; Δ = α·|b| (the step at w = 0). Returns
    ``(delta, bound, cov)`` with ``cov`` of shape (n_dev, 2, 2) over (Δ, b), delta method.
    """
    c, s = iv.intercept, iv.slope
    with np.errstate(all="ignore"):
        b = -c / s
        one_plus = np.clip(1.0 + s, 1e-12, None)
        alpha = 1.0 - one_plus ** (1.0 / n_pulse)
        dalpha_ds = -(1.0 / n_pulse) * one_plus ** (1.0 / n_pulse - 1.0)
        sign = 1.0 if direction > 0 else -1.0
        delta = alpha * sign * b
        # Jacobian of (Δ, b) with respect to (c, s)
        db_dc, db_ds = -1.0 / s, c / s**2
        jac = np.empty((*c.shape, 2, 2))
        jac[..., 0, 0] = sign * alpha * db_dc
        jac[..., 0, 1] = sign * (dalpha_ds * b + alpha * db_ds)
        jac[..., 1, 0] = db_dc
        jac[..., 1, 1] = db_ds
        cov = jac @ iv.cov @ np.swapaxes(jac, -1, -2)
    return delta, b, cov
