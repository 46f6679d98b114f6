"""The pieces of the PCM fit: per-device drift, deconvolution, curve forms, read-noise stats."""

from __future__ import annotations

import numpy as np
import pytest

from fitting.pcm_curves import fit_clipped_log, fit_smooth_table
from fitting.pcm_data import RepeatedReadSample, group_levels
from fitting.pcm_drift import fit_device_drift
from fitting.pcm_model import clipped_log, read_time_factor
from fitting.pcm_read_noise import repeated_read_stats
from fitting.pcm_stats import fit_folded_normal, numerical_covariance


def test_device_drift_is_exact_without_noise_and_ignores_reads_before_t0() -> None:
    t = np.geomspace(5.0, 1e5, 30)
    nu = np.array([0.02, 0.05, 0.1])
    g0 = np.array([2e-6, 10e-6, 20e-6])
    g = g0[:, None] * (np.maximum(t, 20.0) / 20.0) ** (-nu[:, None])  # flat before t0
    fit = fit_device_drift(g, np.broadcast_to(t, g.shape), 20.0, 250e-9)
    np.testing.assert_allclose(fit.nu, nu, atol=1e-12)
    np.testing.assert_allclose(np.exp(fit.log_g0), g0, rtol=1e-12)
    assert np.all(fit.nu_se < 1e-10)


def test_device_drift_standard_error_matches_the_scatter() -> None:
    rng = np.random.default_rng(0)
    t = np.geomspace(20.0, 1e5, 40)
    n = 4000
    g_true = 5e-6 * (t / 20.0) ** -0.05
    f = read_time_factor(t, 250e-9)
    g = g_true * (1 + 0.01 * f * rng.standard_normal((n, t.size)))
    fit = fit_device_drift(g, np.broadcast_to(t, g.shape), 20.0, 250e-9)
    # 4000 devices: the spread of ν̂ is known to ~1.1 %; its mean to 0.03 SE
    assert np.std(fit.nu) == pytest.approx(np.mean(fit.nu_se), rel=0.05)
    assert np.mean(fit.nu) == pytest.approx(0.05, abs=4 * np.std(fit.nu) / np.sqrt(n))
    # φ estimates Q² (relative read noise per unit time factor): 0.01²
    assert np.median(fit.phi) == pytest.approx(1e-4, rel=0.05)


def test_folded_normal_deconvolution_removes_estimation_noise() -> None:
    rng = np.random.default_rng(1)
    n, mu, sigma, e = 40000, 0.03, 0.025, 0.015
    nu = np.abs(mu + sigma * rng.standard_normal(n))  # folds ~12 % of the draws
    nu_hat = nu + e * rng.standard_normal(n)
    fit = fit_folded_normal(nu_hat, e**2)
    # the naive std of ν̂ would be sqrt(σ² + e²) ≈ 0.029 and the mean biased by the fold
    assert fit.mu == pytest.approx(mu, abs=4 * fit.mu_se)
    assert fit.sigma == pytest.approx(sigma, abs=4 * fit.sigma_se)
    assert fit.sigma_se < 0.001


def test_clipped_log_fit_finds_which_clips_the_data_show() -> None:
    x = np.linspace(0.04, 0.96, 16)
    rng = np.random.default_rng(2)
    se = np.full(x.size, 2e-4)
    y = clipped_log(x, -0.0155, 0.0244, 0.049, 0.1) + se * rng.standard_normal(x.size)
    fit = fit_clipped_log(x, y, se)
    assert fit.variant == "lo" and fit.identified == {"lo": True, "hi": False}
    assert fit.a == pytest.approx(-0.0155, abs=4 * fit.se["a"])
    assert fit.lo == pytest.approx(0.049, abs=4 * fit.se["lo"])
    # the unidentified upper clip sits at the line's value at the lowest level (inactive)
    assert fit.hi == pytest.approx(-0.0155 * np.log(0.04) + 0.0244, abs=3e-3)
    line = fit_clipped_log(x, 0.01 * np.log(x) + 0.05, se)
    assert line.variant == "none"


def test_smooth_table_follows_a_curve_the_clipped_log_cannot() -> None:
    x = np.geomspace(0.05, 1.0, 12)
    y = 0.07 - 0.04 * x**2
    se = np.full(x.size, 1e-4)
    table = fit_smooth_table(x, y, se)
    assert table.method == "smoothing-spline"
    np.testing.assert_allclose(table(x), y, atol=5e-4)
    assert fit_clipped_log(x, y, se).chi2 > 100


def test_repeated_read_stats_detrend_drift() -> None:
    rng = np.random.default_rng(3)
    n, r = 200, 100
    t = 100.0 + np.linspace(0, 50, r)  # a long read train: drift 2 % over it
    g0 = 10e-6 * (t / 20.0) ** -0.05
    sd = 1e-8
    g = g0 + sd * rng.standard_normal((n, r))
    sample = RepeatedReadSample(np.broadcast_to(t, g.shape), g, np.full(n, 10e-6))
    stats = repeated_read_stats(
        sample, np.ones(n, bool), 25e-6, 20.0, 250e-9, lambda x: 0 * x + 0.05
    )
    # the trend (≈ 9 sd over the train) is removed: mean variance = sd² within 2 %
    assert np.mean(stats.s2) == pytest.approx(sd**2, rel=0.02)
    # x_prog: the conductance brought back to t0 with the mean drift, ≈ 10 µS / 25 µS
    assert np.median(stats.x_prog) == pytest.approx(0.4, rel=0.01)


def test_continuous_targets_are_binned_into_levels() -> None:
    rng = np.random.default_rng(4)
    targets = rng.uniform(1e-6, 24e-6, 5000)
    levels = group_levels(targets, np.ones(targets.size, bool), min_devices=8, max_bins=16)
    assert levels.binned and levels.n_levels == 16
    assert np.all(np.diff(levels.g_target_s) > 0) and levels.n_devices.sum() == 5000


def test_numerical_covariance_of_a_quadratic_is_its_inverse_hessian() -> None:
    hess = np.array([[4.0e6, 2.0e4], [2.0e4, 2.0e2]])
    p0 = np.array([0.3, -2.0])

    def nll(p: np.ndarray) -> float:
        d = p - p0
        return 1e7 + 0.5 * float(d @ hess @ d)  # a large offset, as in real likelihoods

    np.testing.assert_allclose(numerical_covariance(nll, p0), np.linalg.inv(hess), rtol=1e-4)
