"""Device-to-device spread of conductance windows: shifted together, or bounds on their own.

Two descriptions of how the windows [b⁻ᵢ, b⁺ᵢ] of devices differ (datasets/PRESET.md,
"Per-device reference offset"):

* aihwkit's pulsed-device model: b⁺ᵢ = w_max(1 + w_max_dtod·ξ₁), b⁻ᵢ = w_min(1 + w_min_dtod·ξ₂)
  with independent ξ (REFERENCES.md [R3]): the two bounds are uncorrelated across devices;
* the same plus a per-device reference offset oᵢ ~ N(0, reference_std²) added to both bounds
  (aihwkit's ``SoftBoundsReferenceDevice``/``PowStepReferenceDevice`` subtract a reference
  rᵢ ~ N(reference_mean, reference_std²) from the weight: a window shifted by −rᵢ), so the
  bounds are positively correlated: cov(b⁺, b⁻) = reference_std².

The fitted per-device bounds (with their standard errors) decide: a bivariate normal random
effect, covariance [[a² + o², o²], [o², c² + o²]] plus each device's estimation error, is fitted
by restricted maximum likelihood (REML, Patterson & Thompson 1971; unbiased variances for the
few devices of a lab) with and without o. The offset is kept when the likelihood ratio exceeds
the larger of the 5 % point of the 50:50 mixture of χ²₀ and χ²₁ (o = 0 lies on the boundary;
Self & Liang 1987), 2.71, and BIC's price of the extra parameter, ln n for n devices
(:func:`offset_critical`). At 2.71 alone, 11 of 200 emulated soft-bounds chips with no
offset (64-128 devices) carried one by chance, and with it each device's steps referred to
its offset: the offsets went into up_down_dtod (0.048 for a true 0.021) and out of
w_*_dtod (benchmarks/bench_coverage.py). ln n keeps a small lab set's test (nine devices:
2.71) and lets the chance rate fall as devices are added (64: 2 %, 4096: 0.2 %), while a real
offset's ratio grows in proportion to n. Units: whatever the bounds are in.

The offset's 95 % interval is the profile REML one: every o whose profile −2 log L (a and c
re-fitted at that o) lies within 3.84 (χ²₁ 95 %) of the minimum, bounded below by 0. The Wald
interval o ± 1.96 SE from the observed information held the truth in 86 % of draws at nine
devices (the likelihood is skewed in o: long upper tail), the profile one in 94-96 %
(benchmarks/RESULTS.md, "Window spread"). At o = 0 the 3.84 cut keeps 0 in 97.5 % of draws
(½ + ½·0.95): conservative on the boundary, where the decision above uses 2.71; an interior
truth, the case the interval is reported for, gets the two-sided χ²₁ point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

__all__ = [
    "LR_CRITICAL",
    "MIN_DEVICES",
    "PROFILE_CUT",
    "WindowSpread",
    "measured_windows",
    "offset_critical",
    "states_before_offsets",
    "window_spread",
]

#: 5 % point of ½χ²₀ + ½χ²₁ (the likelihood ratio of a variance on its boundary)
LR_CRITICAL = 2.71


def offset_critical(n_devices: int) -> float:
    """The likelihood ratio an offset must exceed on ``n_devices`` windows: the larger of
    :data:`LR_CRITICAL` and BIC's ln n (module docstring)."""
    return max(LR_CRITICAL, math.log(max(n_devices, 1)))


#: χ²₁ 95 % point: the profile-likelihood cut of the offset's interval
PROFILE_CUT = 3.84

#: devices with both bounds measured needed to fit five parameters from 2n numbers
MIN_DEVICES = 5

#: the variances are estimated on a seeded random sample of this many devices of a larger
#: chip (their standard errors are those of the sample: about 0.14 % of a spread here); means
#: and each device's offset use every device. At 4.1e6 devices the fits on all of them took
#: 70 CPU s and 563 MB of temporaries (issue 19)
FIT_DEVICES = 262_144


