"""Analog tiles: weight matrices held as device states, read by noisy MVMs, written by pulses.

* :class:`PulsedTile` is a bare ``out_size x in_size`` device array of one family: states in
  weight units, device-to-device parameters, pulses through the response function
  (:mod:`simulator.devices.pulses`), write noise.
* :class:`TileBase` holds what every tile shares: forward/backward MVMs through the periphery
  (:mod:`simulator.periphery`), weight-noise injection for hardware-aware training, programmed
  inference weights and the drift-compensation factor.
* :class:`AnalogTile` is an in-memory-SGD tile: one device per weight against a reference, a
  differential one-sided pair, or an ideal floating-point weight; updates are stochastic pulse
  trains (:mod:`simulator.update`).

Everything is vectorized over devices and over the batch; the only Python loops are over the
pulse index (families without a closed form), bound-management iterations and refresh rounds.
"""

from __future__ import annotations

from typing import Any

import torch

from simulator.config import AnalogConfig
from simulator.devices.config import DevicePopulation, PulsedDeviceConfig
from simulator.devices.pulses import (
    ClosedFormSteps,
    affine_coefficients,
    apply_pulse_counts,
)
from simulator.devices.response import (
    AFFINE_FAMILIES,
    expected_step,
    granularity,
    symmetry_point,
)
from simulator.inference import InferenceState, modify_weights
from simulator.periphery import analog_mvm
from simulator.random_streams import make_generator, normal
from simulator.update import Trains, coincidence_counts, sample_counts
from simulator.workspace import Workspace

__all__ = ["AnalogTile", "PulsedTile", "TileBase", "check_matrix"]

#: the parameters the closed form of the affine families reads (simulator.devices.pulses)
_CLOSED_FORM_KEYS = (
    "b_min", "b_max", "_cu", "_cd", "_au", "_ad", "_ku", "_kd", "_rcu", "_rcd", "_constant",
)  # fmt: skip


