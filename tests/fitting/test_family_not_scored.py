"""A family whose fit leaves devices without a finite J is "not scored", with the reason.

The emulated ReRAM chip of the README (1024 devices, ``--model auto``) printed
``piecewise-step ΔBIC inf``: one device without a finite J made the family's sum infinite,
and a sum over the other devices would not compare with the other families' sums.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fitting.chunked import device_data
from fitting.families import family_model
from fitting.family_fit import fit_shared_shape
from fitting.pulse_response import _score_families

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aihwkit"


def test_a_family_with_a_non_finite_device_is_not_scored() -> None:
    pytest.importorskip("h5py")
    from calib.fit.pulse_response import load_pulse_traces

    traces, _ = load_pulse_traces(FIXTURES / "cs_default_reached.h5", units="normalized")
    traces = traces.subset(np.arange(24))
    g = traces.conductance_s.astype(float)
    hi, lo = np.percentile(g, 97, axis=1), np.percentile(g, 3, axis=1)
    data, rep = device_data(traces, 0.0, 1.0, hi, lo)
    fits, problems = {}, {}
    for fam in ("constant-step", "soft-bounds"):
        fits[fam], problems[fam] = fit_shared_shape(family_model(fam), data)
    fits["soft-bounds"].theta[3, :] = np.nan  # one device whose fit did not converge
    scores = {s.family: s for s in _score_families(fits, problems, data, rep)}
    assert np.isfinite(scores["constant-step"].criterion)
    bad = scores["soft-bounds"]
    assert not np.isfinite(bad.criterion)
    assert bad.note.startswith("not scored: its fit left 1 of 24 devices without a finite J")
