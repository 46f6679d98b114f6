"""A family scored with its shape per device never scores worse than with the shape shared.

Per-device pow-step contains pow-step with one exponent for all devices, so on the same pairs
its J at the efficient estimate (``fitting.selection``) can only be lower device by device.
On aihwkit's ps_weak_gamma (PowStepDevice, exponent 0.3 with aihwkit's spread 0.1, read noise
2.4 steps) the per-device solve started from its own fit stopped in worse minima: J 675
against the shared exponent's 641 in ``auto``'s scores, so the random-effect criterion
compared a per-device fit that was not at its optimum. The scores now also start it from the
shared fit's values and keep per device the lowest J found, the shared values included
(:func:`fitting.selection.best_efficient_estimate`, :func:`~fitting.selection.nested_start`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fitting.chunked import device_data
from fitting.families import family_model
from fitting.family_fit import fit_per_device_shape, fit_shared_shape
from fitting.gmm import clear_of_bounds
from fitting.selection import (
    best_efficient_estimate,
    efficient_estimate,
    j_statistic,
    nested_start,
    refit_on_pairs,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aihwkit"
C2C, NA = 0.17, 0.023  # the noise reference of auto's scores on this case (pow-step's)


def test_per_device_exponent_scores_at_most_the_shared_exponents_j() -> None:
    pytest.importorskip("h5py")
    from calib.fit.pulse_response import load_pulse_traces

    traces, _ = load_pulse_traces(FIXTURES / "ps_weak_gamma.h5", units="normalized")
    rows = np.unique(np.linspace(0, traces.n_devices - 1, 64).round().astype(int))
    traces = traces.subset(rows)
    g = traces.conductance_s.astype(float)
    hi, lo = np.percentile(g, 97, axis=1), np.percentile(g, 3, axis=1)
    data, _ = device_data(traces, 0.0, 1.0, hi, lo)
    fm = family_model("pow-step")
    shared, sprob = fit_shared_shape(fm, data)
    each, eprob = fit_per_device_shape(fm, data, shared)
    blocks = clear_of_bounds(data.blocks, data.hi, data.lo)[0]
    with np.errstate(all="ignore"):
        sprob, stheta = refit_on_pairs(sprob, shared.theta, shared.phi, blocks)
        sprob, stheta, j_shared = best_efficient_estimate(sprob, [stheta], shared.phi, C2C, NA)
        eprob, etheta = refit_on_pairs(eprob, each.theta, each.phi, blocks)
        # its own start alone (the scores before): worse than the nested family on this case
        p, th = efficient_estimate(eprob, etheta, each.phi, C2C, NA)
        j_own = j_statistic(p, th, each.phi, C2C, NA)
        values = {n: float(shared.phi[i]) for i, n in enumerate(sprob.shared_names)}
        start = nested_start(eprob.names, etheta, sprob.names, stheta, values)
        _, _, j_each = best_efficient_estimate(eprob, [etheta, start], each.phi, C2C, NA)
    assert np.all(np.isfinite(j_each))
    # the case shows the failure: on these 64 devices 5 ended above the shared J (by up to
    # 19; in auto's subsample the sum did: 675 against 641)
    assert np.sum(j_own > j_shared + 1.0) >= 3
    assert np.all(j_each <= j_shared + 1e-6 * (1.0 + j_shared)), np.max(j_each - j_shared)
    assert j_each.sum() < j_own.sum()
