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

from fitting.increment_noise import IncrementNoise, estimate_increment_noise, moment_covariance
from fitting.pairs import PairBlock

__all__ = [
    "LinearIV",
    "increment_noise",
    "iv_cross_covariance",
    "linear_iv",
    "soft_bounds_from_iv",
]


@dataclass
class LinearIV:
    """Per-device linear increment model ΔG = c + s·G for one direction (block units)."""

    intercept: np.ndarray  # c, shape (n_dev,)
    slope: np.ndarray  # s (dimensionless)
    cov: np.ndarray  # (n_dev, 2, 2) covariance of (c, s) (sandwich, model meat)
    n_pairs: np.ndarray  # usable pairs per device
    bread: np.ndarray | None = None  # (n_dev, 2, 2) (Z'X)⁻¹ of the sandwich
    noise: IncrementNoise | None = None  # the chip's increment noise of the meat


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # row-wise Σ a·b
    return np.einsum("ij,ij->i", a, b)


def _contraction(slope: np.ndarray) -> np.ndarray:
    """1 + s per device: how much of a pair's first read's noise its residual keeps."""
    return np.clip(1.0 + np.nan_to_num(slope), 1e-6, None)


@dataclass
class _Regression:
    """The per-device IV regression of one direction and its residuals."""

    block: PairBlock
    intercept: np.ndarray
    slope: np.ndarray
    resid: np.ndarray
    fitted: np.ndarray  # ŷ_k = c + s·x_k
    use: np.ndarray  # (n_dev, P) bool: pairs used

    @classmethod
    def of(cls, block: PairBlock) -> _Regression:
        w = block.weight
        x, z = block.y0, block.z  # 0 on padding
        y = (block.y1 - block.y0) * w
        m = w.sum(1)
        safe_m = np.maximum(m, 1.0)
        sx, sy, sz = x.sum(1), y.sum(1), z.sum(1)
        szx = _dot(z, x) - sz * sx / safe_m
        szy = _dot(z, y) - sz * sy / safe_m
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = szy / szx
        intercept = (sy - slope * sx) / safe_m
        resid = y - intercept[:, None] * w - slope[:, None] * x
        use = np.isfinite(slope)[:, None] & (w > 0)
        fitted = np.where(use, intercept[:, None] + slope[:, None] * x, 0.0)
        return cls(block, intercept, slope, np.where(use, resid, 0.0), fitted, use)

    @property
    def contraction(self) -> np.ndarray:  # (n_dev, P): 1 + s of each pair's device
        return np.broadcast_to(_contraction(self.slope)[:, None], self.resid.shape)

    def noise(self) -> IncrementNoise | None:
        """The chip's increment noise from these devices' residuals."""
        return estimate_increment_noise(
            self.resid, self.fitted, self.contraction, self.use, self.block.contiguous
        )


def increment_noise(block: PairBlock) -> IncrementNoise | None:
    """The chip's :class:`~fitting.increment_noise.IncrementNoise` from the devices of
    ``block`` (their IV fits' residuals; contraction 1 + s)."""
    return _Regression.of(block).noise()


def linear_iv(block: PairBlock, noise: IncrementNoise | None = None) -> LinearIV:
    """IV estimates of ΔG = c + s·G per device, with their sandwich covariance.

    Sandwich (Z'X)⁻¹ S (X'Z)⁻¹ with Z = [1, z], X = [1, x] and S the covariance of the
    moments Σ_k z̃_k·ε_k under the model of :class:`IncrementNoise` (``noise``: the chip's,
    estimated on this block when None): diagonal white0 + white1·ŷ_k² + (1 + ρ²)σ_r² and
    −ρ·σ_r² between contiguous pairs (ρ = 1 + s; read noise enters increments k and k+1
    with opposite signs, and the iid formula would overstate the errors several-fold).
    Positive semi-definite by construction. Summed pair by pair instead (Newey-West, one
    lag at full weight), S had come out negative for one device in six where read noise
    dominates: its Δ error 0 or 10x too small, and that device then outweighed the others
    in the population spread (benchmarks/bench_coverage.py: soft-bounds up_down_dtod
    covered 86.5 %). With this S the errors of s and b match their spread over 1024
    identical emulated devices within 10 % (tests/fitting/test_soft_bounds_iv_errors.py).
    """
    reg = _Regression.of(block)
    noise = noise if noise is not None else reg.noise()
    z = block.z
    m = block.weight.sum(1)
    zx = np.empty((z.shape[0], 2, 2))
    zx[:, 0, 0] = m
    zx[:, 0, 1] = block.y0.sum(1)
    zx[:, 1, 0] = z.sum(1)
    zx[:, 1, 1] = _dot(z, block.y0)
    if noise is None:
        meat = np.full_like(zx, np.nan)
    else:
        instruments = np.stack([np.ones_like(z), z], axis=-1)
        meat = moment_covariance(
            instruments, noise, reg.fitted, reg.contraction, reg.use, block.contiguous
        )
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
    slope = np.where(safe, reg.slope, np.nan)
    intercept = np.where(safe, reg.intercept, np.nan)
    return LinearIV(intercept, slope, cov, m, inv, noise)


