"""The simulated verify loop of pulsed devices (simulator/program_verify.py)."""

from __future__ import annotations

import pytest
import torch

from simulator.devices.config import PulsedDeviceConfig
from simulator.program_verify import program_and_verify
from simulator.tile import PulsedTile

# ECRAM-like in weight units: 400 steps over [-1, 1], 15 % cycle-to-cycle step noise
DEVICE = PulsedDeviceConfig(
    family="exp-step",
    dw_min=0.005,
    w_max=1.0,
    w_min=-1.0,
    dw_min_dtod=0.1,
    w_max_dtod=0.05,
    w_min_dtod=0.05,
    dw_min_std=0.15,
)
SHAPE = (64, 64)


def _landing(
    tolerance: float, approach_steps: int | None, seed: int, shape: tuple = SHAPE
) -> tuple:
    tile = PulsedTile(*shape, DEVICE, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    target = 1.6 * torch.rand(shape, generator=gen) - 0.8  # inside every device's bounds
    result = program_and_verify(
        tile, target, tolerance, 0.001, gen, approach_steps, max_iterations=1200
    )
    ok = result.converged
    return (tile.w - target)[ok], ok, result.pulses


@pytest.mark.parametrize("tolerance", [0.005, 0.0125])
def test_devices_end_inside_the_band_on_the_side_they_came_from(tolerance: float) -> None:
    error, ok, _ = _landing(tolerance, 4, seed=1)
    assert ok.float().mean() > 0.99  # no stuck devices in this population
    # the verify read (noise 0.001) lies inside the band, so the state lies within
    # band + 5 read sigma; coming from below, most errors are negative (a step of about
    # the band's half-width can carry a device past the target: 13 % for a band of 1 step)
    assert error.abs().max() <= tolerance + 0.005
    assert (error < 0).float().mean() > 0.8
    # the first read inside the band lies on average in the band's lower part: a bias
    # of a sizeable fraction of the band (the effect that cost ECRAM 2.9 pp on the chip)
    assert -tolerance < error.mean() < -0.2 * tolerance


def test_starting_near_the_band_lands_like_a_climb_from_the_erased_state() -> None:
    tolerance = 0.0125
    near, _, short = _landing(tolerance, 4, seed=2, shape=(32, 32))
    far, _, long = _landing(tolerance, None, seed=2, shape=(32, 32))
    assert long.mean() > 20 * short.mean()  # the point of the shortcut
    # 1,024 devices each: the SE of a mean error is ~std/32 ~ 1e-4; allow 4 SE of the
    # difference (different noise draws) plus nothing else
    se = (near.std() ** 2 / near.numel() + far.std() ** 2 / far.numel()) ** 0.5
    assert abs(near.mean() - far.mean()) < 4 * se
    assert float(near.std()) == pytest.approx(float(far.std()), rel=0.15)  # SE of a std ~2 %


def test_unreachable_targets_and_stuck_devices_stop_unconverged() -> None:
    config = PulsedDeviceConfig(
        family="soft-bounds",
        dw_min=0.01,
        w_max_dtod=0.0,
        w_min_dtod=0.0,
        corrupt_devices_prob=0.2,
    )
    tile = PulsedTile(16, 16, config, seed=3)
    target = torch.full((16, 16), 0.3)
    target[0] = 5.0  # beyond every device's upper bound
    result = program_and_verify(tile, target, 0.01, 0.0, torch.Generator().manual_seed(0))
    assert not result.converged[0].any()
    assert torch.allclose(tile.w[0], tile.b_max[0])
    stuck = tile.population.stuck
    # a stuck device sits where it was made: it converges only if that is inside the band
    far = stuck & ((tile.w - target).abs() > 0.01)
    assert far[1:].any() and not result.converged[far].any()
    assert result.converged[1:][~stuck[1:]].all()
