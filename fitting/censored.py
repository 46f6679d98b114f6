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

Which devices reached their bound is itself uncertain where trains are short: a device that
got there a few pulses before the turn looks like one that turned at its crest. Counted as
a limit at its own bound it pushes the mean outwards (censoring that depends on the bound).
:func:`path_censored_random_effect` therefore takes every device's furthest state with the
evidence of its own steps for either reading and leaves the decision to the likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from fitting.population import RandomEffect

__all__ = [
    "FoldedGain",
    "censored_random_effect",
    "folded_gain_with_stuck",
    "path_censored_random_effect",
]


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
    frame = _Frame(x, s, upper)
    xz, cz, sz = frame.z(x), frame.z(c), s / frame.unit

    def nll(mu: float, tau: float) -> float:
        v = tau**2 + sz**2
        out = 0.5 * np.sum(np.log(v) + (xz - mu) ** 2 / v)
        if cz.size:
            out -= np.sum(_log_norm_sf((cz - mu) / tau))
        return float(out)

    return frame.fit(nll, float(np.mean(xz)) + 0.5 * (cz.size > 0), int(x.size + c.size))


def path_censored_random_effect(
    furthest: np.ndarray,
    stderrs: np.ndarray,
    excess: np.ndarray,
    excess_sd: np.ndarray,
    upper: bool,
) -> RandomEffect:
    """ML (μ, τ) of hard bounds from each device's furthest state, without deciding which
    devices reached their bound.

    A device's furthest state xᵢ ± sᵢ is its bound bᵢ where its steps would have carried it
    further (reached), or the furthest point of its own path cᵢ where they would not
    (turned before it: bᵢ ≥ cᵢ). ``excess`` dᵢ = ĉᵢ − xᵢ is how far the device's fitted steps
    carry it beyond xᵢ without the bound (:func:`fitting.pulse_response._dwell_reads`;
    towards the bound, so that positive means beyond for either bound), ``excess_sd`` its
    error. With a flat prior on cᵢ the likelihood of (xᵢ, dᵢ) is the sum of

    * reached: N(xᵢ; μ, τ² + sᵢ²)·Φ(dᵢ/σᵢ),
    * turned before: φ(dᵢ/σᵢ)/σᵢ·P(bᵢ beyond xᵢ),

    so a device a few steps past its bound counts as a measurement and one at the crest of
    its path as a limit, each by the weight of its own evidence. A rule that calls a device
    reached only after several reads at its bound (``DWELL_READS``) turns short-train
    devices that did reach it into limits at their own bound, and the censored likelihood
    then places the mean beyond them (aihwkit's random sweep, seed 10, case 8,
    ConstantStepDevice, 61-pulse trains: 12 of 44 reached devices counted as limits, w_max
    0.658 for 0.594 drawn; this likelihood 0.610). A device with a non-finite ``excess``
    counts as a limit. Units are the caller's.
    """
    x = np.asarray(furthest, dtype=float)
    s = np.asarray(stderrs, dtype=float)
    d = np.asarray(excess, dtype=float)
    sd = np.asarray(excess_sd, dtype=float)
    ok = np.isfinite(x) & np.isfinite(s) & (s >= 0)
    x, s, d, sd = x[ok], s[ok], d[ok], sd[ok]
    if x.size < 2:
        raise ValueError("need at least two devices with a furthest state")
    path = np.isfinite(d) & np.isfinite(sd) & (sd > 0)
    frame = _Frame(x, s, upper)
    xz, sz = frame.z(x), s / frame.unit
    # the terms that do not depend on (μ, τ): log Φ(d/σ) and log φ(d/σ)/σ
    t = np.where(path, d / np.where(path, sd, 1.0), 0.0)
    log_reached = np.where(path, special.log_ndtr(t), -np.inf)
    log_turned = np.where(path, -0.5 * t * t - np.log(np.where(path, sd, 1.0) / frame.unit), 0.0)

    def nll(mu: float, tau: float) -> float:
        v = tau**2 + sz**2
        a = log_reached - 0.5 * (np.log(2.0 * np.pi * v) + (xz - mu) ** 2 / v)
        b = log_turned - 0.5 * np.log(2.0 * np.pi) * path + _log_norm_sf((xz - mu) / tau)
        return float(-np.sum(np.logaddexp(a, b)))

    # the likelihood can have a second mode where devices that turned far inside count as
    # reached and the spread swells to hold them (a 64-device constant-step chip: w_min_dtod
    # 0.194 for 0.087, at a saddle of zero error): start also from the devices that clearly
    # went past their furthest state
    clear = path & (t > 2.0)
    more: tuple[tuple[float, float], ...] = ()
    if clear.sum() >= 3:
        med = float(np.median(xz[clear]))
        more = ((med, max(1.4826 * float(np.median(np.abs(xz[clear] - med))), 1e-3)),)
    return frame.fit(nll, float(np.mean(xz)) + 0.5, int(x.size), more)


