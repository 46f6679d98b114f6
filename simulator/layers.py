"""Torch layers whose weights live on analog tiles.

The forward pass is a plain matrix product with the tile's (noisy) weights; the gradient
is computed by autograd and turned into pulses by :class:`AnalogSGD`. Biases are digital.
"""

from __future__ import annotations

import torch
from torch import nn

from simulator.devices.config import PulsedDeviceConfig
from simulator.tile import PulsedTile

__all__ = ["AnalogLinear", "AnalogSGD"]


class AnalogLinear(nn.Module):
    """``y = W x + b`` with ``W`` held by a :class:`PulsedTile` (weight units)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        config: PulsedDeviceConfig,
        seed: int = 0,
        bias: bool = True,
        init_scale: float = 0.5,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.tile = PulsedTile(out_features, in_features, config, seed=seed)
        gen = torch.Generator().manual_seed(seed + 7)
        bound = init_scale * (3.0 / in_features) ** 0.5
        init = (torch.rand(out_features, in_features, generator=gen) * 2 - 1) * bound
        self.tile.set_weights(init)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._w_used: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input has {x.shape[-1]} features, layer expects {self.in_features}")
        if not torch.isfinite(x).all():
            raise ValueError("input contains NaN or inf")
        w = self.tile.weights().detach().requires_grad_(self.training)
        if self.training:
            self._w_used = w
        return nn.functional.linear(x, w, self.bias)

    def analog_update(self, lr: float, max_pulses: int) -> None:
        """Turn the last gradient into pulses on the tile, then forget it."""
        if self._w_used is None or self._w_used.grad is None:
            return
        self.tile.update(-lr * self._w_used.grad, max_pulses=max_pulses)
        self._w_used = None


class AnalogSGD:
    """Analog SGD: pulsed updates for analog layers, plain SGD for digital parameters."""

    def __init__(self, model: nn.Module, lr: float, max_pulses: int = 31) -> None:
        self.model = model
        self.lr = lr
        self.max_pulses = max_pulses
        digital = list(model.parameters())  # analog weights live on tiles, not in parameters
        self.digital = torch.optim.SGD(digital, lr=lr) if digital else None

    def zero_grad(self) -> None:
        if self.digital is not None:
            self.digital.zero_grad()

    def step(self) -> None:
        for module in self.model.modules():
            if isinstance(module, AnalogLinear):
                module.analog_update(self.lr, self.max_pulses)
        if self.digital is not None:
            self.digital.step()
