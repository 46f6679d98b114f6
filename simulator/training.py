"""Training and evaluation loops for small classifiers built from analog layers."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from simulator.config import AnalogConfig
from simulator.devices.config import PulsedDeviceConfig
from simulator.layers import AnalogLayer, AnalogLinear, AnalogSGD

__all__ = ["TrainResult", "analog_mlp", "evaluate_accuracy", "train_classifier"]


def analog_mlp(
    sizes: list[int],
    config: AnalogConfig | PulsedDeviceConfig | None,
    seed: int = 0,
    init_scale: float = 0.5,
) -> nn.Sequential:
    """An MLP with tanh hidden units; analog layers when ``config`` is given, else float."""
    layers: list[nn.Module] = []
    torch.manual_seed(seed)
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        if config is None:
            layers.append(nn.Linear(n_in, n_out))
        else:
            layers.append(
                AnalogLinear(n_in, n_out, config, seed=seed * 1000 + i, init_scale=init_scale)
            )
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


@dataclass
class TrainResult:
    """Accuracy on the test set after each epoch (fractions in [0, 1])."""

    test_accuracy: list[float]

    @property
    def final_accuracy(self) -> float:
        return self.test_accuracy[-1]


def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correctly classified samples."""
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    model.train()
    return float((pred == y).float().mean())


def train_classifier(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    epochs: int = 10,
    lr: float = 0.05,
    batch_size: int = 16,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Cross-entropy training with analog SGD (pulsed updates) or plain SGD for float layers."""
    gen = torch.Generator().manual_seed(seed)
    has_analog = any(isinstance(m, AnalogLayer) for m in model.modules())
    opt = AnalogSGD(model, lr) if has_analog else torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            opt.step()
        acc = evaluate_accuracy(model, x_test, y_test)
        history.append(acc)
        if on_epoch is not None:
            on_epoch(epoch, acc)
    return TrainResult(history)
