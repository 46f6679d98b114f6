"""Fidelity of the vectorized pulse kernel against a slow, obviously-correct per-pulse loop.

Issue 7: for every family, the mean and spread over 1,000 devices of a 400-pulse response
must match an independent per-pulse reference within 2 % of the weight range.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from simulator.devices.config import DevicePopulation, PulsedDeviceConfig
from simulator.devices.response import FAMILIES
from simulator.tile import PulsedTile

N_DEVICES = 1000
TOLERANCE = 0.02  # of the range (w_max − w_min), the bound

FAMILY_PARAMS = {
    "constant-step": {"dw_min": 0.01, "up_down": 0.05},
    "soft-bounds": {"dw_min": 0.01, "up_down": 0.1},
    "linear-step": {"dw_min": 0.01, "gamma_up": 0.5, "gamma_down": 0.3},
    "exp-step": {"dw_min": 0.01, "gamma_up": 12.44625, "gamma_down": 12.78785},
    "pow-step": {"dw_min": 0.015, "pow_gamma": 1.5},
    "piecewise-step": {"dw_min": 0.01, "piecewise_up": [1.5, 1.0, 0.4],
                       "piecewise_down": [0.4, 1.0, 1.5]},
}  # fmt: skip


def _reference_step(family: str, w: np.ndarray, up: bool, p: dict) -> np.ndarray:
    """Expected step of one pulse, written out per family from REFERENCES.md [R4].

    Independent of simulator.devices.response (numpy only, one branch per family and
    direction); vectorized over devices only.
    """
    b_max, b_min = p["b_max"], p["b_min"]
    d = p["delta_up"] if up else p["delta_down"]
    if family == "constant-step":
        q = np.ones_like(w)
    elif family == "soft-bounds":
        q = 1.0 - w / b_max if up else 1.0 - w / b_min
    elif family == "linear-step":
        q = (
            1.0 - p["gamma_up"] * w / p["ref_max"]
            if up
            else 1.0 - p["gamma_down"] * w / p["ref_min"]
        )
    elif family == "exp-step":
        z = 2.0 * p["a"] * w / (b_max - b_min) + p["b"]
        if up:
            q = np.maximum(1.0 - p["A_up"] * np.exp(p["gamma_up"] * z), 0.0)
        else:
            q = np.maximum(1.0 - p["A_down"] * np.exp(-p["gamma_down"] * z), 0.0)
    elif family == "pow-step":
        span = b_max - b_min
        if up:
            q = (np.maximum(b_max - w, 0) / span) ** p["pow_gamma_up"]
        else:
            q = (np.maximum(w - b_min, 0) / span) ** p["pow_gamma_down"]
    else:
        nodes = np.asarray(p["piecewise_up"] if up else p["piecewise_down"])
        n = len(nodes) - 1
        s = np.maximum((w - b_min) / (b_max - b_min) * n, 0.0)
        k = np.minimum(np.floor(s).astype(int), n - 1)
        frac = np.minimum(s - k, 1.0)
        q = (1 - frac) * nodes[k] + frac * nodes[k + 1]
    return q * d if up else -q * d


def _reference_trace(family, params, signs, sigma, seed) -> np.ndarray:
    """(n_pulses, n_devices): one pulse at a time, each clipped to the device's bounds."""
    rng = np.random.default_rng(seed)
    w = np.zeros(signs.shape[1])
    out = np.zeros(signs.shape)
    for k in range(signs.shape[0]):  # the slow loop: every single pulse
        up = signs[k] > 0
        step = np.where(
            up, _reference_step(family, w, True, params), _reference_step(family, w, False, params)
        )
        w = w + step * (1.0 + sigma * rng.standard_normal(w.shape))
        w = np.minimum(np.maximum(w, params["b_min"]), params["b_max"])
        out[k] = w
    return out


def _population(family: str) -> tuple[PulsedDeviceConfig, dict]:
    cfg = PulsedDeviceConfig(family=family, w_max=1.0, w_min=-1.0, **FAMILY_PARAMS[family])
    pop = DevicePopulation.sample(cfg, (N_DEVICES,), torch.Generator().manual_seed(0))
    params = {k: v.double().numpy() if torch.is_tensor(v) else v for k, v in pop.params.items()}
    return cfg, params


def _tile(cfg: PulsedDeviceConfig) -> PulsedTile:
    # same d2d draw as _population: the tile samples its population from the same seed/shape
    tile = PulsedTile(1, N_DEVICES, cfg, seed=0)
    ref = DevicePopulation.sample(cfg, (N_DEVICES,), torch.Generator().manual_seed(0))
    assert torch.equal(tile.population.params["delta_up"][0], ref.params["delta_up"])
    return tile


