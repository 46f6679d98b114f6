"""Rank-one updates as stochastic pulse trains (Gokmen & Vlasov 2016; aihwkit_spec.md §5.1).

The desired update is W ← W − η·Σ_b d_b·x_bᵀ. For every sample b, column j (x side) fires in
each of BL slots with probability p_j = min(B·|x_j|, 1) and row i (d side) with
q_i = min(A·|d_i|, 1); each slot where both fire is a *coincidence*: one pulse on device
(i, j), down if sign(x_j)·sign(d_i) > 0, up otherwise. E[#coincidences] = BL·p_j·q_i =
η|x_j||d_i|/ε for a device of granularity ε.

Update management (aihwkit defaults): with k = η·max|x|·max|d|/ε, BL = min(⌈k⌉, desired_bl)
(``update_bl_management``) and A = B = √(η/(ε·BL)), rebalanced by √(max|x|/max|d|) so both
probabilities are √(k/BL) at the maxima (``update_management``); when k > desired_bl the d
side is clipped so that the largest coincidence count is BL.

All samples and slots are drawn at once: the trains are (batch, BL, lines) boolean tensors and
the counts over the batch are two integer matrix products, N = Dᵀ·X (all coincidences) and
S = (sign(d)·D)ᵀ·(sign(x)·X) (signed), so n_down = (N + S)/2 and n_up = (N − S)/2. Random
numbers are 16-bit (probabilities resolved to 2⁻¹⁶).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["PULSE_TYPES", "UpdateParameters", "coincidence_counts"]

PULSE_TYPES = ("stochastic", "mean-count", "none")


@dataclass
class UpdateParameters:
    """How a rank-one update becomes pulses (aihwkit ``UpdateParameters`` names).

    ``pulse_type``: ``stochastic`` (compressed stochastic pulse trains), ``mean-count``
    (expected coincidence counts, stochastically rounded) or ``none`` (exact floating-point
    update, for ideal devices).
    """

    desired_bl: int = 31
    fixed_bl: bool = True
    update_bl_management: bool = True
    update_management: bool = True
    um_grad_scale: float = 1.0
    pulse_type: str = "stochastic"

    def __post_init__(self) -> None:
        if self.pulse_type not in PULSE_TYPES:
            raise ValueError(f"pulse_type must be one of {PULSE_TYPES}, got {self.pulse_type!r}")
        if int(self.desired_bl) < 1:
            raise ValueError(f"desired_bl must be >= 1, got {self.desired_bl}")


def _probabilities(
    x: torch.Tensor, d: torch.Tensor, lr: float, eps: float, up: UpdateParameters
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample BL (B,) and firing probabilities p (B, n_in), q (B, n_out).

    With update management the probabilities at the maxima are √(k/BL) on both sides; when
    k > BL the x side saturates at 1 and the d side at k/BL (so the largest coincidence
    count is BL: the gradient is clipped).
    """
    xa, da = x.abs(), d.abs()
    x_max = xa.amax(dim=1)
    d_max = da.amax(dim=1) * up.um_grad_scale
    bl_max = float(int(up.desired_bl))
    if up.update_management or up.update_bl_management:
        k = x_max * d_max * (lr / eps)
        bl = torch.clamp(torch.ceil(k), 1.0, bl_max) if up.update_bl_management else None
        if bl is None:
            bl = torch.full_like(k, bl_max)
        if up.update_management:
            r = k / bl
            root = torch.sqrt(r)
            scale_x = torch.clamp(root, max=1.0) / torch.clamp(x_max, min=1e-30)
            scale_d = torch.maximum(root, r) / torch.clamp(d_max, min=1e-30)
        else:
            scale_x = scale_d = torch.sqrt(lr / (eps * bl))
    else:
        bl_value = bl_max
        if not up.fixed_bl and eps * bl_max < lr:
            bl_value = float(math.ceil(lr / eps))
        bl = torch.full_like(x_max, bl_value)
        scale_x = scale_d = torch.full_like(x_max, math.sqrt(lr / (eps * bl_value)))
    p = torch.clamp(xa * scale_x[:, None], max=1.0)
    q = torch.clamp(da * scale_d[:, None], max=1.0)
    return bl, p, q


