"""Validate presets by simulated training on a small benchmark.

Trains an MLP on scikit-learn's digits with in-memory SGD (stochastic pulse trains through
the preset's device model, exact periphery) and reports the test accuracy: the quick check of
``calib demo``. The full set of algorithms, periphery non-idealities and PCM inference lives
in :mod:`simulator`; validation by inference against the truth and the chip itself
(``calib validate``) in :mod:`calib.validate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from calib.errors import CalibError
from simulator.config import AnalogConfig
from simulator.devices.config import PulsedDeviceConfig
from simulator.periphery import IOParameters
from simulator.presets import PresetError
from simulator.presets import device_config as _device_config
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
        return _device_config(preset)
    except PresetError as exc:
        raise CalibError(str(exc)) from None


@contextmanager
def _single_thread() -> Iterator[None]:
    """Small networks train fastest on one thread (no thread hand-offs per tiny op)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_accuracy(
    preset: dict | None,
    split: Split,
    seed: int = 0,
    epochs: int = 10,
    hidden: int = 32,
    lr: float = 0.1,
    on_epoch: Callable[[int, float], None] | None = None,
) -> float:
    """Test accuracy of a 64-hidden-10 MLP trained with ``preset``'s device (float if None).

    Analog layers use stochastic pulse trains (BL 31, update management) through the device
    model and an exact periphery, so the accuracy reflects the device itself.
    """
    config = None
    if preset is not None:
        exact = IOParameters.perfect()
        config = AnalogConfig(device=device_config(preset), forward=exact, backward=exact)
    n_in = split.x_train.shape[1]
    n_out = int(np.max(split.y_train.numpy())) + 1
    with _single_thread():
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
