"""Devices with a small step stay in the step population; stuck and broken ones stay out.

Issue 13: at twice aihwkit's default spread (dw_min_dtod 0.6) the gain |1 + σξ| of a few
percent of the devices lies near 0 (aihwkit's ``PulsedRPUDevice::populate`` folds it). Their
traces respond to both directions, but below the screen's swing threshold (t > 8) in one, so
they were screened out as "stuck" or "one_direction": the low tail of the step distribution
was cut off and dw_min_dtod came out 0.535 for 0.6 on aihwkit's own cs_twice_spread (17 of
256 devices screened out). Such devices are now fitted (status ``weak_response``: t > 3 in
each direction); a device with no response in a direction stays excluded and counted, and
enters the gain's likelihood as either the low tail of |1 + σξ| or a corrupt device
(:func:`fitting.censored.folded_gain_with_stuck`).

Known truth: devices drawn here as aihwkit's populate draws them (written from its C++, not
from our sampler): gain 1 + σξ, asymmetry r, |·| per direction, bounds w·(1 + σ_b ξ) with
|·|; traces from our simulator's constant-step rule (checked against aihwkit's own traces in
tests/fitting/aihwkit/test_aihwkit_conformance.py), read noise 1.2 % of the range as in the
fixture.
"""

from __future__ import annotations

import numpy as np
import pytest

from fitting import PulseTraces, fit_pulse_response
from fitting.censored import folded_gain_with_stuck, unfolded_gain_spread
from fitting.synthetic import simulate_traces

N = 256
DW_MIN, SIGMA, READ_NOISE = 0.01, 0.6, 0.012
# bounds at aihwkit's default spread: no device has its bound at the start (at 0.6 some do,
# and those respond in one direction only: a separate shortfall, see the handover notes)
BOUND_SIGMA = 0.3
# cs_twice_spread's protocol: from w = 0, 160 up then 160 down pulses, a read after each
PULSES = np.concatenate([[0], np.ones(160, dtype=int), -np.ones(160, dtype=int)])


def _aihwkit_population(rng: np.random.Generator, sigma: float) -> dict[str, np.ndarray]:
    """aihwkit 1.2.0's populate for a ConstantStepDevice (enforce_consistency, up_down 0)."""
    b_max = np.abs(0.6 * (1.0 + BOUND_SIGMA * rng.standard_normal(N)))
    b_min = -np.abs(-0.6 * (1.0 + BOUND_SIGMA * rng.standard_normal(N)))
    gain = 1.0 + sigma * rng.standard_normal(N)
    r = 0.02 * rng.standard_normal(N)
    return {
        "delta_up": np.abs(DW_MIN * (gain + r)),
        "delta_down": np.abs(DW_MIN * (gain - r)),
        "b_max": b_max,
        "b_min": b_min,
        "gain": gain,
    }


def _traces(seed: int, n_stuck: int = 0, n_one_way: int = 0, sigma: float = SIGMA):
    rng = np.random.default_rng(seed)
    dev = _aihwkit_population(rng, sigma)
    stuck = np.zeros(N, dtype=bool)
    stuck[:n_stuck] = True  # aihwkit's corrupt devices: no step in either direction
    broken = np.zeros(N, dtype=bool)
    broken[n_stuck : n_stuck + n_one_way] = True  # no down step (a broken device)
    # the broken ones get a large gain, so only their dead direction is missing
    dev["delta_up"][broken] = DW_MIN
    dev["delta_down"][broken] = 0.0
    # their upper bounds well away from the start, so their up response is plain
    dev["b_max"][broken] = 0.9
    sim = {k: v for k, v in dev.items() if k != "gain"}
    sim["stuck"] = stuck
    w = simulate_traces("constant-step", sim, PULSES, np.zeros(N), rng, SIGMA, 0.0, READ_NOISE)
    return PulseTraces(w, PULSES, units="normalized"), dev, stuck | broken