@dataclass(frozen=True)
class WindowSpread:
    """The windows' spread under the better description (units of the bounds).

    ``offset_std`` is 0 when the independent-bounds model is kept; ``offsets`` holds each
    device's predicted offset (best linear unbiased predictor, 0 for a device not used or
    when there is no offset). ``lr`` is twice the log-likelihood gain of the offset.
    """

    n_devices: int
    mean_max: float
    mean_min: float
    spread_max: float  # a: device-to-device std of b⁺ beyond the offset
    spread_min: float  # c
    offset_std: float  # o
    spread_max_se: float | None
    spread_min_se: float | None
    offset_std_se: float | None
    #: 95 % profile-REML interval of ``offset_std`` (module docstring); None without offset
    offset_std_ci95: tuple[float, float] | None
    correlation: float  # of the measured bounds across devices (errors included)
    lr: float
    with_offset: bool
    offsets: np.ndarray


def measured_windows(
    hi: np.ndarray, lo: np.ndarray, hi_se: np.ndarray, lo_se: np.ndarray
) -> np.ndarray:
    """Devices whose two bounds are measured: finite, error below a quarter of the
    half-window (the rule of the window-offset note in :mod:`fitting.pulse_response`)."""
    half = 0.5 * (hi - lo)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(half) & np.isfinite(hi_se) & np.isfinite(lo_se) & (half > 0)
        ok &= (hi_se < 0.25 * half) & (lo_se < 0.25 * half)
    return ok


def _neg_reml(
    v: np.ndarray, x: np.ndarray, e1: np.ndarray, e2: np.ndarray, e12: np.ndarray
) -> float:
    """−2 × restricted log-likelihood (constants dropped); v = (a, c, o)."""
    a, c, o = v
    s11, s22, s12 = a * a + o * o + e1, c * c + o * o + e2, o * o + e12
    det = s11 * s22 - s12 * s12
    if np.any(det <= 0):
        return 1e300
    i11, i22, i12 = s22 / det, s11 / det, -s12 / det
    # GLS means: (Σ Σᵢ⁻¹)⁻¹ Σ Σᵢ⁻¹ xᵢ
    m11, m22, m12 = i11.sum(), i22.sum(), i12.sum()
    b1 = (i11 * x[:, 0] + i12 * x[:, 1]).sum()
    b2 = (i12 * x[:, 0] + i22 * x[:, 1]).sum()
    mdet = m11 * m22 - m12 * m12
    if mdet <= 0:
        return 1e300
    mu1, mu2 = (m22 * b1 - m12 * b2) / mdet, (m11 * b2 - m12 * b1) / mdet
    r1, r2 = x[:, 0] - mu1, x[:, 1] - mu2
    quad = i11 * r1 * r1 + 2 * i12 * r1 * r2 + i22 * r2 * r2
    return float(np.log(det).sum() + quad.sum() + np.log(mdet))


