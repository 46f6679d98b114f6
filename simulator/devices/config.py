"""Device configuration (plain data) and device-to-device sampling of a population.

:class:`PulsedDeviceConfig` mirrors aihwkit's pulsed-device fields (names and meaning as in
aihwkit's code, REFERENCES.md [R2]-[R4]) in *weight units*. A preset stores the same
fields in siemens around a reference conductance; :meth:`PulsedDeviceConfig.from_preset`
divides by a conductance-per-weight scale to get normalized weight units.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from simulator.devices.families import (
    CORRUPT_DEVICES_RANGE,
    FAMILIES,
    TorchDraws,
    sample_population,
)

__all__ = ["DevicePopulation", "PulsedDeviceConfig"]

#: Parameters given in conductance units in a preset (divided by the scale when loading).
CONDUCTANCE_FIELDS = ("dw_min", "w_max", "w_min", "reference_std")

#: Per-device arrays a preset may carry (``per_device`` section) and the population
#: parameter each one becomes; conductance-valued ones are divided by the scale too.
PER_DEVICE_FIELDS = {
    "delta_up": ("delta_up", True),
    "delta_down": ("delta_down", True),
    "w_max": ("b_max", True),
    "w_min": ("b_min", True),
    "gamma_up": ("gamma_up", False),
    "gamma_down": ("gamma_down", False),
    "pow_gamma_up": ("pow_gamma_up", False),
    "pow_gamma_down": ("pow_gamma_down", False),
}


@dataclass
class PulsedDeviceConfig:
    """A pulsed device family and its population parameters (weight units)."""

    family: str = "soft-bounds"
    dw_min: float = 0.001
    up_down: float = 0.0
    w_max: float = 0.6
    w_min: float = -0.6
    dw_min_dtod: float = 0.3
    up_down_dtod: float = 0.01
    w_max_dtod: float = 0.3
    w_min_dtod: float = 0.3
    dw_min_std: float = 0.3
    dw_min_dtod_log_normal: bool = False
    write_noise_std: float = 0.0
    corrupt_devices_prob: float = 0.0
    corrupt_devices_range: float = CORRUPT_DEVICES_RANGE  # aihwkit's (weight units)
    reset: float = 0.0
    reset_dtod: float = 0.0
    reset_std: float = 0.01
    # per-device reference offset of the window, std (families.REFERENCE_FIELD; 0: none)
    reference_std: float = 0.0
    # linear-step and soft-bounds: multiplicative (True) or additive cycle-to-cycle noise
    mult_noise: bool = True
    # linear-step (aihwkit's LinearStepDevice; catalogue: simulator.devices.families)
    gamma_up: float = 0.0
    gamma_down: float = 0.0
    gamma_up_dtod: float = 0.05
    gamma_down_dtod: float = 0.05
    allow_increasing: bool = False
    mean_bound_reference: bool = True
    # exp-step (tile-global, no d2d spread, as in aihwkit)
    A_up: float = 0.00081
    A_down: float = 0.36833
    a: float = 0.244
    b: float = 0.2425
    # pow-step
    pow_gamma: float = 1.0
    pow_gamma_dtod: float = 0.1
    pow_up_down: float = 0.0
    pow_up_down_dtod: float = 0.0
    # piecewise-step
    piecewise_up: list[float] = field(default_factory=lambda: [1.0])
    piecewise_down: list[float] = field(default_factory=lambda: [1.0])
    # Measured per-device parameters (population names: delta_up, delta_down, b_max, b_min,
    # ...; weight units), resampled with replacement onto a tile instead of d2d draws.
    per_device: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown device family {self.family!r}; expected one of {FAMILIES}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"device parameter {f.name} is not finite ({value})")
        if not self.w_min < 0 < self.w_max:
            raise ValueError(f"need w_min < 0 < w_max, got [{self.w_min}, {self.w_max}]")
        if self.dw_min <= 0:
            raise ValueError(f"dw_min must be positive, got {self.dw_min}")
        for name in (
            "dw_min_std",
            "write_noise_std",
            "dw_min_dtod",
            "w_max_dtod",
            "w_min_dtod",
            "reference_std",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.corrupt_devices_prob <= 1:
            raise ValueError(
                f"corrupt_devices_prob must be in [0, 1], got {self.corrupt_devices_prob}"
            )
        if len(self.piecewise_up) != len(self.piecewise_down):
            raise ValueError("piecewise_up and piecewise_down must have the same length")
        if self.per_device is not None:
            self.per_device = _check_per_device(self.per_device)

    @classmethod
    def from_preset(
        cls, device: Mapping[str, Any], scale_s: float | None = None
    ) -> PulsedDeviceConfig:
        """Build from a preset's ``device`` section; conductances are divided by ``scale_s``.

        ``scale_s`` (siemens per unit weight) defaults to max(w_max, -w_min), so the mean
        bounds become at most ±1 in weight units.
        """
        params = dict(device["parameters"])
        if scale_s is None:
            scale_s = max(float(params["w_max"]), -float(params["w_min"]))
        if not scale_s > 0:
            raise ValueError(f"conductance scale must be positive, got {scale_s}")
        known = {f.name for f in dataclasses.fields(cls)} - {"per_device", "family"}
        kwargs: dict[str, Any] = {"family": device["model"]}
        for name, value in params.items():
            if name not in known or value is None:
                continue  # fields the simulator does not use
            if isinstance(value, list):
                kwargs[name] = [float(v) for v in value]
            elif isinstance(value, bool):
                kwargs[name] = value
            else:
                kwargs[name] = float(value) / scale_s if name in CONDUCTANCE_FIELDS else value
        return cls(**kwargs)

    def with_per_device(self, per_device: Mapping[str, Any], scale_s: float) -> PulsedDeviceConfig:
        """A copy that resamples the measured per-device arrays (preset names, siemens)."""
        arrays: dict[str, Any] = {}
        for name, values in per_device.items():
            if name not in PER_DEVICE_FIELDS:
                continue  # e.g. device_id
            target, conductance = PER_DEVICE_FIELDS[name]
            arr = torch.as_tensor(values, dtype=torch.float64)
            arrays[target] = arr / scale_s if conductance else arr
        return dataclasses.replace(self, per_device=arrays)


def _check_per_device(arrays: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {k: torch.as_tensor(v, dtype=torch.float64).flatten() for k, v in arrays.items()}
    if not out:
        return out
    sizes = {k: v.numel() for k, v in out.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"per-device arrays differ in length: {sizes}")
    if next(iter(sizes.values())) == 0:
        raise ValueError("per-device arrays are empty")
    for name, arr in out.items():
        if not torch.isfinite(arr).all():
            raise ValueError(f"per-device array {name} contains NaN or inf")
    if {"b_max", "b_min"} <= out.keys() and bool((out["b_max"] < out["b_min"]).any()):
        raise ValueError("per-device arrays have w_max < w_min for some devices")
    return out


@dataclass
class DevicePopulation:
    """Per-device parameters of ``shape`` devices (tensors), sampled as aihwkit does.

    ``params`` holds ``delta_up``, ``delta_down`` (Δ⁺, Δ⁻ ≥ 0), ``b_max``, ``b_min`` (own
    bounds), ``reset_bias``, ``reference`` (the offset of the apparent state, only with
    ``reference_std`` > 0) and the family's extra parameters (see
    :mod:`simulator.devices.response`); ``stuck`` marks corrupt devices (Δ± = 0, b⁺ = b⁻).
    """

    family: str
    params: dict[str, Any]
    stuck: torch.Tensor

    @classmethod
    def sample(
        cls,
        config: PulsedDeviceConfig,
        shape: tuple[int, ...],
        generator: torch.Generator,
        dtype: torch.dtype = torch.float32,
    ) -> DevicePopulation:
        """Device-to-device draws (aihwkit §1.3), or a resample of measured per-device arrays.

        With ``config.per_device`` the measured devices are drawn with replacement (one
        index per cross-point); parameters the arrays lack are sampled as usual.
        """

        c = config
        draws = TorchDraws(generator, shape, dtype)
        measured = None
        if c.per_device:
            n_measured = next(iter(c.per_device.values())).numel()

            def measured() -> dict[str, torch.Tensor]:
                pick = torch.randint(n_measured, shape, generator=generator)
                return {name: values.to(dtype)[pick] for name, values in c.per_device.items()}

        fields = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
        params = sample_population(c.family, fields, draws, measured, with_reset=True)
        stuck = params.pop("stuck")
        return cls(c.family, params, stuck)

    def to(self, device: torch.device | str) -> DevicePopulation:
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.params.items()}
        return DevicePopulation(self.family, moved, self.stuck.to(device))

    def select(self, index: torch.Tensor) -> dict[str, Any]:
        """Parameters of the devices at flat ``index`` (tensors gathered, scalars kept)."""
        return {
            k: v.reshape(-1)[index] if torch.is_tensor(v) else v for k, v in self.params.items()
        }
