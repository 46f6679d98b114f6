"""95 % intervals of device-to-device spreads: inverted through the relative error.

The error of a spread scales with the spread (about τ/√(2n)). Evaluated at the estimate,
a low estimate gets a small error, and τ̂ ± 1.96·SE misses a larger truth far more often than
a smaller one: for the sample SD of 64 normal draws, 5.0 % of the intervals lie below the
truth and 1.0 % above it (16 draws: 8.2 % and 0.2 %). On the coverage benchmark's chips
(benchmarks/bench_coverage.py, 200 per family) that cost 2-5 points on the spreads, e.g.
constant-step up_down_dtod 90.0 %, with every one of its misses below the truth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fitting import fit_pulse_response
from fitting.population import Z95, estimates_from_section, spread_interval
from tests.identical_devices import identical_devices


def test_interval_is_the_set_of_spreads_within_their_own_relative_error() -> None:
    low, high = spread_interval(0.2, 0.02)
    k = Z95 * 0.1
    assert low == pytest.approx(0.2 / (1 + k)) and high == pytest.approx(0.2 / (1 - k))
    for tau in (low, high):  # the ends are exactly 1.96 of their own relative errors away
        assert abs(0.2 - tau) == pytest.approx(Z95 * 0.1 * tau)
    assert spread_interval(0.2, 0.2) == (pytest.approx(0.2 / (1 + Z95)), None)  # unbounded
    assert spread_interval(0.0, 0.01) is None and spread_interval(0.2, math.nan) is None


@pytest.mark.parametrize("n", [16, 64])
def test_sample_sd_intervals_hold_the_truth_95_percent_with_even_tails(n: int) -> None:
    rng = np.random.default_rng(3)
    s = rng.standard_normal((20000, n)).std(axis=1, ddof=1)  # true spread 1
    se = s / np.sqrt(2.0 * (n - 1))
    k = Z95 * se / s
    below, above = np.mean(s / (1 - k) < 1.0), np.mean(s / (1 + k) > 1.0)
    # 20000 draws: a tail share of 2.5 % has a binomial SD of 0.11 %
    assert 0.02 < below < 0.03 and 0.02 < above < 0.03
    # the symmetric interval's misses are one-sided (4.8-5.2 % below at 64 draws, 8 % at 16)
    assert np.mean(s + Z95 * se < 1.0) > 0.04


def test_a_fit_reports_and_round_trips_the_spread_intervals() -> None:
    traces = identical_devices("constant-step", 128, seed=3, dw_min_dtod=0.2, up_down_dtod=0.03)
    fit = fit_pulse_response(traces, model="constant-step", n_boot=0, predictive_check=False)
    section = fit.device_section()
    for name in ("dw_min_dtod", "up_down_dtod"):
        low, high = section["interval95"][name]
        value, se = fit.parameters[name], fit.uncertainty[name]
        assert low < value < high and high - value > value - low  # longer above
        assert (low, high) == spread_interval(value, se)
    assert "w_max" not in section["interval95"]  # a mean keeps its symmetric interval
    assert estimates_from_section(section)["dw_min_dtod"].interval == tuple(
        section["interval95"]["dw_min_dtod"]
    )
