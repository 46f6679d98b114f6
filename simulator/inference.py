"""Inference on PCM: programming, drift to any time, global drift compensation; HWA noise.

Flow (REFERENCES.md [R7]), per tile:

1. :func:`program_tile` maps the trained weights W (weight units) to a differential pair of
   conductances, g⁺ = clip(s·W, 0, g_max), g⁻ = clip(−s·W, 0, g_max) with s = g_max/max|W|,
   and draws the programming noise and drift exponents once (``PCMNoiseModel.program``). With
   drift compensation it reads a baseline through the noisy forward periphery.
2. :func:`drift_tile` evaluates the pair t seconds after programming (drift + fresh read
   noise, ``PCMNoiseModel.at_time``), sets W(t) = (g⁺(t) − g⁻(t))/s and, with global drift
   compensation, α = baseline/readout(t), readout = mean|forward(I)| (one-hot inputs through
   the same noisy forward as inference). In eval mode the tile's output is multiplied by α.

:func:`modify_weights` is the weight-noise injection used for hardware-aware training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from simulator.devices.pcm import PCMNoiseModel
from simulator.periphery import analog_mvm

__all__ = [
    "InferenceState",
    "analog_tiles",
    "drift_analog_weights",
    "drift_tile",
    "modify_weights",
    "program_analog_weights",
    "program_tile",
]


@dataclass
class InferenceState:
    """Programmed conductance pair of one tile and its current inference weights."""

    g_target: torch.Tensor  # (2, out, in): g⁺, g⁻ targets (S)
    g_prog: torch.Tensor  # programmed (S)
    nu: torch.Tensor  # drift exponents
    scale: float  # s, siemens per weight unit
    weights: torch.Tensor  # weights the eval forward uses now
    alpha: float = 1.0
    baseline: float | None = None
    t_inference: float = 0.0

    def to(self, device: torch.device) -> InferenceState:
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.__dict__.items()}
        return InferenceState(**moved)


def modify_weights(
    w: torch.Tensor, modifier: Any, noise_model: PCMNoiseModel | None, generator: torch.Generator
) -> torch.Tensor:
    """A noisy copy of ``w`` for one mini-batch (see ``WeightModifier``)."""
    if modifier.type == "none" or modifier.std_dev <= 0:
        return w
    a_max = float(w.abs().max()) if modifier.rel_to_actual_wmax else modifier.assumed_wmax
    a_max = max(a_max, 1e-12)
    xi = torch.randn(w.shape, generator=generator, device=w.device)
    if modifier.type == "add-normal":
        return w + modifier.std_dev * a_max * xi
    if modifier.type == "mult-normal":
        return w * (1.0 + modifier.std_dev * xi)
    # pcm-prog: programming noise of the conductance |w|/a_max·g_max, sign kept
    g = w.abs() / a_max * noise_model.g_max_s
    sigma = noise_model.prog_noise_std(g) * modifier.std_dev
    g_noisy = (g + sigma * xi).abs()
    return torch.sign(w) * g_noisy * a_max / noise_model.g_max_s


def _readout(tile: Any, weights: torch.Tensor) -> float:
    """mean|forward(I)| through the tile's noisy forward periphery (one-hot inputs)."""
    eye = torch.eye(tile.shape[1], device=weights.device)
    y = analog_mvm(eye, weights, tile.config.forward, tile.generator)
    return max(float(y.abs().mean()), 1e-4)


def program_tile(
    tile: Any, noise_model: PCMNoiseModel, generator: torch.Generator | None = None
) -> InferenceState:
    """Program ``tile``'s current weights onto PCM pairs (once); returns its inference state."""
    w = tile.effective_weights().detach()
    w_max = float(w.abs().max())
    scale = noise_model.g_max_s / max(w_max, 1e-7)
    g_target = torch.stack(
        [(scale * w).clamp(0, noise_model.g_max_s), (-scale * w).clamp(0, noise_model.g_max_s)]
    )
    gen = tile.generator if generator is None else generator
    g_prog, nu = noise_model.program(g_target, gen)
    weights = (g_prog[0] - g_prog[1]) / scale
    state = InferenceState(g_target, g_prog, nu, scale, weights)
    if tile.config.drift_compensation:
        state.baseline = _readout(tile, weights)
    tile.inference = state
    return state


def drift_tile(
    tile: Any,
    t_inference: float,
    noise_model: PCMNoiseModel,
    generator: torch.Generator | None = None,
    compensate: bool | None = None,
) -> InferenceState:
    """Weights ``t_inference`` s after programming (fresh read noise), and α if compensated."""
    state = tile.inference
    if state is None:
        state = program_tile(tile, noise_model, generator)
    gen = tile.generator if generator is None else generator
    g = noise_model.at_time(state.g_prog, state.nu, state.g_target, t_inference, gen)
    state.weights = (g[0] - g[1]) / state.scale
    state.t_inference = float(t_inference)
    use = tile.config.drift_compensation if compensate is None else compensate
    if use and state.baseline is None:
        programmed = (state.g_prog[0] - state.g_prog[1]) / state.scale
        state.baseline = _readout(tile, programmed)
    state.alpha = state.baseline / _readout(tile, state.weights) if use else 1.0
    return state


def analog_tiles(model: nn.Module) -> Iterator[Any]:
    """Every tile of every analog layer in ``model`` (layers expose ``analog_tiles()``)."""
    for module in model.modules():
        tiles = getattr(module, "analog_tiles", None)
        if callable(tiles):
            yield from tiles()


def _noise_model(tile: Any, noise_model: PCMNoiseModel | None) -> PCMNoiseModel:
    model = noise_model if noise_model is not None else tile.config.noise_model
    if model is None:
        raise ValueError("no PCM noise model: pass one or set AnalogConfig.noise_model")
    return model


def program_analog_weights(
    model: nn.Module, noise_model: PCMNoiseModel | None = None, seed: int | None = None
) -> None:
    """Program every analog tile of ``model`` (a new programming-noise draw)."""
    for k, tile in enumerate(analog_tiles(model)):
        gen = None
        if seed is not None:
            gen = torch.Generator(device=tile.device).manual_seed(seed * 1009 + k)
        program_tile(tile, _noise_model(tile, noise_model), gen)


def drift_analog_weights(
    model: nn.Module,
    t_inference: float,
    noise_model: PCMNoiseModel | None = None,
    seed: int | None = None,
    compensate: bool | None = None,
) -> None:
    """Drift every programmed tile to ``t_inference`` seconds after programming."""
    for k, tile in enumerate(analog_tiles(model)):
        gen = None
        if seed is not None:
            gen = torch.Generator(device=tile.device).manual_seed(seed * 2003 + k)
        drift_tile(tile, t_inference, _noise_model(tile, noise_model), gen, compensate)


def forget_inference(model: nn.Module) -> None:
    """Drop programmed states so that eval uses the trained device weights again."""
    for tile in analog_tiles(model):
        tile.inference = None
