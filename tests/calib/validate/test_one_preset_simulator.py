"""A preset is simulated by one piece of code: the simulator's device model.

The predictive checks (fit, report, ``calib validate``) and the synthetic test data go
through :func:`simulator.devices.protocol.simulate_reads`, the update a training tile applies.
Checked against traces aihwkit itself made (``tests/fixtures/aihwkit``: each device's hidden
parameters as aihwkit drew them, so our simulation of the *same devices* must match aihwkit's
traces up to cycle-to-cycle and read noise), and against :class:`simulator.tile.PulsedTile`
driven with the same preset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fitting.synthetic import simulate_preset, simulate_traces
from simulator.presets import device_config
from simulator.tile import PulsedTile

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aihwkit"
FAMILY = {
    "ConstantStepDevice": "constant-step",
    "SoftBoundsDevice": "soft-bounds",
    "LinearStepDevice": "linear-step",
    "PowStepDevice": "pow-step",
    "ExpStepDevice": "exp-step",
    "PiecewiseStepDevice": "piecewise-step",
}
COPIES = 8  # simulated copies of every aihwkit device: their mean is that device's expectation


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Vectors of a few thousand devices: intra-op threads only add synchronization (on a
    busy 2-core machine they made these tests 30x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _aihwkit_devices(case: str) -> tuple[str, dict, np.ndarray, np.ndarray, dict]:
    """(family, our per-device parameters, aihwkit's reads, pulses, truth) of a fixture."""
    import h5py

    truth = json.loads((FIXTURES / f"{case}.json").read_text())
    fields = truth["aihwkit_fields"]
    with h5py.File(FIXTURES / f"{case}.h5", "r") as f:
        hidden = {k: np.asarray(v[()], dtype=float) for k, v in f["aihwkit_truth"].items()}
        reads = np.asarray(f["pulse_response/conductance"][()], dtype=float)
        pulses = np.asarray(f["pulse_response/pulses"][()])
    dev = {
        "delta_up": hidden["dwmin_up"],
        "delta_down": hidden["dwmin_down"],
        "b_max": hidden["max_bound"],
        "b_min": hidden["min_bound"],
    }
    cls = truth["aihwkit_class"]
    n = reads.shape[0]
    if cls == "LinearStepDevice":  # aihwkit stores slope± = ∓Δ±γ±/|mean bound|
        dev["gamma_up"] = -hidden["slope_up"] * fields["w_max"] / hidden["dwmin_up"]
        dev["gamma_down"] = hidden["slope_down"] * -fields["w_min"] / hidden["dwmin_down"]
        dev["ref_max"], dev["ref_min"] = np.full(n, fields["w_max"]), np.full(n, fields["w_min"])
    elif cls == "PowStepDevice":
        dev["pow_gamma_up"], dev["pow_gamma_down"] = hidden["gamma_up"], hidden["gamma_down"]
    elif cls == "ExpStepDevice":
        dev.update({k: float(fields[k]) for k in ("A_up", "A_down", "gamma_up", "gamma_down")})
        dev.update({k: float(fields[k]) for k in ("a", "b")})
    elif cls == "PiecewiseStepDevice":
        dev.update({k: list(fields[k]) for k in ("piecewise_up", "piecewise_down")})
    return FAMILY[cls], dev, reads, pulses, truth


@pytest.mark.parametrize(
    "case",
    [
        "cs_default_reached",
        "sb_default_saturating",
        "ls_gamma_03_07_hard_bounds",
        "ps_default",
        "es_default",
        "pw_5_nodes",
    ],
)
def test_simulated_devices_follow_aihwkit_pulse_by_pulse(case: str) -> None:
    family, dev, reads, pulses, truth = _aihwkit_devices(case)
    n = reads.shape[0]
    copies = {k: np.tile(v, COPIES) if isinstance(v, np.ndarray) else v for k, v in dev.items()}
    w0 = np.full(n * COPIES, truth["protocol"]["w_init"])
    sigma, read = truth["aihwkit_fields"]["dw_min_std"], truth["protocol"]["read_noise_std"]
    rng = np.random.default_rng(0)
    sim = simulate_traces(family, copies, pulses, w0, rng, sigma, 0.0, read)
    sim = sim.reshape(COPIES, n, -1)
    own = sim.mean(axis=0)  # each device's expected trace (to 1/sqrt(8) of its noise)
    diff = reads - own  # aihwkit's device minus our simulation of the same device
    z = diff.mean(axis=0) / (diff.std(axis=0, ddof=1) / np.sqrt(n))
    # a correct model leaves only noise: |z| averages sqrt(2/pi) = 0.80 (0.64-0.85 measured
    # over these cases); 600-800 autocorrelated reads reach max |z| 2.8-4.0. A step error of
    # 5 % of dw_min accumulates over a branch to several sigma on every read.
    assert np.mean(np.abs(z)) < 1.2
    assert np.max(np.abs(z)) < 5.5
    # noise around a device's expectation: aihwkit's vs ours (c2c and read noise; the
    # (1 + 1/COPIES) is the noise of the 8-copy mean); measured 0.97-1.04
    ours = (sim - own).var(axis=0).mean(axis=0) * COPIES / (COPIES - 1) * (1 + 1 / COPIES)
    assert np.sqrt(diff.var(axis=0).mean() / ours.mean()) == pytest.approx(1.0, abs=0.1)


PRESET = {  # a soft-bounds device in siemens around 50 uS, as a fit writes it
    "model": "soft-bounds",
    "g_offset_s": 50e-6,
    "read_noise_s": 0.0,
    "parameters": {
        "dw_min": 0.2e-6,
        "up_down": 0.05,
        "w_max": 20e-6,
        "w_min": -18e-6,
        "dw_min_dtod": 0.2,
        "up_down_dtod": 0.02,
        "w_max_dtod": 0.1,
        "w_min_dtod": 0.1,
        "dw_min_std": 0.3,
        "write_noise_std": 1.0,
        "corrupt_devices_prob": 0.0,
    },
}
PULSES = np.r_[0, np.ones(120, int), -np.ones(120, int), 4 * np.ones(20, int)]


def test_a_preset_simulates_as_the_training_tile_does() -> None:
    n = 4000
    start = np.full(n, 45e-6)
    ours = simulate_preset(PRESET, PULSES, start, seed=3)
    scale = max(PRESET["parameters"]["w_max"], -PRESET["parameters"]["w_min"])
    tile = PulsedTile(1, n, device_config({"device": PRESET}, scale_s=scale), seed=4)
    tile.set_weights(torch.full((1, n), (45e-6 - 50e-6) / scale))
    theirs = np.empty_like(ours)
    for k, p in enumerate(PULSES):
        if p:
            tile.apply_pulses(torch.full((1, n), float(p)))
        theirs[:, k] = 50e-6 + scale * tile.weights()[0].double().numpy()
    # two independent samples of 4000 devices of one model: the mean trace differs by
    # sqrt(2) * sd / sqrt(4000), under 0.1 uS here (span 38 uS); spreads by ~2.5 %.
    # From read 1 on: the tile also draws write noise when its weights are set.
    se = np.sqrt((ours.var(axis=0) + theirs.var(axis=0)) / n)[1:]
    assert np.max(np.abs(ours.mean(axis=0) - theirs.mean(axis=0))[1:] / se) < 5.0
    ratio = ours.std(axis=0)[1:] / theirs.std(axis=0)[1:]
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.03)
    assert np.all(ours[:, 0] == 45e-6)  # the starting read is the measured one


