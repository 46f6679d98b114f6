"""Device-to-device spread of conductance windows kept by fit and simulation (issue 14, item 3).

Nine devices whose windows are shifted together (an ECRAM-like lab set: every device's two
bounds fitted to well under 1 µS, window midpoints spread by µS). aihwkit's model draws the two
bounds independently (w_max_dtod, w_min_dtod), so it cannot keep such windows: before the
per-device reference offset (``reference_std``, fitting/window_offset.py) the simulated spread
of the window midpoints was 0.64-0.70 of the measured one and the spread of the window widths
2-6 times too large (0.69 and 4.2 on the traces below). No measured nine-device ECRAM set is in the
shared data (../shared/data/measured/ holds one Gong trace, CrossSim ramps, an ENODe table
and RRAM relaxation/noise), so the traces are simulated from the equations here.
"""

from __future__ import annotations

import numpy as np
import pytest

from fitting.pulse_response import fit_pulse_response
from fitting.synthetic import simulate_preset
from fitting.traces import PulseTraces
from fitting.window_offset import LR_CRITICAL, PROFILE_CUT, window_spread
from tests.window_samples import shifted_windows as _shifted_windows


def _windows(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each device's window from its read plateaus (3rd/97th percentiles): midpoint, width."""
    lo, hi = np.percentile(g, [3, 97], axis=1)
    return 0.5 * (hi + lo), hi - lo


def _simulated_over_measured(traces: PulseTraces, fit) -> dict[str, float]:
    """Spread ratios (simulated / measured) of the fitted devices: window midpoints, window
    widths, and the across-device std of the reads (averaged over reads); 200 simulated
    devices per measured one from its first read, so the simulated side has no sampling noise
    worth counting."""
    rows = np.searchsorted(traces.device_ids, fit.per_device["device_id"])
    g = traces.conductance_s[rows]
    sim = simulate_preset(
        fit.device_section(), traces.pulses, np.tile(g[:, 0], 200), seed=5, with_stuck=False
    )
    (mid, width), (mid_s, width_s) = _windows(g), _windows(sim)
    return {
        "midpoint": float(mid_s.std() / mid.std(ddof=1)),
        "width": float(width_s.std() / width.std(ddof=1)),
        "reads": float(np.mean(sim.std(axis=0)) / np.mean(g.std(axis=0, ddof=1))),
    }


def test_nine_shifted_windows_keep_their_spread_in_the_simulated_population() -> None:
    traces, _ = _shifted_windows(6e-6)
    fit = fit_pulse_response(traces, "soft-bounds")
    assert fit.per_device["device_id"].size == 9  # every window contains the reference
    ratios = _simulated_over_measured(traces, fit)
    # before: midpoint 0.69, width 4.2, reads 0.92 on these traces (independent bounds)
    for name, ratio in ratios.items():
        assert 0.8 <= ratio <= 1.2, (name, ratio)
    assert fit.parameters["reference_std"] > 2e-6
    assert fit.uncertainty_method["reference_std"] == "fisher (REML)"
    assert any("shifted together" in n for n in fit.notes)
    assert fit.diagnostics["window_offset_likelihood_ratio"] > LR_CRITICAL
    low, high = (fit.diagnostics[f"reference_std_ci95_{s}"] for s in ("low", "high"))
    assert 0 <= low < fit.parameters["reference_std"] < high  # profile-REML 95 % interval
    # the predictive check starts each simulated device in the measured one's state without
    # its fitted offset: the mean trace misses by 0.054 of the span (0.101 before: 'poor_fit')
    assert fit.predictive["mean_error_of_span"] < 0.08
    assert fit.fit_status["status"] == "fits"


def test_window_offset_spread_is_recovered_from_noisy_traces() -> None:
    # 64 devices, windows shifted by N(0, (4 µS)²), each bound by N(0, (1 µS)²) more. The
    # estimate targets the population value; its error is about σ/√(2(n−1)) = 0.36 µS plus
    # the bounds' own part: 3 reported standard errors (and a reported SE within a factor 2
    # of that textbook value) allow for the finite-sample and per-device fitting errors
    traces, offsets = _shifted_windows(4e-6, n=64, seed=11)
    fit = fit_pulse_response(traces, "soft-bounds", predictive_check=False)
    est, se = fit.parameters["reference_std"], fit.uncertainty["reference_std"]
    assert se is not None and 0.5 * 0.36e-6 < se < 2 * 0.36e-6
    assert abs(est - 4e-6) < 3 * se
    # the bounds' own spread beyond the offset: 1 µS of a 10 µS half-window (0.1)
    for name in ("w_max_dtod", "w_min_dtod"):
        assert fit.parameters[name] < 0.2, name
    # per-device windows stay as measured (apparent), not re-referred to the offsets
    mid = 0.5 * (fit.per_device["w_max"] + fit.per_device["w_min"])
    assert np.corrcoef(mid, offsets)[0, 1] > 0.95


def test_independent_bounds_keep_aihwkits_model() -> None:
    # aihwkit's own model (bounds drawn independently): no offset is invented
    rng = np.random.default_rng(3)
    n = 64
    hi = 10.0 * (1 + 0.1 * rng.standard_normal(n))
    lo = -10.0 * (1 + 0.1 * rng.standard_normal(n))
    se = np.full(n, 0.05)
    w = window_spread(hi + se * rng.standard_normal(n), lo + se * rng.standard_normal(n), se, se)
    assert not w.with_offset and w.offset_std == 0.0 and not w.offsets.any()
    assert w.spread_max == pytest.approx(1.0, rel=0.3) and w.spread_min == pytest.approx(
        1.0, rel=0.3
    )
    # the same windows shifted together by 3 units: the offset is found
    o = 3.0 * rng.standard_normal(n)
    w = window_spread(hi + o, lo + o, se, se)
    assert w.with_offset and w.offset_std == pytest.approx(3.0, rel=0.3)
    assert w.correlation > 0.8


def test_windows_wholly_beside_the_reference_are_fitted_at_their_offsets() -> None:
    # 40 devices, shifts N(0, (12 µS)²) against 10 µS half-windows: 16 windows lie wholly on one
    # side of the reference, where their steps have the other sign (before: 'fit_failed', and
    # the rest's spread 0.6-0.7 of the measured one). The offset is the sample's: within 3
    # reported standard errors of the drawn shifts' std (14.1 µS)
    traces, offsets = _shifted_windows(12e-6, n=40, seed=3)
    fit = fit_pulse_response(traces, "soft-bounds")
    assert fit.per_device["device_id"].size == 40 and not fit.excluded
    est, se = fit.parameters["reference_std"], fit.uncertainty["reference_std"]
    assert abs(est - np.std(offsets, ddof=1)) < 3 * se
    assert 0.8 < fit.predictive["spread_ratio"] < 1.2
    assert fit.predictive["mean_error_of_span"] < 0.1
    pred = fit.per_device["reference_offset"]  # each device's predicted offset
    assert np.max(np.abs(pred - (offsets - offsets.mean()))) < 3e-6


def _drawn_bounds(rng: np.random.Generator, n: int, offset_sd: float):
    """Per-device fitted bounds ±10 shifted by N(0, offset_sd²), each bound by N(0, 1) more
    and estimated with error 0.3 (the setting of benchmarks/RESULTS.md, "Window spread")."""
    o = offset_sd * rng.standard_normal(n)
    hi = 10 + o + rng.standard_normal(n) + 0.3 * rng.standard_normal(n)
    lo = -10 + o + rng.standard_normal(n) + 0.3 * rng.standard_normal(n)
    return hi, lo, np.full(n, 0.3), np.full(n, 0.3)


def test_offset_interval_is_the_profile_likelihood_one() -> None:
    hi, lo, se, _ = _drawn_bounds(np.random.default_rng(7), 9, 6.0)
    w = window_spread(hi, lo, se, se)
    low, high = w.offset_std_ci95
    assert 0 < low < w.offset_std < high
    # skewed like a variance's likelihood: longer above the estimate than below (a Wald
    # interval is symmetric)
    assert high - w.offset_std > w.offset_std - low
    # its ends are where the profile −2 log L has risen by the χ²₁ 95 % point, 3.84 (xtol of
    # the root search 1e-3 of the half-window ~10: 0.01 units; the profile's slope there is
    # ~1-3 per unit, so the excess is within ±0.05)
    from fitting.window_offset import _fit, _profile

    x, e = np.column_stack([hi, lo]), se**2
    scale = float(np.median(0.5 * (hi - lo)))
    v, f = _fit(x, e, e, 0 * e, scale, True)
    for end in (low, high):
        excess = _profile(end, v[:2], x, e, e, 0 * e, scale)[0] - f
        assert excess == pytest.approx(PROFILE_CUT, abs=0.05)
    # no offset kept (independent bounds): no interval
    rng = np.random.default_rng(3)
    hi, lo = 10 + rng.standard_normal(64), -10 + rng.standard_normal(64)
    assert window_spread(hi, lo, np.full(64, 0.05), np.full(64, 0.05)).offset_std_ci95 is None


@pytest.mark.slow
def test_profile_interval_holds_the_offset_where_the_wald_one_falls_short() -> None:
    # 100 fixed draws of nine devices, true offset std 6: the Wald interval o ± 1.96 SE held
    # the truth in 88 % (86.3 % of 300 draws), the profile-REML one in 94 %; 100 draws give a
    # binomial sd of ~2.3 % at 95 %, so 0.92 is ~1 sd below the nominal value and 0.91 three
    # sd below the profile's 94 %: the Wald interval fails the bound, the profile one passes
    rng = np.random.default_rng(7)
    wald = profile = 0
    for _ in range(100):
        w = window_spread(*_drawn_bounds(rng, 9, 6.0))
        assert w.with_offset
        wald += abs(w.offset_std - 6.0) < 1.96 * w.offset_std_se
        profile += w.offset_std_ci95[0] <= 6.0 <= w.offset_std_ci95[1]
    assert wald / 100 < 0.91
    assert profile / 100 >= 0.92


def test_a_large_chip_fits_the_variances_on_a_sample_and_refers_every_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fitting.window_offset as wo

    rng = np.random.default_rng(11)
    n, se = 400, 0.05
    o = rng.normal(0.0, 1.5, n)
    hi = 10 + o + rng.normal(0, 0.5, n) + se * rng.standard_normal(n)
    lo = -10 + o + rng.normal(0, 0.5, n) + se * rng.standard_normal(n)
    ses = np.full(n, se)
    monkeypatch.setattr(wo, "FIT_DEVICES", 128)
    big = wo.window_spread(hi, lo, ses, ses)
    pick = np.sort(np.random.default_rng(0).choice(n, 128, replace=False))
    sample = wo.window_spread(hi[pick], lo[pick], ses[pick], ses[pick])
    # the variances, their errors and the decision are the sample's (to the optimizer's
    # tolerance: its scale is the median half-window of all devices)
    assert big.with_offset and sample.with_offset
    assert big.offset_std == pytest.approx(sample.offset_std, rel=1e-6)
    assert big.spread_max == pytest.approx(sample.spread_max, rel=1e-6)
    assert big.offset_std_se == pytest.approx(sample.offset_std_se, rel=1e-4)
    # every device gets its offset (BLUP from all devices' means), close to its drawn one
    assert big.n_devices == n and np.count_nonzero(big.offsets) == n
    assert np.corrcoef(big.offsets, o)[0, 1] > 0.9
