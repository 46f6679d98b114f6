"""One-SE bands of the PCM drift curves μ_ν(x), σ_ν(x) (issue 14, calibrated uncertainty).

The clipped-log curves stored standard errors per coefficient but no covariance, so no band
of the curve could be given (benchmarks/bench_coverage.py could not measure it). Now
:class:`fitting.pcm_curves.ClippedLogFit` keeps the coefficient covariance and
:meth:`~fitting.pcm_curves.ClippedLogFit.band` gives sqrt(J C Jᵀ + S), S the Akaike-weighted
spread of the other clip choices; the drift fit weighs each level by its own (asymmetric)
95 % interval. Known truth: per-level estimates made by the fitter's own level estimator
from devices drawn as |N(μ_ν, σ_ν)| plus exponent error (aihwkit's PCM drift semantics,
REFERENCES.md), with the curves of ``fitting/pcm_synthetic.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fitting import pcm_curves
from fitting.pcm_curves import fit_clipped_log
from fitting.pcm_drift import _side_errors, fit_drift
from fitting.pcm_stats import fit_folded_normal
from fitting.pcm_synthetic import SyntheticPcm, clip_log, synthetic_campaigns

X = np.linspace(0.1, 1.0, 8)


def test_band_of_a_straight_line_is_the_textbook_prediction_error() -> None:
    # a line a·u + b fitted by weighted least squares: Var f(u) = Var a·u² + 2u·Cov + Var b,
    # with (Var, Cov) = (Σ w [1 u]ᵀ[1 u])⁻¹ (known errors, χ²/dof ≤ 1 leaves them unscaled)
    u = np.log(X)
    se = np.full(X.size, 0.004)
    y = 0.3 - 0.1 * u + np.array([1, -1, 1, -1, 1, -1, 1, -1]) * 1e-4
    fit = fit_clipped_log(X, y, se)
    assert fit.variant == "none"
    design = np.stack([u, np.ones_like(u)], axis=1) / se[:, None]
    cov = np.linalg.inv(design.T @ design)
    expected = np.sqrt(cov[0, 0] * u**2 + 2 * cov[0, 1] * u + cov[1, 1])
    fit.alternatives = []  # the clip-choice term is tested below
    assert np.allclose(fit.band(X), expected, rtol=1e-5)
    assert np.allclose(fit.covariance, cov, rtol=1e-6)
    assert fit.covariance_names == ("a", "b")


def _weighted_line(u: np.ndarray, y: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, ...]:
    """Textbook weighted least squares of y = a·u + b: (a, b), their covariance, χ²."""
    design = np.stack([u, np.ones_like(u)], axis=1) / se[:, None]
    cov = np.linalg.inv(design.T @ design)
    p = cov @ design.T @ (y / se)
    return p, cov, float((((design @ p) - y / se) ** 2).sum())


def test_band_is_the_model_averaged_variance_over_the_clip_choices() -> None:
    # levels on a line that levels off at a floor (4 top levels), small alternating noise:
    # the straight line and the line with a lower clip are both fitted. Each variant's
    # fit is then textbook: the line by weighted least squares over all levels; with the
    # clip, a line over the 4 linear levels and the clip at the mean of the 4 clipped ones
    # (a block-diagonal covariance), both scaled by max(1, χ²/dof). The band must be
    # Burnham & Anderson's mixture Σ w_v (Var f_v + (f_v − f)²) with Akaike weights
    # w_v ∝ exp(−(χ²_v + 2 k_v)/2) (AIC: the level errors are known)
    u = np.log(X)
    se = np.full(X.size, 0.002)
    y = np.maximum(-0.01 * u + 0.003, 0.008) + np.array([1, -1, 1, -1, 1, -1, 1, -1]) * 1e-4
    fit = fit_clipped_log(X, y, se)
    by_variant = {alt.variant: alt for alt in fit.alternatives}
    assert set(by_variant) == {"none", "lo", "hi", "both"}

    p_line, cov_line, chi2_line = _weighted_line(u, y, se)
    cov_line *= max(1.0, chi2_line / 6)
    lin, clipped = slice(0, 4), slice(4, 8)
    p_knee, cov_knee, chi2_knee = _weighted_line(u[lin], y[lin], se[lin])
    floor = float(y[clipped].mean())
    chi2_floor = chi2_knee + float((((y[clipped] - floor) / se[clipped]) ** 2).sum())
    scale = max(1.0, chi2_floor / 5)
    assert np.allclose(by_variant["none"].params, p_line, rtol=1e-6)
    assert np.allclose(by_variant["none"].covariance, cov_line, rtol=1e-5)
    assert np.allclose(by_variant["lo"].params, [*p_knee, floor], rtol=1e-6)
    assert np.allclose(by_variant["lo"].covariance[:2, :2], cov_knee * scale, rtol=1e-5)
    assert np.isclose(by_variant["lo"].covariance[2, 2], 0.002**2 / 4 * scale, rtol=1e-5)

    # Akaike weights from χ² recomputed here from each variant's own curve
    def chi2_of(alt) -> float:
        a, b, *clips = alt.params
        curve = a * u + b
        if alt.variant == "lo":
            curve = np.maximum(curve, clips[0])
        elif alt.variant == "hi":
            curve = np.minimum(curve, clips[0])
        elif alt.variant == "both":
            curve = np.clip(curve, min(clips), max(clips))
        return float((((curve - y) / se) ** 2).sum())

    aic = {v: chi2_of(alt) + 2 * alt.params.size for v, alt in by_variant.items()}
    weights = {v: np.exp(-0.5 * (a - min(aic.values()))) for v, a in aic.items()}
    total = sum(weights.values())
    for v, alt in by_variant.items():
        assert np.isclose(alt.weight, weights[v] / total, rtol=1e-6), v

    # the mixture over the two textbook variants (weights 0.3, 0.7 set here)
    var_line = cov_line[0, 0] * u**2 + 2 * cov_line[0, 1] * u + cov_line[1, 1]
    var_knee = scale * (cov_knee[0, 0] * u**2 + 2 * cov_knee[0, 1] * u + cov_knee[1, 1])
    var_floor = np.where(np.arange(8) >= 4, 0.002**2 / 4 * scale, var_knee)
    f_floor = np.maximum(p_knee[0] * u + p_knee[1], floor)
    fit.alternatives = [by_variant["none"], by_variant["lo"]]
    by_variant["none"].weight, by_variant["lo"].weight = 0.3, 0.7
    here = fit(X)
    expected = 0.3 * (var_line + (p_line[0] * u + p_line[1] - here) ** 2) + 0.7 * (
        var_floor + (f_floor - here) ** 2
    )
    assert np.allclose(fit.band(X), np.sqrt(expected), rtol=1e-4)


def test_a_floor_the_levels_rest_on_is_kept_over_the_straight_line() -> None:
    # levels exactly on a line that levels off at 0.008 on the 4 top levels, with errors
    # (0.004) that make the kink weak evidence: the line misses by χ² ≈ 1.5 only, and AICc
    # charges the clip 5.6 units, so it chose the line (biased low at x = 0.1 and at x = 1,
    # high in between). The floor rests on 4 levels and the line on 4: it is reported
    u = np.log(X)
    truth = np.maximum(-0.01 * u + 0.003, 0.008)
    fit = fit_clipped_log(X, truth, np.full(X.size, 0.004))
    assert fit.aicc_by_variant["none"] < fit.aicc_by_variant["lo"]  # AICc alone: the line
    assert fit.variant == "lo" and fit.identified == {"lo": True, "hi": False}
    assert np.allclose(fit(X), truth, atol=1e-9)
    assert np.allclose([fit.a, fit.b, fit.lo], [-0.01, 0.003, 0.008], atol=1e-9)
    # a straight line stays a straight line: its floor, if fitted, holds < 2 levels
    line = fit_clipped_log(X, -0.01 * u + 0.003 + np.array([1, -1] * 4) * 1e-4, np.full(8, 4e-3))
    assert line.variant == "none"


def test_preset_carries_the_curve_bands_at_the_levels() -> None:
    # the band over the clip choices is what covers (benchmarks/RESULTS.md); the preset
    # must carry it, since the chosen coefficients' covariance alone gives the narrower
    # conditional band. Published curves (σ_ν levels off at 0.008 above x = 0.33)
    model = SyntheticPcm()
    levels = np.linspace(0.1, 1.0, 8) * model.g_max_s
    _, drift, _ = synthetic_campaigns(
        model, levels, 16, 3, times_s=np.geomspace(model.t0_s, 1e5, 15), n_reads=10
    )
    fit = fit_drift(drift, model.g_max_s, model.t_read_s)
    uncertainty = fit.uncertainty()
    for name, band in zip(("mu_nu", "sigma_nu"), fit.curve_bands(fit.level_x), strict=True):
        assert uncertainty[f"drift.{name}.band"] == band.tolist()
        assert len(band) == fit.levels.n_levels and np.all(band > 0)
    for name, curve in (("mu_nu", fit.mu_fit), ("sigma_nu", fit.sigma_fit)):
        conditional = dataclasses.replace(curve, alternatives=[]).band(fit.level_x)
        assert np.any(np.asarray(uncertainty[f"drift.{name}.band"]) > conditional)


def _curve_coverage(n_chips: int, seed: int) -> float:
    """Coverage of the σ_ν(x) band at the 8 levels: the true curve (the benchmark's draws,
    a line in ln x that always levels off at a floor of 0.004 within the levels) seen
    through level errors of 25 % + 0.0004 (a 16-device spread with exponent noise)."""
    rng = np.random.default_rng(seed)
    hits = []
    for _ in range(n_chips):
        truth = clip_log(rng.uniform(-0.015, -0.008), rng.uniform(-0.01, 0.0), 0.004, 0.08)(X)
        se = 0.25 * truth + 0.0004
        fit = fit_clipped_log(X, truth + se * rng.standard_normal(X.size), se)
        hits.extend(np.abs(fit(X) - truth) <= 1.96 * fit.band(X))
    return float(np.mean(hits))


@pytest.mark.slow
def test_band_covers_a_floor_the_levels_only_hint_at() -> None:
    # 200 chips x 8 levels (10-25 s). With AICc weights and the chosen variant's own
    # covariance the straight line, chosen on 47 % of the chips, left the floor out of its
    # band: 86.6 % (seeds 1, 2: 87.7 %, 87.7 %); the model-averaged variance with AIC
    # weights: 91.9 % (92.3 %, 92.4 %); and the floor kept where it rests on >= 2 levels:
    # 93.9 % (94.3 %, 94.3 %). The 8 points of a chip share one fit: SE over chips
    # 0.9-1.6 %; 92 % lies ~2 SE from the first and the last
    assert _curve_coverage(200, 0) >= 0.92


def _coverage(n_chips: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    err = 0.002 * X**-0.7  # per-device exponent error, 0.010 at x = 0.1 as in fit_pcm's
    hits: dict[str, list[bool]] = {"mu": [], "sigma": [], "sigma old": []}
    for _ in range(n_chips):
        mu = clip_log(rng.uniform(-0.02, -0.01), rng.uniform(0.015, 0.035), 0.02, 0.2)(X)
        sg = clip_log(rng.uniform(-0.015, -0.008), rng.uniform(-0.01, 0.0), 0.004, 0.08)(X)
        levels = [
            fit_folded_normal(
                np.abs(m + s * rng.standard_normal(16)) + e * rng.standard_normal(16), e * e
            )
            for m, s, e in zip(mu, sg, err, strict=True)
        ]
        for name, truth, value, se, ci in (
            (
                "mu",
                mu,
                [f.mu for f in levels],
                [f.mu_se for f in levels],
                [f.mu_ci for f in levels],
            ),
            (
                "sigma",
                sg,
                [f.sigma for f in levels],
                [f.sigma_se for f in levels],
                [f.sigma_ci for f in levels],
            ),
        ):
            value, se, ci = np.asarray(value), np.asarray(se), np.asarray(ci)
            curve = fit_clipped_log(X, value, *_side_errors(value, se, ci))
            hits[name].extend(np.abs(curve(X) - truth) <= 1.96 * curve.band(X))
            if name == "sigma":  # the first band: symmetric weights, covariance only,
                with pytest.MonkeyPatch.context() as patch:  # clips chosen by AICc alone
                    patch.setattr(pcm_curves, "MIN_FLOOR_LEVELS", X.size)
                    old = fit_clipped_log(X, value, se)
                old.alternatives = []
                hits["sigma old"].extend(np.abs(old(X) - truth) <= 1.96 * old.band(X))
    return {k: float(np.mean(v)) for k, v in hits.items()}


@pytest.mark.slow
def test_drift_curve_bands_cover_the_true_curves() -> None:
    # 40 chips x 8 levels (~30 s). Measured on these draws: μ_ν 97.8 %, σ_ν 99.4 % with
    # the model-averaged band and the floor rule (80 chips of seed 1: 95.8 %, 95.2 %; the
    # chosen variant's own band plus the AICc-weighted spread: 95.3 %, 93.1 % here); the
    # covariance-only band with symmetric weights covered σ_ν 84.7 % (and 81.7 % of 800
    # points in bench_coverage). The 8 points of a chip share one fit, so the binomial SE
    # is about that of 40-320 points (1.2-3.4 %); 90 % keeps ~1 SE margin from the
    # measured values and is 1.5-3 SE above the old band's
    cover = _coverage(40, 0)
    assert cover["mu"] >= 0.92, cover
    assert cover["sigma"] >= 0.90, cover
    assert cover["sigma old"] < 0.88, cover  # the setting separates the two
