"""Which of aihwkit's two device-gain distributions the fitted devices' gains follow.

aihwkit 1.2.0 draws each device's gain (``PulsedRPUDevice::populate``,
src/rpucuda/rpu_pulsed_device.cpp, REFERENCES.md [R3]) as g = 1 + σ·ξ (kept as |g| under
``enforce_consistency``: a folded normal) or, with ``dw_min_dtod_log_normal``, as
g = exp(σ·ξ); both have one spread parameter σ (``dw_min_dtod``) and the steps are
dw_min·g. The two differ in shape, not in their number of parameters: a log-normal gain of
σ = 0.5 has skewness 1.75 and a mean e^{σ²/2} = 1.13 times its median, and reported as a
normal spread it came out 0.68 (aihwkit, 128 devices, a random conformance case).

Each device's gain estimate gᵢ ± sᵢ (its steps' fit) is compared under both, the
measurement error included: folded normal, N(gᵢ; m, m²σ² + sᵢ²) + N(gᵢ; −m, m²σ² + sᵢ²);
log-normal, ln gᵢ ~ N(ln m, σ² + (sᵢ/gᵢ)²) with the Jacobian 1/gᵢ (the delta method) where
sᵢ/gᵢ is below :data:`MAX_RELATIVE_ERROR`, else ∫ φ(z)·N(gᵢ; m·e^{σz}, sᵢ²) dz on a grid.
Every device enters both: leaving the poorly measured ones out cut the low tail of a folded
normal (gains near 0 are the relatively worst known) and made σ = 0.6 look log-normal in
37 % of 128-device draws. The log-normal
is chosen when its maximum log-likelihood exceeds the folded normal's by more than
:data:`LOG_LIKELIHOOD_MARGIN` (equal parameter counts: a likelihood ratio; the normal,
aihwkit's default, is kept on a tie).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from fitting.pcm_stats import numerical_covariance

__all__ = ["LOG_LIKELIHOOD_MARGIN", "MAX_DEVICES", "MAX_RELATIVE_ERROR", "GainShape", "gain_shape"]

#: the log-normal's log-likelihood must exceed the folded normal's by this much (a likelihood
#: ratio of e⁶ ≈ 400). 200 draws of 128 devices with 5 % gain errors: normal σ 0.1, 0.3, 0.6
#: never taken as log-normal; log-normal σ 0.5, 0.3, 0.2 recognized in 99.5 %, 69 %, 11.5 %
#: (at 0.2 the two shapes differ by 2 % in their mean). At a margin of 2, aihwkit's
#: pw_unreached (normal σ 0.3, fitted as soft-bounds over 11 % of its window, 58 devices)
#: came out log-normal by 4.3 and its re-simulated spread fell to 0.78 of the measured one
LOG_LIKELIHOOD_MARGIN = 6.0

#: devices whose gain is known to better than this relative error take the log-normal's
#: delta-method likelihood (it needs sᵢ ≪ gᵢ), the others its integral over the gain
MAX_RELATIVE_ERROR = 0.2

#: beyond this many devices the choice is made on a fixed sample of them (seed 0): the
#: likelihoods are evaluated a few hundred times, and 20,000 devices decide the shape and
#: give σ to about 1 %
MAX_DEVICES = 20_000

#: the grid of z = (ln g − ln m)/σ of that integral
_Z = np.linspace(-7.0, 7.0, 561)
_PHI_DZ = np.exp(-0.5 * _Z**2) / np.sqrt(2 * np.pi) * (_Z[1] - _Z[0])


@dataclass(frozen=True)
class GainShape:
    """The gain distribution chosen and its spread (aihwkit's ``dw_min_dtod``)."""

    log_normal: bool
    spread: float  # σ of the chosen distribution
    spread_stderr: float
    mean_gain: float  # E[g] / median (log-normal: e^{σ²/2}); the measured steps' mean factor
    log_likelihood_normal: float
    log_likelihood_log_normal: float
    n: int  # devices that entered the comparison


def _nll_folded(p: np.ndarray, g: np.ndarray, s2: np.ndarray) -> float:
    m, sigma = np.exp(p)
    v = (m * sigma) ** 2 + s2
    dens = np.exp(-0.5 * (g - m) ** 2 / v) + np.exp(-0.5 * (g + m) ** 2 / v)
    return float(-np.sum(np.log(np.maximum(dens / np.sqrt(2 * np.pi * v), 1e-300))))


def _nll_log_normal(p: np.ndarray, g: np.ndarray, s2: np.ndarray, sharp: np.ndarray) -> float:
    log_m, sigma = p[0], np.exp(p[1])
    gs, s2s = g[sharp], s2[sharp]
    v = sigma**2 + s2s / gs**2
    z2 = (np.log(gs) - log_m) ** 2 / v
    out = float(np.sum(0.5 * z2 + 0.5 * np.log(2 * np.pi * v) + np.log(gs)))
    if not sharp.all():
        gw, s2w = g[~sharp, None], s2[~sharp, None]
        mean = np.exp(log_m + sigma * _Z)[None, :]
        dens = np.exp(-0.5 * (gw - mean) ** 2 / s2w) / np.sqrt(2 * np.pi * s2w) @ _PHI_DZ
        out -= float(np.sum(np.log(np.maximum(dens, 1e-300))))
    return out


def gain_shape(gains: np.ndarray, stderrs: np.ndarray) -> GainShape | None:
    """The folded-normal or log-normal gain population of devices with gains ``gains`` ±
    ``stderrs`` (any common scale), or None with fewer than 10 usable devices."""
    g = np.asarray(gains, dtype=float)
    s = np.asarray(stderrs, dtype=float)
    ok = np.isfinite(g) & np.isfinite(s)
    if ok.sum() > MAX_DEVICES:
        rows = np.random.default_rng(0).choice(np.nonzero(ok)[0], MAX_DEVICES, replace=False)
        ok = np.zeros(g.shape, dtype=bool)
        ok[rows] = True
    g, s2 = g[ok], np.maximum(s[ok], 1e-12 * np.max(np.abs(g[ok]), initial=1.0)) ** 2
    if g.size < 10 or np.mean(g) <= 0:
        return None
    sharp = (g > 0) & (np.sqrt(s2) < MAX_RELATIVE_ERROR * g)
    cv = float(np.std(g) / np.mean(g))
    start_n = np.array([np.log(np.mean(g)), np.log(max(cv, 1e-3))])
    lg = np.log(g[sharp]) if sharp.sum() >= 3 else np.log(np.abs(g) + 1e-12)
    start_l = np.array([float(np.mean(lg)), np.log(max(float(np.std(lg)), 1e-3))])
    nlls = (lambda p: _nll_folded(p, g, s2), lambda p: _nll_log_normal(p, g, s2, sharp))
    fits = [
        optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10})
        for nll, start in zip(nlls, (start_n, start_l), strict=True)
    ]
    ll_n, ll_l = -float(fits[0].fun), -float(fits[1].fun)
    log_normal = ll_l - ll_n > LOG_LIKELIHOOD_MARGIN
    chosen = fits[1] if log_normal else fits[0]
    sigma = float(np.exp(chosen.x[1]))
    # σ = e^{p[1]}: its error from the NLL's curvature in (location, ln σ)
    with np.errstate(over="ignore", invalid="ignore"):  # (steps into σ → 0 or ∞: inf)
        var = numerical_covariance(nlls[1] if log_normal else nlls[0], chosen.x)[1, 1]
    se = float(sigma * np.sqrt(var)) if np.isfinite(var) else float("inf")
    mean_gain = float(np.exp(0.5 * sigma**2)) if log_normal else 1.0
    return GainShape(log_normal, sigma, se, mean_gain, ll_n, ll_l, int(g.size))
