"""Pulsed-device families: response functions, configuration and population sampling."""

import importlib
from typing import Any

# Imported on first use (PEP 562): the equations and the family catalogue load no torch.
_EXPORTS = {
    "DevicePopulation": "simulator.devices.config",
    "PulsedDeviceConfig": "simulator.devices.config",
    "FAMILIES": "simulator.devices.families",
    "expected_step": "simulator.devices.response",
    "granularity": "simulator.devices.response",
}

__all__ = ["FAMILIES", "DevicePopulation", "PulsedDeviceConfig", "expected_step", "granularity"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