class _Frame:
    """Bounds mirrored into upper ones (``upper`` False: x → −x), centred and in units of
    their plain spread, where the likelihood is well conditioned."""

    def __init__(self, x: np.ndarray, s: np.ndarray, upper: bool) -> None:
        self.sign = 1.0 if upper else -1.0
        self.naive = float(np.std(x, ddof=1))
        self.unit = self.naive if self.naive > 0 else max(float(np.mean(s)), 1e-12)
        self.center = float(np.median(self.sign * x))

    def z(self, v: np.ndarray) -> np.ndarray:
        return (self.sign * v - self.center) / self.unit

    def fit(
        self, nll, mu_start: float, n: int, more: tuple[tuple[float, float], ...] = ()
    ) -> RandomEffect:
        """Minimize ``nll(μ, τ)`` (frame units) from (``mu_start``, 1) and from each (μ, τ)
        of ``more``, keeping the lowest; errors from the inverse of its numerical Hessian in
        (μ, τ) (Fisher information)."""

        def by_log(p: np.ndarray) -> float:
            return nll(p[0], np.exp(p[1]))

        best = None
        for mu0, tau0 in ((mu_start, 1.0), *more):
            if not (np.isfinite(mu0) and np.isfinite(tau0) and tau0 > 0):
                continue
            res = optimize.minimize(
                by_log,
                np.array([mu0, np.log(tau0)]),
                method="Nelder-Mead",
                options={"xatol": 1e-8, "fatol": 1e-10},
            )
            if best is None or res.fun < best.fun:
                best = res
        mu_z, tau_z = float(best.x[0]), float(np.exp(best.x[1]))
        h, p0 = 1e-4, np.array([mu_z, tau_z])

        def at(p: np.ndarray) -> float:
            return nll(p[0], max(p[1], 1e-12))

        hess = np.zeros((2, 2))
        for i in range(2):
            for k in range(2):
                ei, ek = np.eye(2)[i] * h, np.eye(2)[k] * h
                hess[i, k] = (
                    at(p0 + ei + ek) - at(p0 + ei - ek) - at(p0 - ei + ek) + at(p0 - ei - ek)
                ) / (4 * h * h)
        try:
            cov = np.linalg.inv(hess)
            se_mu, se_tau = np.sqrt(np.maximum(np.diag(cov), 0.0))
        except np.linalg.LinAlgError:
            se_mu = se_tau = np.inf
        return RandomEffect(
            float(self.sign * (self.center + self.unit * mu_z)),
            float(self.unit * se_mu),
            float(self.unit * tau_z),
            float(self.unit * se_tau),
            self.naive,
            n,
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


@dataclass(frozen=True)
class FoldedGain:
    """aihwkit's gain population m·|1 + σξ| with a fraction p0 of corrupt (stuck) devices."""

    scale: float  # m: the nominal gain in the units of the gains given
    scale_stderr: float
    spread: float  # σ: aihwkit's dw_min_dtod
    spread_stderr: float
    stuck: float  # p0: aihwkit's corrupt_devices_prob
    stuck_stderr: float


def _stuck_given_gain(
    g: np.ndarray, rates: np.ndarray, weak_t: float, respond_t: float, asym_spread: float
):
    """P(screened out as stuck | gain g), rows: rate pairs (t per unit gain up, down).

    Each direction's step is (g ± r)·dw_min with r ~ N(0, asym_spread²) (aihwkit's
    up_down_dtod), so t_d ~ N(g·A_d, 1 + (asym_spread·A_d)²)."""
    mu = g[None, :, None] * rates[:, None, :]  # (groups, grid, direction) expected swing t
    sd = np.sqrt(1.0 + (asym_spread * rates[:, None, :]) ** 2)
    below = special.ndtr((respond_t - mu) / sd)  # t < respond_t
    weak = below - special.ndtr((weak_t - mu) / sd)  # weak_t < t < respond_t
    return below[..., 0] * below[..., 1] - weak[..., 0] * weak[..., 1]


def folded_gain_with_stuck(
    gains: np.ndarray,
    stderrs: np.ndarray,
    stuck_rates: np.ndarray,
    weak_t: float,
    respond_t: float,
    asym_spread: float = 0.0,
) -> FoldedGain:
    """ML gain population from fitted devices' gains and the devices screened out as stuck.

    A device is corrupt (no step: aihwkit's ``corrupt_devices_prob``) with probability p0,
    else its gain is m·|1 + σξ| (``PulsedRPUDevice::populate`` folds it). A fitted device
    with gain gᵢ ± sᵢ contributes (1 − p0)·[N(gᵢ; m, m²σ² + sᵢ²) + N(gᵢ; −m, m²σ² + sᵢ²)];
    a device screened out as stuck contributes p0 + (1 − p0)·∫ P(stuck | γ) f(γ) dγ, where
    its swing statistics (fitting.screening) are t_d ~ N(γ·A_d, 1) in each direction d
    (``stuck_rates`` (K, 2): A_up, A_down, the expected t per unit gain; the asymmetry
    r ~ N(0, ``asym_spread``²) of each device widens them to N(γ·A_d, 1 + (r·A_d)²:
    near γ = 0 one direction is often the weaker) and "stuck" means
    both below ``respond_t`` and not both above ``weak_t``. So a low-gain device that no
    read can tell from a corrupt one is counted as either in the proportion the fitted
    gains' distribution implies: the low tail is not cut off (dw_min_dtod 0.56 for 0.6 on
    aihwkit's cs_twice_spread when those devices were left out), and a chip's genuinely
    stuck devices beyond that tail go to p0 instead of widening σ.
    """
    g = np.asarray(gains, dtype=float)
    s2 = np.maximum(np.asarray(stderrs, dtype=float) ** 2, 1e-12)
    ok = np.isfinite(g) & np.isfinite(s2)
    g, s2 = g[ok], s2[ok]
    if g.size < 3:
        raise ValueError("need at least three devices with a fitted gain")
    rates = np.abs(np.asarray(stuck_rates, dtype=float)).reshape(-1, 2)
    rates = rates[np.all(np.isfinite(rates) & (rates > 0), axis=1)]
    # stuck devices grouped by their rates (2 % bins): a chip's thousands share a few
    keys, counts = np.unique(np.round(np.log(rates) / 0.02), axis=0, return_counts=True)
    groups = np.exp(keys * 0.02)
    n_stuck = int(counts.sum())
    grid_max = (respond_t + 6.0) / max(float(groups.min()), 1e-12) if n_stuck else 1.0
    grid = np.linspace(0.0, grid_max, 801)
    asym = float(asym_spread) if np.isfinite(asym_spread) else 0.0
    p_stuck = _stuck_given_gain(grid, groups, weak_t, respond_t, asym) if n_stuck else None

    def nll(p: np.ndarray) -> float:
        m, sigma, p0 = np.exp(p[0]), np.exp(p[1]), special.expit(p[2])
        v = (m * sigma) ** 2 + s2
        dens = np.exp(-0.5 * (g - m) ** 2 / v) + np.exp(-0.5 * (g + m) ** 2 / v)
        out = -np.sum(np.log(np.maximum(dens / np.sqrt(2 * np.pi * v), 1e-300)))
        out -= g.size * np.log1p(-p0)
        if n_stuck:
            sd = m * sigma
            f = (np.exp(-0.5 * ((grid - m) / sd) ** 2) + np.exp(-0.5 * ((grid + m) / sd) ** 2)) / (
                sd * np.sqrt(2 * np.pi)
            )
            hidden = np.trapezoid(p_stuck * f[None, :], grid, axis=1)
            out -= float(np.sum(counts * np.log(np.maximum(p0 + (1 - p0) * hidden, 1e-300))))
        return float(out)

    cv = float(np.std(g) / np.mean(g))
    sigma0, fold0 = unfolded_gain_spread(cv)
    sigma0 = sigma0 if np.isfinite(sigma0) and sigma0 > 0 else 0.3
    start = np.array([np.log(np.mean(g) / fold0), np.log(sigma0), special.logit(0.01)])
    res = optimize.minimize(
        nll, start, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000}
    )
    x = res.x
    m, sigma, p0 = float(np.exp(x[0])), float(np.exp(x[1])), float(special.expit(x[2]))
    # standard errors from the numerical Hessian in (m, σ[, p0]); p0 at its boundary: fixed
    free = 3 if p0 > 1e-4 else 2
    p_hat = np.array([m, sigma, p0])

    def nll_natural(q: np.ndarray) -> float:
        z = p_hat.copy()
        z[:free] = q
        return nll(
            np.array([np.log(z[0]), np.log(z[1]), special.logit(min(max(z[2], 1e-12), 1 - 1e-9))])
        )

    h = 1e-4 * np.maximum(np.abs(p_hat[:free]), 1e-3)
    hess = np.zeros((free, free))
    q0 = p_hat[:free]
    for i in range(free):
        for k in range(free):
            ei, ek = np.eye(free)[i] * h[i], np.eye(free)[k] * h[k]
            hess[i, k] = (
                nll_natural(q0 + ei + ek)
                - nll_natural(q0 + ei - ek)
                - nll_natural(q0 - ei + ek)
                + nll_natural(q0 - ei - ek)
            ) / (4 * h[i] * h[k])
    try:
        se = np.sqrt(np.maximum(np.diag(np.linalg.inv(hess)), 0.0))
    except np.linalg.LinAlgError:
        se = np.full(free, np.inf)
    p0_se = float(se[2]) if free == 3 else float(np.sqrt(max(n_stuck, 1)) / (g.size + n_stuck))
    return FoldedGain(m, float(se[0]), sigma, float(se[1]), p0, p0_se)