def test_stuck_devices_stay_where_they_are_drawn_and_can_be_left_out() -> None:
    preset = {**PRESET, "parameters": {**PRESET["parameters"], "corrupt_devices_prob": 0.3}}
    preset["parameters"]["write_noise_std"] = 0.0
    sim = simulate_preset(preset, PULSES, np.full(2000, 50e-6), seed=1)
    frozen = np.all(sim == sim[:, :1], axis=1)
    assert frozen.mean() == pytest.approx(0.3, abs=0.04)  # binomial sd 0.01
    sim = simulate_preset(preset, PULSES, np.full(2000, 50e-6), seed=1, with_stuck=False)
    assert not np.all(sim == sim[:, :1], axis=1).any()


def test_the_same_seed_gives_the_same_traces() -> None:
    a = simulate_preset(PRESET, PULSES, np.full(50, 45e-6), seed=7)
    b = simulate_preset(PRESET, PULSES, np.full(50, 45e-6), seed=7)
    c = simulate_preset(PRESET, PULSES, np.full(50, 45e-6), seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_torch_thread_count_is_restored_after_a_simulation() -> None:
    torch.set_num_threads(2)  # the autouse fixture restores the session's count afterwards
    simulate_preset(PRESET, PULSES, np.full(50, 45e-6), seed=7)
    assert torch.get_num_threads() == 2
