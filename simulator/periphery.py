"""Matrix-vector products through the periphery: DAC, analog accumulation, ADC.

Implements aihwkit's ONE_PASS forward model (REFERENCES.md [R9]), vectorized over the batch:

1. noise management: x is divided by α_nm per sample (``abs-max``: max|x|, ``max``,
   ``constant``: ``nm_thres``, ``none``: 1; a zero scale becomes 1);
2. DAC: x̂ = clip(Q(x/(α·β)), ±inp_bound) + inp_noise·ξ;
3. accumulation: z = W·x̂, plus weight read noise (``additive-constant``: σ_w‖x̂‖ξ,
   ``pcm-read``: σ_w √(|W|·x̂²) ξ);
4. ADC: ỹ = clip(Q(z + out_noise·ξ), ±out_bound);
5. bound management (``iterative``): samples whose output hit ±out_bound are recomputed with
   β doubled until none clip, β > ``max_bm_factor`` or β > ``max_bm_res``/Δ_in;
6. y = ỹ·α·β.

Q rounds to the resolution Δ = res·2·bound (res ≤ 1) or 2·bound/res (res > 1: a number of
steps); res ≤ 0 turns a quantizer off; ``*_sto_round`` adds U(−½, ½)·Δ before rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from simulator.random_streams import normal

__all__ = ["Core", "IOParameters", "analog_mvm", "periphery_mvm", "quantize"]

NOISE_MANAGEMENT = ("abs-max", "max", "constant", "none")
BOUND_MANAGEMENT = ("iterative", "none")
W_NOISE_TYPES = ("none", "additive-constant", "pcm-read")


@dataclass
class IOParameters:
    """Periphery of one MVM direction (aihwkit ``IOParameters`` names and defaults)."""

    is_perfect: bool = False
    inp_bound: float = 1.0
    inp_res: float = 1.0 / 126
    inp_sto_round: bool = False
    inp_noise: float = 0.0
    out_bound: float = 12.0
    out_res: float = 1.0 / 510
    out_sto_round: bool = False
    out_noise: float = 0.06
    w_noise: float = 0.0
    w_noise_type: str = "none"
    noise_management: str = "abs-max"
    nm_thres: float = 0.0
    bound_management: str = "iterative"
    max_bm_factor: float = 1000.0
    max_bm_res: float = 0.25

    def __post_init__(self) -> None:
        if self.noise_management not in NOISE_MANAGEMENT:
            raise ValueError(f"noise_management must be one of {NOISE_MANAGEMENT}")
        if self.bound_management not in BOUND_MANAGEMENT:
            raise ValueError(f"bound_management must be one of {BOUND_MANAGEMENT}")
        if self.w_noise_type not in W_NOISE_TYPES:
            raise ValueError(f"w_noise_type must be one of {W_NOISE_TYPES}")
        if self.inp_bound <= 0 or self.out_bound <= 0:
            raise ValueError("inp_bound and out_bound must be positive")
        if self.noise_management == "constant" and self.nm_thres <= 0:
            raise ValueError("noise_management 'constant' needs nm_thres > 0")

    @classmethod
    def perfect(cls) -> IOParameters:
        """An exact floating-point MVM."""
        return cls(is_perfect=True)


def _resolution(res: float, bound: float) -> float:
    if res <= 0:
        return 0.0
    return (res if res <= 1 else 1.0 / res) * 2.0 * bound


def quantize(
    v: torch.Tensor, step: float, stochastic: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """Round ``v`` to multiples of ``step`` (unchanged if step is 0)."""
    if step <= 0:
        return v
    scaled = v / step
    if stochastic:
        scaled = scaled + torch.rand(v.shape, generator=generator, device=v.device) - 0.5
    return torch.round(scaled) * step


def _nm_scale(x: torch.Tensor, io: IOParameters) -> torch.Tensor:
    if io.noise_management == "none":
        return torch.ones(x.shape[0], 1, device=x.device, dtype=x.dtype)
    if io.noise_management == "constant":
        return torch.full((x.shape[0], 1), io.nm_thres, device=x.device, dtype=x.dtype)
    scale = x.abs().amax(dim=1, keepdim=True) if io.noise_management == "abs-max" else None
    if scale is None:
        scale = x.amax(dim=1, keepdim=True)
    if io.nm_thres > 0:
        scale = torch.clamp(scale, max=io.nm_thres)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


#: The analog core of an MVM: normalized inputs x̂ (B, n_in) -> accumulated outputs (B, n_out)
#: in weight units, before output noise and the ADC (the tile's W·x̂ with weight read noise,
#: or a chip's column currents).
Core = Callable[[torch.Tensor], torch.Tensor]


def _one_pass(
    x: torch.Tensor,
    core: Core,
    io: IOParameters,
    scale: torch.Tensor,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantized, noisy, clipped output ỹ (before rescaling) and a per-sample clip flag."""
    dx = _resolution(io.inp_res, io.inp_bound)
    xq = quantize(x / scale, dx, io.inp_sto_round, generator)
    xq = torch.clamp(xq, -io.inp_bound, io.inp_bound)
    if io.inp_noise > 0:
        xq = xq + io.inp_noise * normal(tuple(xq.shape), generator, x.device)
    z = core(xq)
    if io.out_noise > 0:
        z = z + io.out_noise * normal(tuple(z.shape), generator, z.device)
    z = quantize(z, _resolution(io.out_res, io.out_bound), io.out_sto_round, generator)
    clipped = (z.abs() >= io.out_bound).any(dim=1)
    return torch.clamp(z, -io.out_bound, io.out_bound), clipped


