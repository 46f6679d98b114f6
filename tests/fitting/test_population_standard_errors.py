"""Standard errors of population parameters match their sampling spread (issue 14, calibrated
uncertainty; benchmarks/bench_coverage.py measures the same on whole fits).

Per-device up/down steps are drawn with aihwkit's device-to-device model (REFERENCES.md [R3]:
Δ⁺ = dw_min·(g + r), Δ⁻ = dw_min·(g − r − up_down), g = 1 + σ_d2d·ξ, r = σ_ud·ξ) plus
per-device estimation noise of known variance; the spread of the estimates over replicate
chips is the truth the reported standard error must match.
"""

from __future__ import annotations

import numpy as np
import pytest

from fitting.population import pair_population


def _replicates(n_chips: int = 120, n_dev: int = 64, seed: int = 5):
    rng = np.random.default_rng(seed)
    dw, up_down, d2d, ud = 1e-6, 0.1, 0.2, 0.03
    asym, se = [], []
    for _ in range(n_chips):
        g = 1 + d2d * rng.standard_normal(n_dev)
        r = ud * rng.standard_normal(n_dev)
        e = 0.02 * dw  # per-device estimation error (std) of each step
        up = dw * (g + r) + e * rng.standard_normal(n_dev)
        down = dw * (g - r - up_down) + e * rng.standard_normal(n_dev)
        var = np.full(n_dev, e**2)
        pop = pair_population(up, down, var, var)
        asym.append(pop.asymmetry)
        se.append(pop.asymmetry_stderr)
    return np.array(asym), np.array(se), up_down


def test_up_down_standard_error_matches_its_spread_over_chips():
    asym, se, truth = _replicates()
    spread = asym.std(ddof=1)
    # 120 chips: the SD of the estimates is known to ±6.5 % (1/sqrt(2·119)); 20 % allows 3 SD
    # and the delta method. Independent up/down means (the old error) gave 4x the spread:
    # the shared gain g (20 % device to device) cancels in the ratio up_down
    assert 0.8 <= np.median(se) / spread <= 1.2
    coverage = np.mean(np.abs(asym - truth) <= 1.96 * se)
    assert 0.9 <= coverage <= 0.995  # binomial SD at 95 %, 120 chips: 2 %


@pytest.mark.slow  # 15-22 s (make test stays under 10 minutes on 2 cores)
def test_soft_bounds_up_down_interval_includes_the_reference_error():
    # 40 emulated soft-bounds chips (symmetric bounds, 64 devices, 2 x (100 up + 100 down)):
    # up_down is stated relative to the fitted midpoint of the bounds, so its error includes
    # that midpoint's error. Without it (device sampling alone) SD(z) was 2.1 and 66 % of
    # the intervals held the truth (benchmarks/RESULTS.md, "Uncertainty coverage"); with it
    # 1.15 and 90 %. Bounds: SD(z) of 40 chips is known to about ±11 %, so 1.6 separates
    # the two; 80 % is 3 binomial SD below 95 %
    from fitting import PulseTraces, fit_pulse_response
    from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
    from instruments.emulator.physics import PulsedDeviceArray, chip_truth

    spec = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), cycles=2)
    z = []
    for chip in range(40):
        rng = np.random.default_rng([11, chip])
        w_max = rng.uniform(28e-6, 40e-6)
        truth = chip_truth(
            "reram",
            up_down=rng.uniform(-0.1, 0.2),
            w_max=w_max,
            w_min=-w_max,
            dw_min=rng.uniform(0.6e-6, 1.2e-6),
        )
        array = PulsedDeviceArray(truth, (4, 16), chip)
        g = array.pulse_train(np.arange(64), 100, 100, 2, 1, (1.2, 1e-6), (-1.2, 1e-6))
        fit = fit_pulse_response(
            PulseTraces(g.T, pulse_sequence(spec)), model="soft-bounds", predictive_check=False
        )
        z.append((fit.parameters["up_down"] - truth.up_down) / fit.uncertainty["up_down"])
    z = np.array(z)
    assert np.std(z, ddof=1) < 1.6
    assert np.mean(np.abs(z) <= 1.96) >= 0.8


@pytest.mark.slow  # 15-22 s (make test stays under 10 minutes on 2 cores)
def test_linear_step_cycle_to_cycle_noise_is_not_biased_by_the_fitted_parameters():
    # 12 emulated linear-step chips (64 devices, 2 x (100 up + 100 down), dw_min_std
    # 0.2-0.4): each device's 6 fitted parameters absorb part of its own cycle-to-cycle
    # noise (and the lag-1 products the read noise is taken from), which biased
    # dw_min_std low by 3.3 % (mean ratio 0.967, SD 0.017 over chips; coverage 58-67 %);
    # with the leverage taken out (fitting/noise.py, _leverage) 0.998. The mean of 12 ratios
    # is known to ±0.5 % (1 SD), so ±1.5 % is 3 SD and the old bias lies 3.6 SD outside
    from fitting import PulseTraces, fit_pulse_response
    from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
    from instruments.emulator.physics import PulsedDeviceArray, chip_truth

    spec = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), cycles=2)
    ratio = []
    for chip in range(12):
        rng = np.random.default_rng([23, chip])
        w_max = rng.uniform(28e-6, 40e-6)
        truth = chip_truth(
            "reram",
            response="linear-step",
            dw_min=rng.uniform(0.6e-6, 1.2e-6),
            up_down=rng.uniform(-0.1, 0.2),
            w_max=w_max,
            w_min=-w_max,
            dw_min_std=rng.uniform(0.2, 0.4),
            gamma_up=rng.uniform(0.2, 0.6),
            gamma_down=rng.uniform(0.2, 0.6),
        )
        array = PulsedDeviceArray(truth, (4, 16), chip)
        g = array.pulse_train(np.arange(64), 100, 100, 2, 1, (1.2, 1e-6), (-1.2, 1e-6))
        fit = fit_pulse_response(
            PulseTraces(g.T, pulse_sequence(spec)), model="linear-step", predictive_check=False
        )
        ratio.append(fit.parameters["dw_min_std"] / truth.dw_min_std)
    assert abs(np.mean(ratio) - 1.0) <= 0.015


