"""The simulator's fast paths give the same numbers, bit for bit, as the code they replace.

The in-order replay of a batch (aihwkit applies a batch's samples one after another),
the constant-step closed form, the zero-safe square root and the one preset simulator's
per-read loop are shortcuts for speed only: same seeds, same random draws, same results
(``torch.equal``) as one :func:`apply_pulse_counts` per sample or per read.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator import AnalogConfig, PulsedDeviceConfig
from simulator.devices import pulses
from simulator.devices.config import DevicePopulation
from simulator.devices.protocol import simulate_reads
from simulator.devices.pulses import ClosedFormSteps, affine_coefficients, apply_pulse_counts
from simulator.devices.response import AFFINE_FAMILIES, FAMILIES
from simulator.random_streams import make_generator
from simulator.tile import AnalogTile, PulsedTile

EXTRA = {  # a device of each family that reaches its bounds (non-default shapes)
    "linear-step": {"gamma_up": 0.3, "gamma_down": 0.7},
    "soft-bounds": {"up_down": 0.2},
    "pow-step": {"pow_gamma": 1.5, "pow_up_down": 0.1},
    "piecewise-step": {"piecewise_up": [1.5, 1.0, 0.5], "piecewise_down": [0.5, 1.0, 1.5]},
}


def _population(family: str, n: int, seed: int = 0, **fields) -> DevicePopulation:
    config = PulsedDeviceConfig(family=family, dw_min=0.05, **{**EXTRA.get(family, {}), **fields})
    return DevicePopulation.sample(config, (n,), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", sorted(AFFINE_FAMILIES))
@pytest.mark.parametrize("sigma, mult", [(0.3, True), (0.3, False), (0.0, True)])
def test_closed_form_steps_equal_one_update_per_step(family, sigma, mult):
    pop = _population(family, 300, corrupt_devices_prob=0.0)
    params = {**pop.params, **affine_coefficients(family, pop.params)}
    gen = torch.Generator().manual_seed(1)
    ups = torch.randint(0, 6, (9, 300), generator=gen).float()
    downs = torch.randint(0, 6, (9, 300), generator=gen).float()
    ups[2] = 0.0  # a step with down pulses only, one without any pulse
    downs[5] = 0.0
    ups[7] = downs[7] = 0.0
    w0 = (torch.rand(300, generator=gen) * 2 - 1) * pop.params["b_max"]
    w0[:50] = pop.params["b_max"][:50]  # some start at a bound

    ref, g_ref = w0.clone(), make_generator("cpu", 5)
    for s in range(9):
        ref = apply_pulse_counts(family, ref, ups[s], downs[s], params, sigma, g_ref, mult)
    steps = ClosedFormSteps(params, ups, downs, sigma, mult)
    got, g_new, buffers = w0.clone(), make_generator("cpu", 5), (w0.clone(), w0.clone())
    for s in range(9):
        got = steps.apply(s, got, g_new, out=buffers[s % 2])
    assert torch.equal(got, ref)
    assert torch.equal(torch.randn(4, generator=g_new), torch.randn(4, generator=g_ref))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mult", [True, False])
def test_constant_step_shortcut_equals_the_general_closed_form(dtype, mult):
    pop = _population("constant-step", 5000)
    coef = affine_coefficients("constant-step", pop.params)
    assert coef["_constant"]
    params = {k: torch.as_tensor(v).to(dtype) for k, v in {**pop.params, **coef}.items()}
    gen = torch.Generator().manual_seed(2)
    n_up = torch.randint(0, 4, (5000,), generator=gen).to(dtype)  # many devices unpulsed
    n_down = torch.randint(0, 3, (5000,), generator=gen).to(dtype)
    w = pop.params["b_min"].to(dtype) + 0.3
    fast = apply_pulse_counts("constant-step", w, n_up, n_down, params, 0.3,
                              make_generator("cpu", 3), mult)  # fmt: skip
    general = apply_pulse_counts("constant-step", w, n_up, n_down, {**params, "_constant": False},
                                 0.3, make_generator("cpu", 3), mult)  # fmt: skip
    assert torch.equal(fast, general)


def test_zero_safe_square_root_equals_the_plain_one():
    gen = torch.Generator().manual_seed(4)
    var = torch.rand(20000, generator=gen) * 1e-4
    var[torch.rand(20000, generator=gen) < 0.6] = 0.0
    var[:10] = -1e-9  # rounding can leave a slightly negative variance
    want = var.clone().clamp_(min=0.0).sqrt_()
    assert var.numel() >= pulses._SQRT_ZEROS_FROM
    assert torch.equal(pulses._sqrt_variance(var.clone()), want)


def _reference_replay(self, w, ups, downs, sub):
    """The replay before the fast path: one apply_pulse_counts per sample with pulses."""
    args = (self.config.dw_min_std, self._noise, self.config.mult_noise, self.max_substeps)
    for b in range(ups.shape[1]):
        u, dn = ups[:, b], downs[:, b]
        if bool((u + dn > 0).any()):
            w = apply_pulse_counts(self.config.family, w, u, dn, sub, *args)
    return w


def _train_tile(family: str, seed: int, **fields) -> torch.Tensor:
    device = PulsedDeviceConfig(family=family, dw_min=0.05, **{**EXTRA.get(family, {}), **fields})
    tile = AnalogTile(40, 36, AnalogConfig(device=device), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    tile.set_weights(torch.sign(torch.rand(40, 36, generator=gen) - 0.5))  # at the bounds
    for _ in range(6):
        x = torch.rand(16, 36, generator=gen) * 2 - 1
        d = torch.randn(16, 40, generator=gen) * 0.05
        tile.update(x, d, 0.1)
    return tile.get_weights()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("fields", [{}, {"mult_noise": False}, {"write_noise_std": 0.5}])
def test_in_order_replay_equals_one_update_per_sample(family, fields, monkeypatch):
    """A batch's in-order replay (devices at their bounds) against the per-sample loop."""
    fast = _train_tile(family, 3, **fields)
    monkeypatch.setattr(PulsedTile, "_replay", _reference_replay)
    assert torch.equal(fast, _train_tile(family, 3, **fields))


