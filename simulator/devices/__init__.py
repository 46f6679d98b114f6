"""Pulsed-device families: response functions, configuration and population sampling."""

from simulator.devices.config import DevicePopulation, PulsedDeviceConfig
from simulator.devices.response import FAMILIES, expected_step, granularity

__all__ = ["FAMILIES", "DevicePopulation", "PulsedDeviceConfig", "expected_step", "granularity"]
