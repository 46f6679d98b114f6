"""Garbage verify bands and read noises: refused, never a loop that "converges" on nothing.

An outside tester's probes of simulator/program_verify.py and of calib validate's one
verify band (EvalSettings.verify_band_s, chip_programming). A verify loop stops at the first
read inside the band, so a NaN in the band or the read noise makes every comparison false:
the loop must refuse such inputs instead of reporting devices converged. Probes that found
a fault are ``xfail(strict=True)`` naming the function at fault (not this helper's files).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from pathlib import Path

import pytest
import torch

from simulator.program_verify import program_and_verify
from simulator.tile import PulsedTile

# the test modules whose samples this one reuses
sys.path.insert(0, str(Path(__file__).parents[2] / "calib" / "presets"))
sys.path.insert(0, str(Path(__file__).parents[2] / "simulator"))
from test_malformed_presets_refused import DEVICE as PRESET_DEVICE
from test_program_verify import DEVICE

SHAPE = (8, 8)


def _verify(tolerance: float, read_noise: float, device=DEVICE, target: float = 0.3):
    tile = PulsedTile(*SHAPE, device, seed=1)
    gen = torch.Generator().manual_seed(5)
    goal = torch.full(SHAPE, target)
    result = program_and_verify(tile, goal, tolerance, read_noise, gen, max_iterations=300)
    return tile, goal, result


@pytest.mark.parametrize("tolerance", [0.0, -0.01, math.nan])
def test_a_band_that_is_not_positive_is_refused_naming_the_tolerance(tolerance: float) -> None:
    with pytest.raises(ValueError, match="verify tolerance must be > 0"):
        _verify(tolerance, 0.001)


def test_an_infinite_band_is_refused_naming_the_tolerance() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        _verify(math.inf, 0.001)


@pytest.mark.parametrize("read_noise", [math.nan, -0.001, math.inf])
def test_a_read_noise_that_is_not_a_finite_std_is_refused(read_noise: float) -> None:
    with pytest.raises(ValueError, match=r"read.noise"):
        _verify(0.01, read_noise)


def test_stuck_devices_get_no_pulses_and_are_not_reported_converged_off_target() -> None:
    stuck = dataclasses.replace(DEVICE, corrupt_devices_prob=1.0)
    tile, goal, result = _verify(0.01, 0.001, stuck)
    assert float(result.pulses.sum()) == 0.0
    # a stuck device counts as converged only where its stuck value reads inside the band
    off = (tile.w - goal).abs() > 0.01 + 5 * 0.001
    assert not bool((result.converged & off).any())


def test_a_target_beyond_the_bounds_is_not_converged() -> None:
    _, _, result = _verify(0.01, 0.001, target=5.0)
    assert not bool(result.converged.any())


def test_read_noise_larger_than_the_band_converges_only_by_chance_reads() -> None:
    """The verify loop cannot do better than its reads: with noise 10x the band, a device
    is 'converged' at the first noisy read inside the band while its state lies further
    off (this is the physics of a verify loop; calib validate picks a band >= 2 sigma)."""
    tile, goal, result = _verify(0.01, 0.1)
    assert bool(result.converged.all())
    assert float((tile.w - goal).abs().max()) > 0.01


# -- calib validate's one band
@pytest.mark.parametrize("band", [0.0, -1e-7, math.nan, math.inf])
def test_an_eval_settings_band_that_is_not_a_positive_number_is_refused(band: float) -> None:
    from calib.validate import EvalSettings

    with pytest.raises(ValueError):
        EvalSettings(verify_band_s=band)


def test_a_preset_whose_read_noise_swamps_the_default_band_is_not_silently_programmed() -> None:
    from calib.errors import CalibError
    from calib.validate.chip_inference import chip_programming

    device = copy.deepcopy(PRESET_DEVICE)
    device["read_noise_s"] = 1e-5  # 3 sigma = 30 uS, the ReRAM default band is 0.5 uS
    try:
        band = chip_programming("pulsed", "reram", {"device": device}).tolerance_s
    except CalibError:
        return  # refused with a message: fine
    # a band of 2 sigma: a device on target reads inside it 95 % of the time
    assert band >= 2 * device["read_noise_s"]
