"""Vectorized torch simulator of analog tiles built from calibrated device models.

Imports nothing from ``fitting``, ``calib`` or ``instruments``.
"""

from simulator.devices import FAMILIES, PulsedDeviceConfig, expected_step
from simulator.layers import AnalogLinear, AnalogSGD
from simulator.tile import PulsedTile

__all__ = [
    "FAMILIES",
    "AnalogLinear",
    "AnalogSGD",
    "PulsedDeviceConfig",
    "PulsedTile",
    "expected_step",
]
