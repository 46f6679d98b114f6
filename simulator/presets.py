"""Simulator configurations from presets (:class:`~simulator.preset_document.Preset`).

Every function takes a :class:`Preset` (validated when it was built: ``calib.presets`` loads
files as Presets) or a plain dict in the ``datasets/PRESET.md`` layout, which is validated
once here (:meth:`Preset.from_dict`). What remains to check is whether the simulator can use
a valid preset (a device family it simulates, per-device arrays when asked for); problems
raise :class:`PresetError` (a ValueError) with one line naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.config import SGD, AnalogConfig, ChoppedTTv2, TikiTaka
from simulator.devices.config import PER_DEVICE_FIELDS, PulsedDeviceConfig
from simulator.devices.families import FAMILIES
from simulator.devices.pcm import PCMNoiseModel
from simulator.preset_document import Preset, PresetError, as_preset

__all__ = [
    "Preset",
    "PresetError",
    "analog_config",
    "device_config",
    "inference_config",
    "pcm_noise_model",
]


def device_config(
    preset: Preset | Mapping[str, Any], scale_s: float | None = None, use_per_device: bool = False
) -> PulsedDeviceConfig:
    """The pulsed device of a preset's ``device`` section, in weight units.

    Conductance fields are divided by ``scale_s`` (default max(w_max, −w_min)). With
    ``use_per_device`` the ``per_device`` arrays are resampled onto tiles instead of drawing
    device-to-device variation from the population parameters.
    """
    preset = as_preset(preset)
    device = preset.device
    if device is None:
        raise PresetError("preset has no 'device' section")
    if preset.model not in FAMILIES:
        raise PresetError(
            f"preset device model {preset.model!r} is not a simulator family (one of {FAMILIES})"
        )
    params = device["parameters"]
    try:
        scale = float(scale_s) if scale_s is not None else None
        if scale is None:
            scale = max(float(params["w_max"]), -float(params["w_min"]))
        config = PulsedDeviceConfig.from_preset(device, scale)
        if use_per_device:
            per_device = preset.per_device
            if not per_device:
                raise PresetError("use_per_device needs a non-empty 'per_device' section")
            # writable float64 copies of the arrays the simulator uses (the preset's own are
            # read-only; a missing estimate, null or NaN, is refused by the config)
            used = {
                k: np.array(v, dtype=float) for k, v in per_device.items() if k in PER_DEVICE_FIELDS
            }
            if not used:  # else the population would be drawn, as without use_per_device
                raise PresetError(
                    f"use_per_device: none of the per_device arrays {sorted(per_device)} is one "
                    f"the simulator uses ({', '.join(PER_DEVICE_FIELDS)})"
                )
            config = config.with_per_device(used, scale)
    except PresetError:
        raise
    except (ValueError, TypeError) as exc:
        raise PresetError(f"preset device section cannot be simulated: {exc}") from None
    return config


def pcm_noise_model(preset: Preset | Mapping[str, Any]) -> PCMNoiseModel:
    """The PCM inference noise model of a preset's ``pcm`` section."""
    section = as_preset(preset).pcm
    if section is None:
        raise PresetError("preset has no 'pcm' section")
    try:
        return PCMNoiseModel.from_section(section)
    except ValueError as exc:
        raise PresetError(f"preset pcm section cannot be simulated: {exc}") from None


def analog_config(
    preset: Preset | Mapping[str, Any],
    algorithm: SGD | TikiTaka | ChoppedTTv2 | None = None,
    scale_s: float | None = None,
    use_per_device: bool = False,
    **overrides: Any,
) -> AnalogConfig:
    """An :class:`AnalogConfig` whose device (and PCM model, if any) come from ``preset``.

    ``overrides`` set other AnalogConfig fields (forward, update, mapping, ...).
    """
    preset = as_preset(preset)
    device = device_config(preset, scale_s, use_per_device)
    noise = pcm_noise_model(preset) if preset.pcm is not None else None
    fields = {"device": device, "algorithm": algorithm or SGD(), "noise_model": noise}
    fields.update(overrides)
    return AnalogConfig(**fields)


def inference_config(preset: Preset | Mapping[str, Any], **overrides: Any) -> AnalogConfig:
    """Hardware-aware training and PCM inference: an ideal floating-point device for training,
    the preset's ``pcm`` model for programming and drift (exact backward, FP update)."""
    from simulator.periphery import IOParameters

    fields: dict[str, Any] = {
        "device": None,
        "backward": IOParameters.perfect(),
        "noise_model": pcm_noise_model(preset),
    }
    fields.update(overrides)
    return AnalogConfig(**fields)
