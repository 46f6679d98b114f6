"""Inference with the chip in the loop: program the network, let time pass, run its MVMs.

One evaluation (:func:`chip_accuracy`), for one repeat at one time after programming:

1. reseed the chip's noise (emulators only: ``seed_noise``), so that a repeat is reproducible
   and independent of what ran before;
2. place the tiles on the array at an offset drawn from the repeat's seed (each repeat uses
   other devices, as each simulated repeat draws a new device population), then erase and
   program every tile's devices with program-and-verify in one batched call
   (``reset_pulses`` depressing pulses first: a RESET for PCM, a train to the lower bound for
   pulsed devices, so that the outcome does not depend on earlier states); devices that
   failed and miss their target by more than half of it (stuck devices) are cancelled
   digitally (``prune_defects``, the same rule as the simulated sources);
3. PCM with drift compensation: at ``t0`` after the last programming pulse read each tile's
   baseline mean|W·e_i| through the chip (one-hot inputs), as the simulator does at
   programming;
4. advance the chip clock to the evaluation time (``chip.clock.advance``): ``t0 +
   t_inference`` after programming for PCM (the simulator's convention, t = t_inference + t0,
   datasets/PRESET.md), ``t_inference`` for pulsed devices (no drift model);
5. drift compensation α = baseline / readout per tile; classify the test set with every
   layer's MVMs on the chip and the digital periphery in torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from calib.campaigns.programming import PROGRAM_DEFAULTS
from calib.errors import CalibError
from calib.validate.chip_network import (
    ChipLayer,
    ChipMapping,
    ChipTile,
    chip_network,
    chip_tiles,
    place_tiles,
)
from calib.validate.networks import classification_accuracy
from instruments.chip import ChipInterface, ListSelection, PulseSpec
from simulator.periphery import IOParameters

__all__ = [
    "ChipProgramming",
    "ProgramSummary",
    "chip_accuracy",
    "chip_mapping",
    "chip_programming",
    "program_tiles",
]

MAX_RESET_PULSES = 5000


@dataclass(frozen=True)
class ChipProgramming:
    """Program-and-verify settings (S, V, s) and the erase before it."""

    tolerance_s: float
    amplitude_v: float
    width_s: float
    max_iterations: int
    reset_pulses: int


@dataclass
class ProgramSummary:
    """Outcome of programming the network's devices once."""

    n_devices: int
    n_not_converged: int
    n_pruned: int  # defective devices cancelled digitally
    mean_iterations: float
    t_programmed_s: float  # chip time of the last programming pulse
    tolerance_s: float  # acceptance band of the verify read
    error_mean_s: float  # final verify read - target, converged devices (S)
    error_std_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def chip_programming(kind: str, technology: str, preset: Mapping[str, Any]) -> ChipProgramming:
    """Settings for a chip of ``technology``: ``PROGRAM_DEFAULTS`` plus an erase.

    PCM: one RESET pulse and up to 100 iterations. Pulsed devices: enough depressing pulses
    to cross the whole range four times at the fitted Δw_min (capped at 5,000), up to three
    range crossings of verify iterations, and a verify band of one fitted step or the
    technology's default if narrower, widened to two read-noise σ where the reads cannot
    resolve less (a device on target then reads inside the band 95 % of the time): a verify
    loop stops at the first read inside the band, so a band wider than the device's step
    leaves every device on the side it came from (ECRAM with the 0.05 µS default: all
    weights 0.04 µS low, 2.9 pp of accuracy on digits).
    """
    tol, amp, width = PROGRAM_DEFAULTS.get(technology, PROGRAM_DEFAULTS["reram"])
    if kind == "pcm":
        return ChipProgramming(tol, amp, width, max_iterations=100, reset_pulses=1)
    params = preset["device"]["parameters"]
    span = float(params["w_max"]) - float(params["w_min"])
    dw_min = float(params["dw_min"])
    steps = span / max(dw_min, 1e-15)
    read_noise = float(preset["device"].get("read_noise_s") or 0.0)
    tol = max(min(tol, dw_min), 2.0 * read_noise)
    return ChipProgramming(
        tol,
        amp,
        width,
        max_iterations=int(min(max(3 * steps, 100), MAX_RESET_PULSES)),
        reset_pulses=int(min(math.ceil(4 * steps), MAX_RESET_PULSES)),
    )


def chip_mapping(
    kind: str,
    network_mapping: Mapping[str, Any],
    preset: Mapping[str, Any],
    read_voltage_v: float,
    max_inputs: int,
    max_outputs: int,
) -> ChipMapping:
    """The weight-to-conductance mapping for a network trained for ``preset`` (a ``kind``)."""
    if kind == "pcm":
        return ChipMapping(
            "pcm-pair",
            read_voltage_v,
            g_max_s=float(preset["pcm"]["g_max_s"]),
            max_inputs=max_inputs,
            max_outputs=max_outputs,
        )
    g_ref = float(network_mapping["g_offset_s"])
    return ChipMapping(
        "reference",
        read_voltage_v,
        g_ref_s=g_ref,
        scale_s=float(network_mapping["scale_s"]),
        g_low_s=g_ref + float(network_mapping["w_min_s"]),
        g_high_s=g_ref + float(network_mapping["w_max_s"]),
        max_inputs=max_inputs,
        max_outputs=max_outputs,
    )


