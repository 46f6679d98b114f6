"""Population (device-to-device) estimation with the estimation error removed from the spread.

Per-device estimates θᵢ with standard errors sᵢ are modelled as θᵢ ~ N(μ, τ² + sᵢ²): the
normal random-effects model. τ is the true device-to-device spread; the naive standard
deviation of the θᵢ overstates it by the mean squared standard error (REFERENCES.md [R17],
pitfall 4). lmfit maximizes the marginal likelihood (τ ≥ 0 as a parameter bound);
standard errors come from the expected Fisher information, which is closed-form here:
I(μ) = Σ 1/vᵢ and I(τ²) = Σ 1/(2vᵢ²) with vᵢ = τ² + sᵢ². Near τ = 0 (the boundary of the
parameter space) that approximation fails; :func:`fast_random_effect` is the same maximum-
likelihood estimate without lmfit, for bootstrap replicates over devices.

:func:`pair_population` turns per-device up/down quantities into aihwkit's population
parameters (REFERENCES.md [R3]): with gain g = 1 + σ_d2d·ξ and asymmetry r = σ_ud·ξ,
Δ⁺ = dw_min·(g + r + min(β, 0)) and Δ⁻ = dw_min·(g − r − max(β, 0)).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lmfit
import numpy as np

__all__ = [
    "Estimate",
    "PairPopulation",
    "RandomEffect",
    "estimate_fields",
    "estimates_from_fields",
    "estimates_from_section",
    "fast_random_effect",
    "fit_random_effect",
    "moment_random_effect",
    "pair_population",
    "spread_interval",
    "spread_intervals",
]


@dataclass(frozen=True)
class Estimate:
    """One reported quantity of a fit: its value, standard error and how that was obtained.

    The one record from the fitter to the report: a preset's ``device`` section stores it
    split over ``parameters`` (value), ``uncertainty`` (stderr) and ``uncertainty_method``
    (method), datasets/PRESET.md; :func:`estimate_fields` and
    :func:`estimates_from_section` convert both ways. ``value`` is a number, a flag or a
    list (piecewise nodes); ``stderr`` None when no error is available (``method`` says why:
    ``fisher``, ``bootstrap``, ``binomial``, ``not identified``, ``not available (...)``);
    ``naive`` is, for a device-to-device spread, the plain standard deviation of the
    per-device estimates (estimation noise not removed), same unit as ``value``; ``interval``
    its 95 % interval (:func:`spread_interval`), stored as the section's ``interval95``. A
    :class:`RandomEffect` (the population model of one per-device quantity) gives two: its
    mean (e.g. ``w_max``) and its spread (``w_max_dtod`` = τ/|μ|, with ``naive_spread``).
    """

    value: Any
    stderr: Any = None
    method: str = ""
    naive: float | None = None
    #: a 95 % interval where the error is not symmetric (device-to-device spreads,
    #: :func:`spread_interval`): (lower, upper), upper None where it is unbounded
    interval: tuple[float, float | None] | None = None


@dataclass(frozen=True)
class RandomEffect:
    """Population mean and spread of one per-device quantity, with standard errors."""

    mean: float
    mean_stderr: float
    spread: float  # τ, same unit as the quantity
    spread_stderr: float
    naive_spread: float  # plain standard deviation of the estimates, for comparison
    n: int

    @property
    def spread_at_boundary(self) -> bool:
        """τ within 3 standard errors of 0: the Fisher standard error is not reliable."""
        return not (self.spread > 3.0 * self.spread_stderr)


#: two-sided 95 % normal quantile
Z95 = 1.959964

#: standard-error methods whose error of a spread scales with the spread itself (the
#: random-effects likelihood's Fisher information, a bootstrap over devices); a sandwich of
#: moments (linear-step's γ spreads) does not, and keeps its symmetric interval
SCALING_ERROR_METHODS = ("fisher", "bootstrap")


def spread_interval(value: float, stderr: float) -> tuple[float, float | None] | None:
    """95 % interval of a device-to-device spread τ whose standard error scales with τ.

    The error of a spread estimated from n devices is about τ/√(2n) (plus the devices' own
    estimation noise): evaluated at the estimate, a low estimate gets a small error and the
    symmetric interval τ̂ ± 1.96·SE misses a larger truth more often than a smaller one
    (benchmarks/bench_coverage.py: constant-step up_down_dtod covered 90.0 %, 10 of its 20
    misses below the truth with the drawn devices' own spread inside the interval). With the
    relative error r = SE/τ̂ taken as that of τ, {τ : |τ̂ − τ| ≤ 1.96·r·τ} is
    [τ̂/(1 + 1.96 r), τ̂/(1 − 1.96 r)], unbounded above (None) where 1.96 r ≥ 1. None where
    the spread or its error is not a positive finite number."""
    if not (isinstance(value, (int, float)) and isinstance(stderr, (int, float))):
        return None
    if not (np.isfinite(value) and np.isfinite(stderr) and value > 0 and stderr > 0):
        return None
    k = Z95 * stderr / value
    return float(value / (1.0 + k)), (float(value / (1.0 - k)) if k < 1.0 else None)


def estimates_from_fields(
    parameters: Mapping[str, Any],
    uncertainty: Mapping[str, Any],
    method: Mapping[str, str],
    naive: Mapping[str, float] | None = None,
    intervals: Mapping[str, Any] | None = None,
) -> dict[str, Estimate]:
    """One :class:`Estimate` per parameter from the parallel dicts of a fit (same order)."""
    naive, intervals = naive or {}, intervals or {}
    out = {}
    for name, value in parameters.items():
        interval = intervals.get(name)
        out[name] = Estimate(
            value,
            uncertainty.get(name),
            method.get(name, ""),
            naive.get(name),
            None if interval is None else (interval[0], interval[1]),
        )
    return out


def estimate_fields(estimates: Mapping[str, Estimate]) -> dict[str, dict[str, Any]]:
    """``parameters``, ``uncertainty``, ``uncertainty_method`` and ``interval95`` of a
    preset's ``device`` section (datasets/PRESET.md) from :class:`Estimate` records."""
    return {
        "parameters": {k: e.value for k, e in estimates.items()},
        "uncertainty": {k: e.stderr for k, e in estimates.items()},
        "uncertainty_method": {k: e.method for k, e in estimates.items() if e.method},
        "interval95": {k: list(e.interval) for k, e in estimates.items() if e.interval},
    }


def spread_intervals(
    parameters: Mapping[str, Any], uncertainty: Mapping[str, Any], method: Mapping[str, str]
) -> dict[str, tuple[float, float | None]]:
    """:func:`spread_interval` of every device-to-device spread (``*_dtod``) whose error
    came from a method in :data:`SCALING_ERROR_METHODS`."""
    out = {}
    for name, value in parameters.items():
        if not name.endswith("_dtod"):
            continue
        how = str(method.get(name, ""))
        if not how.startswith(SCALING_ERROR_METHODS):
            continue
        interval = spread_interval(value, uncertainty.get(name))
        if interval is not None:
            out[name] = interval
    return out


def estimates_from_section(
    device: Mapping[str, Any], diagnostics: Mapping[str, Any] | None = None
) -> dict[str, Estimate]:
    """The :class:`Estimate` records of a preset's ``device`` section (the inverse of
    :func:`estimate_fields`); naive spreads from ``diagnostics`` (``naive_<name>``, the
    preset's ``provenance/diagnostics``) where given."""
    naive = {
        k[len("naive_") :]: v
        for k, v in (diagnostics or {}).items()
        if k.startswith("naive_") and v is not None
    }
    return estimates_from_fields(
        device.get("parameters") or {},
        device.get("uncertainty") or {},
        device.get("uncertainty_method") or {},
        naive,
        device.get("interval95") or {},
    )


def _clean(estimates: np.ndarray, stderrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    theta = np.asarray(estimates, dtype=float)
    se = np.asarray(stderrs, dtype=float)
    ok = np.isfinite(theta) & np.isfinite(se) & (se >= 0)
    return theta[ok], se[ok]


def fit_random_effect(estimates: np.ndarray, stderrs: np.ndarray) -> RandomEffect:
    """Maximum-likelihood (μ, τ) of estimates ``θᵢ ± sᵢ`` (1-D arrays of equal length)."""
    theta, se = _clean(estimates, stderrs)
    n = theta.size
    if n == 0:
        raise ValueError("no finite per-device estimates to pool")
    if n == 1:
        return RandomEffect(float(theta[0]), float(se[0]), 0.0, np.inf, 0.0, 1)
    naive = float(np.std(theta, ddof=1))
    scale = naive if naive > 0 else (float(np.mean(se)) or 1.0)
    se_s = se / scale  # work in units of the naive spread: well-conditioned at any unit
    center = float(np.median(theta))
    theta_s = (theta - center) / scale

    def nll(params: lmfit.Parameters) -> float:
        v = params["tau"].value ** 2 + se_s**2
        v = np.maximum(v, 1e-300)
        return float(np.sum(np.log(v) + (theta_s - params["mu"].value) ** 2 / v))

    mu0, tau0 = _ml_fixed_point(theta_s[None], se_s[None] ** 2)
    params = lmfit.Parameters()
    params.add("mu", value=float(mu0[0]))
    params.add("tau", value=max(float(tau0[0]), 1e-3), min=0.0)
    result = lmfit.minimize(nll, params, method="nelder", calc_covar=False)
    mu_s = result.params["mu"].value
    tau_s = result.params["tau"].value
    v = tau_s**2 + se_s**2
    mu_se = 1.0 / np.sqrt(np.sum(1.0 / v))
    tau2_se = np.sqrt(2.0 / np.sum(1.0 / v**2))
    tau_se = tau2_se / (2.0 * tau_s) if tau_s > 1e-6 else np.sqrt(tau2_se)
    return RandomEffect(
        mean=float(mu_s * scale + center),
        mean_stderr=float(mu_se * scale),
        spread=float(tau_s * scale),
        spread_stderr=float(tau_se * scale),
        naive_spread=naive,
        n=n,
    )


def _ml_fixed_point(
    theta: np.ndarray, se2: np.ndarray, iterations: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """ML (μ, τ) of each row of ``theta`` by the score fixed point, vectorized over rows."""
    # an estimate with zero standard error would take all the weight: floor the errors
    floor = 1e-12 * np.maximum(theta.var(axis=1, keepdims=True), 1e-300)
    se2 = np.maximum(se2, floor)
    tau2 = np.maximum(theta.var(axis=1) - se2.mean(axis=1), 0.0)
    mu = theta.mean(axis=1)
    for _ in range(iterations):
        w = 1.0 / np.maximum(tau2[:, None] + se2, 1e-300)
        mu = np.sum(w * theta, axis=1) / np.sum(w, axis=1)
        r2 = (theta - mu[:, None]) ** 2 - se2
        # ML score equation for τ²: Σ w²((θ − μ)² − s² − τ²) = 0, solved for τ² at fixed w
        new = np.maximum(np.sum(w**2 * r2, axis=1) / np.sum(w**2, axis=1), 0.0)
        if np.allclose(new, tau2, rtol=1e-10, atol=1e-300):
            tau2 = new
            break
        tau2 = new
    w = 1.0 / np.maximum(tau2[:, None] + se2, 1e-300)
    mu = np.sum(w * theta, axis=1) / np.sum(w, axis=1)
    return mu, np.sqrt(tau2)


def fast_random_effect(estimates: np.ndarray, stderrs: np.ndarray) -> RandomEffect:
    """The ML estimate of :func:`fit_random_effect` without lmfit (for bootstrap replicates)."""
    theta, se = _clean(estimates, stderrs)
    n = theta.size
    if n == 0:
        raise ValueError("no finite per-device estimates to pool")
    if n == 1:
        return RandomEffect(float(theta[0]), float(se[0]), 0.0, np.inf, 0.0, 1)
    mu, tau = _ml_fixed_point(theta[None], se[None] ** 2)
    return RandomEffect(
        float(mu[0]), np.nan, float(tau[0]), np.nan, float(np.std(theta, ddof=1)), n
    )


#: a device whose error variance exceeds this many times a typical device's total variance
#: is left out of the moment estimates (its inverse-variance weight would be under 1 %)
UNINFORMATIVE_VARIANCE_RATIO = 100.0


def _uninformative(theta: np.ndarray, se: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Devices (among ``keep``) whose sᵢ² is above UNINFORMATIVE_VARIANCE_RATIO times the
    median sᵢ² plus the robust spread² (1.4826·MAD of θ, less the median sᵢ²)."""
    s2 = float(np.median(se[keep] ** 2))
    mad = 1.4826 * float(np.median(np.abs(theta[keep] - np.median(theta[keep]))))
    typical = max(s2, mad**2)  # s² + τ², τ² = max(MAD² − s², 0)
    return keep & (se**2 > UNINFORMATIVE_VARIANCE_RATIO * typical)


def moment_random_effect(estimates: np.ndarray, stderrs: np.ndarray) -> RandomEffect:
    """(μ, τ) of estimates ``θᵢ ± sᵢ`` whose standard errors are themselves noisy estimates.

    The likelihood of :func:`fit_random_effect` treats each sᵢ as exact. Per-device sandwich
    errors of a shape parameter (linear-step's γ) scatter by 30-90 % from device to device,
    nearly independently of the actual errors (on a simulated chip of identical devices:
    SD of the estimates / RMS error 1.02, yet z-scores with SD 1.3): the devices whose error
    came out too small get the large weights and large standardized residuals, and the ML
    spread is τ = 0.03 for a true 0 (10 standard errors). The moment estimator
    τ² = S² − mean(sᵢ²) (S² the sample variance; DerSimonian-Laird with equal weights) only
    needs E[sᵢ²] to be the variance of θᵢ. μ is the mean weighted by 1/(τ² + sᵢ²); both
    standard errors are sandwiches over devices (influence functions, n/(n − 1)), which do
    not trust the sᵢ either.

    Equal weights let one unidentified device dominate both moments: a device whose
    variance sᵢ² exceeds :data:`UNINFORMATIVE_VARIANCE_RATIO` times a typical device's total
    variance (median sᵢ² plus the spread τ² that the median absolute deviation of the θᵢ
    implies) carries under 1 % of a typical device's weight in any inverse-variance pooling
    and is left out (aihwkit LinearStepDevice, 128 devices, γ⁺ 0.5 ± 0.05: one device at
    γ⁺ = 42 ± 26 made γ⁺_dtod 2.86 and the re-simulated mean trace 21 % off).
    """
    theta, se = _clean(estimates, stderrs)
    keep = se > 0  # a zero error is a degenerate (pinned) fit, not a measurement
    if keep.sum() < 3:
        return fit_random_effect(theta, se)
    keep &= ~_uninformative(theta, se, keep)
    theta, se = theta[keep], se[keep]
    n = theta.size
    naive = float(np.std(theta, ddof=1))
    tau2_raw = naive**2 - float(np.mean(se**2))
    tau2 = max(tau2_raw, 0.0)
    w = 1.0 / np.maximum(tau2 + se**2, 1e-300)
    mu = float(np.sum(w * theta) / np.sum(w))
    c = n / (n - 1.0)
    mu_se = float(np.sqrt(c * np.sum(w**2 * (theta - mu) ** 2)) / np.sum(w))
    psi = (theta - theta.mean()) ** 2 * c - se**2 - tau2_raw
    tau2_se = float(np.sqrt(c * np.sum(psi**2)) / n)
    tau = float(np.sqrt(tau2))
    tau_se = tau2_se / (2.0 * tau) if tau > 1e-6 * max(naive, 1e-300) else np.sqrt(tau2_se)
    return RandomEffect(mu, mu_se, tau, float(tau_se), naive, n)


@dataclass(frozen=True)
class PairPopulation:
    """aihwkit population parameters of a pair of up/down per-device quantities."""

    scale: float  # dw_min (or pow_gamma)
    asymmetry: float  # up_down (or pow_up_down)
    gain: RandomEffect  # spread -> dw_min_dtod
    asym: RandomEffect  # spread -> up_down_dtod
    up: RandomEffect
    down: RandomEffect
    scale_stderr: float
    asymmetry_stderr: float


def _ratio_stderr(
    num: np.ndarray,
    var_num: np.ndarray,
    eff_num: RandomEffect,
    den: np.ndarray,
    var_den: np.ndarray,
    eff_den: RandomEffect,
) -> float:
    """Standard error of μ_num/μ_den of two random-effects means over the same devices.

    A device's up and down steps share its gain (aihwkit's Δ± = dw_min·(g ± r ...)), so the
    two means are strongly correlated and their ratio (up_down) is much better determined
    than independent errors say. The error of the linear combination μ_num − k·μ_den
    (k = μ_num/μ_den) is estimated as a sandwich over devices: Σᵢ (aᵢ eᵢ − k bᵢ dᵢ)² with
    aᵢ, bᵢ the devices' normalized random-effects weights and eᵢ, dᵢ their residuals, scaled
    by n/(n − 1). Without finite Fisher errors it falls back to independent means.
    """
    k = eff_num.mean / eff_den.mean
    indep = float(
        np.hypot(eff_num.mean_stderr / eff_den.mean, k * eff_den.mean_stderr / eff_den.mean)
    )
    if not (np.isfinite(eff_num.mean_stderr) and np.isfinite(eff_den.mean_stderr)):
        return indep
    contrib = np.zeros(num.shape)
    for value, var, eff, sign in ((num, var_num, eff_num, 1.0), (den, var_den, eff_den, -k)):
        ok = np.isfinite(value) & np.isfinite(var) & (var >= 0)
        w = np.where(ok, 1.0 / np.maximum(eff.spread**2 + np.where(ok, var, 0.0), 1e-300), 0.0)
        contrib += sign * np.where(ok, w * (np.where(ok, value, 0.0) - eff.mean), 0.0) / w.sum()
    n = int(np.sum(contrib != 0))
    if n < 3:
        return indep
    return float(np.sqrt(np.sum(contrib**2) * n / (n - 1)) / abs(eff_den.mean))


def pair_population(
    up: np.ndarray,
    down: np.ndarray,
    var_up: np.ndarray,
    var_down: np.ndarray,
    cov_up_down: np.ndarray | None = None,
    estimator: Callable[[np.ndarray, np.ndarray], RandomEffect] = fit_random_effect,
) -> PairPopulation:
    """Population scale, asymmetry and their device-to-device spreads (aihwkit §1.3).

    ``up``/``down`` are per-device Δ⁺/Δ⁻ (or γ⁺/γ⁻) magnitudes with their variances and
    covariance. Devices with only one direction measured (infinite variance in the other)
    contribute to the mean of that direction only.
    """
    cov = np.zeros_like(up) if cov_up_down is None else np.nan_to_num(cov_up_down)
    var_up, var_down = np.maximum(var_up, 0.0), np.maximum(var_down, 0.0)
    for name, value, var in (("up", up, var_up), ("down", down, var_down)):
        if not np.any(np.isfinite(value) & np.isfinite(var)):
            raise ValueError(f"no device has an identified {name} step")
    eff_up = estimator(up, np.sqrt(var_up))
    eff_down = estimator(down, np.sqrt(var_down))
    mu_up, mu_down = eff_up.mean, eff_down.mean
    if mu_up >= mu_down:
        scale, asym = mu_up, 1.0 - mu_down / mu_up
        scale_se = eff_up.mean_stderr
        asym_se = _ratio_stderr(down, var_down, eff_down, up, var_up, eff_up)
    else:
        scale, asym = mu_down, mu_up / mu_down - 1.0
        scale_se = eff_down.mean_stderr
        asym_se = _ratio_stderr(up, var_up, eff_up, down, var_down, eff_down)
    both = np.isfinite(var_up) & np.isfinite(var_down) & np.isfinite(up) & np.isfinite(down)
    gain = ((up + down) / scale + abs(asym)) / 2.0
    r = ((up - down) / scale - asym) / 2.0
    var_sum = np.maximum(var_up + var_down + 2 * cov, 0.0)
    var_diff = np.maximum(var_up + var_down - 2 * cov, 0.0)
    if both.sum() >= 2:
        eff_gain = estimator(gain[both], np.sqrt(var_sum[both]) / (2.0 * scale))
        eff_asym = estimator(r[both], np.sqrt(var_diff[both]) / (2.0 * scale))
    else:  # direction-wise data: the relative spread of each direction measures the gain
        rel_up = estimator(up / scale, np.sqrt(var_up) / scale)
        rel_down = estimator(down / scale, np.sqrt(var_down) / scale)
        tau = float(np.sqrt(0.5 * (rel_up.spread**2 + rel_down.spread**2)))
        se = float(np.sqrt(0.5 * (rel_up.spread_stderr**2 + rel_down.spread_stderr**2)))
        eff_gain = RandomEffect(1.0, np.nan, tau, se, tau, min(rel_up.n, rel_down.n))
        eff_asym = RandomEffect(0.0, np.nan, 0.0, np.inf, 0.0, 0)
    return PairPopulation(
        float(scale),
        float(asym),
        eff_gain,
        eff_asym,
        eff_up,
        eff_down,
        float(scale_se),
        float(asym_se),
    )