def check_matrix(t: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    """ValueError if ``t`` has the wrong shape or non-finite entries."""
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{what} of shape {tuple(t.shape)} does not match {tuple(shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or inf")


def _new_generator(device: torch.device, seed: int) -> torch.Generator:
    return make_generator(device, seed)


class PulsedTile:
    """``out_size x in_size`` devices of one family, with their own noise generator.

    ``w`` holds the persistent device states (weight units). With ``write_noise_std`` > 0 the
    states read by :meth:`weights` carry a non-accumulating offset
    ``write_noise_std·dw_min·ξ``, redrawn for a device whenever it is pulsed or set
    (REFERENCES.md [R5]). Device-to-device parameters are drawn on the CPU from ``seed``, so
    a tile is the same on every torch device.
    """

    def __init__(
        self,
        out_size: int,
        in_size: int,
        config: PulsedDeviceConfig,
        seed: int = 0,
        device: torch.device | str = "cpu",
        max_substeps: int = 32,
    ) -> None:
        self.shape = (int(out_size), int(in_size))
        self.config = config
        self.device = torch.device(device)
        self.max_substeps = max_substeps
        gen = torch.Generator().manual_seed(int(seed))
        self.population = DevicePopulation.sample(config, self.shape, gen).to(self.device)
        coef = affine_coefficients(config.family, self.population.params)
        self._affine = coef is not None
        if coef is not None:  # cached constants of the closed form, sliced with the params
            shape = self.shape
            self.population.params.update(
                {k: torch.as_tensor(v).expand(shape).clone() for k, v in coef.items()}
            )
        self._noise = _new_generator(self.device, seed + 1)
        self.granularity = granularity(config.family, dataclass_params(config))
        self._moves_at_bounds = self._steps_at_bounds()  # (up, down) masks
        self._any_stuck = bool(self.population.stuck.any())
        self._hits_bounds = bool((self._moves_at_bounds[0] | self._moves_at_bounds[1]).any())
        self._slope_sign = {  # of the affine slopes a±: 0 (all zero), 1 (all ≥ 0) or -1 (mixed)
            k: (0 if bool((v == 0).all()) else 1 if bool((v >= 0).all()) else -1)
            for k, v in self.population.params.items()
            if k in ("_au", "_ad")
        }
        self.dw_min = self.granularity
        self.w = torch.zeros(self.shape, device=self.device)
        self._apparent: torch.Tensor | None = None
        self.workspace = Workspace()
        self.set_weights(torch.zeros(self.shape))

    # ------------------------------------------------------------------ state
    @property
    def b_max(self) -> torch.Tensor:
        return self.population.params["b_max"]

    @property
    def b_min(self) -> torch.Tensor:
        return self.population.params["b_min"]

    def set_weights(self, weights: torch.Tensor) -> None:
        """Program device states directly (clipped to each device's bounds).

        ``weights`` are apparent states: a device's reference offset (``reference``,
        families.REFERENCE_FIELD) is taken off before clipping to its physical bounds.
        """
        check_matrix(weights, self.shape, "weights")
        w = weights.to(self.device, torch.float32)
        ref = self.population.params.get("reference")
        w = w if ref is None else w - ref
        self.w = torch.minimum(torch.maximum(w, self.b_min), self.b_max)
        self._redraw_write_noise(None)

    def weights(self) -> torch.Tensor:
        """The device states the periphery reads (with write noise when configured, plus each
        device's reference offset when the population has one).

        Without write noise and offset this is the live state tensor (updated in place by
        pulses).
        """
        w = self.w if self._apparent is None else self._apparent
        ref = self.population.params.get("reference")
        return w if ref is None else w + ref

    def _redraw_write_noise(self, touched: torch.Tensor | None) -> None:
        std = self.config.write_noise_std * self.config.dw_min
        if std <= 0:
            self._apparent = None
            return
        fresh = self.w + std * normal(self.shape, self._noise, self.device)
        if touched is None or self._apparent is None:
            self._apparent = fresh
        else:
            self._apparent = torch.where(touched, fresh, self._apparent)

    def reset(self, mask: torch.Tensor) -> None:
        """Reset the devices in ``mask`` to their reset bias (+ ``reset_std``·ξ)."""
        noise = torch.randn(self.shape, generator=self._noise, device=self.device)
        target = self.population.params["reset_bias"] + self.config.reset_std * noise
        target = torch.minimum(torch.maximum(target, self.b_min), self.b_max)
        self.w = torch.where(mask, target, self.w)
        self._redraw_write_noise(mask)

    # ------------------------------------------------------------------ pulses
    def apply_pulses(self, counts: torch.Tensor) -> None:
        """Apply ``counts[i, j]`` pulses to device (i, j): positive up, negative down."""
        check_matrix(counts.to(torch.float32), self.shape, "pulse counts")
        counts = counts.to(self.device, torch.float32)
        self.apply_pulse_counts(counts.clamp(min=0), (-counts).clamp(min=0))

    def apply_pulse_counts(
        self, n_up: torch.Tensor, n_down: torch.Tensor, cols: torch.Tensor | None = None
    ) -> None:
        """Apply ``n_up`` up and ``n_down`` down pulses per device (evenly interleaved).

        With ``cols`` (distinct column indices) the counts are (out_size, len(cols)) and only
        those columns are pulsed.
        """
        n_up = n_up.to(self.device, torch.float32)
        n_down = n_down.to(self.device, torch.float32)
        stuck = self.population.stuck
        if cols is None:
            w, params = self.w, self.population.params
        else:
            cols = cols.to(self.device)
            w, stuck = self.w[:, cols], stuck[:, cols]
            params = {
                k: v[:, cols] if torch.is_tensor(v) else v
                for k, v in self.population.params.items()
            }
        family = self.config.family
        args = (self.config.dw_min_std, self._noise, self.config.mult_noise, self.max_substeps)
        write_noise = self.config.write_noise_std > 0
        touched = None
        if write_noise or family not in AFFINE_FAMILIES:
            # stuck devices (b⁻ = b⁺) do nothing, and must not enter the non-affine rules
            touched = ((n_up + n_down) > 0) & ~stuck
        if touched is None and cols is None:  # closed form in place on every device
            apply_pulse_counts(
                family, w, n_up, n_down, params, *args, out=w, workspace=self.workspace
            )
            return
        if touched is None:  # a column subset: closed form on its devices
            new = apply_pulse_counts(family, w, n_up, n_down, params, *args)
        elif not bool(touched.any()):
            return
        elif family in AFFINE_FAMILIES:
            new = apply_pulse_counts(family, w, n_up, n_down, params, *args)
        else:  # stepwise family: loop only over the devices that are pulsed
            idx = touched.reshape(-1).nonzero().squeeze(1)
            sub = {k: v.reshape(-1)[idx] if torch.is_tensor(v) else v for k, v in params.items()}
            flat = w.reshape(-1)
            changed = apply_pulse_counts(
                family, flat[idx], n_up.reshape(-1)[idx], n_down.reshape(-1)[idx], sub, *args
            )
            new = flat.clone()
            new[idx] = changed
            new = new.reshape(w.shape)
        if cols is None:
            self.w = new
        else:
            self.w[:, cols] = new
        if write_noise:
            if cols is None:
                self._redraw_write_noise(touched)
            else:
                mask = torch.zeros(self.shape, dtype=torch.bool, device=self.device)
                mask[:, cols] = touched
                self._redraw_write_noise(mask)

    def _steps_at_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Devices whose up (down) step does not vanish at their upper (lower) bound, so that
        they can reach it (two masks; the parameters do not change, so they are kept)."""
        p, tol = self.population.params, 1e-6 * self.granularity
        up = expected_step(self.config.family, self.b_max, True, p)
        down = expected_step(self.config.family, self.b_min, False, p)
        return up > tol, down < -tol

    def apply_pulse_counts_in_order(
        self, n_up: torch.Tensor, n_down: torch.Tensor, trains: Trains
    ) -> None:
        """A batch's pulses, with aihwkit's sample order where the order matters.

        ``n_up``/``n_down`` are the batch's summed counts and ``trains`` the pulse trains they
        came from. Devices that got pulses of both signs and could reach a bound within the
        batch are replayed sample by sample from their own per-sample counts; all others take
        the summed counts (exact for pulses of one sign; soft nonlinearities to second order
        in the step). "Could reach": 1 + 3σ times their count in one direction, noise-free,
        would end at or beyond the bound (affine families: the closed form; others: their
        largest step on the way times the count). A device whose step vanishes at its bound
        (soft bounds, pow-step) approaches it without reaching it and is never replayed, nor
        is a tile without any other device (no cost there).
        """
        if not self._hits_bounds:  # e.g. soft bounds: the steps vanish at the bounds
            self.apply_pulse_counts(n_up, n_down)
            return
        mixed = torch.minimum(n_up, n_down) > 0  # pulses of both signs (counts are ≥ 0)
        if self._any_stuck:
            mixed &= ~self.population.stuck
        if not bool(mixed.any()):
            self.apply_pulse_counts(n_up, n_down)
            return
        margin = 1.0 + 3.0 * self.config.dw_min_std
        up_margin, down_margin = n_up * margin, n_down * margin
        if self.config.family in AFFINE_FAMILIES:
            near = mixed & self._may_reach_bound(up_margin, down_margin)
            ridx = near.reshape(-1).nonzero().squeeze(1)
            if ridx.numel():
                ridx = ridx[self._reaches_bound(ridx, up_margin, down_margin)]
        else:
            ridx = self._may_reach_bound_stepwise(mixed, up_margin, down_margin)
        if ridx.numel() == 0:
            self.apply_pulse_counts(n_up, n_down)
            return
        n_in = self.shape[1]
        ups, downs = sample_counts(trains, ridx // n_in, ridx % n_in)
        n_up, n_down = n_up.clone(), n_down.clone()
        n_up.view(-1)[ridx] = 0.0  # the bulk pass leaves the replayed devices alone
        n_down.view(-1)[ridx] = 0.0
        self.apply_pulse_counts(n_up, n_down)
        sub = self._flat_params(ridx, _CLOSED_FORM_KEYS if self._affine else None)
        wr = self.w.reshape(-1)[ridx]
        wr = self._replay(wr, ups, downs, sub)
        self.w = self.w.contiguous()
        self.w.view(-1)[ridx] = wr
        if self.config.write_noise_std > 0:
            touched = torch.zeros(self.shape, dtype=torch.bool, device=self.device)
            touched.view(-1)[ridx] = True
            self._redraw_write_noise(touched)

    def _replay(
        self, w: torch.Tensor, ups: torch.Tensor, downs: torch.Tensor, sub: dict[str, Any]
    ) -> torch.Tensor:
        """States ``w`` (m,) after the per-sample counts ``ups``/``downs`` (m, batch), one
        sample after another (a sample without pulses on any of them is skipped). Affine
        families take the closed form's state-independent factors for all samples at once
        (:class:`ClosedFormSteps`, bit-identical to one :func:`apply_pulse_counts` per sample).
        """
        pulsed = ((ups + downs) > 0).any(dim=0).tolist()
        sigma, mult = self.config.dw_min_std, self.config.mult_noise
        if self._affine:  # the cached closed-form constants are in the params
            steps = ClosedFormSteps(sub, ups.T.contiguous(), downs.T.contiguous(), sigma, mult)
            buffers = (torch.empty_like(w), torch.empty_like(w))
            active = [b for b, on in enumerate(pulsed) if on]
            for k, b in enumerate(active):
                w = steps.apply(b, w, self._noise, out=buffers[k % 2])
            return w
        args = (sigma, self._noise, mult, self.max_substeps)
        for b in (b for b, on in enumerate(pulsed) if on):
            w = apply_pulse_counts(self.config.family, w, ups[:, b], downs[:, b], sub, *args)
        return w

    def _may_reach_bound(self, n_up: torch.Tensor, n_down: torch.Tensor) -> torch.Tensor:
        """Affine families (step c − a·w), a cheap first test: could n one-direction pulses
        reach a bound? The steps shrink towards the bound when a ≥ 0, so n steps move at most
        n times the step at w; when a < 0 they grow, and the step at the bound caps them."""
        p, w = self.population.params, self.w
        reach = []
        for n, c, a, bound in (
            (n_up, "_cu", "_au", self.b_max),
            (n_down, "_cd", "_ad", self.b_min),
        ):
            if self._slope_sign[a] == 0:  # constant steps
                step = p[c]
            elif self._slope_sign[a] > 0:
                step = torch.addcmul(p[c], p[a], w, value=-1.0)
            else:
                step = p[c] - p[a] * torch.where(p[a] > 0, w, bound)
            reach.append(torch.addcmul(w, n, step))
        return (reach[0] >= self.b_max) | (reach[1] <= self.b_min)

    def _reaches_bound(
        self, idx: torch.Tensor, n_up: torch.Tensor, n_down: torch.Tensor
    ) -> torch.Tensor:
        """Affine families, devices ``idx``: do n noise-free one-direction pulses end at a bound?

        n pulses of w → (1 − a)w + c end at w·e^{−K} + n·r·c·φ(K), K = n·κ (the closed form
        of :mod:`simulator.devices.pulses`, cached ``_k*``, ``_rc*``). A soft-bounds device
        approaches its bound without reaching it, so it is not replayed.
        """
        p = self._flat_params(idx, ("b_max", "b_min", "_ku", "_kd", "_rcu", "_rcd"))
        w = self.w.reshape(-1)[idx]

        def end(n: torch.Tensor, kappa: torch.Tensor, rc: torch.Tensor) -> torch.Tensor:
            k = n * kappa
            phi = torch.where(k > 1e-6, -torch.expm1(-k) / k.clamp(min=1e-6), 1.0 - 0.5 * k)
            return w * torch.exp(-k) + n * rc * phi

        tol = 1e-6 * (p["b_max"] - p["b_min"])
        up = end(n_up.reshape(-1)[idx], p["_ku"], p["_rcu"]) >= p["b_max"] - tol
        down = end(n_down.reshape(-1)[idx], p["_kd"], p["_rcd"]) <= p["b_min"] + tol
        moves_up, moves_down = (m.reshape(-1)[idx] for m in self._moves_at_bounds)
        return (up & moves_up) | (down & moves_down)

    def _may_reach_bound_stepwise(
        self, mixed: torch.Tensor, n_up: torch.Tensor, n_down: torch.Tensor
    ) -> torch.Tensor:
        """Flat indices of mixed devices whose largest step times their count reaches a bound."""
        idx = mixed.reshape(-1).nonzero().squeeze(1)
        sub = self._flat_params(idx)
        w = self.w.reshape(-1)[idx]
        b_min, b_max = sub["b_min"], sub["b_max"]

        def largest(up: bool) -> torch.Tensor:
            steps = [expected_step(self.config.family, v, up, sub).abs() for v in (b_min, w, b_max)]
            return torch.maximum(torch.maximum(steps[0], steps[1]), steps[2])

        risky = (w + n_up.reshape(-1)[idx] * largest(True) >= b_max) | (
            w - n_down.reshape(-1)[idx] * largest(False) <= b_min
        )
        return idx[risky]

    def _flat_params(
        self, idx: torch.Tensor, keys: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """The population parameters (or those named by ``keys``) of the devices at flat
        indices ``idx``."""
        params = self.population.params
        return {
            k: v.reshape(-1)[idx] if torch.is_tensor(v) and v.shape == self.shape else v
            for k, v in params.items()
            if keys is None or k in keys
        }

    def expected_step(self, up: bool) -> torch.Tensor:
        """Expected signed step of one pulse at the current states (noise-free)."""
        return expected_step(self.config.family, self.w, up, self.population.params)

    def to(self, device: torch.device | str) -> PulsedTile:
        device = torch.device(device)
        if device == self.device:
            return self
        seed = int(torch.randint(2**62, (1,), generator=self._noise, device=self.device).item())
        self.population = self.population.to(device)
        self._moves_at_bounds = tuple(m.to(device) for m in self._moves_at_bounds)
        self.w = self.w.to(device)
        self._apparent = None if self._apparent is None else self._apparent.to(device)
        self._noise = _new_generator(device, seed)
        self.workspace.clear()
        self.device = device
        return self


def dataclass_params(config: PulsedDeviceConfig) -> dict:
    """The config's fields as a plain dict."""
    return {k: getattr(config, k) for k in config.__dataclass_fields__}


class TileBase:
    """Forward/backward MVMs, weight noise and inference state shared by all tiles."""

    def __init__(
        self,
        out_size: int,
        in_size: int,
        config: AnalogConfig,
        seed: int,
        device: torch.device | str,
    ) -> None:
        self.shape = (int(out_size), int(in_size))
        self.config = config
        self.device = torch.device(device)
        self.seed = int(seed)
        self.generator = _new_generator(self.device, seed * 7919 + 17)
        self.training = True
        self.inference: InferenceState | None = None
        self._modified: torch.Tensor | None = None
        self._w_forward: torch.Tensor | None = None

    # -------------------------------------------------- to be provided by tiles
    def effective_weights(self) -> torch.Tensor:
        raise NotImplementedError

    def set_weights(self, weights: torch.Tensor) -> None:
        raise NotImplementedError

    def update(self, x: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        raise NotImplementedError

    def _move(self, device: torch.device) -> None:
        raise NotImplementedError

    # -------------------------------------------------- shared
    def get_weights(self) -> torch.Tensor:
        """A copy of the weights the tile realizes (weight units)."""
        return self.effective_weights().clone()

    def forward_weights(self) -> torch.Tensor:
        """Weights the forward pass uses now: inference, noise-injected, or the device's."""
        if not self.training and self.inference is not None:
            return self.inference.weights
        mod = self.config.modifier
        if mod.type != "none" and (self.training or mod.enable_during_test):
            if self._modified is None:
                self._modified = modify_weights(
                    self.effective_weights(), mod, self.config.noise_model, self.generator
                )
            return self._modified
        return self.effective_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = W·x through the forward periphery; x is (B, in_size)."""
        w = self.forward_weights()
        self._w_forward = w if self.training else None
        y = analog_mvm(x, w, self.config.forward, self.generator)
        if not self.training and self.inference is not None:
            y = y * self.inference.alpha
        return y

    def backward(self, d: torch.Tensor) -> torch.Tensor:
        """Wᵀ·d through the backward periphery (no bound management); d is (B, out_size)."""
        w = self._w_forward if self._w_forward is not None else self.forward_weights()
        return analog_mvm(d, w.T, self.config.backward, self.generator, bound_management=False)

    def post_update(self) -> None:
        """Forget per-mini-batch state (the injected weight noise is redrawn next time)."""
        self._modified = None
        self._w_forward = None

    def to(self, device: torch.device | str) -> TileBase:
        device = torch.device(device)
        if device == self.device:
            return self
        seed = int(torch.randint(2**62, (1,), generator=self.generator, device=self.device))
        self._move(device)
        if self.inference is not None:
            self.inference = self.inference.to(device)
        self._modified = None
        self._w_forward = None
        self.generator = _new_generator(device, seed)
        self.device = device
        return self


class AnalogTile(TileBase):
    """In-memory SGD tile (aihwkit ``SingleRPUConfig`` / ``OneSidedUnitCell``).

    Weight = device state − reference (``cell="single"``), or w⁺ − w⁻ of a one-sided pair
    (``cell="pair"``), or a float (``device=None``). :meth:`update` turns −lr·dᵀx into
    stochastic pulse trains with the update management of ``config.update``.
    """

    def __init__(
        self,
        out_size: int,
        in_size: int,
        config: AnalogConfig,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(out_size, in_size, config, seed, device)
        self.arrays: list[PulsedTile] = []
        self.reference = torch.zeros(self.shape, device=self.device)
        self._float_w = torch.zeros(self.shape, device=self.device)
        self.granularity = 0.0
        self.workspace = Workspace()
        if config.device is not None:
            n_arrays = 2 if config.cell == "pair" else 1
            self.arrays = [
                PulsedTile(
                    out_size,
                    in_size,
                    config.device,
                    seed=seed * 4 + k,
                    device=self.device,
                    max_substeps=config.max_substeps,
                )
                for k in range(n_arrays)
            ]
            self.granularity = self.arrays[0].granularity
            if config.reference == "symmetry-point" and config.cell == "single":
                pop = self.arrays[0].population
                sp = symmetry_point(config.device.family, pop.params)
                if "reference" in pop.params:  # measured on the device: its offset included
                    sp = sp + pop.params["reference"]
                gen = torch.Generator().manual_seed(seed * 4 + 3)
                noise = torch.randn(self.shape, generator=gen).to(self.device)
                self.reference = sp + config.reference_std * noise
        self.set_weights(torch.zeros(self.shape))

    @property
    def is_floating_point(self) -> bool:
        return not self.arrays

    def n_states(self) -> float:
        """Mean number of device states, (w_max − w_min)/granularity."""
        if self.is_floating_point:
            return float("inf")
        c = self.config.device
        return (c.w_max - c.w_min) / self.granularity

    def effective_weights(self) -> torch.Tensor:
        if self.is_floating_point:
            return self._float_w
        if len(self.arrays) == 1:
            return self.arrays[0].weights() - self.reference
        return self.arrays[0].weights() - self.arrays[1].weights()

    def set_weights(self, weights: torch.Tensor) -> None:
        """Program the weights directly (clipped to what the devices can hold)."""
        check_matrix(weights, self.shape, "weights")
        w = weights.to(self.device, torch.float32)
        if self.is_floating_point:
            clip = self.config.weight_clip
            self._float_w = w.clamp(-clip, clip) if clip > 0 else w.clone()
        elif len(self.arrays) == 1:
            self.arrays[0].set_weights(w + self.reference)
        else:
            plus, minus = self.arrays
            plus.set_weights(plus.b_min + w.clamp(min=0))
            minus.set_weights(minus.b_min + (-w).clamp(min=0))
        self.post_update()

    def update(self, x: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        """W ← W − lr·Σ_b d_b x_bᵀ, as pulses (x: (B, in_size), d: (B, out_size))."""
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if self.is_floating_point or self.config.update.pulse_type == "none":
            if not self.is_floating_point:
                raise ValueError("pulse_type 'none' needs a floating-point tile (device=None)")
            self._float_w = self._float_w - lr * (d.T @ x)
            clip = self.config.weight_clip
            if clip > 0:
                self._float_w = self._float_w.clamp(-clip, clip)
        else:
            trains: list[Trains] = []
            n_up, n_down = coincidence_counts(
                x,
                d,
                lr,
                self.granularity,
                self.config.update,
                self.generator,
                self.workspace,
                trains if len(self.arrays) == 1 and x.shape[0] > 1 else None,
            )
            if trains:  # samples in order where it matters (see simulator.update)
                self.arrays[0].apply_pulse_counts_in_order(n_up, n_down, trains[0])
            else:
                self.apply_counts(n_up, n_down)
        self.post_update()

    def apply_counts(
        self, n_up: torch.Tensor, n_down: torch.Tensor, cols: torch.Tensor | None = None
    ) -> None:
        """Pulses that increase (``n_up``) and decrease (``n_down``) the weights."""
        if len(self.arrays) == 1:
            self.arrays[0].apply_pulse_counts(n_up, n_down, cols)
            return
        plus, minus = self.arrays
        zeros = torch.zeros_like(n_up)
        plus.apply_pulse_counts(n_up, zeros, cols)
        minus.apply_pulse_counts(n_down, zeros, cols)
        self._refresh()

    def _refresh(self, rounds: int = 4) -> None:
        """Reset pairs whose devices are both high and rewrite their difference (one-sided)."""
        plus, minus = self.arrays

        def position(a: PulsedTile) -> torch.Tensor:
            span = torch.clamp(a.b_max - a.b_min, min=1e-12)
            return (a.w - a.b_min) / span

        pp, pm = position(plus), position(minus)
        high = torch.maximum(pp, pm) > self.config.refresh_upper_thres
        mask = high & (torch.minimum(pp, pm) > self.config.refresh_lower_thres)
        if not bool(mask.any()):
            return
        target = torch.where(mask, plus.w - minus.w, torch.zeros_like(plus.w))
        for array in (plus, minus):
            array.w = torch.where(mask, array.b_min, array.w)
        for _ in range(rounds):  # open-loop write with the expected step, a few rounds
            for array, sign in ((plus, 1.0), (minus, -1.0)):
                missing = (sign * target - (plus.w - minus.w) * sign).clamp(min=0)
                step = array.expected_step(True).clamp(min=1e-12)
                n = torch.where(mask, torch.round(missing / step), torch.zeros_like(step))
                array.apply_pulse_counts(n, torch.zeros_like(n))

    def _move(self, device: torch.device) -> None:
        self.workspace.clear()
        self.arrays = [a.to(device) for a in self.arrays]
        self.reference = self.reference.to(device)
        self._float_w = self._float_w.to(device)