def _random16(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` uniform int16 values (four per 64-bit draw)."""
    words = (n + 3) // 4
    bits = torch.randint(
        -(2**63), 2**63 - 1, (words,), dtype=torch.int64, generator=generator, device=device
    )
    return bits.view(torch.int16)[:n]


def _fires(v: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Bernoulli(prob) from uniform int16 ``v``: v < prob·2¹⁶ − 2¹⁵."""
    threshold = torch.round(prob * 65536.0 - 32768.0).to(torch.int32)
    return v < threshold


_INT_MM_OK: dict[str, bool] = {}


def _count_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact integer product of int8 matrices {−1, 0, 1} as float32 (int8 kernel on CPU)."""
    kind = a.device.type
    if kind == "cpu" and _INT_MM_OK.get(kind, True) and hasattr(torch, "_int_mm"):
        try:
            return torch._int_mm(a, b).to(torch.float32)
        except RuntimeError:
            _INT_MM_OK[kind] = False
    # float32 with 0/±1 inputs is exact (also under TF32) up to 2^24 coincidences
    return a.to(torch.float32) @ b.to(torch.float32)


def coincidence_counts(
    x: torch.Tensor,
    d: torch.Tensor,
    lr: float,
    granularity: float,
    up: UpdateParameters,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up and down pulse counts (n_out, n_in), float32, for the batch update −lr·dᵀx.

    ``x`` is (B, n_in), ``d`` is (B, n_out); ``granularity`` is ε in weight units.
    """
    n_out, n_in = d.shape[1], x.shape[1]
    zeros = torch.zeros(n_out, n_in, device=x.device)
    if lr <= 0 or x.shape[0] == 0:
        return zeros, zeros.clone()
    bl, p, q = _probabilities(x, d, float(lr), float(granularity), up)
    if up.pulse_type == "mean-count":
        return _mean_counts(x, d, bl, p, q, generator)
    batch, slots = x.shape[0], int(bl.max().item())
    v = _random16(batch * slots * (n_in + n_out), generator, x.device)
    vx = v[: batch * slots * n_in].view(batch, slots, n_in)
    vd = v[batch * slots * n_in :].view(batch, slots, n_out)
    fx = _fires(vx, p[:, None, :])
    fd = _fires(vd, q[:, None, :])
    if bool((bl < slots).any()):  # slots beyond a sample's BL never fire (one side suffices)
        fd &= (torch.arange(slots, device=x.device)[None, :] < bl[:, None])[:, :, None]
    xu = fx.to(torch.int8)
    du = fd.to(torch.int8)
    xs = xu * torch.sign(x).to(torch.int8)[:, None, :]
    ds = du * torch.sign(d).to(torch.int8)[:, None, :]
    k = batch * slots
    total = _count_matmul(du.view(k, n_out).T.contiguous(), xu.view(k, n_in))
    signed = _count_matmul(ds.view(k, n_out).T.contiguous(), xs.view(k, n_in))
    return 0.5 * (total - signed), 0.5 * (total + signed)


def _mean_counts(x, d, bl, p, q, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected coincidence counts Σ_b BL·p·q per sign, stochastically rounded."""
    px = bl[:, None] * p
    xp, xn = px * (x > 0), px * (x < 0)
    dp, dn = q * (d > 0), q * (d < 0)
    n_down = dp.T @ xp + dn.T @ xn
    n_up = dp.T @ xn + dn.T @ xp
    out = []
    for n in (n_up, n_down):
        u = torch.rand(n.shape, generator=generator, device=n.device)
        out.append(torch.floor(n + u))
    return out[0], out[1]