def _weight_core(w: torch.Tensor, io: IOParameters, generator: torch.Generator | None) -> Core:
    """z = W·x̂ plus the weight read noise of the forward model."""

    def core(xq: torch.Tensor) -> torch.Tensor:
        z = xq @ w.T
        if io.w_noise > 0 and io.w_noise_type != "none":
            if io.w_noise_type == "additive-constant":
                amp = torch.linalg.vector_norm(xq, dim=1, keepdim=True)
            else:  # pcm-read
                amp = torch.sqrt((xq * xq) @ w.abs().T)
            z = z + io.w_noise * amp * normal(tuple(z.shape), generator, z.device)
        return z

    return core


def periphery_mvm(
    x: torch.Tensor,
    core: Core,
    io: IOParameters,
    generator: torch.Generator | None,
    bound_management: bool = True,
) -> torch.Tensor:
    """y = W·x for a batch ``x`` (B, n_in) through the periphery around any analog ``core``.

    Noise management, DAC, input noise, ``core``, output noise, ADC, clipping, and iterative
    bound management. With a perfect periphery the inputs are still scaled into [-1, 1]
    (abs-max), since a physical core only takes bounded inputs.
    """
    if io.is_perfect:
        alpha = x.abs().amax(dim=1, keepdim=True)
        if io.nm_thres > 0:
            alpha = torch.clamp(alpha, max=io.nm_thres)
        alpha = torch.where(alpha > 0, alpha, torch.ones_like(alpha))
        return core(x / alpha) * alpha
    alpha = _nm_scale(x, io)
    beta = torch.ones_like(alpha)
    y, clipped = _one_pass(x, core, io, alpha, generator)
    if bound_management and io.bound_management == "iterative":
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


def analog_mvm(
    x: torch.Tensor,
    w: torch.Tensor,
    io: IOParameters,
    generator: torch.Generator | None,
    bound_management: bool = True,
) -> torch.Tensor:
    """y = W·x through the periphery, for a batch ``x`` (B, n_in) and ``w`` (n_out, n_in)."""
    if io.is_perfect:
        return x @ w.T
    return periphery_mvm(x, _weight_core(w, io, generator), io, generator, bound_management)
