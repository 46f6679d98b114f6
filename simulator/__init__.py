"""Vectorized torch simulator of analog tiles built from calibrated device models.

Imports nothing from ``fitting``, ``calib`` or ``instruments``. Presets come in as
:class:`~simulator.preset_document.Preset` documents (validated once where they are built) or
plain dicts in the datasets/PRESET.md layout; see :mod:`simulator.presets`.
"""

import importlib
from typing import Any

# Names are imported on first use (PEP 562), so that ``import simulator.devices.response``
# and the catalogue of families load no torch: ``calib --help`` and ``calib export`` stay
# fast. ``from simulator import X`` works as before.
_EXPORTS = {
    "SGD": "simulator.config",
    "AnalogConfig": "simulator.config",
    "ChoppedTTv2": "simulator.config",
    "MappingParameters": "simulator.config",
    "TikiTaka": "simulator.config",
    "WeightModifier": "simulator.config",
    "ttv2": "simulator.config",
    "FAMILIES": "simulator.devices",
    "PulsedDeviceConfig": "simulator.devices",
    "expected_step": "simulator.devices",
    "PUBLISHED_PCM_SECTION": "simulator.devices.pcm",
    "PCMNoiseModel": "simulator.devices.pcm",
    "drift_analog_weights": "simulator.inference",
    "program_analog_weights": "simulator.inference",
    "IOParameters": "simulator.periphery",
    "AnalogConv2d": "simulator.layers",
    "AnalogLinear": "simulator.layers",
    "AnalogSGD": "simulator.layers",
    "convert_to_analog": "simulator.layers",
    "Preset": "simulator.preset_document",
    "PresetError": "simulator.presets",
    "analog_config": "simulator.presets",
    "device_config": "simulator.presets",
    "inference_config": "simulator.presets",
    "AnalogTile": "simulator.tile",
    "PulsedTile": "simulator.tile",
    "UpdateParameters": "simulator.update",
}

__all__ = [
    "FAMILIES",
    "PUBLISHED_PCM_SECTION",
    "SGD",
    "AnalogConfig",
    "AnalogConv2d",
    "AnalogLinear",
    "AnalogSGD",
    "AnalogTile",
    "ChoppedTTv2",
    "IOParameters",
    "MappingParameters",
    "PCMNoiseModel",
    "Preset",
    "PresetError",
    "PulsedDeviceConfig",
    "PulsedTile",
    "TikiTaka",
    "UpdateParameters",
    "WeightModifier",
    "analog_config",
    "convert_to_analog",
    "device_config",
    "drift_analog_weights",
    "expected_step",
    "inference_config",
    "program_analog_weights",
    "ttv2",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
