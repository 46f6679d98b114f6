"""Measurement campaigns: run on any ChipInterface and write the dataset format."""

from calib.campaigns.base import CampaignParams, select_devices
from calib.campaigns.programming import (
    DriftParams,
    ProgrammingParams,
    ReadNoiseParams,
    default_levels,
    measure_drift,
    measure_programming,
    measure_read_noise,
)
from calib.campaigns.pulse_response import PulseResponseParams, measure_pulse_response

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
