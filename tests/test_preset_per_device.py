"""Per-device arrays of presets are checked (numbers or null) without per-element schema cost."""

from __future__ import annotations

import numpy as np
import pytest

from calib.errors import CalibError
from calib.presets import make_preset, provenance, validate_preset

DEVICE = {
    "model": "soft-bounds",
    "parameters": {
        "dw_min": 8e-7,
        "up_down": 0.1,
        "w_max": 4e-5,
        "w_min": -4e-5,
        "dw_min_dtod": 0.2,
        "up_down_dtod": 0.03,
        "w_max_dtod": 0.08,
        "w_min_dtod": 0.08,
        "dw_min_std": 0.3,
    },
    "g_offset_s": 6e-5,
}


def test_large_per_device_arrays_validate_and_nan_becomes_null() -> None:
    values = np.linspace(1e-7, 1e-6, 50_000)
    values[7] = np.nan
    values[8] = np.inf  # not finite: missing as well
    preset = make_preset(DEVICE, provenance(None), per_device={"delta_up": values})
    held = preset["per_device"]["delta_up"]  # numpy, not a list of 50,000 Python floats
    assert isinstance(held, np.ndarray) and held.size == 50_000
    assert np.isnan(held[7]) and np.isnan(held[8]) and np.isfinite(values[:7]).all()
    inline = preset.to_dict()["per_device"]["delta_up"]  # the JSON document: null
    assert inline[7] is None and inline[8] is None and inline[9] == values[9]


@pytest.mark.parametrize(("bad", "message"), [("x", "numbers or null"), (True, "booleans")])
def test_non_numeric_per_device_values_are_refused(bad, message: str) -> None:
    preset = make_preset(DEVICE, provenance(None), per_device={"w_max": np.ones(4)}).to_dict()
    preset["per_device"]["w_max"][2] = bad
    with pytest.raises(CalibError, match=message):
        validate_preset(preset, "p.json")
    preset["per_device"]["w_max"] = 3.0
    with pytest.raises(CalibError, match="not an array"):
        validate_preset(preset, "p.json")