def iv_cross_covariance(
    up: PairBlock, iv_up: LinearIV, down: PairBlock, iv_down: LinearIV, read_var: float
) -> np.ndarray:
    """Covariance of a device's up (c, s) with its down (c, s), shape (n_dev, 2, 2).

    The two regressions share the reads where a sweep turns: the read after the last up
    pulse is the read before the first down pulse. Its read noise enters the up pair's
    residual as +e and the down pair's as −(1 + s_down)·e (and the other way round at the
    bottom turn), so the two devices' estimates are correlated: on 1024 identical emulated
    devices the fitted bounds correlated 0.10 (0.35 where read noise dominates). Left out,
    that correlation read as windows shifted together (fitting/window_offset.py).
    """
    n_dev = up.y0.shape[0]
    meat = np.zeros((n_dev, 2, 2))
    if read_var <= 0 or iv_up.bread is None or iv_down.bread is None or not up.y0.size:
        return meat
    # a read ends at most one pair and starts at most one: the two blocks share a read only
    # where one's pair ends and the other's starts (a turn), found by sorted keys per device
    span = int(max(up.read_index.max(initial=0), down.read_index.max(initial=0))) + 3
    rows = np.arange(n_dev)[:, None]

    def keys(block: PairBlock) -> np.ndarray:  # ascending per device, padding last
        k = np.where(block.read_index >= 0, block.read_index, span - 1)
        return (rows * span + k).ravel()

    for first, second, iv_second in ((up, down, iv_down), (down, up, iv_up)):
        # a pair of ``first`` ends (+e) at the read where a pair of ``second`` starts (−ρ·e)
        target = (rows * span + first.read_index + 1).ravel()
        flat = keys(second)
        at = np.minimum(np.searchsorted(flat, target), flat.size - 1)
        hit = (flat[at] == target) & (first.weight.ravel() > 0) & (first.read_index.ravel() >= 0)
        hit &= second.weight.ravel()[at] > 0
        if not hit.any():
            continue
        i, j = np.flatnonzero(hit), at[hit]
        dev = i // first.read_index.shape[1]
        rho = _contraction(iv_second.slope[dev])
        z_first, z_second = first.z.ravel()[i], second.z.ravel()[j]
        z_up, z_dn = (z_first, z_second) if first is up else (z_second, z_first)
        w = -rho * read_var
        for r, zu in enumerate((np.ones_like(z_up), z_up)):
            for c, zd in enumerate((np.ones_like(z_dn), z_dn)):
                meat[:, r, c] += np.bincount(dev, weights=w * zu * zd, minlength=n_dev)
    return iv_up.bread @ meat @ np.swapaxes(iv_down.bread, 1, 2)


def soft_bounds_from_iv(iv: LinearIV, direction: int, n_pulse: int) -> tuple[np.ndarray, ...]:
    """Soft-bounds (Δ, b) per device and their covariance from a linear IV fit.

    The intercept and slope are those of ``n_pulse`` pulses between reads. The bound is the
    fixed point b = −c/s; α = 1 − (1 + s)^{1/n}; Δ = α·|b| (the step at w = 0). Returns
    ``(delta, bound, cov, jac)`` with ``cov`` of shape (n_dev, 2, 2) over (Δ, b), delta
    method, and ``jac`` = ∂(Δ, b)/∂(c, s).
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
    return delta, b, cov, jac