def program_tiles(
    chip: ChipInterface,
    tiles: list[ChipTile],
    mapping: ChipMapping,
    settings: ChipProgramming,
    prune_defects: bool = True,
) -> ProgramSummary:
    """Erase and program every tile's devices (one batched program-and-verify call).

    With ``prune_defects`` the devices that missed their target by more than zero would are
    cancelled digitally (:meth:`ChipTile.prune_defects`).
    """
    n_cols = chip.shape[1]
    indices, targets = [], []
    for tile in tiles:
        sel = tile.block(mapping)
        rows = np.arange(sel.row0, sel.row0 + sel.n_rows)
        cols = np.arange(sel.col0, sel.col0 + sel.n_cols)
        indices.append((rows[:, None] * n_cols + cols[None, :]).ravel())
        targets.append(tile.targets(mapping).ravel())
    sel = ListSelection.of(np.concatenate(indices))
    target = np.concatenate(targets)
    if settings.reset_pulses > 0:
        reset = PulseSpec(-abs(settings.amplitude_v), settings.width_s)
        chip.apply_pulses(sel, reset, settings.reset_pulses)
    result = chip.program_verify(
        sel,
        target,
        settings.tolerance_s,
        settings.max_iterations,
        mapping.read_voltage_v,
        PulseSpec(abs(settings.amplitude_v), settings.width_s),
    )
    pruned = 0
    if prune_defects:
        first = 0
        for tile, t in zip(tiles, targets, strict=True):
            part = slice(first, first + t.size)
            pruned += tile.prune_defects(
                mapping, result.conductance_s[part], result.converged[part], settings.tolerance_s
            )
            first += t.size
    times = np.asarray(result.time_s, dtype=float)
    t_end = float(np.nanmax(times)) if times.size and np.isfinite(times).any() else chip.clock.now()
    converged = np.asarray(result.converged, dtype=bool)
    error = np.asarray(result.conductance_s, dtype=float)[converged] - target[converged]
    return ProgramSummary(
        n_devices=int(target.size),
        n_not_converged=int(np.sum(~converged)),
        n_pruned=pruned,
        mean_iterations=float(np.mean(result.iterations)),
        t_programmed_s=t_end,
        tolerance_s=float(settings.tolerance_s),
        error_mean_s=float(np.mean(error)) if error.size else float("nan"),
        error_std_s=float(np.std(error)) if error.size else float("nan"),
    )


def _advance_to(chip: ChipInterface, t_s: float) -> None:
    wait = t_s - chip.clock.now()
    if wait > 0:
        chip.clock.advance(wait)


def _chip_layers(model: nn.Module) -> list[ChipLayer]:
    return [m for m in model.modules() if isinstance(m, ChipLayer)]


def chip_accuracy(
    chip: ChipInterface,
    model: nn.Sequential,
    mapping: ChipMapping,
    settings: ChipProgramming,
    io: IOParameters,
    t_inference_s: float,
    t0_s: float,
    drift_compensation: bool,
    prune_defects: bool,
    chip_seed: int,
    periphery_seed: int,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[float, ProgramSummary]:
    """Test accuracy of ``model`` run on ``chip`` ``t_inference_s`` after programming.

    ``t0_s`` is the PCM drift reference time (0 for pulsed devices); see the module
    docstring for the steps. Returns the accuracy (fraction) and the programming summary.
    """
    if not t_inference_s >= 0:
        raise CalibError(f"evaluation time must be >= 0 s, got {t_inference_s}")
    if chip.supports("seed_noise"):
        chip.seed_noise(int(chip_seed))
    tiles = chip_tiles(model, mapping)
    place_tiles(tiles, chip.shape, mapping, offset_seed=chip_seed)
    summary = program_tiles(chip, tiles, mapping, settings, prune_defects)
    generator = torch.Generator().manual_seed(int(periphery_seed))
    net = chip_network(model, tiles, chip, mapping, io, generator)
    layers = _chip_layers(net)
    compensate = drift_compensation and mapping.kind == "pcm-pair"
    if compensate:
        _advance_to(chip, summary.t_programmed_s + t0_s)
        for layer in layers:
            for k, tile in enumerate(layer.tiles):
                tile.baseline = layer.readout(k)
    _advance_to(chip, summary.t_programmed_s + t0_s + t_inference_s)
    if compensate:
        for layer in layers:
            for k, tile in enumerate(layer.tiles):
                tile.alpha = tile.baseline / layer.readout(k)
    return classification_accuracy(net, x, y), summary
