"""Analog tile: a weight matrix held as device states, updated by pulses.

The tile stores one device per weight (a device with an ideal reference: weight = device
state in weight units). Updates arrive as signed pulse counts per cross-point; every pulse
goes through the family's response function with cycle-to-cycle noise, vectorized over all
devices (the only Python loop is over the pulse index, up to the largest count).
"""

from __future__ import annotations

import torch

from simulator.devices.config import DevicePopulation, PulsedDeviceConfig
from simulator.devices.response import expected_step, granularity

__all__ = ["PulsedTile"]


class PulsedTile:
    """``out_size x in_size`` devices of one family, with their own noise generator."""

    def __init__(
        self,
        out_size: int,
        in_size: int,
        config: PulsedDeviceConfig,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.shape = (out_size, in_size)
        self.config = config
        self.device = torch.device(device)
        gen = torch.Generator().manual_seed(seed)
        self.population = DevicePopulation.sample(config, self.shape, gen).to(self.device)
        self._noise = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.dw_min = granularity(config.family, dataclass_params(config))
        self.w = torch.zeros(self.shape, device=self.device)
        self.set_weights(torch.zeros(self.shape))

    # ------------------------------------------------------------------ state
    @property
    def b_max(self) -> torch.Tensor:
        return self.population.params["b_max"]

    @property
    def b_min(self) -> torch.Tensor:
        return self.population.params["b_min"]

    def set_weights(self, weights: torch.Tensor) -> None:
        """Program weights directly (clipped to each device's bounds)."""
        if weights.shape != self.shape:
            raise ValueError(f"weights of shape {tuple(weights.shape)} for a tile {self.shape}")
        w = weights.to(self.device, torch.float32)
        self.w = torch.minimum(torch.maximum(w, self.b_min), self.b_max)

    def weights(self) -> torch.Tensor:
        """The weights the forward pass sees (with write noise when configured)."""
        if self.config.write_noise_std > 0:
            noise = torch.randn(self.shape, generator=self._noise, device=self.device)
            return self.w + self.config.write_noise_std * self.config.dw_min * noise
        return self.w

    # ------------------------------------------------------------------ update
    def apply_pulses(self, counts: torch.Tensor) -> None:
        """Apply ``counts[i, j]`` pulses to device (i, j): positive up, negative down."""
        if counts.shape != self.shape:
            raise ValueError(f"pulse counts of shape {tuple(counts.shape)} for {self.shape}")
        counts = counts.to(self.device)
        n_max = int(counts.abs().max().item()) if counts.numel() else 0
        if n_max == 0:
            return
        p = self.population.params
        sigma = self.config.dw_min_std
        up_mask = counts > 0
        remaining = counts.abs()
        w = self.w
        for _ in range(n_max):
            active = remaining > 0
            step_up = expected_step(self.population.family, w, True, p)
            step_down = expected_step(self.population.family, w, False, p)
            step = torch.where(up_mask, step_up, step_down)
            if sigma > 0:
                xi = torch.randn(self.shape, generator=self._noise, device=self.device)
                step = step * (1.0 + sigma * xi)
            step = torch.where(active & ~self.population.stuck, step, torch.zeros_like(step))
            w = torch.minimum(torch.maximum(w + step, self.b_min), self.b_max)
            remaining = remaining - active.to(remaining.dtype)
        self.w = w

    def update(self, delta_w: torch.Tensor, max_pulses: int = 31) -> None:
        """Apply a desired weight change as pulses: stochastic rounding of Δw/Δw_min.

        Counts are clipped to ``max_pulses`` per update (aihwkit's desired_BL).
        """
        ratio = delta_w.to(self.device) / self.dw_min
        floor = torch.floor(ratio)
        frac = ratio - floor
        bump = torch.rand(self.shape, generator=self._noise, device=self.device) < frac
        counts = (floor + bump.to(floor.dtype)).clamp(-max_pulses, max_pulses).to(torch.int32)
        self.apply_pulses(counts)


def dataclass_params(config: PulsedDeviceConfig) -> dict:
    """The config's fields as a plain dict."""
    return {k: getattr(config, k) for k in config.__dataclass_fields__}
