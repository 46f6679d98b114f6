"""`calib fit pcm` fits what is present and reports the rest (issue 14, item 10; issue 16, 7).

A chip whose programming noise is far below its read noise cannot give a positive
programming-noise polynomial; that part must be reported as not fitted with the reason while
drift and read noise are fitted, instead of an all-or-nothing stop.
"""

from __future__ import annotations

import numpy as np
import pytest

from fitting.pcm import PcmFitOptions, fit_pcm
from fitting.pcm_synthetic import SyntheticPcm, synthetic_campaigns
from fitting.traces import FitInputError

LEVELS = np.linspace(2e-6, 24e-6, 6)


def test_programming_noise_below_the_read_floor_is_reported_not_fatal() -> None:
    # σ_prog 1e-12 S against a read noise of 3 % of g: the per-level programming variances
    # (total minus read) scatter around 0, and the quadratic (the published degree) is not
    # positive at every level: before, fit pcm stopped and wrote nothing
    quiet = SyntheticPcm(prog_coefficients_s=(1e-12, 0.0, 0.0), q_a=0.03)
    prog, drift, reads = synthetic_campaigns(quiet, LEVELS, 40, seed=0)
    fit = fit_pcm(prog, drift, reads, PcmFitOptions(prog_degree=2))
    assert fit.prog is None
    assert "positive" in fit.not_fitted["prog_noise"]
    assert "published" in fit.not_fitted["prog_noise"]
    assert fit.drift is not None and fit.read_noise is not None
    assert any(line.startswith("NOT FITTED prog_noise") for line in fit.summary())
    assert fit.section()["prog_noise"]["fitted_from"] == "published default"


def _two_levels(drift):
    """The first 80 devices: two target levels (drift needs three)."""
    time = drift.time_s[:80] if drift.time_s.ndim == 2 else drift.time_s
    return type(drift)(
        drift.target_s[:80],
        time,
        drift.conductance_s[:80],
        drift.n_avg,
        drift.converged[:80],
        drift.device_ids[:80],
        drift.source,
    )


def test_a_drift_campaign_with_too_few_levels_leaves_the_other_parts_fitted() -> None:
    prog, drift, reads = synthetic_campaigns(SyntheticPcm(), LEVELS, 40, seed=3)
    fit = fit_pcm(prog, _two_levels(drift), reads)
    assert fit.drift is None and "3 target levels" in fit.not_fitted["drift"]
    assert fit.prog is not None and fit.read_noise is not None


def test_nothing_fittable_is_one_clear_error() -> None:
    _, drift, _ = synthetic_campaigns(SyntheticPcm(), LEVELS, 40, seed=3)
    with pytest.raises(FitInputError, match=r"nothing could be fitted: drift: .*3 target levels"):
        fit_pcm(None, _two_levels(drift), None)
