"""Train the network once, for the preset it is validated with.

* PCM inference presets: hardware-aware training. Floating-point weights, but every
  mini-batch's forward and backward pass see the preset's programming noise
  (``WeightModifier("pcm-prog", hwa_noise)``) and the default aihwkit periphery.
* Pulsed-device (training) presets: in-memory training on the preset's device with the
  chosen algorithm (``sgd``, ``tiki-taka``, ``ttv2``, ``c-ttv2``): pulsed updates through
  the fitted response with an exact periphery (as ``calib demo``: the accuracy reflects the
  device; the periphery's noise is applied at inference). The weights the devices realize
  at the end are the trained network, in the preset's weight units (G = g_offset_s +
  scale·w).

Default learning rate: 0.1, except 0.05 for a CNN trained on pulsed devices (its pulsed
updates are coarser relative to the small convolution weights).

The result is a float network (:class:`~calib.validate.networks.TrainedNetwork`) whose
layers hold those weights; inference then maps them onto a chip or a simulated one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from calib.errors import CalibError
from calib.validate.in_memory_training import Split
from calib.validate.networks import (
    NetworkSpec,
    TrainedNetwork,
    build_network,
    copy_trained_weights,
)
from calib.validate.sources import simulatable_preset, weight_scale
from simulator import (
    SGD,
    ChoppedTTv2,
    IOParameters,
    MappingParameters,
    TikiTaka,
    WeightModifier,
    analog_config,
    convert_to_analog,
    inference_config,
    ttv2,
)
from simulator.presets import PresetError
from simulator.training import evaluate_accuracy, train_classifier

__all__ = ["ALGORITHMS", "TrainingOptions", "train_float_reference", "train_network"]

ALGORITHMS = ("sgd", "tiki-taka", "ttv2", "c-ttv2")


@dataclass(frozen=True)
class TrainingOptions:
    """How the network is trained (see the module docstring)."""

    epochs: int = 15
    lr: float | None = None  # None: 0.1, or 0.05 for a CNN on pulsed devices
    batch_size: int = 16
    algorithm: str = "sgd"  # pulsed presets only
    hwa_noise: float = 1.0  # PCM presets: scale of the injected programming noise

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise CalibError(
                f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
            )
        if self.epochs < 1 or (self.lr is not None and not self.lr > 0) or self.batch_size < 1:
            raise CalibError("epochs and batch size must be >= 1 and the learning rate > 0")
        if self.hwa_noise < 0:
            raise CalibError(f"hwa noise must be >= 0, got {self.hwa_noise}")


def _algorithm(name: str) -> SGD | TikiTaka | ChoppedTTv2:
    # c-TTv2 / TTv2 hyperparameters of the simulator's benchmark (benchmarks/RESULTS.md)
    return {
        "sgd": SGD(),
        "tiki-taka": TikiTaka(),
        "ttv2": ttv2(fast_lr=3.0, transfer_lr=0.3),
        "c-ttv2": ChoppedTTv2(fast_lr=3.0, transfer_lr=0.3, in_chop_prob=0.02),
    }[name]


def train_network(
    spec: NetworkSpec,
    preset: Mapping[str, Any],
    kind: str,
    split: Split,
    split_seed: int,
    options: TrainingOptions,
    mapping: MappingParameters,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainedNetwork:
    """Train ``spec`` once for ``preset`` (of ``kind`` ``pcm`` or ``pulsed``)."""
    t_start = time.perf_counter()
    model = build_network(spec, seed)
    try:
        if kind == "pcm":
            modifier = (
                WeightModifier("pcm-prog", options.hwa_noise)
                if options.hwa_noise > 0
                else WeightModifier()
            )
            config = inference_config(
                preset, forward=IOParameters(), modifier=modifier, mapping=mapping
            )
            net_mapping: dict[str, Any] = {
                "kind": "pcm-pair",
                "g_max_s": float(preset["pcm"]["g_max_s"]),
            }
            how = f"hardware-aware (pcm-prog weight noise x{options.hwa_noise:g})"
        else:
            device = simulatable_preset(preset)
            config = analog_config(
                device,
                _algorithm(options.algorithm),
                forward=IOParameters.perfect(),
                backward=IOParameters.perfect(),
                mapping=mapping,
            )
            params = device["device"]["parameters"]
            net_mapping = {
                "kind": "reference",
                "g_offset_s": float(device["device"]["g_offset_s"]),
                "scale_s": weight_scale(device),
                "w_min_s": float(params["w_min"]),
                "w_max_s": float(params["w_max"]),
            }
            how = f"in-memory {options.algorithm} on the preset's {device['device']['model']}"
    except PresetError as exc:
        raise CalibError(str(exc)) from None
    lr = options.lr
    if lr is None:
        lr = 0.05 if (kind == "pulsed" and spec.kind == "cnn") else 0.1
    analog = convert_to_analog(model, config, seed=seed)
    try:
        result = train_classifier(
            analog,
            split.x_train,
            split.y_train,
            split.x_test,
            split.y_test,
            epochs=options.epochs,
            lr=lr,
            batch_size=options.batch_size,
            seed=seed,
            on_epoch=on_epoch,
        )
    except ValueError as exc:  # NaN/inf reached a layer: the device model misbehaves
        raise CalibError(
            f"training {how} diverged ({exc}); the preset's device does not behave like a "
            "device (check its parameters and its predictive check)"
        ) from None
    copy_trained_weights(analog, model)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise CalibError(f"training {how} diverged (non-finite weights); check the preset")
    training = {
        **asdict(options),
        "lr": lr,
        "method": how,
        "seed": int(seed),
        "seconds": round(time.perf_counter() - t_start, 3),
        "test_accuracy_per_epoch": [float(a) for a in result.test_accuracy],
        "float_test_accuracy": float(evaluate_accuracy(model, split.x_test, split.y_test)),
    }
    model.eval()  # evaluate_accuracy leaves the model in training mode
    return TrainedNetwork(spec, model, split_seed, training, net_mapping)


def train_float_reference(
    spec: NetworkSpec, split: Split, options: TrainingOptions, seed: int = 0
) -> float:
    """Test accuracy of ``spec`` trained in floating point (plain SGD, same epochs and lr).

    The reference a validation's accuracies are judged against: what the network and data
    set reach without any device.
    """
    model = build_network(spec, seed)
    lr = options.lr if options.lr is not None else 0.1
    result = train_classifier(
        model,
        split.x_train,
        split.y_train,
        split.x_test,
        split.y_test,
        epochs=options.epochs,
        lr=lr,
        batch_size=options.batch_size,
        seed=seed,
    )
    return float(result.final_accuracy)
