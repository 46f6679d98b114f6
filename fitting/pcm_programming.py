"""Programming noise: σ_prog(g_T) = Σ_k c_k x_T^k from program-and-verify results.

The error of a device's read at t0 after programming, e = g(t0) − g_T, has variance
σ_prog(x_T)² + r², where r² is the variance of that read (read noise at t0, divided by the
number of averaged reads, from the fitted read-noise model). Per target level only the
count n, the mean error and the sum of squared deviations SS matter, so the likelihood is

    −log L(c) = Σ_levels ½·[(n − 1)·ln(σ_prog(x)² + r²) + SS/(σ_prog(x)² + r²)]

(the level mean is a nuisance parameter, hence n − 1). A read taken at t_p > t0 is
brought back to t0 with the drift model: e = g·(t_p/t0)^μ_ν − g_T, and the spread of ν adds
(g_T·σ_ν·ln(t_p/t0))² to r². The degree is chosen by BIC (n = devices) among 0..4 (at
most levels − 2) but not below the published degree 2: a higher degree must beat it by more
than 2 BIC units (AIC picked spurious degree-4 fits on 8 levels x 256 devices); a lower one
is used only where degree 2 is not available (too few levels, not positive). With 16
devices per level BIC chose degree 1 on 8 of 12 quadratic chips, and the band of that
straight line left the curvature out: the curve's one-SE band covered 81 % of the true
σ_prog at the levels (benchmarks/RESULTS.md, "Uncertainty coverage"). Polynomials
that are not positive over the observed range are rejected. Coefficient covariance: the
inverse Fisher information plus the shift caused by a one-standard-error change of the
read-noise model (a systematic part).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from fitting.pcm_data import Levels
from fitting.pcm_model import polynomial_sigma
from fitting.pcm_stats import CHI2_1_95
from fitting.traces import FitInputError

__all__ = [
    "LevelErrors",
    "ProgNoiseFit",
    "fit_prog_noise",
    "level_errors",
    "source_consistency",
]

MAX_DEGREE = 4
PUBLISHED_DEGREE = 2


@dataclass
class LevelErrors:
    """Programming errors of one source, summarized per target level."""

    source: str
    g_target_s: np.ndarray  # (levels,)
    n: np.ndarray  # devices per level
    mean_s: np.ndarray  # mean error (bias) per level, S
    ss_s2: np.ndarray  # sum of squared deviations from the level mean, S²
    read_var_s2: np.ndarray  # read-noise (+ drift correction) variance of one device's read

    @property
    def total_var(self) -> np.ndarray:
        return self.ss_s2 / np.maximum(self.n - 1, 1)


def level_errors(
    source: str,
    target_s: np.ndarray,
    g_read_s: np.ndarray,
    levels: Levels,
    read_var: Callable[[np.ndarray], np.ndarray],
    drift_back: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> LevelErrors:
    """Per-level error statistics of reads ``g_read_s`` against ``target_s``.

    ``read_var(g_level)`` is the read variance (S²) at the level targets; ``drift_back``
    (optional) maps targets to (multiplicative correction to t0, extra variance S²).
    """
    e = np.asarray(g_read_s, dtype=float)
    extra = np.zeros(levels.n_levels)
    if drift_back is not None:
        factor, extra = drift_back(levels.g_target_s)
        e = e * factor[np.maximum(levels.index, 0)]
    e = e - target_s
    n_lv = levels.n_levels
    idx = levels.index
    use = idx >= 0
    n = np.bincount(idx[use], minlength=n_lv).astype(float)
    mean = np.bincount(idx[use], weights=e[use], minlength=n_lv) / np.maximum(n, 1)
    dev = e[use] - mean[idx[use]]
    ss = np.bincount(idx[use], weights=dev * dev, minlength=n_lv)
    r2 = read_var(levels.g_target_s) + extra
    return LevelErrors(source, levels.g_target_s.copy(), n, mean, ss, r2)


@dataclass
class ProgNoiseFit:
    """Fitted programming-noise polynomial, its covariance and per-level estimates."""

    g_max_s: float
    coefficients_s: np.ndarray
    covariance: np.ndarray
    degree: int
    bic_by_degree: dict[int, float]
    level_g_s: np.ndarray
    level_sigma_s: np.ndarray
    level_sigma_se_s: np.ndarray
    level_bias_s: np.ndarray
    level_bias_se_s: np.ndarray
    level_read_s: np.ndarray  # rms read noise removed at each level
    sources: list[str]
    notes: list[str] = field(default_factory=list)
    consistency: dict[str, Any] | None = None  # agreement of the sources, when several
    #: (levels, 2) 95 % likelihood-ratio interval of σ_prog per level (S); the Wald
    #: σ̂ ± 1.96 SE covered 92.7 % of 1,600 level points (benchmarks/RESULTS.md)
    level_sigma_ci_s: np.ndarray | None = None

    def sigma(self, g_target_s: np.ndarray) -> np.ndarray:
        return np.maximum(
            polynomial_sigma(self.coefficients_s, np.asarray(g_target_s) / self.g_max_s), 0
        )

    def band(self, g_target_s: np.ndarray) -> np.ndarray:
        """One-standard-error band of σ_prog at ``g_target_s`` (S)."""
        x = np.asarray(g_target_s, dtype=float) / self.g_max_s
        basis = np.stack([x**k for k in range(self.coefficients_s.size)], axis=-1)
        return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", basis, self.covariance, basis), 0))

    def section(self) -> dict[str, Any]:
        return {
            "form": "polynomial",
            "coefficients_s": self.coefficients_s.tolist(),
            "degree": self.degree,
            "degree_selection": {
                "criterion": (
                    "BIC over devices, not below the published degree 2 (a higher degree "
                    "must beat it by 2 units)"
                ),
                "bic": {str(k): v for k, v in self.bic_by_degree.items()},
            },
            "fitted_from": self.sources,
            **({"source_consistency": self.consistency} if self.consistency else {}),
        }

    def uncertainty(self) -> dict[str, Any]:
        return {
            "prog_noise.coefficients_s": np.sqrt(np.diag(self.covariance)).tolist(),
            "prog_noise.covariance_s2": self.covariance.tolist(),
        }


def _nll_and_fisher(
    c: np.ndarray, stats: list[LevelErrors], g_max: float
) -> tuple[float, np.ndarray]:
    nll = 0.0
    fisher = np.zeros((c.size, c.size))
    for st in stats:
        x = st.g_target_s / g_max
        sig = polynomial_sigma(c, x)
        v = np.maximum(sig * sig + st.read_var_s2, 1e-300)
        m = np.maximum(st.n - 1, 0)
        nll += float(0.5 * np.sum(m * np.log(v) + st.ss_s2 / v))
        dv = 2 * sig[:, None] * np.stack([x**k for k in range(c.size)], axis=1)
        fisher += (dv * (0.5 * m / v**2)[:, None]).T @ dv
    return nll, fisher


def _fit_degree(stats: list[LevelErrors], g_max: float, degree: int, scale: float) -> np.ndarray:
    # start: weighted polynomial through the per-level read-noise-corrected spreads
    x = np.concatenate([st.g_target_s / g_max for st in stats])
    s2 = np.concatenate([st.total_var - st.read_var_s2 for st in stats])
    n = np.concatenate([st.n for st in stats])
    sd = np.sqrt(np.maximum(s2, (0.1 * scale) ** 2))
    c0 = np.polynomial.polynomial.polyfit(x, sd, degree, w=np.sqrt(n))

    def nll(p: np.ndarray) -> float:
        return _nll_and_fisher(p * scale, stats, g_max)[0]

    res = optimize.minimize(nll, c0 / scale, method="BFGS", options={"gtol": 1e-8})
    return res.x * scale


def _level_sigma(stats: list[LevelErrors], g: float) -> tuple[float, float]:
    """MLE of σ_prog at one level, pooling the sources that measured it, and its SE."""
    rows = [
        (st.n[i], st.ss_s2[i], st.read_var_s2[i])
        for st in stats
        for i in np.flatnonzero(np.isclose(st.g_target_s, g, rtol=1e-6))
    ]

    def nll(s2: float) -> float:
        return sum(0.5 * ((n - 1) * np.log(s2 + r) + ss / (s2 + r)) for n, ss, r in rows)

    hi = max(ss / max(n - 1, 1) for n, ss, _ in rows) * 4 + 1e-30
    res = optimize.minimize_scalar(
        nll, bounds=(0.0, hi), method="bounded", options={"xatol": hi * 1e-10}
    )
    s2 = float(max(res.x, 0.0))
    sig = np.sqrt(s2)
    info = sum(0.5 * (n - 1) * (2 * sig) ** 2 / (s2 + r) ** 2 for n, _, r in rows)
    info0 = sum(0.5 * (n - 1) / (s2 + r) ** 2 for n, _, r in rows)  # in σ² at σ -> 0
    se = 1 / np.sqrt(info) if sig > 0 and info > 0 else np.sqrt(1 / np.sqrt(info0))
    return float(sig), float(se)


def _level_sigma_interval(stats: list[LevelErrors], g: float) -> tuple[float, float]:
    """95 % likelihood-ratio interval of σ_prog at one level (S).

    The same restricted likelihood as :func:`_level_sigma` (the level mean profiled out,
    n − 1): {σ >= 0: 2·(−log L(σ²) + log L(σ̂²)) <= χ²₁(0.95)}. With ~16 devices a level's
    σ̂ is skewed (a χ²(15) law), which σ̂ ± 1.96 SE ignores.
    """
    rows = [
        (st.n[i], st.ss_s2[i], st.read_var_s2[i])
        for st in stats
        for i in np.flatnonzero(np.isclose(st.g_target_s, g, rtol=1e-6))
    ]
    if sum(n - 1 for n, _, _ in rows) < 2:
        return float("nan"), float("nan")

    def nll(sigma: float) -> float:
        # floor: a level at 0 S has no read noise (r = 0), so σ = 0 would give 0/0
        total = 0.0
        for n, ss, r in rows:
            v = max(sigma * sigma + r, 1e-300)
            total += 0.5 * ((n - 1) * np.log(v) + ss / v)
        return total

    sig, _ = _level_sigma(stats, g)
    f_min = nll(sig)

    def excess(sigma: float) -> float:
        return 2.0 * (nll(sigma) - f_min) - CHI2_1_95

    lower = 0.0 if excess(0.0) <= 0 else float(optimize.brentq(excess, 0.0, sig))
    top = 2.0 * max(sig, float(np.sqrt(max(ss / max(n - 1, 1) for n, ss, _ in rows))), 1e-30)
    for _ in range(200):
        if excess(top) > 0:
            break
        top *= 2.0
    return lower, float(optimize.brentq(excess, sig, top))


def fit_prog_noise(
    stats: list[LevelErrors],
    g_max_s: float,
    degree: int | None = None,
    read_var_shift: list[LevelErrors] | None = None,
) -> ProgNoiseFit:
    """Fit σ_prog(x) = Σ c_k x^k to per-level error statistics of one or more sources.

    ``degree`` None chooses it by BIC; ``read_var_shift`` (same stats with the read
    variance moved by one standard error of the read-noise model) adds the systematic part
    of the coefficient covariance.
    """
    g_all = np.unique(np.concatenate([st.g_target_s for st in stats]))
    n_levels = g_all.size
    if n_levels < 2:
        raise FitInputError(f"programming noise needs at least 2 target levels, got {n_levels}")
    scale = float(np.sqrt(np.median(np.concatenate([st.total_var for st in stats]))))
    x_all = g_all / g_max_s
    max_deg = min(MAX_DEGREE, n_levels - 2) if degree is None else degree
    if degree is not None and not 0 <= degree <= n_levels - 1:
        raise FitInputError(
            f"programming-noise degree {degree} needs at least {degree + 1} levels, got {n_levels}"
        )
    fits: dict[int, np.ndarray] = {}
    bic: dict[int, float] = {}
    n_obs = sum(float(st.n.sum()) for st in stats)
    notes: list[str] = []
    degrees = range(max(0, max_deg) + 1) if degree is None else [degree]
    for k in degrees:
        c = _fit_degree(stats, g_max_s, k, scale)
        if np.any(polynomial_sigma(c, x_all) <= 0):
            if np.all(polynomial_sigma(c, x_all) < 0):
                c = -c  # σ enters squared: the same fit with the positive sign
            else:
                notes.append(f"degree {k} rejected: σ_prog not positive over the levels")
                continue
        fits[k] = c
        bic[k] = 2 * _nll_and_fisher(c, stats, g_max_s)[0] + (k + 1) * np.log(n_obs)
    if not fits:
        raise FitInputError("no programming-noise polynomial is positive over the target levels")
    best = min(bic, key=bic.__getitem__)
    if degree is None and PUBLISHED_DEGREE in bic:
        higher = min((k for k in bic if k >= PUBLISHED_DEGREE), key=bic.__getitem__)
        best = higher if bic[PUBLISHED_DEGREE] - bic[higher] > 2.0 else PUBLISHED_DEGREE
    c = fits[best]
    _, fisher = _nll_and_fisher(c, stats, g_max_s)
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        cov = np.full((c.size, c.size), np.nan)
    if read_var_shift is not None:
        shift = _fit_degree(read_var_shift, g_max_s, best, scale) - c
        cov = cov + np.outer(shift, shift)
    sig_l, se_l = zip(*(_level_sigma(stats, g) for g in g_all), strict=True)
    bias, bias_se, read = [], [], []
    for g in g_all:
        rows = [
            (st.n[i], st.mean_s[i], st.total_var[i], st.read_var_s2[i])
            for st in stats
            for i in np.flatnonzero(np.isclose(st.g_target_s, g, rtol=1e-6))
        ]
        n_tot = sum(r[0] for r in rows)
        bias.append(sum(r[0] * r[1] for r in rows) / n_tot)
        bias_se.append(np.sqrt(sum(r[0] * r[2] for r in rows) / n_tot / n_tot))
        read.append(np.sqrt(sum(r[0] * r[3] for r in rows) / n_tot))
    return ProgNoiseFit(
        g_max_s,
        c,
        cov,
        best,
        bic,
        g_all,
        np.array(sig_l),
        np.array(se_l),
        np.array(bias),
        np.array(bias_se),
        np.array(read),
        [st.source for st in stats],
        notes,
        level_sigma_ci_s=np.array([_level_sigma_interval(stats, g) for g in g_all]),
    )


def source_consistency(a: LevelErrors, b: LevelErrors) -> dict[str, Any]:
    """χ² test that two sources measure the same σ_prog at their common levels.

    Per common level, z = (σ_a − σ_b)/sqrt(se_a² + se_b²) from the per-level estimates;
    χ² = Σ z² with one degree of freedom per level.
    """
    from scipy import stats as sps

    common = [g for g in a.g_target_s if np.any(np.isclose(b.g_target_s, g, rtol=1e-6))]
    if not common:
        return {"chi2": None, "dof": 0, "p_value": None, "levels": 0}
    z2 = 0.0
    for g in common:
        sa, ea = _level_sigma([a], g)
        sb, eb = _level_sigma([b], g)
        z2 += (sa - sb) ** 2 / (ea**2 + eb**2)
    p = float(sps.chi2.sf(z2, len(common)))
    return {"chi2": float(z2), "dof": len(common), "p_value": p, "levels": len(common)}
