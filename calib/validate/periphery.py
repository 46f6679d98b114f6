"""The digital periphery of an analog MVM whose analog core is a callable (e.g. the chip).

Mirrors the simulator's forward MVM (:func:`simulator.io.analog_mvm`, aihwkit's ONE_PASS
model) step by step, with the accumulation ``z = W·x̂`` replaced by ``core(x̂)``:

1. noise management: each input vector is divided by α (``abs-max``: max|x|, ``max``,
   ``constant``: ``nm_thres``, ``none``: 1; zero becomes 1);
2. DAC: x̂ = clip(Q(x/(α·β)), ±inp_bound) (+ input noise);
3. analog core: z = core(x̂) (the chip adds its own read noise here);
4. ADC: ỹ = clip(Q(z + out_noise·ξ), ±out_bound);
5. iterative bound management: vectors whose output clipped are run again with β doubled
   (another call of ``core`` on those vectors only);
6. y = ỹ·α·β.

The simulator's analog MVM adds weight read noise to z itself; the chip's core brings its
physical read noise instead. Everything else (resolutions, bounds, noise) is the same
:class:`simulator.io.IOParameters`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from simulator.io import IOParameters, quantize

__all__ = ["periphery_mvm"]

Core = Callable[[torch.Tensor], torch.Tensor]


def _resolution(res: float, bound: float) -> float:
    if res <= 0:
        return 0.0
    return (res if res <= 1 else 1.0 / res) * 2.0 * bound


def _input_scale(x: torch.Tensor, io: IOParameters) -> torch.Tensor:
    """α per input vector, shape (B, 1)."""
    mode = "abs-max" if io.is_perfect else io.noise_management
    if mode == "none":
        return torch.ones(x.shape[0], 1, dtype=x.dtype)
    if mode == "constant":
        return torch.full((x.shape[0], 1), io.nm_thres, dtype=x.dtype)
    scale = x.abs().amax(dim=1, keepdim=True) if mode == "abs-max" else x.amax(1, keepdim=True)
    if io.nm_thres > 0:
        scale = torch.clamp(scale, max=io.nm_thres)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _one_pass(
    x: torch.Tensor,
    core: Core,
    io: IOParameters,
    scale: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    if io.is_perfect:
        z = core(x / scale)
        return z, torch.zeros(z.shape[0], dtype=torch.bool)
    xq = quantize(x / scale, _resolution(io.inp_res, io.inp_bound), io.inp_sto_round, generator)
    xq = torch.clamp(xq, -io.inp_bound, io.inp_bound)
    if io.inp_noise > 0:
        xq = xq + io.inp_noise * torch.randn(xq.shape, generator=generator)
    z = core(xq)
    if io.out_noise > 0:
        z = z + io.out_noise * torch.randn(z.shape, generator=generator)
    z = quantize(z, _resolution(io.out_res, io.out_bound), io.out_sto_round, generator)
    clipped = (z.abs() >= io.out_bound).any(dim=1)
    return torch.clamp(z, -io.out_bound, io.out_bound), clipped


def periphery_mvm(
    x: torch.Tensor, core: Core, io: IOParameters, generator: torch.Generator
) -> torch.Tensor:
    """y = W·x for a batch ``x`` (B, n_in) through the periphery around ``core``.

    ``core`` maps normalized inputs (B', n_in), |x̂| ≤ ``io.inp_bound``, to the analog
    outputs (B', n_out) in weight units.
    """
    alpha = _input_scale(x, io)
    beta = torch.ones_like(alpha)
    y, clipped = _one_pass(x, core, io, alpha, generator)
    if io.is_perfect or io.bound_management != "iterative":
        return y * alpha
    dx = _resolution(io.inp_res, io.inp_bound)
    beta_max = io.max_bm_factor if dx <= 0 else min(io.max_bm_factor, io.max_bm_res / dx)
    while True:
        redo = clipped & (beta[:, 0] < beta_max)
        if not bool(redo.any()):
            break
        rows = redo.nonzero().squeeze(1)
        beta[rows] *= 2.0
        y_rows, clipped_rows = _one_pass(x[rows], core, io, alpha[rows] * beta[rows], generator)
        y[rows] = y_rows
        clipped = torch.zeros_like(clipped)
        clipped[rows] = clipped_rows
    return y * (alpha * beta)
