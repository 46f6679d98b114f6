"""A device-to-device spread pooled from per-device values whose errors are noisy (issue 14).

Per-device sandwich errors of linear-step's γ scatter by 30-90 % from device to device and
hardly follow the actual errors (a simulated chip of identical devices: SD of the estimates /
RMS error 1.02, z-scores with SD 1.3). The normal random-effects likelihood takes each error
as exact, so the devices whose error came out too small carry the weight and their large
standardized residuals are read as spread: gamma_up_dtod / gamma_down_dtod covered 76 / 80 %
of 50 benchmark chips with mean z +1.0 / +0.8 (benchmarks/RESULTS.md, "Uncertainty
coverage"); on 34 chip-directions of per-device γ from the benchmark's chips, pooling by
moments covered 97 % (mean z −0.09) where the likelihood covered 82 % (mean z +0.57).
Known truth: the draws below (the estimator's textbook model with chi-square errors).
"""

from __future__ import annotations

import numpy as np

from fitting.population import fit_random_effect, moment_random_effect

Z95 = 1.959964


def _chips(n_chips: int, n_dev: int, tau: float, seed: int):
    """Per-device estimates of a quantity with spread ``tau`` whose standard errors are
    estimated with 4 degrees of freedom (CV 0.7, as the benchmark's γ errors: 0.3-0.9),
    independently of the estimates' errors."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.03, 0.06, (n_chips, n_dev))  # true per-device errors
    theta = (
        0.4
        + tau * rng.standard_normal((n_chips, n_dev))
        + sigma * rng.standard_normal((n_chips, n_dev))
    )
    se = sigma * np.sqrt(rng.chisquare(4, (n_chips, n_dev)) / 4)
    return theta, se


def test_moments_spread_covers_where_the_likelihood_overstates_it() -> None:
    tau = 0.05
    theta, se = _chips(200, 128, tau, seed=14)

    def z_scores(estimator):
        effs = [estimator(t, s) for t, s in zip(theta, se, strict=True)]
        spread = np.array([e.spread for e in effs])
        z = (spread - tau) / np.array([e.spread_stderr for e in effs])
        z_mean = (np.array([e.mean for e in effs]) - 0.4) / [e.mean_stderr for e in effs]
        return spread, z, z_mean

    # the likelihood reads the errors' noise as spread (measured: τ̂ 0.055, 81 % covered,
    # mean z +0.95: the benchmark's symptom)
    ml_spread, ml_z, _ = z_scores(fit_random_effect)
    assert np.mean(ml_spread) > 1.06 * tau and np.mean(ml_z) > 0.6
    assert np.mean(np.abs(ml_z) <= Z95) < 0.88
    # moments (measured: τ̂ 0.0501, 93 % covered, mean z 0.00); 200 chips: binomial SD 1.5 %
    spread, z, z_mean = z_scores(moment_random_effect)
    assert abs(np.mean(spread) - tau) < 0.002  # Monte-Carlo error of the mean ~0.0007
    assert abs(np.mean(z)) < 0.25
    assert 0.90 <= np.mean(np.abs(z) <= Z95) <= 0.99
    assert 0.89 <= np.mean(np.abs(z_mean) <= Z95) <= 0.99


def test_moments_ignore_degenerate_zero_errors_and_fall_back_for_few_devices() -> None:
    theta, se = _chips(1, 64, 0.05, seed=3)
    t, s = theta[0].copy(), se[0].copy()
    s[:3] = 0.0  # pinned fits: no error, not a measurement with infinite weight
    eff = moment_random_effect(t, s)
    assert eff.n == 61 and np.isfinite(eff.mean_stderr) and np.isfinite(eff.spread_stderr)
    two = moment_random_effect(t[:2], s[3:5])
    assert two.n == 2


def test_one_undetermined_device_does_not_swamp_the_moments() -> None:
    """A device whose value the traces do not determine (aihwkit's
    ls_gamma_mid_undetermined_device: γ⁺ = 42 ± 26 among 127 devices at 0.47 ± 0.05) entered
    the equal-weight moments with its full variance: γ⁺_dtod 2.86 ± 1.4 for 0.05. It is left
    out (its inverse-variance weight is under 1 % of a typical device's); the chips' spreads
    must be as good as without it."""
    tau = 0.05
    theta, se = _chips(200, 128, tau, seed=7)
    clean = np.array([moment_random_effect(t, s).spread for t, s in zip(theta, se, strict=True)])
    rng = np.random.default_rng(8)
    wild = 25.0  # the undetermined device's true and reported error
    theta[:, 0] = 0.4 + wild * rng.standard_normal(theta.shape[0])
    se[:, 0] = wild
    effs = [moment_random_effect(t, s) for t, s in zip(theta, se, strict=True)]
    spread = np.array([e.spread for e in effs])
    z = (spread - tau) / np.array([e.spread_stderr for e in effs])
    # without the guard: RMS error of τ̂ 1.64 (the device's 25² / 128 in the variance)
    rms, rms_clean = np.sqrt(np.mean((spread - tau) ** 2)), np.sqrt(np.mean((clean - tau) ** 2))
    assert rms < 1.2 * rms_clean  # one device fewer of 128: ~0.4 % more error
    assert 0.90 <= np.mean(np.abs(z) <= Z95) <= 0.99  # 200 chips: binomial SD 1.5 %
    assert all(e.n == 127 for e in effs)
