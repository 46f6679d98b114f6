"""calib validate's predictive check of a preset whose windows carry per-device offsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calib.validate.predictive import pulse_response_check
from fitting.pulse_response import fit_pulse_response
from fitting.window_offset import states_before_offsets
from tests.window_samples import shifted_windows


def _write_csv(path: Path, g: np.ndarray, pulses: np.ndarray) -> Path:
    n, m = g.shape
    frame = pd.DataFrame(
        {
            "device": np.repeat(np.arange(n), m),
            "pulse": np.tile(pulses, n),
            "conductance": g.reshape(-1),
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_check_starts_devices_without_their_own_offset(tmp_path: Path) -> None:
    # 64 devices: the split-half floor of the score is ~0.04 at 9 devices' 0.14
    traces, _ = shifted_windows(6e-6, n=64)
    fit = fit_pulse_response(traces, "soft-bounds")
    assert fit.parameters["reference_std"] > 2e-6  # the offsets are carried
    path = _write_csv(tmp_path / "windows.csv", traces.conductance_s, traces.pulses)
    with_offsets = pulse_response_check(
        {"device": fit.device_section(), "per_device": fit.per_device}, path
    )
    # raw first reads (what the check did before) start the simulated devices at the edges
    # of their drawn windows: score 0.0353 here, 0.0331 from the states before the offsets
    raw = pulse_response_check({"device": fit.device_section()}, path)
    assert with_offsets.score < raw.score, (with_offsets.score, raw.score)


def test_devices_the_fit_left_out_start_at_their_read() -> None:
    per_device = {"device_id": np.array([7, 3, 5]), "reference_offset": np.array([1.0, 2.0, 3.0])}
    first = np.array([10.0, 10.0, 10.0, 10.0])
    starts, physical = states_before_offsets(per_device, first, np.array([3, 4, 7, 9]))
    assert physical
    np.testing.assert_array_equal(starts, [8.0, 10.0, 9.0, 10.0])
    assert states_before_offsets({"device_id": np.array([1])}, first, np.arange(4))[1] is False
