"""Hard bounds of the clipping families land where aihwkit's devices sit (issue 13, item 3).

A hard bound acts on the moments only through the clip, so a bound started (or drifted)
beyond the level where the device sits gets no pull back: on aihwkit's linear-step traces
with γ 0.3/0.7 some devices kept an upper bound several spans away, the linear-step J was
7502 instead of ~1000 and ``auto`` picked piecewise-step. The per-device solve now also
starts each bound at the mean read while the device sits there
(:func:`fitting.family_fit._solve_from_bound_levels`). Checked against the bounds aihwkit
drew for each device (the fixture's hidden parameters).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fitting.chunked import device_data
from fitting.families import family_model
from fitting.family_fit import fit_shared_shape

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aihwkit"


def test_linear_step_bounds_of_devices_at_their_bounds_match_aihwkits_draws() -> None:
    h5py = pytest.importorskip("h5py")
    from calib.fit.pulse_response import load_pulse_traces

    path = FIXTURES / "ls_gamma_03_07_hard_bounds.h5"
    traces, _ = load_pulse_traces(path, units="normalized")  # G = w (aihwkit's weight)
    g = traces.conductance_s.astype(float)
    hi, lo = np.percentile(g, 97, axis=1), np.percentile(g, 3, axis=1)
    data, _ = device_data(traces, 0.0, 1.0, hi, lo)
    with h5py.File(path, "r") as f:
        drawn = {
            "b_max": f["aihwkit_truth/max_bound"][()],
            "b_min": f["aihwkit_truth/min_bound"][()],
        }
    fit, _ = fit_shared_shape(family_model("linear-step"), data)
    for name, bound in drawn.items():
        # devices whose drawn bound lies inside their read plateau sit there for tens of
        # reads (read noise 0.012): the bound is known to well under 2 read-noise SDs
        # (measured: worst 0.011 up, 0.018 down; before, up to 7.8 off)
        sits = bound < hi if name == "b_max" else bound > lo
        assert sits.sum() >= 40
        err = np.abs(fit.theta[:, fit.names.index(name)] - bound)[sits]
        assert err.max() < 0.025, f"{name}: worst device off by {err.max():.3f}"