def _reference_reads(population, pulses_, w0, generator, sigma, write, read, mult):
    """simulate_reads as one apply_pulse_counts per read (the code before the fast path)."""
    params = population.params
    w = torch.minimum(torch.maximum(w0.clone(), params["b_min"]), params["b_max"])
    active = ~population.stuck
    moving = active.nonzero().squeeze(1)
    sub = {k: v[moving] if torch.is_tensor(v) else v for k, v in params.items()}
    sub.update(affine_coefficients(population.family, sub) or {})
    substeps = max(1, int(np.abs(pulses_).max()))
    out = torch.empty((w.numel(), len(pulses_)), dtype=w.dtype)
    offset = torch.zeros_like(w)
    for k, count in enumerate(pulses_):
        if count != 0:
            up = torch.full((moving.numel(),), float(max(count, 0)), dtype=w.dtype)
            down = torch.full((moving.numel(),), float(max(-count, 0)), dtype=w.dtype)
            w[moving] = apply_pulse_counts(population.family, w[moving], up, down, sub, sigma,
                                           generator, mult, substeps)  # fmt: skip
            if write > 0:
                fresh = write * torch.randn(w.numel(), generator=generator, dtype=w.dtype)
                offset = torch.where(active, fresh, offset)
        out[:, k] = w + offset
        if read > 0:
            out[:, k] += read * torch.randn(w.numel(), generator=generator, dtype=w.dtype)
    return out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "noise", [(0.3, 0.02, 0.01, True), (0.5, 0.0, 0.0, False), (0, 0, 0, True)]
)
def test_preset_simulator_reads_equal_one_update_per_read(family, noise):
    pop = _population(family, 120, seed=7, corrupt_devices_prob=0.1)
    pop.params = {k: v.double() if torch.is_tensor(v) else v for k, v in pop.params.items()}
    seq = np.r_[0, np.ones(12, int), 3, 0, -np.ones(12, int), -4, 2, 7, -1]
    w0 = torch.linspace(-0.9, 0.9, 120, dtype=torch.float64)
    got = simulate_reads(pop, seq, w0, torch.Generator().manual_seed(8), *noise)
    want = _reference_reads(pop, seq, w0, torch.Generator().manual_seed(8), *noise)
    assert torch.equal(got, want)
