"""Population mean and spread of a bound that only some devices reach (censored data).

A hard bound (constant-step, linear-step, exp-step, piecewise-step) is measured only on the
devices that touch it; a device that never gets there says only that its bound lies beyond
the furthest state it visited. Pooling the reached devices alone biases the population
bound towards the near side (the devices with the closest bounds are the ones that reach
them: the constant-step ``w_min`` of issue 13 came out 18 % too close). This is the classical
censored-normal (Tobit) likelihood: with the device bounds bᵢ ~ N(μ, τ²),

* a device with an estimate xᵢ ± sᵢ contributes N(xᵢ; μ, τ² + sᵢ²);
* a device that did not reach its bound, having visited up to cᵢ, contributes
  P(bᵢ > cᵢ) = 1 − Φ((cᵢ − μ)/τ) for an upper bound (P(bᵢ < cᵢ) = Φ((cᵢ − μ)/τ) for a lower one).

(μ, τ) maximize the sum of the log contributions; standard errors come from the inverse of
the numerical Hessian of the negative log likelihood (Fisher information).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

from fitting.population import RandomEffect

__all__ = ["censored_random_effect"]


def _log_norm_sf(z: np.ndarray) -> np.ndarray:
    """log(1 − Φ(z)), accurate in the tails."""
    return special.log_ndtr(-z)


def censored_random_effect(
    estimates: np.ndarray, stderrs: np.ndarray, limits: np.ndarray, upper: bool
) -> RandomEffect:
    """ML (μ, τ) of bounds estimated on some devices and only bounded (``limits``) on others.

    ``estimates ± stderrs``: devices whose bound was identified; ``limits``: for the others,
    the furthest state visited (the bound lies beyond it: above for ``upper``, below
    otherwise). Units are the caller's. ``n`` counts both kinds of devices.
    """
    x = np.asarray(estimates, dtype=float)
    s = np.asarray(stderrs, dtype=float)
    c = np.asarray(limits, dtype=float)
    ok = np.isfinite(x) & np.isfinite(s) & (s >= 0)
    x, s = x[ok], s[ok]
    c = c[np.isfinite(c)]
    if x.size < 2:
        raise ValueError("need at least two devices with an identified bound")
    sign = 1.0 if upper else -1.0  # mirror a lower bound into an upper one
    xs, cs = sign * x, sign * c
    naive = float(np.std(x, ddof=1))
    unit = naive if naive > 0 else max(float(np.mean(s)), 1e-12)
    center = float(np.median(xs))
    xz, cz, sz = (xs - center) / unit, (cs - center) / unit, s / unit

    def nll(p: np.ndarray) -> float:
        mu, log_tau = p
        tau = np.exp(log_tau)
        v = tau**2 + sz**2
        out = 0.5 * np.sum(np.log(v) + (xz - mu) ** 2 / v)
        if cz.size:
            out -= np.sum(_log_norm_sf((cz - mu) / tau))
        return float(out)

    start = np.array([float(np.mean(xz)) + 0.5 * (cz.size > 0), 0.0])
    res = optimize.minimize(
        nll, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10}
    )
    mu_z, log_tau = res.x
    tau_z = float(np.exp(log_tau))
    # Fisher information in (μ, τ) from a central-difference Hessian
    h = 1e-4
    p0 = np.array([mu_z, tau_z])

    def nll_mt(p: np.ndarray) -> float:
        return nll(np.array([p[0], np.log(max(p[1], 1e-12))]))

    hess = np.zeros((2, 2))
    for i in range(2):
        for k in range(2):
            ei, ek = np.eye(2)[i] * h, np.eye(2)[k] * h
            hess[i, k] = (
                nll_mt(p0 + ei + ek)
                - nll_mt(p0 + ei - ek)
                - nll_mt(p0 - ei + ek)
                + nll_mt(p0 - ei - ek)
            ) / (4 * h * h)
    try:
        cov = np.linalg.inv(hess)
        se_mu, se_tau = np.sqrt(np.maximum(np.diag(cov), 0.0))
    except np.linalg.LinAlgError:
        se_mu = se_tau = np.inf
    mean = sign * (center + unit * mu_z)
    return RandomEffect(
        float(mean),
        float(unit * se_mu),
        float(unit * tau_z),
        float(unit * se_tau),
        naive,
        int(x.size + c.size),
    )


def folded_gain_moments(sigma: float) -> tuple[float, float]:
    """Mean and SD of |1 + σξ|, ξ ~ N(0, 1): aihwkit's device gain.

    aihwkit 1.2.0 draws a device's gain g = 1 + dw_min_dtod·ξ and, under its default
    ``enforce_consistency``, keeps |dw_min·(g ± r + bias)| (``PulsedRPUDevice::populate``,
    src/rpucuda/rpu_pulsed_device.cpp): the measured gains are a folded normal.
    """
    if sigma <= 0:
        return 1.0, 0.0
    mean = sigma * np.sqrt(2.0 / np.pi) * np.exp(-0.5 / sigma**2) + special.erf(
        1.0 / (sigma * np.sqrt(2.0))
    )
    return float(mean), float(np.sqrt(max(1.0 + sigma**2 - mean**2, 0.0)))


def unfolded_gain_spread(cv: float) -> tuple[float, float]:
    """aihwkit's ``dw_min_dtod`` σ whose folded gain |1 + σξ| has coefficient of variation
    ``cv``, and the mean E|1 + σξ| (the measured mean step is dw_min times it).

    The fold matters from σ ≈ 0.4 (σ = 0.6 gives cv 0.545, mean 1.024); cv grows with σ
    towards that of a half-normal, √(π/2 − 1) = 0.756; a cv at or beyond it has no
    folded-normal σ and is returned unchanged (mean 1).
    """
    if not np.isfinite(cv) or cv <= 0:
        return cv, 1.0

    def excess(s: float) -> float:
        m, sd = folded_gain_moments(s)
        return sd / m - cv

    hi = 50.0
    if excess(hi) <= 0:
        return cv, 1.0
    sigma = float(optimize.brentq(excess, cv * 0.5, hi, xtol=1e-10))
    return sigma, folded_gain_moments(sigma)[0]
