"""Simulator configurations from preset documents (parsed JSON, datasets/PRESET.md layout).

The simulator reads presets as plain dicts and never imports ``calib``; problems raise
:class:`PresetError` (a ValueError) with one line naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from simulator.config import SGD, AnalogConfig, ChoppedTTv2, TikiTaka
from simulator.devices.config import PulsedDeviceConfig
from simulator.devices.families import FAMILIES
from simulator.devices.pcm import PCMNoiseModel

__all__ = [
    "PresetError",
    "analog_config",
    "device_config",
    "inference_config",
    "pcm_noise_model",
]


class PresetError(ValueError):
    """A preset that the simulator cannot use (the message names the field)."""


def _section(preset: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(preset, Mapping):
        raise PresetError("a preset must be a JSON object (dict)")
    section = preset.get(name)
    if section is None:
        raise PresetError(f"preset has no {name!r} section")
    if not isinstance(section, Mapping):
        raise PresetError(f"preset section {name!r} must be an object")
    return section


def device_config(
    preset: Mapping[str, Any], scale_s: float | None = None, use_per_device: bool = False
) -> PulsedDeviceConfig:
    """The pulsed device of a preset's ``device`` section, in weight units.

    Conductance fields are divided by ``scale_s`` (default max(w_max, −w_min)). With
    ``use_per_device`` the ``per_device`` arrays are resampled onto tiles instead of drawing
    device-to-device variation from the population parameters.
    """
    device = _section(preset, "device")
    model = device.get("model")
    if model not in FAMILIES:
        raise PresetError(
            f"preset device model {model!r} is not a simulator family (one of {FAMILIES})"
        )
    params = device.get("parameters")
    if not isinstance(params, Mapping):
        raise PresetError("preset device section has no 'parameters' object")
    for name in ("dw_min", "w_max", "w_min"):
        if name not in params:
            raise PresetError(f"preset device parameters lack {name!r}")
    for name, value in params.items():
        if isinstance(value, bool) or value is None or isinstance(value, list):
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PresetError(f"preset device parameter {name!r} is not a finite number: {value!r}")
    try:
        scale = float(scale_s) if scale_s is not None else None
        if scale is None:
            scale = max(float(params["w_max"]), -float(params["w_min"]))
        config = PulsedDeviceConfig.from_preset(device, scale)
        if use_per_device:
            per_device = preset.get("per_device")
            if not isinstance(per_device, Mapping) or not per_device:
                raise PresetError("use_per_device needs a non-empty 'per_device' section")
            config = config.with_per_device(per_device, scale)
    except PresetError:
        raise
    except (ValueError, TypeError) as exc:
        raise PresetError(f"preset device section cannot be simulated: {exc}") from None
    return config


def pcm_noise_model(preset: Mapping[str, Any]) -> PCMNoiseModel:
    """The PCM inference noise model of a preset's ``pcm`` section."""
    section = _section(preset, "pcm")
    try:
        return PCMNoiseModel.from_section(section)
    except ValueError as exc:
        raise PresetError(f"preset pcm section cannot be simulated: {exc}") from None


def analog_config(
    preset: Mapping[str, Any],
    algorithm: SGD | TikiTaka | ChoppedTTv2 | None = None,
    scale_s: float | None = None,
    use_per_device: bool = False,
    **overrides: Any,
) -> AnalogConfig:
    """An :class:`AnalogConfig` whose device (and PCM model, if any) come from ``preset``.

    ``overrides`` set other AnalogConfig fields (forward, update, mapping, ...).
    """
    device = device_config(preset, scale_s, use_per_device)
    noise = pcm_noise_model(preset) if isinstance(preset, Mapping) and "pcm" in preset else None
    fields = {"device": device, "algorithm": algorithm or SGD(), "noise_model": noise}
    fields.update(overrides)
    return AnalogConfig(**fields)


def inference_config(preset: Mapping[str, Any], **overrides: Any) -> AnalogConfig:
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