def _fit(
    x, e1, e2, e12, scale: float, with_offset: bool, also_from: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """REML estimates (a, c, o) and −2 log L; o fixed at 0 unless ``with_offset``;
    ``also_from``: one more start (a, c, o) (for the nested fit without the offset: the
    estimates with it, so that its optimum is never worse than theirs at o = 0)."""
    sd = np.std(x, axis=0, ddof=1)
    # moments first (cov(b⁺, b⁻) = o², var b± = a², c² + o² + error), then two fixed splits
    c = np.cov(x[:, 0], x[:, 1])
    o_m = np.sqrt(max(c[0, 1] - float(np.mean(e12)), 0.0))
    a_m = np.sqrt(max(c[0, 0] - o_m**2 - np.mean(e1), 0.01 * c[0, 0]))
    c_m = np.sqrt(max(c[1, 1] - o_m**2 - np.mean(e2), 0.01 * c[1, 1]))
    best = None
    starts = [
        (a_m, c_m, o_m),
        (sd[0], sd[1], 0.5 * min(sd)),
        (0.3 * sd[0], 0.3 * sd[1], 0.9 * min(sd)),
    ]
    if also_from is not None:
        starts.append(tuple(also_from))
    for a0, c0, o0 in starts:
        v0 = np.array([a0, c0, o0 if with_offset else 0.0]) / scale + 1e-3
        bounds = [(0.0, None), (0.0, None), (0.0, None) if with_offset else (0.0, 0.0)]
        res = optimize.minimize(
            lambda u: _neg_reml(u * scale, x, e1, e2, e12),
            v0 if with_offset else np.r_[v0[:2], 0.0],
            method="L-BFGS-B",
            bounds=bounds,
        )
        if best is None or res.fun < best.fun:
            best = res
    if also_from is not None:  # the start itself is a point of this model: never worse
        point = np.array([also_from[0], also_from[1], also_from[2] if with_offset else 0.0])
        f_point = _neg_reml(point, x, e1, e2, e12)
        if f_point < best.fun:
            return point, float(f_point)
    return best.x * scale, float(best.fun)


def _profile(o: float, start: np.ndarray, x, e1, e2, e12, scale: float) -> tuple[float, np.ndarray]:
    """−2 log L with the offset fixed at ``o`` and (a, c) re-fitted, and that (a, c)."""
    res = optimize.minimize(
        lambda u: _neg_reml(np.r_[u * scale, o], x, e1, e2, e12),
        np.maximum(start, 0.05 * scale) / scale,
        method="L-BFGS-B",
        bounds=[(0.0, None), (0.0, None)],
    )
    return float(res.fun), res.x * scale


def _profile_interval(v: np.ndarray, f: float, x, e1, e2, e12, scale: float) -> tuple[float, float]:
    """The offset's 95 % profile-REML interval (module docstring) around the fit ``v``, ``f``."""
    o_hat, ac = float(v[2]), v[:2].copy()

    def excess(o: float) -> float:
        return _profile(o, ac, x, e1, e2, e12, scale)[0] - f - PROFILE_CUT

    lower = 0.0
    if excess(0.0) > 0:
        lower = float(optimize.brentq(excess, 0.0, o_hat, xtol=1e-3 * scale))
    below, step = o_hat, max(0.5 * o_hat, scale * 1e-3)
    for _ in range(60):  # the profile rises without end as o grows past the bounds' spread
        if excess(below + step) > 0:
            break
        below, step = below + step, 1.6 * step
    else:
        return lower, float("inf")
    return lower, float(optimize.brentq(excess, below, below + step, xtol=1e-3 * scale))


def _standard_errors(v: np.ndarray, x, e1, e2, e12, scale: float) -> list[float | None]:
    """Standard errors of (a, c, o) from the observed information of the REML (numerical
    Hessian); None for a value on its boundary (0) or where the Hessian is not positive."""
    free = [k for k in range(3) if v[k] > 1e-6 * scale]
    out: list[float | None] = [None, None, None]
    if not free:
        return out
    h = 1e-4 * scale
    f0 = _neg_reml(v, x, e1, e2, e12)
    k = len(free)
    hess = np.zeros((k, k))
    for p, i in enumerate(free):
        for q, j in enumerate(free):
            if q < p:
                continue
            vals = []
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                u = v.copy()
                u[i] += si * h
                u[j] += sj * h
                vals.append(_neg_reml(u, x, e1, e2, e12))
            if i == j:
                up, dn = v.copy(), v.copy()
                up[i] += h
                dn[i] -= h
                d2 = (_neg_reml(up, x, e1, e2, e12) - 2 * f0 + _neg_reml(dn, x, e1, e2, e12)) / h**2
            else:
                d2 = (vals[0] - vals[1] - vals[2] + vals[3]) / (4 * h * h)
            hess[p, q] = hess[q, p] = 0.5 * d2  # −2 log L: information is half its Hessian
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return out
    for p, i in enumerate(free):
        if cov[p, p] > 0 and np.isfinite(cov[p, p]):
            out[i] = float(np.sqrt(cov[p, p]))
    return out


def window_spread(
    hi: np.ndarray,
    lo: np.ndarray,
    hi_se: np.ndarray,
    lo_se: np.ndarray,
    hi_lo_cov: np.ndarray | None = None,
) -> WindowSpread | None:
    """The better description of the devices' windows (module docstring); None with fewer
    than :data:`MIN_DEVICES` devices whose two bounds are measured.

    ``hi``, ``lo``: per-device fitted bounds; ``*_se``: their standard errors (same units);
    ``hi_lo_cov``: the covariance of a device's two errors (0 when None). Estimates of the
    two bounds that share reads (where a sweep turns) have correlated errors, which without
    it read as windows shifted together.
    """
    hi, lo = np.asarray(hi, dtype=float), np.asarray(lo, dtype=float)
    hi_se, lo_se = np.asarray(hi_se, dtype=float), np.asarray(lo_se, dtype=float)
    ok = measured_windows(hi, lo, hi_se, lo_se)
    n = int(ok.sum())
    if n < MIN_DEVICES:
        return None
    x = np.column_stack([hi[ok], lo[ok]])
    e1, e2 = hi_se[ok] ** 2, lo_se[ok] ** 2
    e12 = np.zeros_like(e1) if hi_lo_cov is None else np.nan_to_num(hi_lo_cov[ok])
    e12 = np.clip(e12, -0.999 * np.sqrt(e1 * e2), 0.999 * np.sqrt(e1 * e2))
    scale = float(np.median(0.5 * (x[:, 0] - x[:, 1])))
    corr = float(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) if n > 2 else float("nan")
    pick = slice(None)
    if n > FIT_DEVICES:
        pick = np.sort(np.random.default_rng(0).choice(n, FIT_DEVICES, replace=False))
    xs, e1s, e2s, e12s = x[pick], e1[pick], e2[pick], e12[pick]
    v1, f1 = _fit(xs, e1s, e2s, e12s, scale, True)
    # the nested fit (o = 0) is never worse than the estimates with the offset at o = 0:
    # L-BFGS-B alone stopped 155-172 units of −2 log L short on the 262,144 sampled windows
    # of a 4.2e6-device emulated chip (no offsets drawn; 18,157 bounds with a zero error;
    # v1's o = 0), a false likelihood ratio (elsewhere "shifted together" with o ~ 1e-14)
    v0, f0 = _fit(xs, e1s, e2s, e12s, scale, False, also_from=v1)
    lr = max(f0 - f1, 0.0)
    with_offset = lr > offset_critical(n) and v1[2] > 0
    v = v1 if with_offset else v0
    se = _standard_errors(v, xs, e1s, e2s, e12s, scale)
    ci = _profile_interval(v1, f1, xs, e1s, e2s, e12s, scale) if with_offset else None
    # means and each device's offset (BLUP: o² [1 1] Σᵢ⁻¹ (xᵢ − μ))
    a, c, o = v
    # Σᵢ⁻¹ = [[i11, i12], [i12, i22]]: s22/det, −s12/det, s11/det, computed over the arrays
    # of s11, s22, s12 in place (the same operations in the same order: 4 chip-size arrays
    # live instead of 7, issue 19)
    s11, s22, s12 = a * a + o * o + e1, c * c + o * o + e2, o * o + e12
    det = s11 * s22
    det -= s12 * s12
    i11, i22, i12 = np.divide(s22, det, out=s22), np.divide(s11, det, out=s11), s12
    np.negative(s12, out=i12)
    i12 /= det
    del s11, s22, s12, det
    m = np.array([[i11.sum(), i12.sum()], [i12.sum(), i22.sum()]])
    b = np.array([(i11 * x[:, 0] + i12 * x[:, 1]).sum(), (i12 * x[:, 0] + i22 * x[:, 1]).sum()])
    mu = np.linalg.solve(m, b)
    offsets = np.zeros(hi.size)
    if with_offset:
        r1, r2 = x[:, 0] - mu[0], x[:, 1] - mu[1]
        offsets[ok] = o * o * ((i11 + i12) * r1 + (i12 + i22) * r2)
    return WindowSpread(
        n_devices=n,
        mean_max=float(mu[0]),
        mean_min=float(mu[1]),
        spread_max=float(a),
        spread_min=float(c),
        offset_std=float(o),
        spread_max_se=se[0],
        spread_min_se=se[1],
        offset_std_se=se[2] if with_offset else None,
        offset_std_ci95=ci,
        correlation=corr,
        lr=float(lr),
        with_offset=bool(with_offset),
        offsets=offsets,
    )


def states_before_offsets(
    per_device: Mapping[str, Any], first: np.ndarray, device_ids: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Measured first reads as states before each device's own offset, for a simulation.

    With per-device reference offsets (``per_device["reference_offset"]``, the preset's
    conductance unit) a measured read minus its device's fitted offset is the same state on
    any drawn device (a raw read would lie outside most drawn windows); devices the fit left
    out take no offset. Returns the starts and whether they are such states (``False``: no
    offsets carried, ``first`` unchanged).
    """
    if "reference_offset" not in per_device or "device_id" not in per_device:
        return first, False
    fitted = np.asarray(per_device["device_id"]).astype(np.int64)
    offsets = np.asarray(per_device["reference_offset"], dtype=float)
    own = np.zeros(np.shape(first))
    if fitted.size:
        order = np.argsort(fitted)
        ids = np.asarray(device_ids).astype(np.int64)
        at = np.minimum(np.searchsorted(fitted[order], ids), fitted.size - 1)
        found = fitted[order][at] == ids
        own[found] = np.nan_to_num(offsets[order][at][found])
    return first - own, True
