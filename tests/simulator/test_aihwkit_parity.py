"""Simulator parity with aihwkit (issue 13, item 4).

``tests/fixtures/aihwkit/parity.json`` holds both sides of ``benchmarks/aihwkit_parity.py``,
measured in one run with aihwkit 1.2.0 installed: weight-change statistics of 256x256 tiles
and final accuracies of a digits MLP. Here our side is recomputed (our simulator is seeded,
so it reproduces the recorded numbers) and compared with the recorded aihwkit distribution.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
from benchmark_modules import benchmark_module

from simulator import AnalogConfig, PulsedDeviceConfig, UpdateParameters
from simulator.tile import AnalogTile

ROOT = Path(__file__).resolve().parents[2]
PARITY = ROOT / "tests" / "fixtures" / "aihwkit" / "parity.json"
TILE_REL_MAX = 0.05  # the issue: mean and spread of ΔW within 5 % of aihwkit's


def _bench():
    """benchmarks/aihwkit_parity.py as a module (our side only; aihwkit is not imported)."""
    return benchmark_module("aihwkit_parity")


def _deterministic_tile() -> AnalogTile:
    """1x1 constant-step tile at its upper bound; every term fires exactly BL = 4 pulses."""
    device = PulsedDeviceConfig(
        family="constant-step",
        dw_min=0.1,
        w_max=0.6,
        w_min=-0.6,
        dw_min_dtod=0.0,
        up_down_dtod=0.0,
        w_max_dtod=0.0,
        w_min_dtod=0.0,
        dw_min_std=0.0,
    )
    update = UpdateParameters(desired_bl=4, update_bl_management=False, update_management=False)
    tile = AnalogTile(1, 1, AnalogConfig(device=device, update=update), seed=3)
    tile.set_weights(torch.tensor([[0.6]]))
    return tile


def test_batch_terms_are_applied_in_order_as_aihwkit_does():
    """A device clipped at its bound by one sample is pushed off it by the next.

    aihwkit loops over the batch: sample 1 (4 up pulses) is clipped at w_max = 0.6, sample 2
    (4 down pulses) then gives 0.6 − 0.4 = 0.2. Summing the batch first (the code before this
    test) cancels the pulses and leaves 0.6. In the reverse order the device ends at 0.6.
    """
    x = torch.tensor([[1.0], [1.0]])
    d = torch.tensor([[-1.0], [1.0]])  # sample 1: up, sample 2: down (sign convention §1.1)
    tile = _deterministic_tile()
    tile.update(x, d, lr=10.0)  # lr/ε ≫ BL: every slot fires
    assert float(tile.get_weights()) == pytest.approx(0.2, abs=1e-6)
    tile = _deterministic_tile()
    tile.update(x, -d, lr=10.0)  # down first: 0.2, then up: 0.6
    assert float(tile.get_weights()) == pytest.approx(0.6, abs=1e-6)


def test_devices_far_from_their_bounds_take_the_summed_counts():
    """Order does not matter away from the bounds: +4 then −4 pulses from 0 end at 0."""
    x = torch.tensor([[1.0], [1.0]])
    d = torch.tensor([[-1.0], [1.0]])
    tile = _deterministic_tile()
    tile.set_weights(torch.tensor([[0.0]]))
    tile.update(x, d, lr=10.0)
    assert float(tile.get_weights()) == pytest.approx(0.0, abs=1e-6)


def _recorded(part: str) -> dict:
    if not PARITY.is_file():
        pytest.skip("parity.json not recorded")
    return json.loads(PARITY.read_text())[part]


def _tile_cases(slow: bool) -> list:
    if not PARITY.is_file():
        return []
    keys = list(json.loads(PARITY.read_text()).get("tile", {}))
    # one case in make test; the at-the-bounds case (in-order replay, ~30-60 s on 2 cores)
    # runs with the other slow ones
    fast = {"drift | soft-bounds up_down 0.2 | no d2d"}
    return [k for k in keys if (k not in fast) == slow]


def _check_tile(key: str, runs: int | None = None) -> None:
    """Our ΔW statistics (``runs`` seeded runs, default as many as recorded) against the
    recorded aihwkit runs' mean: within 5 %."""
    bench = _bench()
    sc_name, name, label = key.split(" | ")
    sc = bench.SCENARIOS[sc_name]
    overrides = {} if label == "aihwkit defaults" else bench.NO_SPREAD
    row = _recorded("tile")[key]
    n = runs or len(row["ours"])
    ours = [
        bench.change_stats(bench.our_tile_change(name, overrides, sc, seed=r)) for r in range(n)
    ]
    for what in (sc.metric, "std"):
        a = statistics.fmean(v[what] for v in ours)
        b = statistics.fmean(v[what] for v in row["aihwkit"])
        assert abs(a / b - 1.0) <= TILE_REL_MAX, f"{key}: {what} ours {a:.4g}, aihwkit {b:.4g}"


@pytest.mark.parametrize("key", _tile_cases(slow=False))
def test_tile_weight_change_matches_recorded_aihwkit(key):
    _check_tile(key, runs=2)


@pytest.mark.slow
@pytest.mark.parametrize("key", _tile_cases(slow=True))
def test_tile_weight_change_matches_recorded_aihwkit_all(key):
    _check_tile(key)


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    list(json.loads(PARITY.read_text()).get("train", {})) if PARITY.is_file() else [],
)
def test_training_accuracy_matches_recorded_aihwkit(config):
    """Our accuracies (recomputed, seeded) against aihwkit's recorded ones: the 95 % interval
    of the mean difference contains 0."""
    bench = _bench()
    row = _recorded("train")[config]
    seeds = len(row["ours"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as recorded: reproduces the recorded accuracies exactly
    ours = [
        100 * bench.our_run(config, s, row.get("epochs", 15), [64, 32, 10]) for s in range(seeds)
    ]
    torch.set_num_threads(threads)
    diff, half, _ = bench.welch(ours, row["aihwkit"])
    assert abs(diff) <= half, f"{config}: ours − aihwkit = {diff:+.2f} ± {half:.2f} pp"