@pytest.mark.parametrize(("seed", "p0"), [(1, 0.0), (2, 0.03), (4, 0.05)])
def test_gain_likelihood_tells_the_low_tail_from_corrupt_devices(seed: int, p0: float) -> None:
    # 2,000 devices drawn as aihwkit's populate (gain |1 + 0.6ξ|, a fraction p0 corrupt:
    # gain 0), each gain measured ± 0.05; screened out as stuck by the swing rule of
    # fitting.screening with t_d ~ N(g·A_d, 1), A = (80, 70) per unit gain
    rng = np.random.default_rng(seed)
    n, rates = 2000, np.array([80.0, 70.0])
    gain = np.abs(1.0 + 0.6 * rng.standard_normal(n))
    gain[rng.random(n) < p0] = 0.0
    t = gain[:, None] * rates + rng.standard_normal((n, 2))
    stuck = np.all(t < 8.0, axis=1) & ~np.all(t > 3.0, axis=1)
    measured = gain + 0.05 * rng.standard_normal(n)
    fit = folded_gain_with_stuck(
        measured[~stuck], np.full((~stuck).sum(), 0.05), np.tile(rates, (stuck.sum(), 1)), 3, 8
    )
    # measured σ 0.586-0.619 (standard error 0.016) and p0 within 0.002 of the truth; the
    # stuck devices left out give 0.556-0.587. Limits: 3 standard errors.
    assert fit.spread == pytest.approx(0.6, abs=3 * fit.spread_stderr)
    assert fit.stuck == pytest.approx(p0, abs=max(3 * fit.stuck_stderr, 0.005))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [6, 8])
def test_low_gain_devices_are_fitted_not_screened_out(seed: int) -> None:
    traces, dev, _ = _traces(seed)
    fit = fit_pulse_response(traces, model="constant-step", n_boot=0, predictive_check=False)
    gain = np.abs(dev["gain"])
    ids = np.asarray(fit.per_device["device_id"]).astype(int)
    low = np.nonzero((gain > 0.1) & (gain < 0.3))[0]
    # a device with a tenth to a third of the mean step responds to each direction at
    # t ≈ 7-30 (160 pulses, σ_read 0.012): fitted, not screened out (before: 2 of these 9
    # on seed 6 and 5 of 12 on seed 8 were excluded)
    assert set(low.tolist()) <= set(ids.tolist()), sorted(set(low.tolist()) - set(ids.tolist()))


@pytest.mark.slow
def test_dw_min_dtod_counts_the_gains_too_small_to_detect() -> None:
    # gains below ~0.05 (t < 3 in a direction) are screened out as stuck: they enter the
    # gain likelihood as the low tail of |1 + σξ|, with any excess over that tail counted
    # as corrupt devices (fitting.censored.folded_gain_with_stuck)
    diffs = []
    for seed in range(10, 18):
        traces, dev, _ = _traces(seed)
        fit = fit_pulse_response(traces, model="constant-step", n_boot=0, predictive_check=False)
        gain = np.abs(dev["gain"])
        drawn = unfolded_gain_spread(float(gain.std() / gain.mean()))[0]  # this draw's σ
        diffs.append(fit.parameters["dw_min_dtod"] - drawn)
    # measured on seeds 10-17: -0.048 to -0.008, mean -0.020; before (small and stuck
    # devices left out) -0.110 to -0.039, mean -0.069. The remaining shortfall: a draw with
    # more near-zero gains than the folded normal's tail gives has the excess read as
    # corrupt devices (p0 up to 0.02 here), which no trace can tell apart. Limits: the mean
    # within 0.035 (8 draws: its scatter ~0.006), each draw within the 0.05 + 0.01.
    assert abs(np.mean(diffs)) < 0.035, np.round(diffs, 3)
    assert max(abs(d) for d in diffs) < 0.06, np.round(diffs, 3)


@pytest.mark.slow
def test_stuck_and_one_direction_devices_stay_excluded() -> None:
    # aihwkit's default gain spread 0.3: no gain near 0 (P(|1 + 0.3ξ| < 0.1) ≈ 1e-3)
    traces, _, dead = _traces(7, n_stuck=8, n_one_way=4, sigma=0.3)
    fit = fit_pulse_response(traces, model="constant-step", n_boot=0, predictive_check=False)
    fitted_ids = set(np.asarray(fit.per_device["device_id"]).astype(int).tolist())
    assert not fitted_ids & set(np.nonzero(dead)[0].tolist())
    # the 8 stuck devices are counted as stuck, the 4 broken ones as one_direction (a
    # stuck device passes the weak-response test, t > 3 both ways, with probability 2e-6)
    assert fit.excluded.get("stuck", 0) == 8, fit.excluded
    # (plus, on this seed, one device whose upper bound lies at the start: 0.6·|1 + 0.3ξ|
    # near 0, so up pulses find it at its bound; the data cannot tell it from a broken one)
    n_one_way = fit.excluded.get("one_direction", 0)
    assert 4 <= n_one_way <= 5, fit.excluded
    # corrupt_devices_prob from the gain likelihood with the stuck devices: no gain near 0
    # at σ 0.3, so all 8 are corrupt (8 of the devices alive)
    assert fit.parameters["corrupt_devices_prob"] == pytest.approx(8 / (N - n_one_way), abs=1 / N)
