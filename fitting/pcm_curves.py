"""Curves through per-level estimates: the published clipped-log form and a smooth table.

Both are fitted to level estimates y_l ± se_l at normalized targets x_l, in u = ln x:

- :func:`fit_clipped_log`: clip(a·u + b, lo, hi). Which clips the data show (none, lower,
  upper, both) is chosen by AICc, except that the lower clip (the published curves' floor)
  is kept over a straight line whenever it rests on at least ``MIN_FLOOR_LEVELS`` levels
  (and the line on as many); a bound the data never reach is *not identified* and is
  set to the line's value at the edge of the observed range (so it is inactive there).
  The coefficients carry their covariance and :meth:`ClippedLogFit.band` the curve's
  one-SE band over the clip choices (model-averaged variance, Akaike weights);
- :func:`fit_smooth_table`: a penalized cubic smoothing spline in u (penalty by generalized
  cross-validation), tabulated on a grid for the preset's ``table`` form (linear in ln x
  between grid points, constant outside);
- :func:`leave_one_out_score`: Σ_l ((y_l − f_{−l}(x_l))/se_l)², the predictive misfit of
  either form with each level left out in turn, to say which form fits better.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import interpolate, optimize

from fitting.pcm_stats import aicc

__all__ = [
    "ClippedLogFit",
    "CurveVariant",
    "SmoothTable",
    "fit_clipped_log",
    "fit_smooth_table",
    "leave_one_out_score",
]

VARIANTS = ("none", "lo", "hi", "both")
_N_REFINE = 6  # best partitions refined by nonlinear least squares per variant
#: levels the floor (lower clip) must rest on, and the line as well, to be kept over the
#: straight line that AICc prefers: then both parts are estimated from their own levels
MIN_FLOOR_LEVELS = 2


@dataclass
class ClippedLogFit:
    """clip(a·ln x + b, lo, hi) fitted to level estimates."""

    a: float
    b: float
    lo: float
    hi: float
    se: dict[str, float]
    variant: str  # which clips were fitted: none, lo, hi, both
    identified: dict[str, bool]
    chi2: float
    dof: int
    aicc_by_variant: dict[str, float] = field(default_factory=dict)
    #: covariance of the fitted coefficients ``covariance_names`` (the identified ones,
    #: in the order a, b, lo, hi), from the Jacobian scaled by max(1, χ²/dof) like ``se``
    covariance: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    covariance_names: tuple[str, ...] = ()
    u_range: tuple[float, float] = (0.0, 0.0)  # ln x of the lowest and highest level
    #: every clip variant fitted (the chosen one included), with its Akaike weight
    alternatives: list[CurveVariant] = field(default_factory=list)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        u = np.log(np.maximum(np.asarray(x, dtype=float), 1e-7))
        return np.clip(self.a * u + self.b, self.lo, self.hi)

    def as_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b, "lo": self.lo, "hi": self.hi}

    def _curve(self, p: dict[str, float], u: np.ndarray) -> np.ndarray:
        """The curve at ln x = ``u`` for coefficients ``p`` (a bound that was not fitted
        follows the line to the edge of the observed levels, as when it was fitted)."""
        ends = (p["a"] * self.u_range[0] + p["b"], p["a"] * self.u_range[1] + p["b"])
        lo = p.get("lo", min(ends) if "hi" not in p else min(min(ends), p["hi"]))
        hi = p.get("hi", max(ends) if "lo" not in p else max(max(ends), p["lo"]))
        return np.clip(p["a"] * u + p["b"], lo, hi)

    def band(self, x: np.ndarray) -> np.ndarray:
        """One-standard-error band of the fitted curve at ``x`` (same unit as the curve).

        Over the clip variants v fitted (``alternatives``), the model-averaged variance
        about this curve f (Burnham & Anderson 2002, *Model Selection and Multimodel
        Inference*, 2nd ed., eq. 6.12, the mixture form of their unconditional variance):
        Σ_v w_v·(J_v C_v J_vᵀ + (f_v − f)²), w_v the Akaike weights, C_v each variant's own
        coefficient covariance, J_v its curve's derivative by its coefficients (central
        differences of a hundredth of a standard error; on a clip the curve depends on
        the clip level only). The choice of clips is itself uncertain: a straight line
        chosen where the true curve levels off at a floor is biased at both ends and in the
        middle by more than its own J C Jᵀ (benchmarks/RESULTS.md, "Uncertainty
        coverage"). Without
        ``alternatives``: sqrt(J C Jᵀ) of this curve. NaN where no covariance is known.
        """
        u = np.log(np.maximum(np.asarray(x, dtype=float), 1e-7))
        here = self(x)
        if self.alternatives:
            # outside the levels every variant is held constant, like the chosen curve
            uc = np.clip(u, *self.u_range)
            var = np.zeros(u.shape)
            for alt in self.alternatives:
                var = var + alt.weight * (alt.variance(uc) + (alt.curve(uc) - here) ** 2)
            return np.sqrt(np.maximum(var, 0.0))
        k = len(self.covariance_names)
        if k == 0 or not np.all(np.isfinite(self.covariance)):
            return np.full(u.shape, np.nan)
        p0 = {"a": self.a, "b": self.b, "lo": self.lo, "hi": self.hi}
        p0 = {n: p0[n] for n in self.covariance_names}
        jac = np.empty((*u.shape, k))
        for i, name in enumerate(self.covariance_names):
            h = 1e-2 * max(float(np.sqrt(self.covariance[i, i])), 1e-12)
            up, down = dict(p0), dict(p0)
            up[name] += h
            down[name] -= h
            jac[..., i] = (self._curve(up, u) - self._curve(down, u)) / (2.0 * h)
        var = np.einsum("...i,ij,...j->...", jac, self.covariance, jac)
        return np.sqrt(np.maximum(var, 0.0))


@dataclass
class CurveVariant:
    """One clip variant fitted to the levels: its parameters (``_model`` order), their
    covariance and its Akaike weight among the variants."""

    variant: str
    params: np.ndarray
    covariance: np.ndarray
    weight: float

    def curve(self, u: np.ndarray) -> np.ndarray:
        return _model(self.params, u, self.variant)

    def variance(self, u: np.ndarray) -> np.ndarray:
        """J C Jᵀ of this variant's curve at ln x = ``u``."""
        k = self.params.size
        jac = np.empty((*np.shape(u), k))
        for i in range(k):
            h = 1e-2 * max(float(np.sqrt(max(self.covariance[i, i], 0.0))), 1e-9)
            up, down = self.params.copy(), self.params.copy()
            up[i] += h
            down[i] -= h
            jac[..., i] = (_model(up, u, self.variant) - _model(down, u, self.variant)) / (2 * h)
        return np.einsum("...i,ij,...j->...", jac, self.covariance, jac)


def _model(p: np.ndarray, u: np.ndarray, variant: str) -> np.ndarray:
    y = p[0] * u + p[1]
    if variant == "lo":
        return np.maximum(y, p[2])
    if variant == "hi":
        return np.minimum(y, p[2])
    if variant == "both":
        return np.minimum(np.maximum(y, min(p[2], p[3])), max(p[2], p[3]))
    return y


def _wls_line(u: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    s0, su, suu = w.sum(), (w * u).sum(), (w * u * u).sum()
    sy, suy = (w * y).sum(), (w * u * y).sum()
    d = s0 * suu - su * su
    if d <= 0:
        return 0.0, float(sy / s0)
    return float((s0 * suy - su * sy) / d), float((suu * sy - su * suy) / d)


def _starts(u: np.ndarray, y: np.ndarray, w: np.ndarray, variant: str) -> list[np.ndarray]:
    """Initial parameters from partitions of the (sorted) levels into clipped and linear runs."""
    n = u.size
    a, b = _wls_line(u, y, w)
    if variant == "none":
        return [np.array([a, b])]
    cands: list[tuple[float, np.ndarray]] = []

    def const(sl: slice) -> float:
        return float((w[sl] * y[sl]).sum() / w[sl].sum())

    if variant in ("lo", "hi"):
        for k in range(1, n - 1):  # k clipped levels at the left or at the right end
            for clipped, linear in ((slice(0, k), slice(k, n)), (slice(n - k, n), slice(0, n - k))):
                if linear.stop - linear.start < 2:
                    continue
                la, lb = _wls_line(u[linear], y[linear], w[linear])
                p = np.array([la, lb, const(clipped)])
                cands.append((_cost(p, u, y, w, variant), p))
    else:
        for k1, k2 in itertools.product(range(1, n - 2), range(1, n - 2)):
            if k1 + k2 > n - 2:
                continue
            lin = slice(k1, n - k2)
            la, lb = _wls_line(u[lin], y[lin], w[lin])
            p = np.array([la, lb, const(slice(0, k1)), const(slice(n - k2, n))])
            cands.append((_cost(p, u, y, w, variant), p))
    cands.sort(key=lambda c: c[0])
    return [p for _, p in cands[:_N_REFINE]]


def _cost(p: np.ndarray, u: np.ndarray, y: np.ndarray, w: np.ndarray, variant: str) -> float:
    return float((w * (_model(p, u, variant) - y) ** 2).sum())


def _fit_variant(
    u: np.ndarray, y: np.ndarray, se: np.ndarray, variant: str, se_hi: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float] | None:
    w = 1.0 / se**2
    best = None
    hi = se if se_hi is None else se_hi

    def resid(p: np.ndarray) -> np.ndarray:
        r = _model(p, u, variant) - y
        return r / np.where(r > 0, hi, se)  # a curve above a level is judged by its upper error

    for p0 in _starts(u, y, w, variant):
        res = optimize.least_squares(resid, p0, method="lm")
        chi2 = float((res.fun**2).sum())
        if best is None or chi2 < best[2]:
            best = (res.x, res.jac, chi2)
    return best


def fit_clipped_log(
    x: np.ndarray, y: np.ndarray, se: np.ndarray, se_hi: np.ndarray | None = None
) -> ClippedLogFit:
    """Fit clip(a·ln x + b, lo, hi) to level estimates ``y`` ± ``se`` at ``x`` (sorted or not).

    ``se_hi``, when given, is each level's error on its upper side and ``se`` that on its
    lower side (an asymmetric interval, e.g. the likelihood-ratio interval of a spread,
    as a two-piece normal). Standard errors come from the Jacobian, scaled up by
    sqrt(χ²/dof) when the scatter exceeds the stated errors.
    """
    order = np.argsort(x)
    u = np.log(np.asarray(x, dtype=float)[order])
    y = np.asarray(y, dtype=float)[order]
    se = np.maximum(np.asarray(se, dtype=float)[order], 1e-12)
    if se_hi is not None:
        se_hi = np.maximum(np.asarray(se_hi, dtype=float)[order], 1e-12)
    n = u.size
    fits: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    scores: dict[str, float] = {}
    for variant in VARIANTS:
        k = 2 + {"none": 0, "lo": 1, "hi": 1, "both": 2}[variant]
        if n - k - 1 <= 0 and variant != "none":
            continue
        fit = _fit_variant(u, y, se, variant, se_hi)
        if fit is None:
            continue
        fits[variant] = fit
        scores[variant] = aicc(0.5 * fit[2], k, n) if n - k - 1 > 0 else 0.0
    variant = min(scores, key=scores.__getitem__)
    if variant == "none" and "lo" in fits:
        # A floor the levels only hint at: with 8 levels AICc charges the clip 5.6 units,
        # and a straight line chosen where the true curve levels off (as the published
        # μ_ν, σ_ν do above x = 0.2-0.33) is biased at both ends and in the middle by more
        # than its band holds, while a floor fitted to a true line costs only variance,
        # which the band holds. σ_ν curve coverage 93.6 -> 94.9 % (benchmarks/RESULTS.md)
        q = fits["lo"][0]
        on_floor = int(np.sum(q[0] * u + q[1] <= q[2]))
        if min(on_floor, n - on_floor) >= MIN_FLOOR_LEVELS:
            variant = "lo"
    p, jac, chi2 = fits[variant]
    k = p.size
    dof = max(n - k, 0)
    try:
        cov = np.linalg.inv(jac.T @ jac)
        if dof > 0:
            cov *= max(1.0, chi2 / dof)
        se_p = np.sqrt(np.maximum(np.diag(cov), 0.0))
    except np.linalg.LinAlgError:
        cov = np.full((k, k), np.nan)
        se_p = np.full(k, np.nan)
    a, b = float(p[0]), float(p[1])
    line_lo, line_hi = sorted((a * u[0] + b, a * u[-1] + b))
    names = {"a": 0, "b": 1}
    if variant == "lo":
        lo, hi, names["lo"] = float(p[2]), max(line_hi, float(p[2])), 2
    elif variant == "hi":
        lo, hi, names["hi"] = min(line_lo, float(p[2])), float(p[2]), 2
    elif variant == "both":
        lo, hi = float(min(p[2], p[3])), float(max(p[2], p[3]))
        names["lo"], names["hi"] = (2, 3) if p[2] <= p[3] else (3, 2)
    else:
        lo, hi = line_lo, line_hi
    se_named = {key: float(se_p[i]) for key, i in names.items()}
    alternatives = _weighted_variants(fits, n)
    order = [key for key in ("a", "b", "lo", "hi") if key in names]
    idx = [names[key] for key in order]
    return ClippedLogFit(
        a,
        b,
        lo,
        hi,
        se_named,
        variant,
        {"lo": "lo" in names, "hi": "hi" in names},
        chi2,
        dof,
        scores,
        covariance=cov[np.ix_(idx, idx)],
        covariance_names=tuple(order),
        u_range=(float(u[0]), float(u[-1])),
        alternatives=alternatives,
    )


def _weighted_variants(
    fits: dict[str, tuple[np.ndarray, np.ndarray, float]], n: int
) -> list[CurveVariant]:
    """Every fitted clip variant with its own covariance and its Akaike weight.

    The weights use AIC = χ² + 2k, not the AICc that chooses the reported curve: the
    levels' errors are known (each level's own likelihood interval), and AICc's term
    2k(k+1)/(n − k − 1) corrects for a residual variance estimated from the data
    (Hurvich & Tsai 1989, Biometrika 76:297), which these fits do not do; with 8 levels
    it cut the weight of a clip 6-fold, so a floor the levels only hint at hardly widened
    the band of the straight line chosen instead (σ_ν: 90 % coverage). The choice itself
    stays parsimonious (AICc): chosen by AIC, μ_ν took clips fitted to noise. A covariance
    is the pseudo-inverse of JᵀJ (a clip no level reaches has no effect on the curve at
    the levels), scaled by max(1, χ²/dof) like the chosen variant's.
    """
    aic = {v: chi2 + 2.0 * p.size for v, (p, _, chi2) in fits.items()}
    best = min(aic.values())
    total = sum(np.exp(-0.5 * (a - best)) for a in aic.values())
    out = []
    for variant, (p, jac, chi2) in fits.items():
        dof = n - p.size
        try:
            cov = np.linalg.pinv(jac.T @ jac) * (max(1.0, chi2 / dof) if dof > 0 else 1.0)
        except np.linalg.LinAlgError:
            cov = np.full((p.size, p.size), np.nan)
        weight = float(np.exp(-0.5 * (aic[variant] - best)) / total)
        out.append(CurveVariant(variant, p, cov, weight))
    return out


@dataclass
class SmoothTable:
    """A smoothing spline in ln x tabulated on a grid (``table`` form of the preset)."""

    x: np.ndarray
    y: np.ndarray
    method: str  # "smoothing-spline" or "levels" (too few levels for a spline)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        u = np.log(np.maximum(np.asarray(x, dtype=float), 1e-7))
        return np.interp(u, np.log(self.x), self.y)


def fit_smooth_table(
    x: np.ndarray, y: np.ndarray, se: np.ndarray, n_grid: int = 25, floor: float | None = None
) -> SmoothTable:
    """Penalized cubic spline in ln x (GCV penalty), weights 1/se², tabulated at ``n_grid`` x.

    With fewer than 5 levels the level estimates themselves are the table. ``floor`` clips
    the tabulated values from below (e.g. 0 for a standard deviation).
    """
    order = np.argsort(x)
    x = np.asarray(x, dtype=float)[order]
    y = np.asarray(y, dtype=float)[order]
    w = 1.0 / np.maximum(np.asarray(se, dtype=float)[order], 1e-12) ** 2
    if x.size < 5 or np.unique(x).size != x.size:
        grid, vals, method = x, y, "levels"
    else:
        u = np.log(x)
        spline = interpolate.make_smoothing_spline(u, y, w=w / w.mean())
        grid = np.exp(np.linspace(u[0], u[-1], n_grid))
        vals, method = spline(np.log(grid)), "smoothing-spline"
    if floor is not None:
        vals = np.maximum(vals, floor)
    return SmoothTable(np.asarray(grid, dtype=float), np.asarray(vals, dtype=float), method)


def leave_one_out_score(
    fitter: Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]],
    x: np.ndarray,
    y: np.ndarray,
    se: np.ndarray,
) -> float:
    """Σ_l ((y_l − f_{−l}(x_l))/se_l)² with f_{−l} fitted without level l."""
    x, y, se = (np.asarray(v, dtype=float) for v in (x, y, se))
    score = 0.0
    for i in range(x.size):
        keep = np.arange(x.size) != i
        f = fitter(x[keep], y[keep], se[keep])
        score += float(((y[i] - f(x[i : i + 1])[0]) / se[i]) ** 2)
    return score
