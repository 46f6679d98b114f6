"""Apply n_up up-pulses and n_down down-pulses to every device at once.

One pulse moves a device by its family's expected step times (1 + σξ) (cycle-to-cycle noise,
σ = ``dw_min_std``), then clips to the device's own bounds (REFERENCES.md [R4]). The pulses
a device receives within one update are taken as evenly interleaved.

*Affine families* (constant-step, linear-step, soft-bounds: step = c − a·w) have a closed form
for any number of pulses. One up pulse is the contraction w → (1 − a⁺)w + c⁺; interleaving
n⁺ of them with n⁻ down pulses is, per device,

    w(τ) = w₀·e^{−Kτ} + C·τ·φ(Kτ),  K = n⁺κ⁺ + n⁻κ⁻,  C = n⁺r⁺c⁺ + n⁻r⁻c⁻,

with κ = −ln(1 − a), r = κ/a (→ 1 as a → 0), φ(x) = (1 − e^{−x})/x and τ ∈ [0, 1] the fraction
of the pulses applied. This is exact for pulses of one direction (w → b + (w₀ − b)(1 − a)ⁿ)
and for constant steps. Each pulse adds cycle-to-cycle noise σ·step(w)·ξ, damped by the
contraction of the pulses after it; the total variance σ²∫₀¹ (n⁺s⁺(τ)² + n⁻s⁻(τ)²)
e^{−2K(1−τ)} dτ is evaluated with the squared step at the midpoint taken as
step(w₀)·step(w_end), i.e. σ²(n⁺s⁺(w₀)s⁺(w₁) + n⁻s⁻(w₀)s⁻(w₁))·φ(2K): exact for K → 0 and
within a few per cent of the variance for K ≲ 1 (K = n·a ≈ 0.6 for 31 pulses on a
100-state soft-bounds device).

*Other families* (exp-step, pow-step, piecewise-step) loop over the pulse index, vectorized
over devices: at most ``max_substeps`` iterations, each applying the pulses due in it. When a
device gets more pulses than ``max_substeps`` they are grouped m at a time
(Δw = m·step(w)·(1 + σξ/√m)), an Euler step whose error is O(m·step²·|d step/dw|).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from simulator.devices.response import affine_step, expected_step
from simulator.random_streams import normal
from simulator.workspace import Workspace, scratch

__all__ = ["affine_coefficients", "apply_pulse_counts"]

_SMALL = 1e-6  # below this a contraction rate is treated by its series expansion


def affine_coefficients(family: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """Per-device constants of the closed form (None for non-affine families).

    Keys start with ``_`` so that they can live in a population's parameter dict and be
    sliced with it: c±, a± of the step c − a·w, κ± = −ln(1 − a±) and r±c± with r = κ/a.
    """
    coef_up = affine_step(family, True, params)
    if coef_up is None:
        return None
    (cu, au), (cd, ad) = coef_up, affine_step(family, False, params)
    ku, ru = _rates(torch.as_tensor(au))
    kd, rd = _rates(torch.as_tensor(ad))
    cu, au, cd, ad = (torch.as_tensor(v) for v in (cu, au, cd, ad))
    return {
        "_cu": cu,
        "_au": au,
        "_cd": cd,
        "_ad": ad,
        "_ku": ku,
        "_kd": kd,
        "_rcu": ru * cu,
        "_rcd": rd * cd,
    }


def apply_pulse_counts(
    family: str,
    w: torch.Tensor,
    n_up: torch.Tensor,
    n_down: torch.Tensor,
    params: Mapping[str, Any],
    dw_min_std: float,
    generator: torch.Generator | None,
    mult_noise: bool = True,
    max_substeps: int = 32,
    out: torch.Tensor | None = None,
    workspace: Workspace | None = None,
) -> torch.Tensor:
    """New device states after ``n_up`` up and ``n_down`` down pulses (all shaped like ``w``).

    ``params`` are the population parameters of exactly these devices (tensors shaped like
    ``w`` or scalars), optionally with the cached :func:`affine_coefficients`. Counts are
    non-negative (float or int). The result goes to ``out`` (may be ``w`` itself: an
    in-place update) or a new tensor; ``workspace`` holds the temporaries.
    """
    n_up = n_up.to(w.dtype)
    n_down = n_down.to(w.dtype)
    coef = params if "_ku" in params else affine_coefficients(family, params)
    if coef is not None:
        w_new = _affine(w, n_up, n_down, coef, dw_min_std, generator, mult_noise, out, workspace)
    else:
        w_new = _stepwise(
            family, w, n_up, n_down, params, dw_min_std, generator, max(1, max_substeps)
        )
        if out is not None:
            w_new = out.copy_(w_new)
    return w_new.clamp_(min=params["b_min"], max=params["b_max"])


def _rates(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """κ = −ln(1 − a) and r = κ/a for contraction factors a < 1 (a ≥ 1 overshoots: clip)."""
    a = torch.clamp(a, max=1.0 - 1e-6)
    kappa = -torch.log1p(-a)
    small = a.abs() < _SMALL
    r = torch.where(small, 1.0 + 0.5 * a, kappa / torch.where(small, torch.ones_like(a), a))
    return kappa, r


def _affine(
    w: torch.Tensor,
    n_up: torch.Tensor,
    n_down: torch.Tensor,
    coef: Mapping[str, Any],
    sigma: float,
    generator: torch.Generator | None,
    mult_noise: bool,
    out: torch.Tensor | None,
    workspace: Workspace | None,
) -> torch.Tensor:
    def buf(name: str) -> torch.Tensor:
        return scratch(workspace, "pulses." + name, tuple(w.shape), w.dtype, w.device)

    big_k = torch.mul(n_up, coef["_ku"], out=buf("k")).addcmul_(n_down, coef["_kd"])
    big_c = torch.mul(n_up, coef["_rcu"], out=buf("c")).addcmul_(n_down, coef["_rcd"])
    # e^{−K} and φ(K) = (1 − e^{−K})/K from one exp and one expm1 of h = −K/2, using
    # φ(K) = expm1(2h)/(2h) = expm1(h)(e^h + 1)/(2h) (no cancellation for small K); the
    # 1e-12 offset makes K = 0 (no pulses, or constant steps) give φ = 1 exactly.
    h = big_k.add_(1e-12).mul_(-0.5)
    e_k = torch.exp(h, out=buf("e"))
    phi_k = torch.expm1(h, out=buf("phi"))
    phi_k.addcmul_(phi_k, e_k).div_(h).mul_(0.5)
    e_k.mul_(e_k)
    cu, cd = coef["_cu"], coef["_cd"]
    noisy = sigma > 0
    if noisy and mult_noise:  # steps at the start (needs w before it is overwritten)
        var = torch.addcmul(cu, coef["_au"], w, value=-1.0, out=buf("s0")).mul_(n_up)
        s_down = torch.addcmul(cd, coef["_ad"], w, value=-1.0, out=buf("s1")).mul_(n_down)
    result = out if out is not None else torch.empty_like(w)
    torch.mul(w, e_k, out=result).addcmul_(big_c, phi_k)  # deterministic w(1)
    if not noisy:
        return result
    if mult_noise:
        # squared step at the midpoint ≈ step(w₀)·step(w_end) (exact for one direction)
        step_end = torch.addcmul(cu, coef["_au"], result, value=-1.0, out=h)
        var.mul_(step_end)
        torch.addcmul(cd, coef["_ad"], result, value=-1.0, out=step_end)
        var.addcmul_(s_down, step_end)
    else:  # additive noise: σ·|c| per pulse
        var = torch.mul(n_up, cu * cu, out=buf("s0")).addcmul_(n_down, cd * cd)
    var.mul_(phi_k).mul_(e_k.add_(1.0)).mul_(0.5)  # damping φ(2K) = φ(K)·(1 + e^{−K})/2
    xi = normal(tuple(w.shape), generator, w.device, out=big_c)
    return result.addcmul_(var.clamp_(min=0.0).sqrt_(), xi, value=sigma)


def _stepwise(
    family: str,
    w: torch.Tensor,
    n_up: torch.Tensor,
    n_down: torch.Tensor,
    params: Mapping[str, Any],
    sigma: float,
    generator: torch.Generator | None,
    max_substeps: int,
) -> torch.Tensor:
    total = torch.maximum(n_up, n_down)
    if total.numel() == 0:
        return w.clone()
    n_steps = min(int(torch.ceil(total.max()).item()), max_substeps)
    b_min, b_max = params["b_min"], params["b_max"]
    w = w.clone()
    for t in range(n_steps):  # loop over the pulse index only, vectorized over devices
        m_up = torch.floor((t + 1) * n_up / n_steps) - torch.floor(t * n_up / n_steps)
        m_down = torch.floor((t + 1) * n_down / n_steps) - torch.floor(t * n_down / n_steps)
        order = (True, False) if t % 2 == 0 else (False, True)
        for up in order:
            m = m_up if up else m_down
            step = expected_step(family, w, up, params)
            if sigma > 0:
                xi = normal(tuple(w.shape), generator, w.device)
                gain = m + sigma * torch.sqrt(m) * xi
            else:
                gain = m
            w = torch.minimum(torch.maximum(w + step * gain, b_min), b_max)
    return w
