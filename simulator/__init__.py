"""Vectorized torch simulator of analog tiles built from calibrated device models.

Imports nothing from ``fitting``, ``calib`` or ``instruments``. Presets come in as plain
dicts (datasets/PRESET.md); see :mod:`simulator.presets`.
"""

from simulator.config import (
    SGD,
    AnalogConfig,
    ChoppedTTv2,
    MappingParameters,
    TikiTaka,
    WeightModifier,
    ttv2,
)
from simulator.devices import FAMILIES, PulsedDeviceConfig, expected_step
from simulator.devices.pcm import PUBLISHED_PCM_SECTION, PCMNoiseModel
from simulator.inference import drift_analog_weights, program_analog_weights
from simulator.io import IOParameters
from simulator.layers import AnalogConv2d, AnalogLinear, AnalogSGD, convert_to_analog
from simulator.presets import PresetError, analog_config, device_config, inference_config
from simulator.tile import AnalogTile, PulsedTile
from simulator.update import UpdateParameters

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
