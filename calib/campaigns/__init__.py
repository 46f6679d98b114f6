"""Measurement campaigns: run on any ChipInterface and write the dataset format."""

from calib.campaigns.pulse_response import PulseResponseParams, measure_pulse_response

__all__ = ["PulseResponseParams", "measure_pulse_response"]
