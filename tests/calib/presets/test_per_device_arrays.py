"""Per-device arrays of presets are checked (numbers or null) without per-element schema cost."""

from __future__ import annotations

import numpy as np
import pytest
from preset_samples import SOFT_BOUNDS_DEVICE

from calib.errors import CalibError
from calib.presets import make_preset, provenance, validate_preset

DEVICE = SOFT_BOUNDS_DEVICE


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