def _compare(sim: dict[int, np.ndarray], ref: np.ndarray, span: float) -> tuple[float, float]:
    d_mean = max(abs(v.mean() - ref[k].mean()) for k, v in sim.items()) / span
    d_std = max(abs(v.std() - ref[k].std()) for k, v in sim.items()) / span
    return d_mean, d_std


@pytest.mark.parametrize("family", FAMILIES)
def test_400_pulse_response_matches_per_pulse_reference(family: str) -> None:
    cfg, params = _population(family)
    signs = np.repeat(np.r_[np.ones(200), -np.ones(200)][:, None], N_DEVICES, axis=1)
    ref = _reference_trace(family, params, signs, cfg.dw_min_std, seed=1)

    # (a) one pulse per call, recorded after every pulse (a pulse-response measurement)
    tile = _tile(cfg)
    sim_single = {}
    for k in range(400):
        tile.apply_pulses(torch.full((1, N_DEVICES), int(signs[k, 0]), dtype=torch.int32))
        sim_single[k] = tile.w[0].double().numpy().copy()
    # (b) up to 31 pulses per call (one stochastic pulse train), recorded after each call
    tile = _tile(cfg)
    sim_chunked, k = {}, 0
    while k < 400:
        n = min(31, 200 - k % 200)
        tile.apply_pulses(torch.full((1, N_DEVICES), int(n * signs[k, 0]), dtype=torch.int32))
        k += n
        sim_chunked[k - 1] = tile.w[0].double().numpy().copy()
    span = cfg.w_max - cfg.w_min
    for sim in (sim_single, sim_chunked):
        d_mean, d_std = _compare(sim, ref, span)
        assert d_mean < TOLERANCE and d_std < TOLERANCE, (family, d_mean, d_std)
    # the response really moves: it spans most of the range and has a spread
    assert ref[199].mean() - ref[0].mean() > 0.2 * span
    assert ref[199].std() > 0.01 * span


@pytest.mark.parametrize("family", FAMILIES)
def test_mixed_pulse_counts_match_randomly_interleaved_reference(family: str) -> None:
    """31-pulse updates with both signs (a batch of samples) vs random per-device order."""
    cfg, params = _population(family)
    rng = np.random.default_rng(5)
    p_up = np.r_[np.full(200, 0.75), np.full(200, 0.25)]
    base = np.where(rng.random(400) < p_up, 1.0, -1.0)
    edges = [*range(0, 400, 31), 400]
    signs = np.empty((400, N_DEVICES))
    for a, b in itertools.pairwise(edges):  # shuffle within each update
        signs[a:b] = rng.permuted(np.repeat(base[a:b, None], N_DEVICES, axis=1), axis=0)
    ref = _reference_trace(family, params, signs, cfg.dw_min_std, seed=2)
    tile = _tile(cfg)
    sim = {}
    for a, b in itertools.pairwise(edges):
        n_up = torch.tensor((signs[a:b] > 0).sum(0), dtype=torch.float32)[None]
        n_down = torch.tensor((signs[a:b] < 0).sum(0), dtype=torch.float32)[None]
        tile.apply_pulse_counts(n_up, n_down)
        sim[b - 1] = tile.w[0].double().numpy().copy()
    d_mean, d_std = _compare(sim, ref, cfg.w_max - cfg.w_min)
    # Within one update the pulses are applied as evenly interleaved; at a hard bound a
    # random order wastes a few more pulses (≤ ~1 Δw_min per update), well inside 2 %.
    assert d_mean < TOLERANCE and d_std < TOLERANCE, (family, d_mean, d_std)


def test_pulses_beyond_max_substeps_are_grouped_with_small_error() -> None:
    """A stepwise family with 300 pulses in one call (Euler groups of ~10 pulses)."""
    family = "pow-step"
    cfg, params = _population(family)
    signs = np.ones((300, N_DEVICES))
    ref = _reference_trace(family, params, signs, cfg.dw_min_std, seed=3)
    tile = _tile(cfg)
    tile.apply_pulses(torch.full((1, N_DEVICES), 300, dtype=torch.int32))
    w = tile.w[0].double().numpy()
    span = cfg.w_max - cfg.w_min
    assert abs(w.mean() - ref[-1].mean()) / span < TOLERANCE
    assert abs(w.std() - ref[-1].std()) / span < TOLERANCE
