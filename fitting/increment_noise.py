"""The chip's noise of measured increments, and the covariance of per-device moments under it.

A pair's residual (measured increment minus the fitted mean map, ``fitting.noise``) is
u_k = c_k + e_{k+1} − a_k·e_k: white noise c_k (cycle-to-cycle noise of the pulses, which
scales with the step, plus any other part that does not carry over) and the read noise e of
its two reads, a_k the map's contraction at the first read (1 for a constant step). So

    E[u_k²]        = white0 + white1·ŷ_k² + (1 + a_k²)·σ_r²
    E[u_k·u_{k+1}] = −a_{k+1}·σ_r²           (contiguous pairs: one read shared)

with ŷ_k the fitted increment. A per-device fit's moments Σ_k z_k·u_k (instruments z_k) then
have the covariance S = Σ_kl z_k z_lᵀ E[u_k u_l], positive semi-definite by construction
(the model is a covariance). Summed pair by pair instead (Newey-West with one lag at full
weight, u_k u_{k+1} in place of its expectation), S is not positive definite where read
noise dominates: a zero or 10x too small error for one device in six (soft-bounds, the
closed form) and z-scores of per-device steps with SD 1.2-1.3 (constant-step) or more.

σ_r², white0 and white1 are the chip's, as aihwkit's read noise and dw_min_std are: the
medians over devices of each device's estimates (a stuck or odd device does not move them),
on a subsample fixed before the devices are split into chunks where the fit is chunked.
Per device they are too noisy where read noise dominates, and clipping them at 0 overstated
the errors by 35 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IncrementNoise", "estimate_increment_noise", "moment_covariance"]


@dataclass(frozen=True)
class IncrementNoise:
    """The chip's increment noise of one pulse direction (units of the increments)."""

    read_var: float  # σ_r²
    white0: float
    white1: float  # per squared fitted increment


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # row-wise Σ a·b
    return np.einsum("ij,ij->i", a, b)


def estimate_increment_noise(
    resid: np.ndarray,
    fitted: np.ndarray,
    contraction: np.ndarray,
    use: np.ndarray,
    contiguous: np.ndarray,
) -> IncrementNoise | None:
    """:class:`IncrementNoise` from per-pair residuals, fitted increments and contractions
    a_k (all (n_dev, P)); ``use`` marks the pairs, ``contiguous`` (n_dev, P−1) the pairs
    that share a read with the next. None with no device of 4 pairs. Pairs that share no
    read (e.g. repeated reads between pulses) have independent residuals: ``read_var`` 0."""
    use = use & np.isfinite(resid) & np.isfinite(fitted) & np.isfinite(contraction)
    resid, fitted = np.where(use, resid, 0.0), np.where(use, fitted, 0.0)
    a = np.where(use, contraction, 0.0)
    m = use.sum(1).astype(float)
    ok = m >= 4
    if not ok.any():
        return None
    linked = contiguous & use[:, :-1] & use[:, 1:]
    n_lag = linked.sum(1)
    lagged = n_lag >= 4
    read_var = 0.0
    if lagged.any():
        lag = _dot(resid[:, :-1] * resid[:, 1:], linked)
        a_sum = _dot(a[:, 1:], linked)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_device = -lag[lagged] / a_sum[lagged]
        per_device = per_device[np.isfinite(per_device)]
        read_var = max(float(np.median(per_device)), 0.0) if per_device.size else 0.0
    # the white part on [1, ŷ²] by least squares per device, both coefficients >= 0
    white = (resid**2 - (1.0 + a**2) * read_var) * use
    f2 = fitted**2 * use
    s1, s2, sw, s2w = f2.sum(1), _dot(f2, f2), white.sum(1), _dot(f2, white)
    det = m * s2 - s1 * s1
    solved = ok & (det > 1e-12 * np.maximum(m * s2, 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        c1 = (m * s2w - s1 * sw) / det
        c0 = (sw - c1 * s1) / m
    mean_white = float(np.median(sw[ok] / m[ok]))
    if not solved.any():
        return IncrementNoise(read_var, max(mean_white, 0.0), 0.0)
    white0, white1 = float(np.median(c0[solved])), float(np.median(c1[solved]))
    if white1 < 0:
        white0, white1 = max(mean_white, 0.0), 0.0
    elif white0 < 0:
        ratio = s2w[ok] / np.maximum(s2[ok], 1e-300)
        white0, white1 = 0.0, max(float(np.median(ratio)), 0.0)
    return IncrementNoise(read_var, white0, white1)


def moment_covariance(
    instruments: np.ndarray,
    noise: IncrementNoise,
    fitted: np.ndarray,
    contraction: np.ndarray,
    use: np.ndarray,
    contiguous: np.ndarray,
) -> np.ndarray:
    """S = Σ_kl z_k z_lᵀ·E[u_k u_l] per device for ``instruments`` z (n_dev, P, m) under
    ``noise`` (module docstring), shape (n_dev, m, m)."""
    a = np.where(use, np.nan_to_num(contraction), 0.0)
    f = np.where(use, np.nan_to_num(fitted), 0.0)
    z = np.nan_to_num(instruments)  # unused pairs have a zero weight below
    diag = (noise.white0 + noise.white1 * f * f + (1.0 + a * a) * noise.read_var) * use
    out = np.swapaxes(z * diag[..., None], 1, 2) @ z  # batched: Σ_p diag·z zᵀ
    if z.shape[1] > 1 and noise.read_var > 0:
        linked = contiguous & use[:, :-1] & use[:, 1:]
        off = a[:, 1:] * noise.read_var * linked  # −E[u_k u_{k+1}]
        cross = np.swapaxes(z[:, :-1] * off[..., None], 1, 2) @ z[:, 1:]
        out -= cross + np.swapaxes(cross, 1, 2)
    return out