def test_gamma_error_includes_the_mean_bound_error_against_monte_carlo():
    # linear-step reports γ = κ̄·b̄ (κ_d per-device slope, b̄ the mean half-window): its
    # error must include b̄'s error and the covariance of κ_d and b_d over devices. Brute
    # force: 300 replicate chips of 64 devices whose slopes are γ/b_d (aihwkit's device with
    # its own bounds) times 10 % independent scatter; the SD of γ̂ over replicates is the
    # truth. Holding b̄ fixed (the old error) gave 0.60 of it here, with it 0.95; 300 replicates know
    # the SD to ±4 %, so ±15 % is 3.7 SD
    from fitting.population import fit_random_effect
    from fitting.pulse_response import _add_bound_reference_error

    rng = np.random.default_rng(3)
    names = ["b_max", "b_min", "kappa_up"]
    est, se = [], []
    for _ in range(300):
        b = 1.0 + 0.1 * rng.standard_normal(64)
        kappa = 0.4 / b * (1 + 0.1 * rng.standard_normal(64)) + 0.8 * (b - 1.0)
        theta = np.column_stack([b, -b, kappa])
        ref = float(np.mean(b))
        eff = fit_random_effect(kappa * ref, np.full(64, 1e-4))
        params = {"gamma_up": eff.mean, "w_max": ref}
        unc = {"gamma_up": eff.mean_stderr}
        _add_bound_reference_error(names, theta, params, unc, {"gamma_up": "fisher"}, 1.0)
        est.append(params["gamma_up"])
        se.append(unc["gamma_up"])
    assert 0.85 <= np.median(se) / np.std(est, ddof=1) <= 1.15


def _pow_chip(dw_min: float, n_pulses: int, seed: int):
    from fitting import PulseTraces, fit_pulse_response
    from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
    from instruments.emulator.physics import PulsedDeviceArray, chip_truth

    spec = PulseTrainSpec(n_pulses, PulseSpec(1.2, 1e-6), n_pulses, PulseSpec(-1.2, 1e-6), cycles=2)
    truth = chip_truth(
        "reram",
        response="pow-step",
        dw_min=dw_min,
        up_down=0.05,
        w_max=30e-6,
        w_min=-30e-6,
        pow_gamma=1.5,
        pow_up_down=0.1,
    )
    array = PulsedDeviceArray(truth, (4, 16), seed)
    g = array.pulse_train(np.arange(64), n_pulses, n_pulses, 2, 1, (1.2, 1e-6), (-1.2, 1e-6))
    return fit_pulse_response(
        PulseTraces(g.T, pulse_sequence(spec)), model="pow-step", predictive_check=False
    )


def test_pow_step_bounds_the_traces_end_far_short_of_are_not_identified():
    # 2 x (100 up + 100 down) pulses of 0.8 µS into a ±30 µS pow-step window (γ 1.5): the
    # traces end ~20-30 % of the window short of the fitted bounds, and the Fisher intervals
    # of such extrapolations held the truth 34-38 % of the time (spreads 2-6 %). They are
    # withdrawn (no interval, "not identified") with a note; the fitted values stay
    fit = _pow_chip(0.8e-6, 100, 3)
    for name in ("w_max", "w_min", "dw_min", "up_down", "w_max_dtod", "dw_min_dtod"):
        assert fit.uncertainty.get(name) is None, name
        assert fit.uncertainty_method[name].startswith("not identified"), name
        assert np.isfinite(fit.parameters[name])
    assert any("pow-step bounds extrapolated" in n for n in fit.notes)
    assert fit.uncertainty["pow_gamma"] is not None  # the shape itself stays identified


def test_pow_step_bounds_the_traces_approach_keep_their_intervals():
    # 2 x (300 + 300) pulses of 2 µS: the traces come within a few % of the ±30 µS window's
    # bounds, which are then measured (fitted 29.9 ± 0.35 µS here) and keep their intervals
    fit = _pow_chip(2e-6, 300, 3)
    assert not any("pow-step bounds extrapolated" in n for n in fit.notes)
    for name in ("w_max", "w_min", "dw_min"):
        assert fit.uncertainty[name] is not None and fit.uncertainty[name] > 0, name
    # recovered, not only reported: the absolute upper bound (emulator reference 60 µS) to
    # within 1 µS (measured 0.07 µS off, SE 0.35 µS)
    assert abs(fit.g_offset_s + fit.parameters["w_max"] - 90e-6) < 1e-6
