"""One accuracy evaluation as a pure function of a small task description.

:func:`evaluate_accuracy` maps an :class:`EvalTask` (the trained network's file, the
preset's file, the source, the time after programming, the repeat and the seed) to a test
accuracy. Tasks are small frozen dataclasses that reference files, so they pickle cheaply
and can be sent to other processes (e.g. ``dask``'s ``client.map``); every random draw is
seeded from (seed, repeat, time) alone, so a result never depends on which tasks ran before
or where. Files, data sets and chip connections are cached per process.

Chip tasks (``source="chip"``) share one instrument: run them one at a time (the chip's
state is programmed by each task). On an emulator they are reproducible (its noise is
reseeded per task); on a real chip the physical noise is not.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from calib.errors import CalibError
from calib.presets import load_preset
from calib.runtime.chips import connect
from calib.validate.chip_inference import (
    ChipProgramming,
    chip_accuracy,
    chip_mapping,
    chip_programming,
)
from calib.validate.datasets import load_dataset
from calib.validate.networks import TrainedNetwork, load_network
from calib.validate.simulated import simulated_accuracy
from calib.validate.sources import preset_kind, technology
from instruments.chip import ChipInterface
from simulator import IOParameters, MappingParameters

__all__ = [
    "SOURCES",
    "EvalOutcome",
    "EvalSettings",
    "EvalTask",
    "cached_chip",
    "close_chip_connections",
    "derived_seed",
    "evaluate_accuracy",
    "evaluate_task",
]

SOURCES = ("fitted", "truth", "chip")


@dataclass(frozen=True)
class EvalSettings:
    """Inference settings shared by every source (so that they are compared like for like).

    ``tile_inputs`` x ``tile_outputs``: the largest tile (weights per tile; a PCM tile uses
    twice as many chip columns); ``forward``: the periphery of every MVM;
    ``read_voltage_v``: the largest input voltage on the chip; ``prune_defects``: cancel
    devices that fail programming with an error larger than their weight (stuck devices);
    ``verify_band_s``: half-width (S) of the program-and-verify acceptance band of pulsed
    devices, on the chip and in the simulated sources alike (None: from each task's preset,
    :func:`~calib.validate.chip_inference.chip_programming`).
    """

    tile_inputs: int = 128
    tile_outputs: int = 64
    read_voltage_v: float = 0.2
    drift_compensation: bool = True
    prune_defects: bool = True
    forward: IOParameters = field(default_factory=IOParameters)
    verify_band_s: float | None = None

    def __post_init__(self) -> None:
        band = self.verify_band_s
        if band is not None and not (math.isfinite(band) and band > 0):
            raise ValueError(f"verify band must be a finite number of siemens > 0, got {band}")

    def mapping(self) -> MappingParameters:
        return MappingParameters(max_input_size=self.tile_inputs, max_output_size=self.tile_outputs)


@dataclass(frozen=True)
class EvalTask:
    """One accuracy evaluation: ``source`` at ``t_inference_s`` after programming, ``repeat``.

    ``preset_file`` is the preset the source simulates (``fitted`` or ``truth``); for
    ``chip`` it is the fitted preset, which sets the weight-to-conductance mapping and t0.
    """

    network_file: str
    preset_file: str
    source: str
    t_inference_s: float
    repeat: int
    seed: int = 0
    chip_resource: str | None = None
    settings: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise CalibError(f"unknown source {self.source!r}; one of {', '.join(SOURCES)}")
        if self.source == "chip" and not self.chip_resource:
            raise CalibError("a chip task needs a chip resource")


def derived_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from ``seed`` and labels (numbers hashed by value, stable across runs)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(struct.pack("<q", int(seed)))
    for part in parts:
        data = struct.pack("<d", float(part)) if isinstance(part, (int, float)) else str(part)
        digest.update(data if isinstance(data, bytes) else data.encode())
    return int.from_bytes(digest.digest(), "little") & 0x7FFFFFFF


@functools.lru_cache(maxsize=8)
def _network(path: str, mtime_ns: int) -> TrainedNetwork:
    return load_network(path)


@functools.lru_cache(maxsize=16)
def _preset(path: str, mtime_ns: int) -> dict:
    return load_preset(path)


@functools.lru_cache(maxsize=4)
def _split(name: str, seed: int):
    return load_dataset(name, seed)


def _mtime(path: str) -> int:
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        raise CalibError(f"{path}: no such file") from None


_CHIPS: dict[str, ChipInterface] = {}


def cached_chip(resource: str) -> ChipInterface:
    """This process's connection to ``resource`` (:func:`calib.runtime.chips.connect`, cached)."""
    chip = _CHIPS.get(resource)
    if chip is None:
        chip = _CHIPS[resource] = connect(resource)
    return chip


def close_chip_connections() -> None:
    """Close every cached chip connection of this process."""
    while _CHIPS:
        _, chip = _CHIPS.popitem()
        chip.close()


@dataclass
class EvalOutcome:
    """Result of one task: the accuracy and, for the chip, how programming went."""

    accuracy: float
    programming: dict[str, Any] | None = None


def _programming(
    kind: str, tech: str, preset: Mapping[str, Any], settings: EvalSettings
) -> ChipProgramming:
    """Program-and-verify settings of a task: the technology's, with the run's one band."""
    programming = chip_programming(kind, tech, preset)
    if settings.verify_band_s is not None and kind != "pcm":
        programming = replace(programming, tolerance_s=settings.verify_band_s)
    return programming


def evaluate_accuracy(task: EvalTask) -> float:
    """Test accuracy (fraction) of the task's network for its source, time and repeat."""
    return evaluate_task(task).accuracy


def evaluate_task(task: EvalTask) -> EvalOutcome:
    """:func:`evaluate_accuracy` with the chip's programming summary."""
    network = _network(task.network_file, _mtime(task.network_file))
    preset = _preset(task.preset_file, _mtime(task.preset_file))
    kind = preset_kind(preset, task.preset_file)
    split = _split(network.spec.dataset, network.split_seed)
    settings = task.settings
    program_seed = derived_seed(task.seed, "program", task.repeat)
    read_seed = derived_seed(task.seed, "read", task.repeat, task.t_inference_s)
    if task.source != "chip":
        band = None
        if kind != "pcm":
            band = _programming(kind, technology(preset) or "reram", preset, settings).tolerance_s
        accuracy = simulated_accuracy(
            network.model,
            preset,
            kind,
            network.mapping,
            settings.forward,
            settings.mapping(),
            task.t_inference_s,
            settings.drift_compensation,
            settings.prune_defects,
            program_seed,
            read_seed,
            split.x_test,
            split.y_test,
            verify_band_s=band,
        )
        return EvalOutcome(accuracy)
    chip = cached_chip(str(task.chip_resource))
    tech = technology(preset) or chip.technology or "reram"
    programming = _programming(kind, str(tech).lower(), preset, settings)
    mapping = chip_mapping(
        kind,
        network.mapping,
        preset,
        settings.read_voltage_v,
        settings.tile_inputs,
        settings.tile_outputs,
    )
    t0 = float(preset["pcm"]["t0_s"]) if kind == "pcm" else 0.0
    accuracy, summary = chip_accuracy(
        chip,
        network.model,
        mapping,
        programming,
        settings.forward,
        task.t_inference_s,
        t0,
        settings.drift_compensation,
        settings.prune_defects,
        derived_seed(task.seed, "chip", task.repeat),
        read_seed,
        split.x_test,
        split.y_test,
    )
    return EvalOutcome(accuracy, summary.as_dict())
