"""Device sections shared by the preset tests (siemens, as in datasets/PRESET.md)."""

from __future__ import annotations

import copy
from typing import Any

#: The emulated ReRAM chip's population (instruments/emulator/physics.py) as a soft-bounds
#: device section.
SOFT_BOUNDS_DEVICE: dict[str, Any] = {
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


def soft_bounds_device(parameters: dict[str, float] | None = None, **fields: Any) -> dict:
    """A copy of :data:`SOFT_BOUNDS_DEVICE` with more ``parameters`` and section ``fields``."""
    device = copy.deepcopy(SOFT_BOUNDS_DEVICE)
    device["parameters"].update(parameters or {})
    device.update(fields)
    return device
