"""Rank-one updates as stochastic pulse trains (REFERENCES.md [R10]).

The desired update is W ← W − η·Σ_b d_b·x_bᵀ. For every sample b, column j (x side) fires in
each of BL slots with probability p_j = min(B·|x_j|, 1) and row i (d side) with
q_i = min(A·|d_i|, 1); each slot where both fire is a *coincidence*: one pulse on device
(i, j), down if sign(x_j)·sign(d_i) > 0, up otherwise. E[#coincidences] = BL·p_j·q_i =
η|x_j||d_i|/ε for a device of granularity ε.

aihwkit applies the rank-one terms of a batch one after another, so a device clipped at a
bound by one sample is pushed off it by the next. The summed counts are exact for a device
whose pulses in the batch all have one sign (and, to second order in the step, for soft
nonlinearities); the tile replays in sample order only the devices that got both signs and
could reach a bound, from their per-sample counts (:func:`sample_counts`, same trains).

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

from simulator.random_streams import uniform16
from simulator.workspace import Workspace, scratch

__all__ = ["PULSE_TYPES", "Trains", "UpdateParameters", "coincidence_counts", "sample_counts"]

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


@dataclass
class Trains:
    """The pulse trains of one batch update (views of workspace buffers: valid until the next
    update): ``xu`` (batch, slots, n_in) and ``du`` (n_out, batch, slots) firing flags,
    ``x_sign`` (batch, n_in) and ``d_sign`` (batch, n_out)."""

    xu: torch.Tensor
    du: torch.Tensor
    x_sign: torch.Tensor
    d_sign: torch.Tensor


def sample_counts(
    trains: Trains, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up and down counts (m, batch) of devices (rows[k], cols[k]) per sample, in order."""
    both = trains.du[rows]  # (m, batch, slots) 0/1 flags
    both.mul_(trains.xu.permute(2, 0, 1)[cols])  # coincidences (0/1: no overflow in int8)
    n = both.sum(dim=2, dtype=torch.float32)  # small integers: exact
    # §1.1: sign(x)·sign(d) > 0 is down; where it is 0 there are no pulses (n = 0)
    sign = (trains.x_sign[:, cols].T * trains.d_sign[:, rows].T).to(torch.float32)
    return n * (-sign).clamp_(min=0.0), n.mul_(sign.clamp_(min=0.0))


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


def _fires(v: torch.Tensor, prob: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Bernoulli(prob) as 0/1 int8 from uniform int16 ``v``: v < prob·2¹⁶ − 2¹⁵.

    The threshold is int16 too (p = 1 then fires with probability 1 − 2⁻¹⁶).
    """
    threshold = torch.clamp(torch.round(prob * 65536.0 - 32768.0), -32768, 32767)
    return torch.lt(v, threshold.to(torch.int16), out=out)


_INT_MM_OK: dict[str, bool] = {}


def _row_major(m: torch.Tensor) -> torch.Tensor:
    if m.stride() == (m.shape[1], 1):
        return m
    return torch.empty(m.shape, dtype=m.dtype, device=m.device).copy_(m)


def _count_matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None):
    """Exact product of int8 matrices with entries in {−1, 0, 1} (int32, or float32).

    Uses the int8 kernel on the CPU; elsewhere float32 with 0/±1 inputs, which is exact (also
    under TF32) up to 2^24 coincidences. ``out`` (int32) is used by the int8 kernel only.
    """
    kind = a.device.type
    if kind == "cpu" and _INT_MM_OK.get(kind, True) and hasattr(torch, "_int_mm"):
        try:  # the int8 kernel reads the leading dimension from stride(0): make it canonical
            return torch._int_mm(_row_major(a), _row_major(b), out=out)
        except RuntimeError:
            _INT_MM_OK[kind] = False
    return a.to(torch.float32) @ b.to(torch.float32)


def coincidence_counts(
    x: torch.Tensor,
    d: torch.Tensor,
    lr: float,
    granularity: float,
    up: UpdateParameters,
    generator: torch.Generator | None,
    workspace: Workspace | None = None,
    trains: list[Trains] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up and down pulse counts (n_out, n_in), float32, for the batch update −lr·dᵀx.

    ``x`` is (B, n_in), ``d`` is (B, n_out); ``granularity`` is ε in weight units. With a
    ``workspace`` the returned tensors are its buffers, overwritten by the next call. A
    ``trains`` list receives the :class:`Trains` of stochastic pulses (for
    :func:`sample_counts`).
    """
    n_out, n_in = d.shape[1], x.shape[1]
    if lr <= 0 or x.shape[0] == 0:
        zeros = torch.zeros(n_out, n_in, device=x.device)
        return zeros, zeros.clone()
    bl, p, q = _probabilities(x, d, float(lr), float(granularity), up)
    if up.pulse_type == "mean-count":
        return _mean_counts(x, d, bl, p, q, generator)

    def buf(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return scratch(workspace, "update." + name, shape, dtype, x.device)

    batch, slots = x.shape[0], int(bl.max().item())
    k = batch * slots
    # x side as (batch, slots, n_in) and d side as (n_out, batch, slots): both matrices of the
    # count product are then row-major views, (batch·slots, n_in) and (n_out, batch·slots).
    v = uniform16(k * (n_in + n_out), generator, x.device)
    xu = buf("xu", (batch, slots, n_in), torch.int8)
    du = buf("du", (n_out, batch, slots), torch.int8)
    _fires(v[: k * n_in].view(batch, slots, n_in), p[:, None, :], xu)
    _fires(v[k * n_in :].view(n_out, batch, slots), q.T[:, :, None], du)
    if bool((bl < slots).any()):  # slots beyond a sample's BL never fire (one side suffices)
        du *= (torch.arange(slots, device=x.device)[None, :] < bl[:, None])[None]
    xs = buf("xs", (batch, slots, n_in), torch.int8)
    ds = buf("ds", (n_out, batch, slots), torch.int8)
    x_sign, d_sign = torch.sign(x).to(torch.int8), torch.sign(d).to(torch.int8)
    torch.mul(xu, x_sign[:, None, :], out=xs)
    torch.mul(du, d_sign.T[:, :, None], out=ds)
    if trains is not None:
        trains.append(Trains(xu, du, x_sign, d_sign))
    xu, du, xs, ds = xu.view(k, n_in), du.view(n_out, k), xs.view(k, n_in), ds.view(n_out, k)
    total = _count_matmul(du, xu, buf("total", (n_out, n_in), torch.int32))
    signed = _count_matmul(ds, xs, buf("signed", (n_out, n_in), torch.int32))
    n_up = torch.sub(total, signed, out=buf("n_up", (n_out, n_in), torch.float32)).mul_(0.5)
    n_down = torch.add(total, signed, out=buf("n_down", (n_out, n_in), torch.float32)).mul_(0.5)
    return n_up, n_down


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
