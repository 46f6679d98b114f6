"""Likelihoods and small statistical tools shared by the PCM fitters.

- :func:`fit_folded_normal`: (μ, σ) of ν ~ |N(μ, σ)| observed with Gaussian measurement
  error of known variance e² (per-device drift exponents: deconvolves the read-noise part);
- :func:`chi2_variance_nll`: negative log-likelihood of sample variances (gamma law), used
  for read noise;
- :func:`numerical_covariance`: covariance of an estimate from the Hessian of its NLL;
- :func:`aicc`: corrected Akaike information criterion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

__all__ = [
    "FoldedNormalFit",
    "aicc",
    "chi2_variance_nll",
    "fit_folded_normal",
    "fit_signed_normal",
    "folded_normal_nll",
    "numerical_covariance",
]

_LOG_2PI = float(np.log(2 * np.pi))
_VAR_FLOOR = 1e-14


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
    """Maximum-likelihood (μ, σ) of a folded normal seen through measurement noise."""

    mu: float
    sigma: float
    mu_se: float
    sigma_se: float
    n: int
    nll: float


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
    sigma = float(np.exp(log_sd))
    cov = numerical_covariance(nll, res.x, rel_step=1e-3)
    mu_se = float(np.sqrt(cov[0, 0]))
    sigma_se = float(sigma * np.sqrt(cov[1, 1]))  # delta method from log σ
    return FoldedNormalFit(mu, sigma, mu_se, sigma_se, n, float(res.fun))


def fit_signed_normal(nu_hat: np.ndarray, e2: float) -> FoldedNormalFit:
    """Fit (μ, σ) of a signed exponent ν ~ N(μ, σ) from estimates ν̂ = ν + N(0, e2).

    The technology-neutral alternative to :func:`fit_folded_normal`: a conductance may relax
    up (ν < 0) as well as down. Closed-form maximum likelihood: μ = mean(ν̂),
    σ² = max(var(ν̂) − e2, 0) (var with 1/n); ``nll`` includes the same constants as
    :func:`folded_normal_nll`, so the two likelihoods can be compared.
    """
    nu_hat = np.asarray(nu_hat, dtype=float)
    n = nu_hat.size
    mu = float(nu_hat.mean())
    var = float(np.mean((nu_hat - mu) ** 2))
    s2 = max(var - e2, 0.0)
    v = max(s2 + e2, _VAR_FLOOR)
    nll = float(0.5 * np.sum(_LOG_2PI + np.log(v) + (nu_hat - mu) ** 2 / v))
    sigma = float(np.sqrt(s2))
    mu_se = float(np.sqrt(v / max(n, 1)))
    # Var(σ̂²) ≈ 2v²/n; delta method to σ (a σ at 0 gets the error of its square root)
    sigma_se = float(np.sqrt(2.0 / max(n, 1)) * v / max(2.0 * sigma, np.sqrt(v)))
    return FoldedNormalFit(mu, sigma, mu_se, sigma_se, n, nll)


def chi2_variance_nll(s2: np.ndarray, dof: np.ndarray, model_var: np.ndarray) -> float:
    """−log L (up to a constant) of sample variances ``s2`` with ``dof`` degrees of freedom.

    For Gaussian reads, dof·s²/σ² ~ χ²(dof): −log L = Σ (dof/2)·(ln σ² + s²/σ²) + const.
    """
    return float(np.sum(0.5 * dof * (np.log(model_var) + s2 / model_var)))
