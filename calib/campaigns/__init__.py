"""Measurement campaigns: run on any ChipInterface and write the dataset format.

Names load on first use, so ``calib.campaigns.parameters`` (what the command line needs)
does not pull in h5py and the drivers.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CampaignParams",
    "DriftParams",
    "ProgrammingParams",
    "PulseResponseParams",
    "ReadNoiseParams",
    "default_levels",
    "measure_drift",
    "measure_programming",
    "measure_pulse_response",
    "measure_read_noise",
    "select_devices",
]

_HOME = {
    "CampaignParams": "parameters",
    "DriftParams": "parameters",
    "ProgrammingParams": "parameters",
    "PulseResponseParams": "parameters",
    "ReadNoiseParams": "parameters",
    "default_levels": "technology",
    "measure_drift": "programming",
    "measure_programming": "programming",
    "measure_read_noise": "programming",
    "measure_pulse_response": "pulse_response",
    "select_devices": "base",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'calib.campaigns' has no attribute {name!r}")
    return getattr(importlib.import_module(f"calib.campaigns.{_HOME[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
