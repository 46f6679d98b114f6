"""Low-gain soft-bounds devices whose bound came out on the wrong side only by noise are
fitted (bound not identified), not dropped as failed fits (issue 13, device-to-device spread).

A soft-bounds device's step is Δ(1 − w/b). A device with a small gain moves little, so over
its reads the step barely changes: the fitted slope −Δ/b takes the sign of the noise and
b = −Δ/slope jumps to the other side of the reads. Such fits were refused as fit_failed; on
aihwkit's own sb_twice_spread (tests/fixtures/aihwkit, 256 devices, dw_min_dtod 0.6) 9 of
the 11 failed fits were devices aihwkit drew with gains 0.03-0.23 of the mean, so the low
tail of the folded gain |1 + σξ| was cut and dw_min_dtod came out 0.52. Truth: aihwkit's
drawn per-device step scales stored in the fixture (``aihwkit_truth``).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from calib.fit.pulse_response import load_pulse_traces
from fitting import PulseTraces, fit_pulse_response

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aihwkit"


def _fit(case: str):
    traces, _ = load_pulse_traces(FIXTURES / f"{case}.h5")
    traces = PulseTraces(traces.conductance_s, traces.pulses, units="normalized")
    return fit_pulse_response(traces, model="soft-bounds", n_boot=0, predictive_check=False)


def _drawn_gains(case: str) -> np.ndarray:
    with h5py.File(FIXTURES / f"{case}.h5", "r") as f:
        up, down = f["aihwkit_truth/dwmin_up"][()], f["aihwkit_truth/dwmin_down"][()]
    gain = 0.5 * (np.asarray(up, float) + np.asarray(down, float))
    return gain / gain.mean()


def test_low_gain_devices_are_fitted_not_failed() -> None:
    fit = _fit("sb_twice_spread")
    gain = _drawn_gains("sb_twice_spread")
    low = np.nonzero(gain < 0.25)[0]  # 24 of 256 devices
    fitted = np.isin(low, np.asarray(fit.per_device["device_id"]).astype(int))
    # measured: 20 of 24 fitted, fit_failed 4 of 256 (before: 13 of 24, fit_failed 11; the
    # other 4 are stuck, one-direction or outliers either way)
    assert fitted.sum() >= 18, (fitted.sum(), low.size)
    assert fit.excluded.get("fit_failed", 0) <= 5, fit.excluded


@pytest.mark.parametrize(
    ("case", "true_dtod"), [("sb_twice_spread", 0.6), ("sb_weak_unreached", 0.3)]
)
def test_dtod_counts_the_low_gain_devices(case: str, true_dtod: float) -> None:
    # the criterion (within 0.05 of aihwkit's field). Measured 0.564 and 0.277
    # (before: 0.522 and 0.237 with the origin already at w = 0; 0.414 and 0.194 before that)
    fit = _fit(case)
    assert fit.parameters["dw_min_dtod"] == pytest.approx(true_dtod, abs=0.05)
