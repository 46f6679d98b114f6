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

import math
from collections.abc import Mapping
from typing import Any

import torch

from simulator.devices.response import affine_step, expected_step
from simulator.random_streams import normal
from simulator.workspace import Workspace, scratch

__all__ = ["ClosedFormSteps", "affine_coefficients", "apply_equal_counts", "apply_pulse_counts"]

_SMALL = 1e-6  # below this a contraction rate is treated by its series expansion


def affine_coefficients(family: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """Per-device constants of the closed form (None for non-affine families).

    Keys start with ``_`` so that they can live in a population's parameter dict and be
    sliced with it: c±, a± of the step c − a·w, κ± = −ln(1 − a±) and r±c± with r = κ/a;
    ``_constant`` says that every a± is zero (constant steps: a shorter path; a bool, or a
    bool tensor whose elements are all that bool once sliced with the other parameters).
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
        "_constant": all(bool((v == 0).all()) for v in (au, ad, ku, kd)),
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

    if _flag(coef.get("_constant", False)):
        return _constant_steps(w, n_up, n_down, coef, sigma, generator, mult_noise, out, buf)
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
    return result.addcmul_(_sqrt_variance(var), xi, value=sigma)


#: from this many elements on, :func:`_sqrt_variance` keeps zeros away from the square root
_SQRT_ZEROS_FROM = 4096


def _sqrt_variance(var: torch.Tensor) -> torch.Tensor:
    """√max(var, 0) in place. On this CPU build torch's vectorized square root is ~30x
    slower on arrays that contain zeros (every unpulsed device has var = 0), so large
    arrays take √(var + 1)·0 there instead: the same numbers (an exact 0 where var ≤ 0,
    the same correctly rounded root elsewhere)."""
    var.clamp_(min=0.0)
    if var.numel() < _SQRT_ZEROS_FROM or bool(var.amin() > 0):  # (no zeros: the plain root)
        return var.sqrt_()
    positive = torch.sign(var)  # 1 where var > 0, else 0 (float masks: bool ones are slow)
    return var.add_(torch.rsub(positive, 1.0)).sqrt_().mul_(positive)


_ZERO_RATE: dict[tuple[torch.dtype, torch.device], tuple[Any, ...]] = {}


def _zero_rate_factors(dtype: torch.dtype, device: torch.device) -> tuple[Any, ...]:
    """e^{−K}, φ(K), 1 + e^{−K} as :func:`_affine` computes them for K = 0 (0-dim), and
    whether the first two are exactly 1."""
    key = (dtype, device)
    if key not in _ZERO_RATE:
        h = torch.zeros((), dtype=dtype, device=device).add_(1e-12).mul_(-0.5)
        e_k = torch.exp(h)
        phi = torch.expm1(h)
        phi.addcmul_(phi, e_k).div_(h).mul_(0.5)
        e_k.mul_(e_k)
        exact = bool(e_k == 1.0) and bool(phi == 1.0)
        _ZERO_RATE[key] = (e_k, phi, torch.add(e_k, 1.0), exact)
    return _ZERO_RATE[key]


def _constant_steps(w, n_up, n_down, coef, sigma, generator, mult_noise, out, buf):
    """:func:`_affine` when every a± is zero: the same operations (same results bit for bit)
    without those that K = 0 makes constant; in float32 e^{−K} and φ(K) round to 1 exactly,
    so the state and the noise variance skip their products with them."""
    e_k, phi_k, ep1, exact = _zero_rate_factors(w.dtype, w.device)
    big_c = torch.mul(n_up, coef["_rcu"], out=buf("c")).addcmul_(n_down, coef["_rcd"])
    result = out if out is not None else torch.empty_like(w)
    if exact:  # w·1 + c·1 with one rounding: w + c
        torch.add(w, big_c, out=result)
    else:
        torch.mul(w, e_k, out=result).addcmul_(big_c, phi_k)
    if sigma <= 0:
        return result
    cu, cd = coef["_cu"], coef["_cd"]
    if mult_noise:  # step(w) = c for every w
        var = torch.mul(n_up, cu, out=buf("s0")).mul_(cu)
        var.addcmul_(torch.mul(n_down, cd, out=buf("s1")), cd)
    else:
        var = torch.mul(n_up, cu * cu, out=buf("s0")).addcmul_(n_down, cd * cd)
    if not exact:  # (×2 ×0.5 is exact otherwise)
        var.mul_(phi_k).mul_(ep1).mul_(0.5)
    xi = normal(tuple(w.shape), generator, w.device, out=big_c)
    return result.addcmul_(_sqrt_variance(var), xi, value=sigma)


class ClosedFormSteps:
    """Affine families: S updates applied one after another, each exactly as
    :func:`apply_pulse_counts` applies it (the same floating-point operations in the same
    order, hence the same states bit for bit and the same random draws), with everything
    that does not depend on the state computed once for all S.

    ``n_up``, ``n_down``: (S, m) counts of step s for the m devices that ``coef`` (the
    population parameters with the cached :func:`affine_coefficients`, shaped (m,) or
    scalars) describes, in the states' dtype. :meth:`apply` takes step s. Per step that
    leaves 3-4 tensor operations for constant steps or additive noise (the noise is then
    independent of the state as well) and ~15 for multiplicative noise on sloped steps,
    instead of ~35: the per-operation overhead is what a small population pays for.
    """

    def __init__(
        self,
        coef: Mapping[str, Any],
        n_up: torch.Tensor,
        n_down: torch.Tensor,
        sigma: float,
        mult_noise: bool = True,
    ) -> None:
        self.coef, self.sigma = coef, float(sigma)
        self.n_up, self.n_down = n_up, n_down
        self.c = torch.mul(n_up, coef["_rcu"]).addcmul_(n_down, coef["_rcd"])
        cu, cd, au, ad = coef["_cu"], coef["_cd"], coef["_au"], coef["_ad"]
        if "_constant" in coef:
            constant = _flag(coef["_constant"])
        else:
            constant = all(_all_zero(v) for v in (au, ad, coef["_ku"], coef["_kd"]))
        self.exact = False  # e^{−K} = φ(K) = 1 exactly: the state update is w + c
        if constant:  # K = 0 on every device: the factors are _affine's for K = 0
            self.e_k, self.phi, _, self.exact = _zero_rate_factors(n_up.dtype, n_up.device)
        else:
            big_k = torch.mul(n_up, coef["_ku"]).addcmul_(n_down, coef["_kd"])
            h = big_k.add_(1e-12).mul_(-0.5)  # as _affine: e^{−K}, φ(K) from h = −K/2
            e_k = torch.exp(h)
            phi = torch.expm1(h)
            self.phi = phi.addcmul_(phi, e_k).div_(h).mul_(0.5)
            self.e_k = e_k.mul_(e_k)
        self.damping = torch.add(self.e_k, 1.0).mul_(0.5)  # φ(2K)/φ(K); ×0.5 is exact
        self.sd: torch.Tensor | None = None  # σ-free noise amplitude when state-independent
        self._xi: torch.Tensor | None = None
        self._rows: dict[int, tuple] = {}
        self.stateful = False
        if self.sigma <= 0:
            return
        if not mult_noise:
            var = torch.mul(n_up, cu * cu).addcmul_(n_down, cd * cd)
        elif constant:  # step(w) = c exactly
            var = torch.mul(n_up, cu).mul_(cu).addcmul_(torch.mul(n_down, cd), cd)
        else:
            self.stateful = True
            return
        if not self.exact:  # (×1, ×2·0.5 are exact)
            var.mul_(self.phi).mul_(self.damping)
        self.sd = _sqrt_variance(var)

    def _step(self, s: int) -> tuple:
        """Step s's rows, and its noise terms (c, a, n or None for one pulse) when the noise
        depends on the state (a direction without pulses adds an exact zero: left out)."""
        if s not in self._rows:
            terms = []
            if self.stateful:
                p = self.coef
                for c, a, n in (
                    (p["_cu"], p["_au"], self.n_up[s]),
                    (p["_cd"], p["_ad"], self.n_down[s]),
                ):
                    if bool((n != 0).any()):
                        terms.append((c, a, None if bool((n == 1).all()) else n))  # ×1 is exact
            rows = [v if v.dim() < 2 else v[s] for v in (self.e_k, self.phi, self.damping)]
            sd = None if self.sd is None else self.sd[s]
            self._rows[s] = (*rows, self.c[s], sd, terms)
        return self._rows[s]

    def apply(
        self, s: int, w: torch.Tensor, generator: torch.Generator | None, out: torch.Tensor
    ) -> torch.Tensor:
        """States after step ``s`` from ``w`` (written to ``out``, which must not be ``w``),
        clipped to the bounds."""
        e_k, phi, damping, c, sd, terms = self._step(s)
        if self.exact:  # w·1 + c·1 with one rounding
            result = torch.add(w, c, out=out)
        else:
            result = torch.mul(w, e_k, out=out).addcmul_(c, phi)
        if self.sigma > 0:
            if sd is None:  # √var with the squared step step(w₀)·step(w₁) of _affine
                var = None
                for c_, a, n in terms:
                    start = torch.addcmul(c_, a, w, value=-1.0)
                    if n is not None:
                        start.mul_(n)
                    end = torch.addcmul(c_, a, result, value=-1.0)
                    var = start.mul_(end) if var is None else var.addcmul_(start, end)
                if var is None:
                    var = torch.zeros_like(w)
                sd = _sqrt_variance(var.mul_(phi).mul_(damping))
            if self._xi is None:  # drawn in the states' dtype, as _affine draws them
                self._xi = torch.empty_like(w)
            xi = normal(tuple(w.shape), generator, w.device, out=self._xi)
            result.addcmul_(sd, xi, value=self.sigma)
        return result.clamp_(min=self.coef["b_min"], max=self.coef["b_max"])


def _flag(v: Any) -> bool:
    """A bool kept as a Python bool or as a tensor of equal elements (empty: False)."""
    if torch.is_tensor(v):
        return v.numel() > 0 and bool(v.reshape(-1)[0])
    return bool(v)


def _all_zero(v: Any) -> bool:
    return bool((torch.as_tensor(v) == 0).all())


def apply_equal_counts(
    family: str,
    w: torch.Tensor,
    n_up: float,
    n_down: float,
    params: Mapping[str, Any],
    dw_min_std: float,
    generator: torch.Generator | None,
    max_substeps: int = 32,
) -> torch.Tensor:
    """Non-affine families: :func:`apply_pulse_counts` with the same ``n_up``/``n_down`` on
    every device (a pulse-and-read protocol), faster and with the same numbers bit for bit.

    The same operations on the states as the pulse loop; the per-substep counts (equal on
    every device) are computed once, and a direction without a pulse in a substep only draws
    its random numbers (its gain is an exact zero). The result is clipped to the bounds.
    """
    dtype, device = w.dtype, w.device
    n_steps = min(math.ceil(max(n_up, n_down)), max(1, max_substeps))
    b_min, b_max = params["b_min"], params["b_max"]
    if n_steps == 0:
        return torch.clamp(w, min=b_min, max=b_max)
    noisy = dw_min_std > 0
    for up, m, scale in _substeps(n_up, n_down, n_steps, dw_min_std, dtype, device):
        xi = normal(tuple(w.shape), generator, device) if noisy else None
        if m is None:  # no pulse of this direction in this substep
            continue
        gain = m if xi is None else m + scale * xi
        w = torch.clamp(w + expected_step(family, w, up, params) * gain, min=b_min, max=b_max)
    return w


_SUBSTEPS: dict[tuple, list] = {}


def _substeps(n_up, n_down, n_steps, sigma, dtype, device) -> list:
    """(up, m, σ·√m) for every substep and direction in :func:`_stepwise`'s order, with m
    the pulses due (one-element tensors computed as _stepwise computes them; m None for
    none); cached, since a protocol repeats a few counts."""
    key = (n_up, n_down, n_steps, sigma, dtype, device)
    if key not in _SUBSTEPS:
        one = torch.ones(1, dtype=dtype, device=device)
        counts = {True: one * n_up, False: one * n_down}
        plan = []
        for t in range(n_steps):
            for up in (True, False) if t % 2 == 0 else (False, True):
                n = counts[up]
                m = torch.floor((t + 1) * n / n_steps) - torch.floor(t * n / n_steps)
                plan.append((up, None if float(m) == 0.0 else m, sigma * torch.sqrt(m)))
        if len(_SUBSTEPS) > 256:
            _SUBSTEPS.clear()
        _SUBSTEPS[key] = plan
    return _SUBSTEPS[key]


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
