"""Inference simulated with a preset: one repeat at one time after programming.

* PCM (``pcm`` presets): the trained weights go onto differential PCM pairs of analog tiles
  (:func:`simulator.convert_to_analog` with :func:`simulator.inference_config`), are
  programmed once per repeat (programming noise and drift exponents,
  :func:`simulator.program_analog_weights`), drifted to ``t_inference`` with fresh read noise
  and global drift compensation (:func:`simulator.drift_analog_weights`), then classify.
  The PCM model has no defective devices; the fraction of devices the preset's campaigns
  could not program (:func:`~calib.validate.sources.defect_fraction`) is added here, stuck
  at random conductances and cancelled by the chip path's rule (:func:`_pcm_defects`).
* Pulsed devices: the weights (device states in the network's weight units, see
  :class:`~calib.validate.networks.TrainedNetwork`) are written onto a fresh device
  population of the preset (device-to-device bounds, stuck devices, write noise), one device
  per weight against the reference conductance, by program-and-verify with the chip's
  acceptance band (:func:`simulator.program_verify.program_and_verify`: pulses of the
  device's own steps until a verify read lies in the band, so each weight ends where the
  chip's would, off its target by up to the band); the preset's read noise enters every MVM as
  additive weight noise σ_read/scale·‖x̂‖. No drift model: time changes only the noise draw.
  With ``prune_defects``, a device whose held weight misses its target by more than half
  the target (a stuck device) is cancelled (its reference set to its state, weight 0), the
  rule the chip path applies to the devices that failed program-and-verify.

Seeds: ``program_seed`` fixes the device population, programming noise and drift exponents
(the same for every time of a repeat); ``read_seed`` fixes the read and periphery noise of
one time. With the same seeds, two presets see the same standard-normal draws (common random
numbers), so their accuracy difference is not blurred by independent sampling noise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from calib.errors import CalibError
from calib.validate.chip_network import PRUNE_FRACTION
from calib.validate.networks import classification_accuracy
from calib.validate.sources import defect_fraction, rereferenced, simulatable_preset
from simulator import (
    SGD,
    IOParameters,
    MappingParameters,
    analog_config,
    convert_to_analog,
    drift_analog_weights,
    inference_config,
    program_analog_weights,
)
from simulator.inference import analog_tiles
from simulator.layers import AnalogLayer
from simulator.presets import PresetError
from simulator.program_verify import program_and_verify
from simulator.random_streams import make_generator

__all__ = ["simulated_accuracy"]


def _reseed_tiles(model: nn.Module, seed: int) -> None:
    """Fresh noise generators (read and periphery noise) for one evaluation time."""
    for k, tile in enumerate(analog_tiles(model)):
        tile.generator = make_generator(tile.device, int(seed) * 7919 + k)


def _pcm_defects(analog: nn.Module, fraction: float, prune: bool, seed: int) -> None:
    """Make a ``fraction`` of the programmed PCM devices defective (seeded per tile).

    The PCM model has no stuck devices; here a defective device is stuck at a conductance
    uniform in [0, g_max] that does not drift (the assumption). With ``prune`` the chip
    path's rule follows: a device farther from its target than half the target is
    cancelled (contributes nothing). The drift-compensation baseline is then taken from the
    defective array.
    """
    if fraction <= 0:
        return
    for k, tile in enumerate(analog_tiles(analog)):
        state = tile.inference
        gen = torch.Generator().manual_seed(int(seed) * 7 + 104729 * (k + 1))
        shape, device = state.g_prog.shape, state.g_prog.device
        mask = (torch.rand(shape, generator=gen) < fraction).to(device)
        stuck = torch.rand(shape, generator=gen).to(device) * tile.config.noise_model.g_max_s
        if prune:
            target = state.g_target
            cancel = (stuck - target).abs() > PRUNE_FRACTION * target
            stuck = torch.where(cancel, torch.zeros_like(stuck), stuck)
        state.g_prog = torch.where(mask, stuck, state.g_prog)
        state.nu = torch.where(mask, torch.zeros_like(state.nu), state.nu)
        state.weights = (state.g_prog[0] - state.g_prog[1]) / state.scale
        state.baseline = None  # recomputed from the defective array by drift_tile


def _single_device_tiles(analog: nn.Module, trained: nn.Module) -> Iterator[tuple[Any, Tensor]]:
    """(tile, target weights) of every tile with one device per weight."""
    for name, layer in analog.named_modules():
        if not isinstance(layer, AnalogLayer):
            continue
        target = trained.get_submodule(name).weight.detach().reshape(layer.out_features, -1)
        for r, (o0, o1) in enumerate(layer.out_edges):
            for c, (i0, i1) in enumerate(layer.in_edges):
                tile = layer.tiles[r][c]
                if getattr(tile, "arrays", None) and len(tile.arrays) == 1:
                    yield tile, target[o0:o1, i0:i1].to(tile.reference.device)


def _program_with_verify(
    analog: nn.Module, trained: nn.Module, band: float, read_noise: float, seed: int
) -> None:
    """Write every device by program-and-verify (band, read noise: weight units)."""
    generator = torch.Generator().manual_seed(int(seed) * 31 + 17)
    for tile, want in _single_device_tiles(analog, trained):
        program_and_verify(tile.arrays[0], want + tile.reference, band, read_noise, generator)


def _prune_defects(analog: nn.Module, trained: nn.Module) -> int:
    """Zero the weights that devices hold more wrongly than rightly (as on the chip)."""
    pruned = 0
    for tile, want in _single_device_tiles(analog, trained):
        state = tile.arrays[0].w
        bad = ((state - tile.reference) - want).abs() > PRUNE_FRACTION * want.abs()
        tile.reference = torch.where(bad, state, tile.reference)
        pruned += int(bad.sum())
    return pruned


def simulated_accuracy(
    model: nn.Sequential,
    preset: Mapping[str, Any],
    kind: str,
    network_mapping: Mapping[str, Any],
    io: IOParameters,
    mapping: MappingParameters,
    t_inference_s: float,
    drift_compensation: bool,
    prune_defects: bool,
    program_seed: int,
    read_seed: int,
    x: torch.Tensor,
    y: torch.Tensor,
    verify_band_s: float | None = None,
) -> float:
    """Test accuracy (fraction) of ``model`` simulated with ``preset`` (see the module doc).

    ``verify_band_s``: pulsed devices are written by program-and-verify with this band (S);
    None writes them exactly.
    """
    try:
        if kind == "pcm":
            config = inference_config(
                preset, forward=io, mapping=mapping, drift_compensation=drift_compensation
            )
            analog = convert_to_analog(model, config, seed=program_seed)
            analog.eval()
            program_analog_weights(analog, seed=program_seed)
            _pcm_defects(analog, defect_fraction(preset), prune_defects, program_seed)
            _reseed_tiles(analog, read_seed)
            drift_analog_weights(analog, t_inference_s, seed=read_seed)
            return classification_accuracy(analog, x, y)
        g_ref, scale = float(network_mapping["g_offset_s"]), float(network_mapping["scale_s"])
        device_preset = rereferenced(simulatable_preset(preset), g_ref)
        read_noise = float(device_preset["device"].get("read_noise_s") or 0.0)
        forward = replace(io, w_noise=read_noise / scale, w_noise_type="additive-constant")
        if read_noise <= 0:
            forward = replace(io, w_noise=0.0, w_noise_type="none")
        config = analog_config(
            device_preset, SGD(), scale_s=scale, forward=forward, mapping=mapping
        )
        analog = convert_to_analog(model, config, seed=program_seed)
        if verify_band_s is not None:
            _program_with_verify(
                analog, model, verify_band_s / scale, read_noise / scale, program_seed
            )
        if prune_defects:
            _prune_defects(analog, model)
        _reseed_tiles(analog, read_seed)
        return classification_accuracy(analog, x, y)
    except PresetError as exc:
        raise CalibError(str(exc)) from None
