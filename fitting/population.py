"""Population (device-to-device) estimation with the estimation error removed from the spread.

Per-device estimates θᵢ with standard errors sᵢ are modelled as θᵢ ~ N(μ, τ² + sᵢ²): the
normal random-effects model. τ is the true device-to-device spread; the naive standard
deviation of the θᵢ overstates it by the mean squared standard error (anchors.md §3,
pitfall 4). lmfit maximizes the marginal likelihood (τ ≥ 0 as a parameter bound);
standard errors come from the expected Fisher information, which is closed-form here:
I(μ) = Σ 1/vᵢ and I(τ²) = Σ 1/(2vᵢ²) with vᵢ = τ² + sᵢ².
"""

from __future__ import annotations

from dataclasses import dataclass

import lmfit
import numpy as np

__all__ = ["RandomEffect", "fit_random_effect"]


@dataclass(frozen=True)
class RandomEffect:
    """Population mean and spread of one per-device quantity, with standard errors."""

    mean: float
    mean_stderr: float
    spread: float  # τ, same unit as the quantity
    spread_stderr: float
    naive_spread: float  # plain standard deviation of the estimates, for comparison
    n: int


def fit_random_effect(estimates: np.ndarray, stderrs: np.ndarray) -> RandomEffect:
    """Maximum-likelihood (μ, τ) of estimates ``θᵢ ± sᵢ`` (1-D arrays of equal length)."""
    theta = np.asarray(estimates, dtype=float)
    se = np.asarray(stderrs, dtype=float)
    ok = np.isfinite(theta) & np.isfinite(se) & (se >= 0)
    theta, se = theta[ok], se[ok]
    n = theta.size
    if n == 0:
        raise ValueError("no finite per-device estimates to pool")
    if n == 1:
        return RandomEffect(float(theta[0]), float(se[0]), 0.0, np.inf, 0.0, 1)
    naive = float(np.std(theta, ddof=1))
    scale = naive if naive > 0 else (float(np.mean(se)) or 1.0)
    se_s = se / scale  # work in units of the naive spread: well-conditioned at any unit
    theta_s = (theta - np.median(theta)) / scale

    def nll(params: lmfit.Parameters) -> float:
        v = params["tau"].value ** 2 + se_s**2
        v = np.maximum(v, 1e-300)
        return float(np.sum(np.log(v) + (theta_s - params["mu"].value) ** 2 / v))

    tau0 = np.sqrt(max(1.0 - float(np.mean(se_s**2)), 0.01))
    params = lmfit.Parameters()
    params.add("mu", value=float(np.mean(theta_s)))
    params.add("tau", value=tau0, min=0.0)
    result = lmfit.minimize(nll, params, method="nelder", calc_covar=False)
    mu_s = result.params["mu"].value
    tau_s = result.params["tau"].value
    v = tau_s**2 + se_s**2
    mu_se = 1.0 / np.sqrt(np.sum(1.0 / v))
    tau2_se = np.sqrt(2.0 / np.sum(1.0 / v**2))
    tau_se = tau2_se / (2.0 * tau_s) if tau_s > 1e-6 else np.sqrt(tau2_se)
    return RandomEffect(
        mean=float(mu_s * scale + np.median(theta)),
        mean_stderr=float(mu_se * scale),
        spread=float(tau_s * scale),
        spread_stderr=float(tau_se * scale),
        naive_spread=naive,
        n=n,
    )
