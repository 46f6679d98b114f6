"""The networks validated by inference (MLP, CNN), and trained networks as files.

A network is a plain ``torch.nn.Sequential`` of floating-point layers; analog copies are
made with :func:`simulator.convert_to_analog` (simulation) or
:func:`calib.validate.chip_network.chip_network` (the chip). A trained network is stored
with :func:`save_network` as a small ``torch.save`` file (weights, the architecture, the
data set, how it was trained), so that evaluation tasks can refer to it by path.

Architectures (digital bias, activations, pooling and reshapes in torch):

* ``mlp``: features -> ``hidden`` (tanh) -> classes (one hidden layer of 64 by default);
* ``cnn``: the features as a 1-channel image, conv 8 -> tanh -> max-pool -> conv 16 ->
  tanh -> max-pool -> linear; 3x3 kernels on 2-D images (digits), 1x5 kernels on 1-D
  signals (MNIST-1D).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from calib._version import __version__
from calib.errors import CalibError
from calib.validate.datasets import DatasetInfo, dataset_info

__all__ = [
    "NETWORKS",
    "NetworkSpec",
    "TrainedNetwork",
    "build_network",
    "classification_accuracy",
    "copy_trained_weights",
    "load_network",
    "matrix_layers",
    "save_network",
]

NETWORKS = ("mlp", "cnn")
NETWORK_FILE_FORMAT = "aimc-calib-network"


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture of a network for one data set."""

    kind: str  # "mlp" | "cnn"
    dataset: str
    hidden: tuple[int, ...] = (64,)
    channels: tuple[int, int] = (8, 16)

    def __post_init__(self) -> None:
        if self.kind not in NETWORKS:
            raise CalibError(f"unknown network {self.kind!r}; choose one of {', '.join(NETWORKS)}")
        dataset_info(self.dataset)
        if any(h < 1 for h in self.hidden) or any(c < 1 for c in self.channels):
            raise CalibError("hidden sizes and channel counts must be positive")

    @property
    def info(self) -> DatasetInfo:
        return dataset_info(self.dataset)


def build_network(spec: NetworkSpec, seed: int = 0) -> nn.Sequential:
    """A freshly initialized floating-point network (``torch.manual_seed(seed)`` first)."""
    info = spec.info
    torch.manual_seed(seed)
    if spec.kind == "mlp":
        sizes = [info.n_features, *spec.hidden, info.n_classes]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        return nn.Sequential(*layers)
    height, width = info.image_shape
    c1, c2 = spec.channels
    if height > 1:  # 2-D image: 3x3 kernels, 2x2 pooling
        kernel, pad, pool = (3, 3), (1, 1), (2, 2)
    else:  # 1-D signal: 1x5 kernels, 1x2 pooling
        kernel, pad, pool = (1, 5), (0, 2), (1, 2)
    out_h = height // pool[0] // pool[0]
    out_w = width // pool[1] // pool[1]
    if out_h < 1 or out_w < 1:
        raise CalibError(f"data set {spec.dataset!r} is too small for the cnn")
    return nn.Sequential(
        nn.Unflatten(1, (1, height, width)),
        nn.Conv2d(1, c1, kernel, padding=pad),
        nn.Tanh(),
        nn.MaxPool2d(pool),
        nn.Conv2d(c1, c2, kernel, padding=pad),
        nn.Tanh(),
        nn.MaxPool2d(pool),
        nn.Flatten(),
        nn.Linear(c2 * out_h * out_w, info.n_classes),
    )


def classification_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512
) -> float:
    """Fraction of ``x`` classified as ``y`` (eval mode, no gradients, in batches)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, x.shape[0], batch):
            pred = model(x[first : first + batch]).argmax(dim=1)
            correct += int((pred == y[first : first + batch]).sum())
    return correct / max(int(x.shape[0]), 1)


def matrix_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``nn.Linear`` and ``nn.Conv2d`` layers of ``model`` (those that go on tiles)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def copy_trained_weights(analog: nn.Module, target: nn.Sequential) -> nn.Sequential:
    """Copy the realized weights of an analog copy of ``target`` back into ``target``.

    ``analog`` was made by :func:`simulator.convert_to_analog` from ``target`` (same module
    names); each analog layer's :meth:`get_weights` (the weights its devices realize) and
    digital bias are written into the matching float layer.
    """
    with torch.no_grad():
        for name, layer in matrix_layers(target):
            source = analog.get_submodule(name)
            weights = source.get_weights().detach().to(layer.weight.dtype)
            layer.weight.copy_(weights.reshape(layer.weight.shape))
            if layer.bias is not None and source.bias is not None:
                layer.bias.copy_(source.bias.detach())
    return target


@dataclass
class TrainedNetwork:
    """A trained floating-point network and how it was obtained.

    ``mapping`` records the conductance mapping of the weights: for a network trained on a
    pulsed device, its weights are device states in the preset's weight units, i.e.
    G = ``g_offset_s`` + ``scale_s`` · w (siemens); for PCM inference the weights are plain
    numbers mapped per tile at programming time.
    """

    spec: NetworkSpec
    model: nn.Sequential
    split_seed: int
    training: dict[str, Any] = field(default_factory=dict)
    mapping: dict[str, Any] = field(default_factory=dict)


def save_network(network: TrainedNetwork, path: str | Path) -> Path:
    """Write ``network`` (weights + metadata, no pickled code) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = asdict(network.spec)
    spec["hidden"], spec["channels"] = list(spec["hidden"]), list(spec["channels"])
    torch.save(
        {
            "format": NETWORK_FILE_FORMAT,
            "software_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "spec": spec,
            "split_seed": int(network.split_seed),
            "training": network.training,
            "mapping": network.mapping,
            "state_dict": {k: v.detach().cpu() for k, v in network.model.state_dict().items()},
        },
        path,
    )
    return path


def load_network(path: str | Path) -> TrainedNetwork:
    """Read a file written by :func:`save_network` (one-line :class:`CalibError` otherwise)."""
    path = Path(path)
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CalibError(f"{path}: no such network file") from None
    except Exception as exc:  # torch raises several types for foreign or damaged files
        raise CalibError(f"{path}: not a trained-network file ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != NETWORK_FILE_FORMAT:
        raise CalibError(f"{path}: not a trained-network file ({NETWORK_FILE_FORMAT})")
    raw = doc["spec"]
    spec = NetworkSpec(raw["kind"], raw["dataset"], tuple(raw["hidden"]), tuple(raw["channels"]))
    model = build_network(spec)
    model.load_state_dict(doc["state_dict"])
    model.eval()
    return TrainedNetwork(spec, model, doc["split_seed"], doc["training"], doc["mapping"])
