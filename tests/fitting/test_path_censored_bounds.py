"""Hard bounds from each device's furthest state without a reached/turned decision (issue 13).

A device's furthest state is its bound if its own steps would have carried it further, else
the crest of its path (its bound lies beyond). The fitter called a bound reached only after
``DWELL_READS`` reads at it by the device's own steps; on short trains devices that reached
their bound a few pulses before the turn were counted as limits at their own bound, and the
censored (Tobit) mean went outwards: aihwkit's random sweep of seed 10, case 8
(ConstantStepDevice, 128 devices, 3 cycles of 61 pulses), w_max 0.658 for a drawn 0.594.
:func:`fitting.censored.path_censored_random_effect` weighs each device by how far its steps
would carry it beyond its furthest state. Known truth: the bounds drawn here.
"""

from __future__ import annotations

import numpy as np

from fitting.censored import censored_random_effect, path_censored_random_effect

MU, TAU, STEP = 1.0, 0.2, 0.02  # bounds N(μ, τ²); the devices' step per pulse
READ, PATH = 0.005, 0.02  # error of the furthest state and of the path's reach


def _chip(rng: np.random.Generator, n: int = 100):
    """Bounds, each device's reach without its bound (uniform over the bounds' ±2τ), the
    noisy furthest state, the reach's excess beyond it and that excess's error."""
    b = rng.normal(MU, TAU, n)
    c = rng.uniform(MU - 2 * TAU, MU + 2 * TAU, n)
    x = np.minimum(b, c) + rng.normal(0.0, READ, n)
    d = c + rng.normal(0.0, PATH, n) - x
    sd = np.full(n, np.hypot(PATH, READ))
    return b, c, x, d, sd


def test_short_dwell_devices_do_not_push_the_censored_mean_outwards():
    # 300 chips of 100 devices: the SE of a mean over chips is about τ/√(n_reached·300) =
    # 0.0016; the old rule's bias is ~0.03 (about 20 of those), the mixture's within 3 SE
    rng = np.random.default_rng(0)
    old, new, covered = [], [], 0
    for _ in range(300):
        b, c, x, d, sd = _chip(rng)
        reached = (c - b) / STEP >= 6  # the dwell rule: six pulses at the bound
        old.append(
            censored_random_effect(
                x[reached], np.full(reached.sum(), READ), x[~reached], upper=True
            ).mean
        )
        eff = path_censored_random_effect(x, np.full(x.size, READ), d, sd, upper=True)
        new.append(eff.mean)
        covered += abs(eff.mean - MU) <= 1.96 * eff.mean_stderr
    old, new = np.array(old), np.array(new)
    se = new.std(ddof=1) / np.sqrt(new.size)
    assert old.mean() - MU > 10 * se  # the failure: reached devices counted as limits
    assert abs(new.mean() - MU) < 3 * se
    # its Fisher interval: binomial SD of a 95 % coverage over 300 chips is 1.3 %
    assert covered / 300 >= 0.91


def test_a_lower_bound_mirrors_an_upper_one():
    rng = np.random.default_rng(2)
    _, _, x, d, sd = _chip(rng)
    up = path_censored_random_effect(x, np.full(x.size, READ), d, sd, upper=True)
    down = path_censored_random_effect(-x, np.full(x.size, READ), d, sd, upper=False)
    assert np.isclose(down.mean, -up.mean, rtol=1e-6)
    assert np.isclose(down.spread, up.spread, rtol=1e-5)
