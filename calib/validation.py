"""Validate presets by simulated training and inference on a small benchmark.

This first slice trains an MLP on scikit-learn's digits with analog SGD on tiles built from
a preset's device model, and reports the test accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from calib.errors import CalibError
from simulator.devices.config import PulsedDeviceConfig
from simulator.training import analog_mlp, train_classifier

__all__ = ["Split", "device_config", "load_digits_split", "train_accuracy"]


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(seed: int = 0, test_fraction: float = 0.25) -> Split:
    """scikit-learn's 8x8 digits (shipped with the package), scaled to [0, 1], stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    xtr, xte, ytr, yte = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    f32 = torch.float32
    return Split(
        torch.tensor(xtr, dtype=f32),
        torch.tensor(ytr),
        torch.tensor(xte, dtype=f32),
        torch.tensor(yte),
    )


def device_config(preset: dict) -> PulsedDeviceConfig:
    """Simulator configuration (normalized weight units) from a preset document."""
    try:
        return PulsedDeviceConfig.from_preset(preset["device"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CalibError(f"preset device section cannot be simulated: {exc}") from None


def train_accuracy(
    preset: dict | None,
    split: Split,
    seed: int = 0,
    epochs: int = 10,
    hidden: int = 32,
    lr: float = 0.1,
    on_epoch: Callable[[int, float], None] | None = None,
) -> float:
    """Test accuracy of a 64-hidden-10 MLP trained with ``preset``'s device (float if None)."""
    config = device_config(preset) if preset is not None else None
    n_in = split.x_train.shape[1]
    n_out = int(np.max(split.y_train.numpy())) + 1
    model = analog_mlp([n_in, hidden, n_out], config, seed=seed)
    result = train_classifier(
        model,
        split.x_train,
        split.y_train,
        split.x_test,
        split.y_test,
        epochs=epochs,
        lr=lr,
        seed=seed,
        on_epoch=on_epoch,
    )
    return result.final_accuracy
