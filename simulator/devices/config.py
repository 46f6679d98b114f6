"""Device configuration (plain data) and device-to-device sampling of a population.

:class:`PulsedDeviceConfig` mirrors aihwkit's pulsed-device fields (names and meaning as in
aihwkit's code, ``aihwkit_spec.md`` §1.2-1.6) in *weight units*. A preset stores the same
fields in siemens around a reference conductance; :meth:`PulsedDeviceConfig.from_preset`
divides by a conductance-per-weight scale to get normalized weight units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from simulator.devices.response import FAMILIES

__all__ = ["DevicePopulation", "PulsedDeviceConfig"]

#: Parameters given in conductance units in a preset (divided by the scale when loading).
CONDUCTANCE_FIELDS = ("dw_min", "w_max", "w_min")


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
    write_noise_std: float = 0.0
    corrupt_devices_prob: float = 0.0
    # linear-step
    gamma_up: float = 0.0
    gamma_down: float = 0.0
    gamma_up_dtod: float = 0.05
    gamma_down_dtod: float = 0.05
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

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown device family {self.family!r}; expected one of {FAMILIES}")
        if not self.w_min < 0 < self.w_max:
            raise ValueError(f"need w_min < 0 < w_max, got [{self.w_min}, {self.w_max}]")
        if self.dw_min <= 0:
            raise ValueError(f"dw_min must be positive, got {self.dw_min}")
        if len(self.piecewise_up) != len(self.piecewise_down):
            raise ValueError("piecewise_up and piecewise_down must have the same length")

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
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {"family": device["model"]}
        for name, value in params.items():
            if name not in known:
                continue  # fields the simulator does not use (e.g. corrupt_devices_range)
            kwargs[name] = value / scale_s if name in CONDUCTANCE_FIELDS else value
        return cls(**kwargs)


@dataclass
class DevicePopulation:
    """Per-device parameters of ``shape`` devices (tensors), sampled as aihwkit does."""

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
        """Device-to-device draws (aihwkit §1.3): gains, asymmetry, bounds, stuck devices."""

        def normal() -> torch.Tensor:
            return torch.randn(shape, generator=generator, dtype=dtype)

        c = config
        gain = 1.0 + c.dw_min_dtod * normal()
        asym = c.up_down_dtod * normal()
        delta_up = (c.dw_min * (gain + asym + min(c.up_down, 0.0))).abs()
        delta_down = (c.dw_min * (gain - asym - max(c.up_down, 0.0))).abs()
        b_max = c.w_max * (1.0 + c.w_max_dtod * normal())
        b_min = c.w_min * (1.0 + c.w_min_dtod * normal())
        # enforce_consistency: swap crossed bounds, then force b_max >= 0 >= b_min
        lo, hi = torch.minimum(b_min, b_max), torch.maximum(b_min, b_max)
        b_max, b_min = hi.abs(), -lo.abs()
        params: dict[str, Any] = {
            "delta_up": delta_up,
            "delta_down": delta_down,
            "b_max": b_max,
            "b_min": b_min,
        }
        if c.family == "linear-step":
            params["gamma_up"] = (c.gamma_up + c.gamma_up_dtod * normal()).abs()
            params["gamma_down"] = (c.gamma_down + c.gamma_down_dtod * normal()).abs()
            params["ref_max"] = torch.full(shape, c.w_max, dtype=dtype)
            params["ref_min"] = torch.full(shape, c.w_min, dtype=dtype)
        elif c.family == "soft-bounds":
            pass
        elif c.family == "exp-step":
            params.update(A_up=c.A_up, A_down=c.A_down, gamma_up=c.gamma_up)
            params.update(gamma_down=c.gamma_down, a=c.a, b=c.b)
        elif c.family == "pow-step":
            g = 1.0 + c.pow_gamma_dtod * normal()
            r = c.pow_up_down_dtod * normal()
            params["pow_gamma_up"] = (c.pow_gamma * (g + r + min(c.pow_up_down, 0.0))).abs()
            params["pow_gamma_down"] = (c.pow_gamma * (g - r - max(c.pow_up_down, 0.0))).abs()
        elif c.family == "piecewise-step":
            params["piecewise_up"] = [float(v) for v in c.piecewise_up]
            params["piecewise_down"] = [float(v) for v in c.piecewise_down]
        stuck = torch.rand(shape, generator=generator) < c.corrupt_devices_prob
        if stuck.any():
            value = b_min + torch.rand(shape, generator=generator, dtype=dtype) * (b_max - b_min)
            for key in ("delta_up", "delta_down"):
                params[key] = torch.where(stuck, torch.zeros_like(params[key]), params[key])
            params["b_max"] = torch.where(stuck, value, b_max)
            params["b_min"] = torch.where(stuck, value, b_min)
        return cls(c.family, params, stuck)

    def to(self, device: torch.device | str) -> DevicePopulation:
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.params.items()}
        return DevicePopulation(self.family, moved, self.stuck.to(device))
