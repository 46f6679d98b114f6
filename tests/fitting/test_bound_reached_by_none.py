"""A hard bound that (almost) no device reached is a limit at the furthest reads (issue 13).

aihwkit's ``es_weak_unreached`` case (``tests/fixtures/aihwkit/``, made by aihwkit 1.2.0's
``ExpStepDevice``: weak nonlinearity, A = 0.05, w_min = -1 reached by none of the 64
devices) fitted as constant-step, the equivalent family ``auto`` picks there: every device's
fitted w_min is its turning point, the furthest state it visited. Pooling those turning
points put the population's w_min inside the reads (about -0.38, the median) and the
re-simulated mean trace 12.7 % of the span off (limit 3 %). The bound is now reported as
not identified, at the furthest read plateau, with a note saying it is a limit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calib.fit.pulse_response import fit_pulse_response_file

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "aihwkit" / "es_weak_unreached.h5"


def test_a_bound_no_device_reached_is_reported_as_a_limit_beyond_the_reads(tmp_path) -> None:
    _, fit = fit_pulse_response_file(
        FIXTURE, tmp_path / "p.json", model="constant-step", units="normalized", seed=0
    )
    w_min = fit.estimates["w_min"]
    assert w_min.method == "not identified"
    assert w_min.stderr is None
    assert fit.estimates["w_min_dtod"].value == 0.0
    assert any(n.startswith("w_min is not identified: 0 of 64 devices") for n in fit.notes)
    # beyond the devices' turning points, not their pooled mean (the old value, ~ -0.38)
    turning = fit.per_device["w_min"]
    assert w_min.value <= np.quantile(turning[np.isfinite(turning)], 0.05)
    # and no further than the data reach: the true bound (-1) is not claimed
    assert w_min.value > -1.0
