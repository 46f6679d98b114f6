"""Likelihoods and small statistical tools shared by the PCM fitters.

- :func:`fit_folded_normal`: (μ, σ) of ν ~ |N(μ, σ)| observed with Gaussian measurement
  error of known variance e² (per-device drift exponents: deconvolves the read-noise part),
  with small-sample 95 % intervals (:func:`adjusted_profile_interval` for σ, Student t
  for μ);
- :func:`chi2_variance_nll`: negative log-likelihood of sample variances (gamma law), used
  for read noise;
- :func:`numerical_covariance`: covariance of an estimate from the Hessian of its NLL;
- :func:`aicc`: corrected Akaike information criterion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from fitting.population import Z95

__all__ = [
    "FoldedNormalFit",
    "adjusted_profile_interval",
    "aicc",
    "chi2_variance_nll",
    "fit_folded_normal",
    "fit_signed_normal",
    "folded_normal_nll",
    "numerical_covariance",
]

_LOG_2PI = float(np.log(2 * np.pi))
_VAR_FLOOR = 1e-14
#: 95 % point of χ²(1): the likelihood-ratio interval's cut (2·Δ log L)
CHI2_1_95 = float(stats.chi2.ppf(0.95, 1))


def aicc(nll: float, k: int, n: int) -> float:
    """AICc = 2·NLL + 2k + 2k(k+1)/(n − k − 1) (inf when n <= k + 1)."""
    if n - k - 1 <= 0:
        return float("inf")
    return 2.0 * nll + 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1)


def numerical_covariance(
    nll: Callable[[np.ndarray], float], p: np.ndarray, rel_step: float = 1e-4
) -> np.ndarray:
    """Inverse of the finite-difference Hessian of ``nll`` at ``p`` (NaN if not invertible).

    Each step starts at ``rel_step``·max(|p_i|, 1e-3) and is rescaled (a few times) so that
    the NLL changes by about 1 along it, i.e. the step is about one standard error: large
    enough to beat rounding in a large NLL, small enough to stay quadratic.
    """
    p = np.asarray(p, dtype=float)
    k = p.size
    h = rel_step * np.maximum(np.abs(p), 1e-3)
    hess = np.empty((k, k))
    f0 = nll(p)
    for i in range(k):
        e = np.zeros(k)
        for _ in range(4):
            e[i] = h[i]
            curv = nll(p + e) + nll(p - e) - 2 * f0
            if not np.isfinite(curv):
                break
            factor = float(np.clip(np.sqrt(1.0 / max(abs(curv), 1e-300)), 1e-3, 1e3))
            if 0.3 < factor < 3:
                break
            h[i] *= factor
    for i in range(k):
        for j in range(i, k):
            if i == j:
                e = np.zeros(k)
                e[i] = h[i]
                val = (nll(p + e) - 2 * f0 + nll(p - e)) / h[i] ** 2
            else:
                ei = np.zeros(k)
                ej = np.zeros(k)
                ei[i], ej[j] = h[i], h[j]
                val = (
                    nll(p + ei + ej) - nll(p + ei - ej) - nll(p - ei + ej) + nll(p - ei - ej)
                ) / (4 * h[i] * h[j])
            hess[i, j] = hess[j, i] = val
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return np.full((k, k), np.nan)
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
        return np.full((k, k), np.nan)
    return cov


def folded_normal_nll(mu: float, sigma: float, nu_hat: np.ndarray, e2: float) -> float:
    """−log L of ν̂ = |z| + ε, z ~ N(μ, σ²), ε ~ N(0, e2).

    Closed form: p(ν̂) = Σ_{s=±1} N(ν̂; sμ, σ²+e²)·Φ(m_s/τ), with
    m_s = (sμ·e² + ν̂·σ²)/(σ² + e²) and τ = σe/sqrt(σ² + e²).
    """
    # variance floors (std 1e-7 in ν) keep the closed form finite when σ or e vanish
    s2 = max(sigma * sigma, _VAR_FLOOR)
    e2 = max(e2, _VAR_FLOOR)
    v = s2 + e2
    tau = np.sqrt(s2 * e2 / v)
    terms = []
    for sign in (1.0, -1.0):
        m = (sign * mu * e2 + nu_hat * s2) / v
        log_norm = -0.5 * (_LOG_2PI + np.log(v) + (nu_hat - sign * mu) ** 2 / v)
        terms.append(log_norm + special.log_ndtr(m / tau))
    return float(-np.sum(np.logaddexp(terms[0], terms[1])))


@dataclass
class FoldedNormalFit:
    """(μ, σ) of a (folded) normal seen through measurement noise, with 95 % intervals.

    ``nll`` is the maximum-likelihood −log L (to compare models); ``sigma`` maximizes the
    Cox–Reid adjusted profile likelihood (REML for the signed normal) and ``sigma_ci`` is its
    likelihood-ratio interval, asymmetric; ``mu_ci`` is μ ± t(n−1)·``mu_se``.
    ``sigma_se`` = (upper − lower)/(2·1.96): the interval's width as one number (weights).
    """

    mu: float
    sigma: float
    mu_se: float
    sigma_se: float
    n: int
    nll: float
    mu_ci: tuple[float, float] = (float("nan"), float("nan"))
    sigma_ci: tuple[float, float] = (float("nan"), float("nan"))


def adjusted_profile_interval(
    nll: Callable[[float, float], float],
    mu: float,
    mu_scale: float,
    sigma_max: float,
    e2: float = 0.0,
) -> tuple[float, tuple[float, float]]:
    """σ̂ and its 95 % interval from the adjusted profile likelihood of σ.

    ``nll(μ, σ)`` is the −log L of n values ν̂ = ν + N(0, e2); μ is the nuisance parameter,
    profiled out within ``mu`` ± 12 ``mu_scale`` (``mu_scale``: about its standard error).
    The adjusted profile −log L_A(σ) = min_μ nll(μ, σ) + ½ ln j_μμ(σ) (Cox & Reid 1987,
    J. R. Stat. Soc. B 49:1) removes the ML σ's small-sample bias; j_μμ is taken as the
    normal's n/(σ² + e2), which makes L_A the restricted likelihood (σ² divided by n − 1)
    when the fold is negligible, and stays finite where the folded likelihood is flat in μ
    (μ near 0, where the observed j_μμ vanishes and ln j_μμ would dominate). The interval is
    {σ >= 0: 2·(log L_A(σ̂) − log L_A(σ)) <= χ²₁(0.95)}: asymmetric, and it keeps its
    coverage where the Wald interval σ̂ ± 1.96 SE does not (σ̂ near 0, or a few devices with
    measurement noise comparable to σ; benchmarks/RESULTS.md, "Uncertainty coverage").
    """
    lo_mu, hi_mu = mu - 12 * mu_scale, mu + 12 * mu_scale

    def adjusted(sigma: float) -> float:
        res = optimize.minimize_scalar(
            lambda m: nll(m, sigma),
            bounds=(lo_mu, hi_mu),
            method="bounded",
            options={"xatol": 1e-4 * mu_scale},
        )
        return float(res.fun) - 0.5 * np.log(max(sigma * sigma + e2, _VAR_FLOOR))

    grid = np.linspace(0.0, sigma_max, 13)
    values = np.array([adjusted(s) for s in grid])
    k = int(np.argmin(values))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    best = optimize.minimize_scalar(
        adjusted, bounds=(a, b), method="bounded", options={"xatol": 1e-6 * sigma_max}
    )
    sigma = float(best.x)
    f_min = min(float(best.fun), float(values[k]))
    if values[k] < best.fun:
        sigma = float(grid[k])

    def excess(s: float) -> float:
        return 2.0 * (adjusted(s) - f_min) - CHI2_1_95

    if excess(0.0) <= 0:
        lower = 0.0
    else:
        lower = float(optimize.brentq(excess, 0.0, sigma, xtol=1e-7 * sigma_max))
    top = sigma_max
    while excess(top) <= 0 and top < 1e3 * sigma_max:
        top *= 2.0
    upper = float(optimize.brentq(excess, sigma, top, xtol=1e-7 * sigma_max))
    return sigma, (lower, upper)


def _t_interval(mu: float, se: float, n: int) -> tuple[float, float]:
    """μ ± t₀.₉₇₅(n − 1)·se (the mean's interval when its SE uses an estimated spread)."""
    half = float(stats.t.ppf(0.975, max(n - 1, 1))) * se
    return (mu - half, mu + half)


def fit_folded_normal(nu_hat: np.ndarray, e2: float) -> FoldedNormalFit:
    """Fit (μ, σ) of ν ~ |N(μ, σ)| from estimates ν̂ = ν + N(0, e2) (e2: known variance)."""
    nu_hat = np.asarray(nu_hat, dtype=float)
    n = nu_hat.size
    mean = float(nu_hat.mean())
    var = float(nu_hat.var(ddof=1)) if n > 1 else 0.0
    sd0 = np.sqrt(max(var - e2, 0.01 * var, 1e-12))

    def nll(p: np.ndarray) -> float:
        if not -50.0 < p[1] < 5.0:  # σ outside (1e-22, 148): far off any drift exponent
            return np.inf
        with np.errstate(invalid="ignore", over="ignore"):
            value = folded_normal_nll(p[0], float(np.exp(p[1])), nu_hat, e2)
        return value if np.isfinite(value) else np.inf

    scale = np.sqrt(var) if var > 0 else 1.0
    res = optimize.minimize(
        nll,
        np.array([mean, np.log(sd0)]),
        method="Nelder-Mead",
        options={"xatol": 1e-5 * scale, "fatol": 1e-7, "maxiter": 2000},
    )
    mu, log_sd = float(res.x[0]), float(res.x[1])
    cov = numerical_covariance(nll, res.x, rel_step=1e-3)
    # the ML spread divides by n: scale the mean's SE to n − 1 (the t interval's premise)
    mu_se = float(np.sqrt(cov[0, 0] * n / max(n - 1, 1)))
    if not np.isfinite(mu_se) or mu_se <= 0:
        mu_se = float(np.sqrt(max(var, e2, 1e-12) / max(n, 1)))
    if n < 3:
        sigma = float(np.exp(log_sd))
        return FoldedNormalFit(mu, sigma, mu_se, float("nan"), n, float(res.fun))

    def nll2(m: float, s: float) -> float:
        with np.errstate(invalid="ignore", over="ignore"):
            value = folded_normal_nll(m, s, nu_hat, e2)
        return value if np.isfinite(value) else 1e300

    sigma, ci = adjusted_profile_interval(nll2, mu, mu_se, 4.0 * np.sqrt(max(var, e2, 1e-12)), e2)
    return FoldedNormalFit(
        mu,
        sigma,
        mu_se,
        (ci[1] - ci[0]) / (2 * Z95),
        n,
        float(res.fun),
        _t_interval(mu, mu_se, n),
        ci,
    )


def fit_signed_normal(nu_hat: np.ndarray, e2: float) -> FoldedNormalFit:
    """Fit (μ, σ) of a signed exponent ν ~ N(μ, σ) from estimates ν̂ = ν + N(0, e2).

    The technology-neutral alternative to :func:`fit_folded_normal`: a conductance may relax
    up (ν < 0) as well as down. μ = mean(ν̂) with its t interval; σ² = max(var(ν̂) − e2, 0)
    with var over n − 1 (the restricted likelihood's maximum) and the likelihood-ratio
    interval of that likelihood (closed form: ``ν`` = n − 1 degrees of freedom,
    −log L_R(σ) = ν/2·(ln v + s²/v), v = σ² + e2). ``nll`` is the maximum-likelihood
    −log L with the same constants as :func:`folded_normal_nll`, so the two likelihoods
    can be compared.
    """
    nu_hat = np.asarray(nu_hat, dtype=float)
    n = nu_hat.size
    mu = float(nu_hat.mean())
    var = float(np.mean((nu_hat - mu) ** 2))
    v_ml = max(var, e2, _VAR_FLOOR)
    nll = float(0.5 * np.sum(_LOG_2PI + np.log(v_ml) + (nu_hat - mu) ** 2 / v_ml))
    dof = max(n - 1, 1)
    s2 = float(np.sum((nu_hat - mu) ** 2)) / dof
    sigma = float(np.sqrt(max(s2 - e2, 0.0)))
    mu_se = float(np.sqrt(max(s2, _VAR_FLOOR) / max(n, 1)))
    if n < 3:
        return FoldedNormalFit(mu, sigma, mu_se, float("nan"), n, nll)
    e2f = max(e2, _VAR_FLOOR)

    def restricted(s: float) -> float:
        v = s * s + e2f
        return 0.5 * dof * (np.log(v) + s2 / v)

    f_min = restricted(sigma)

    def excess(s: float) -> float:
        return 2.0 * (restricted(s) - f_min) - CHI2_1_95

    lower = 0.0 if excess(0.0) <= 0 else float(optimize.brentq(excess, 0.0, sigma))
    top = 2.0 * np.sqrt(max(s2, e2f))
    while excess(top) <= 0:
        top *= 2.0
    upper = float(optimize.brentq(excess, sigma, top))
    return FoldedNormalFit(
        mu,
        sigma,
        mu_se,
        (upper - lower) / (2 * Z95),
        n,
        nll,
        _t_interval(mu, mu_se, n),
        (lower, upper),
    )


def chi2_variance_nll(s2: np.ndarray, dof: np.ndarray, model_var: np.ndarray) -> float:
    """−log L (up to a constant) of sample variances ``s2`` with ``dof`` degrees of freedom.

    For Gaussian reads, dof·s²/σ² ~ χ²(dof): −log L = Σ (dof/2)·(ln σ² + s²/σ²) + const.
    """
    return float(np.sum(0.5 * dof * (np.log(model_var) + s2 / model_var)))
