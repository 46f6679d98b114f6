"""Apply n_up up-pulses and n_down down-pulses to every device at once.

One pulse moves a device by its family's expected step times (1 + σξ) (cycle-to-cycle noise,
σ = ``dw_min_std``), then clips to the device's own bounds (aihwkit_spec.md §1.6). The pulses
a device receives within one update are taken as evenly interleaved.

*Affine families* (constant-step, linear-step, soft-bounds: step = c − a·w) have a closed form
for any number of pulses. One up pulse is the contraction w → (1 − a⁺)w + c⁺; interleaving
n⁺ of them with n⁻ down pulses is, per device,

    w(τ) = w₀·e^{−Kτ} + C·τ·φ(Kτ),  K = n⁺κ⁺ + n⁻κ⁻,  C = n⁺r⁺c⁺ + n⁻r⁻c⁻,

with κ = −ln(1 − a), r = κ/a (→ 1 as a → 0), φ(x) = (1 − e^{−x})/x and τ ∈ [0, 1] the fraction
of the pulses applied. This is exact for pulses of one direction (w → b + (w₀ − b)(1 − a)ⁿ)
and for constant steps. Each pulse adds cycle-to-cycle noise σ·step(w)·ξ, damped by the
contraction of the pulses after it; the total variance σ²∫₀¹ (n⁺s⁺(τ)² + n⁻s⁻(τ)²)
e^{−2K(1−τ)} dτ is evaluated with the steps at the midpoint state w(½), i.e.
σ²(n⁺s⁺(w(½))² + n⁻s⁻(w(½))²)·φ(2K): exact for K → 0 and within a few per cent of the
variance for K ≲ 1 (K = n·a ≈ 0.6 for 31 pulses on a 100-state soft-bounds device).

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
) -> torch.Tensor:
    """New device states after ``n_up`` up and ``n_down`` down pulses (all shaped like ``w``).

    ``params`` are the population parameters of exactly these devices (tensors shaped like
    ``w`` or scalars), optionally with the cached :func:`affine_coefficients`. Counts are
    non-negative (float or int). Returns a new tensor.
    """
    n_up = n_up.to(w.dtype)
    n_down = n_down.to(w.dtype)
    coef = params if "_ku" in params else affine_coefficients(family, params)
    if coef is not None:
        w_new = _affine(w, n_up, n_down, coef, dw_min_std, generator, mult_noise)
    else:
        w_new = _stepwise(
            family, w, n_up, n_down, params, dw_min_std, generator, max(1, max_substeps)
        )
    return torch.minimum(torch.maximum(w_new, params["b_min"]), params["b_max"])


def _rates(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """κ = −ln(1 − a) and r = κ/a for contraction factors a < 1 (a ≥ 1 overshoots: clip)."""
    a = torch.clamp(a, max=1.0 - 1e-6)
    kappa = -torch.log1p(-a)
    small = a.abs() < _SMALL
    r = torch.where(small, 1.0 + 0.5 * a, kappa / torch.where(small, torch.ones_like(a), a))
    return kappa, r


def _phi(x: torch.Tensor) -> torch.Tensor:
    """(1 − e^{−x})/x for x ≥ 0, continuous at 0 (error ≤ 1e-7 near 0)."""
    x = torch.clamp(x, min=1e-7)
    return torch.expm1(-x).div_(x).neg_()


def _affine(
    w: torch.Tensor,
    n_up: torch.Tensor,
    n_down: torch.Tensor,
    coef: Mapping[str, Any],
    sigma: float,
    generator: torch.Generator | None,
    mult_noise: bool,
) -> torch.Tensor:
    big_k = torch.addcmul(n_up * coef["_ku"], n_down, coef["_kd"])
    big_c = torch.addcmul(n_up * coef["_rcu"], n_down, coef["_rcd"])
    w_det = torch.addcmul(w * torch.exp(-big_k), big_c, _phi(big_k))
    if sigma <= 0:
        return w_det
    cu, cd = coef["_cu"], coef["_cd"]
    if mult_noise:  # steps at the midpoint state w(½)
        half = 0.5 * big_k
        w_mid = torch.addcmul(w * torch.exp(-half), 0.5 * big_c, _phi(half))
        s_up = cu - coef["_au"] * w_mid
        s_down = cd - coef["_ad"] * w_mid
    else:  # additive noise: σ·|c| per pulse
        s_up, s_down = cu, cd
    var = torch.addcmul(n_up * s_up * s_up, n_down * s_down, s_down) * _phi(2.0 * big_k)
    xi = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
    return w_det.addcmul_(torch.sqrt(var), xi, value=sigma)


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
                xi = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
                gain = m + sigma * torch.sqrt(m) * xi
            else:
                gain = m
            w = torch.minimum(torch.maximum(w + step * gain, b_min), b_max)
    return w
