"""Parts of ``calib validate``: periphery, tiles and mapping on the chip, presets, seeds, data."""

from __future__ import annotations

import copy
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from calib.errors import CalibError
from calib.validate.chip_inference import (
    ChipProgramming,
    chip_accuracy,
    chip_mapping,
    chip_programming,
    program_tiles,
)
from calib.validate.chip_network import (
    ChipMapping,
    chip_network,
    chip_tiles,
    place_tiles,
    tile_edges,
)
from calib.validate.datasets import load_dataset
from calib.validate.networks import (
    NetworkSpec,
    TrainedNetwork,
    build_network,
    load_network,
    save_network,
)
from calib.validate.sources import (
    check_compatible,
    preset_kind,
    rereferenced,
    simulatable_preset,
    technology,
)
from calib.validate.tasks import EvalTask, derived_seed
from instruments.chip import ChipInterface, ProgramResult, VirtualClock
from simulator import AnalogLinear, IOParameters, MappingParameters
from simulator.periphery import analog_mvm, periphery_mvm

EXAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "examples"


def _json(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


# ----------------------------------------------------------------------------- periphery
@pytest.mark.parametrize("scale", [0.3, 40.0])  # 40: outputs clip, bound management runs
def test_periphery_around_a_core_is_the_simulators_forward_mvm(scale: float) -> None:
    """With the noise off, the chip-path periphery is bit-for-bit the simulator's MVM
    (noise management, DAC/ADC quantization and clipping, iterative bound management)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(12, 30, generator=gen) * scale / 30**0.5
    x = torch.rand(50, 30, generator=gen) * 2 - 1
    io = IOParameters(out_noise=0.0)
    ours = periphery_mvm(x, lambda xq: xq @ w.T, io, torch.Generator().manual_seed(1))
    theirs = analog_mvm(x, w, io, torch.Generator().manual_seed(1))
    assert torch.equal(ours, theirs)
    if scale > 1:  # the case really exercised bound management (its result differs)
        no_bm = IOParameters(out_noise=0.0, bound_management="none")
        assert not torch.equal(analog_mvm(x, w, no_bm, None), theirs)


@pytest.mark.parametrize(("size", "limit"), [(64, 128), (160, 128), (300, 64), (7, 3)])
def test_chip_tiles_split_layers_like_the_simulator(size: int, limit: int) -> None:
    layer = AnalogLinear(size, size, mapping_config(limit), seed=0)
    assert tile_edges(size, limit) == layer.in_edges == layer.out_edges


def mapping_config(limit: int):
    from simulator import AnalogConfig

    return AnalogConfig(device=None, mapping=MappingParameters(limit, limit))


# ----------------------------------------------------------------------------- chip path
class ExactChip(ChipInterface):
    """A noiseless chip: programming hits every target, except ``stuck`` devices."""

    def __init__(self, shape=(64, 64), stuck: dict[int, float] | None = None) -> None:
        self.shape = shape
        self.clock = VirtualClock()
        self.g = np.full(shape[0] * shape[1], 1e-6)
        self.stuck = stuck or {}

    def identity(self) -> str:
        return "TEST,EXACT-CHIP"

    def read_conductance(self, sel, v_read, n_avg=1):
        return self.g[sel.indices(self.shape)].copy()

    def apply_pulses(self, sel, pulse, n=1):
        self.clock.advance(n * pulse.width_s)

    def program_verify(self, sel, targets_s, tol_s, max_iter, v_read, pulse):
        idx = sel.indices(self.shape)
        self.g[idx] = targets_s
        ok = np.ones(idx.size, dtype=bool)
        for flat, value in self.stuck.items():
            hit = idx == flat
            self.g[flat] = value
            ok[hit] = False
        now = np.full(idx.size, self.clock.now())
        return ProgramResult(self.g[idx].copy(), np.ones(idx.size, np.int32), ok, now)


def _net(kind: str, dataset: str = "digits") -> nn.Sequential:
    return build_network(NetworkSpec(kind, dataset, hidden=(20,)), seed=3).eval()


PCM_NET = {"kind": "pcm-pair", "g_max_s": 25e-6}
PULSED_NET = {"kind": "reference", "g_offset_s": 60e-6, "scale_s": 40e-6,
              "w_min_s": -40e-6, "w_max_s": 40e-6}  # fmt: skip


def _pulsed_programming():
    device = {"device": {"parameters": {"w_max": 40e-6, "w_min": -40e-6, "dw_min": 0.8e-6}}}
    return chip_programming("pulsed", "reram", device)


@pytest.mark.parametrize("network", ["mlp", "cnn"])
@pytest.mark.parametrize("kind", ["pcm", "pulsed"])
def test_network_on_an_exact_chip_computes_the_float_network(network: str, kind: str) -> None:
    """Mapping, placement, split tiles, voltages, differential/reference readout and the
    conv im2col: on a noiseless chip with an exact periphery the logits are the float ones."""
    model = _net(network)
    if kind == "pulsed":  # device states must lie inside the mapped range (±1 weight units)
        with torch.no_grad():
            for p in model.parameters():
                p.clamp_(-0.9, 0.9)
    preset = {"pcm": {"g_max_s": 25e-6, "t0_s": 20.0}}
    mapping = chip_mapping(kind, PCM_NET if kind == "pcm" else PULSED_NET, preset, 0.2, 16, 8)
    prog = chip_programming("pcm", "pcm", preset) if kind == "pcm" else _pulsed_programming()
    split = load_dataset("digits", 0)
    x, y = split.x_test[:40], split.y_test[:40]
    chip = ExactChip((256, 256))
    perfect = IOParameters.perfect()
    acc, summary = chip_accuracy(
        chip, model, mapping, prog, perfect, 3600.0, 20.0, True, True, 1, 2, x, y
    )
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(expected)
    assert summary.n_pruned == 0 and summary.n_not_converged == 0
    tiles = chip_tiles(model, mapping)
    assert len(tiles) > 3  # the small tile size splits the layers
    place_tiles(tiles, chip.shape, mapping)
    program_tiles(chip, tiles, mapping, prog)
    net = chip_network(model, tiles, chip, mapping, perfect, torch.Generator())
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-4, atol=1e-4)


def test_stuck_devices_are_cancelled_when_they_are_more_wrong_than_right() -> None:
    """A stuck device far from its target contributes nothing (its weight becomes 0); one
    held close to its target (a near miss) is kept."""
    model = nn.Sequential(nn.Linear(4, 2, bias=False)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -0.25, 0.1, 1.0], [0.2, 0.3, -0.4, 0.0]]))
    mapping = ChipMapping("pcm-pair", 0.2, g_max_s=25e-6, max_inputs=8, max_outputs=8)
    s = 25e-6  # max|W| = 1 -> s = g_max
    # block rows = inputs, columns = [G+ (2 outputs) | G- (2 outputs)] at the array origin
    far = 0 * 64 + 0  # input 0, output 0, G+: target 0.5 s, stuck at 0.05 s (far)
    near = 1 * 64 + 1  # input 1, output 1, G+: target 0.3 s, stuck at 0.29 s (near miss)
    chip = ExactChip((8, 64), stuck={far: 0.05 * s, near: 0.29 * s})
    tiles = chip_tiles(model, mapping)
    place_tiles(tiles, chip.shape, mapping)
    summary = program_tiles(chip, tiles, mapping, ChipProgramming(1e-8, 1.0, 1e-7, 10, 0))
    assert (summary.n_not_converged, summary.n_pruned) == (2, 1)
    net = chip_network(model, tiles, chip, mapping, IOParameters.perfect(), torch.Generator())
    x = torch.eye(4)
    expected = model[0].weight.detach().clone().T
    expected[0, 0] = 0.0  # cancelled: weight 0
    expected[1, 1] = 0.29  # kept: the near miss
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-6)


def test_tiles_that_do_not_fit_the_chip_are_a_one_line_error() -> None:
    model = _net("mlp")
    mapping = ChipMapping("pcm-pair", 0.2, max_inputs=128, max_outputs=64)
    tiles = chip_tiles(model, mapping)
    with pytest.raises(CalibError, match="more than fit"):
        place_tiles(tiles, (64, 48), mapping)
    with pytest.raises(CalibError, match="does not fit"):
        place_tiles(tiles, (32, 256), mapping)


def test_random_placement_stays_on_the_array_and_depends_on_the_seed() -> None:
    mapping = ChipMapping("pcm-pair", 0.2, max_inputs=128, max_outputs=64)
    layouts = []
    for seed in (1, 2, 1):
        tiles = chip_tiles(_net("mlp"), mapping)
        place_tiles(tiles, (128, 128), mapping, offset_seed=seed)
        for t in tiles:
            assert t.row0 >= 0 and t.row0 + t.n_in <= 128
            assert t.col0 >= 0 and t.col0 + 2 * t.n_out <= 128
        layouts.append([(t.row0, t.col0) for t in tiles])
    assert layouts[0] == layouts[2] != layouts[1]


# ----------------------------------------------------------------------------- presets
def test_preset_kinds_technologies_and_incompatible_pairs() -> None:
    pcm, reram, ecram = (_json(f"{k}_truth.json") for k in ("pcm", "reram", "ecram"))
    assert [preset_kind(p, "p") for p in (pcm, reram, ecram)] == ["pcm", "pulsed", "pulsed"]
    assert [technology(p) for p in (pcm, reram, ecram)] == ["pcm", "reram", "ecram"]
    assert check_compatible(reram, reram, "a", "b") == "pulsed"
    with pytest.raises(CalibError, match="same family"):
        check_compatible(pcm, reram, "fit.json", "truth.json")
    with pytest.raises(CalibError, match="same technology"):
        check_compatible(reram, ecram, "fit.json", "truth.json")
    with pytest.raises(CalibError, match="neither"):
        preset_kind({"device": {"model": "none"}}, "x.json")


def test_ecram_truth_becomes_an_exact_piecewise_step() -> None:
    from simulator.devices.response import expected_step

    truth = _json("ecram_truth.json")
    c = truth["device"]["parameters"]["curvature"]
    sim = simulatable_preset(truth)["device"]
    assert sim["model"] == "piecewise-step" and "curvature" not in sim["parameters"]
    b_min, b_max = np.array([-1.0]), np.array([1.5])
    u = np.linspace(0, 1, 101)
    w = b_min + u * (b_max - b_min)
    p = {"delta_up": 1.0, "delta_down": 1.0, "b_min": b_min, "b_max": b_max, **sim["parameters"]}
    up = expected_step("piecewise-step", w, True, p)
    down = -expected_step("piecewise-step", w, False, p)
    # linear interpolation of c·u² over sections of h = 1/20: error at most c·h²/4
    assert np.max(np.abs(up - (1 - c * u**2))) <= c / 1600 + 1e-12
    assert np.max(np.abs(down - (1 - c * (1 - u) ** 2))) <= c / 1600 + 1e-12


def test_rereferencing_keeps_the_absolute_bounds_and_their_spread() -> None:
    truth = _json("ecram_truth.json")
    p, g0 = truth["device"]["parameters"], truth["device"]["g_offset_s"]
    moved = rereferenced(truth, 4.2e-6)["device"]
    q = moved["parameters"]
    assert moved["g_offset_s"] == 4.2e-6
    assert 4.2e-6 + q["w_max"] == pytest.approx(g0 + p["w_max"])
    assert 4.2e-6 + q["w_min"] == pytest.approx(g0 + p["w_min"])
    assert q["w_max"] * q["w_max_dtod"] == pytest.approx(p["w_max"] * p["w_max_dtod"])
    with pytest.raises(CalibError, match="does not contain"):
        rereferenced(truth, 20e-6)


# ----------------------------------------------------------------------------- tasks, data
def test_seeds_are_stable_and_tasks_pickle() -> None:
    assert derived_seed(0, "read", 3, 3600.0) == derived_seed(0, "read", 3, 3600)
    assert derived_seed(0, "read", 3, 3600.0) != derived_seed(0, "read", 4, 3600.0)
    assert derived_seed(1, "read", 3, 3600.0) != derived_seed(0, "read", 3, 3600.0)
    task = EvalTask("net.pt", "preset.json", "chip", 3600.0, 2, 0, "TCPIP::h::1::SOCKET")
    assert pickle.loads(pickle.dumps(task)) == task
    assert len(pickle.dumps(task)) < 2000  # small: references files, no arrays
    with pytest.raises(CalibError, match="chip resource"):
        EvalTask("net.pt", "preset.json", "chip", 1.0, 0)


def test_datasets_shapes_and_unknown_names() -> None:
    state = np.random.get_state()[1].copy(), random.getstate()
    split = load_dataset("mnist1d")
    assert tuple(split.x_train.shape) == (4000, 40) and tuple(split.x_test.shape) == (1000, 40)
    assert set(split.y_test.tolist()) == set(range(10))
    # the generator seeds numpy's and Python's global streams: they must be restored
    assert np.array_equal(np.random.get_state()[1], state[0]) and random.getstate() == state[1]
    digits = load_dataset("digits", 0)
    assert tuple(digits.x_test.shape) == (450, 64)
    with pytest.raises(CalibError, match="unknown dataset 'cifar'; choose one of digits"):
        load_dataset("cifar")
    with pytest.raises(CalibError, match="unknown network"):
        NetworkSpec("resnet", "digits")


def test_network_files_round_trip_and_foreign_files_are_refused(tmp_path: Path) -> None:
    spec = NetworkSpec("cnn", "mnist1d")
    model = build_network(spec, seed=5)
    path = save_network(TrainedNetwork(spec, model, 0, {"epochs": 1}, {"kind": "pcm-pair"}),
                        tmp_path / "net.pt")  # fmt: skip
    back = load_network(path)
    assert back.spec == spec and back.mapping == {"kind": "pcm-pair"}
    x = load_dataset("mnist1d").x_test[:5]
    with torch.no_grad():
        torch.testing.assert_close(back.model(x), model.eval()(x))
    (tmp_path / "bad.pt").write_text("not a network")
    with pytest.raises(CalibError, match="not a trained-network file"):
        load_network(tmp_path / "bad.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(CalibError, match="not a trained-network file"):
        load_network(tmp_path / "other.pt")
    assert copy.deepcopy(spec) == spec


def test_pcm_defects_follow_the_recorded_fraction_and_the_pruning_rule() -> None:
    from calib.validate.simulated import _pcm_defects
    from calib.validate.sources import defect_fraction
    from simulator import convert_to_analog, inference_config, program_analog_weights
    from simulator.inference import analog_tiles

    truth = _json("pcm_truth.json")
    assert defect_fraction(truth) == truth["device"]["parameters"]["corrupt_devices_prob"]
    fitted = {"pcm": {"excluded_devices": {"a.h5:drift": {"program-and-verify did not converge":
              30, "outlier": 5}, "b.h5:programming": {"program-and-verify did not converge": 10}},
              "n_devices": {"a.h5:drift": 1000, "b.h5:programming": 1000}}}  # fmt: skip
    assert defect_fraction(fitted) == pytest.approx(0.02)
    assert defect_fraction({"pcm": {}}) == 0.0
    model = nn.Sequential(nn.Linear(200, 100))
    for prune in (False, True):
        analog = convert_to_analog(model, inference_config(truth), seed=1)
        program_analog_weights(analog, seed=1)
        _pcm_defects(analog, 0.05, prune, seed=3)
        state = next(iter(analog_tiles(analog))).inference
        defect = state.nu == 0  # defects do not drift (a drawn ν is never exactly 0)
        # 40,000 devices at p = 0.05: binomial sd 44 devices, 5 sd = 0.55 % of the devices
        assert abs(defect.float().mean().item() - 0.05) < 0.0055
        target, g = state.g_target[defect], state.g_prog[defect]
        if prune:  # kept stuck devices are within half their target; the others read 0
            kept = g > 0
            assert bool(((g[kept] - target[kept]).abs() <= 0.5 * target[kept]).all())
            assert bool((g[target == 0] == 0).all())
        else:
            assert float(g.max()) <= truth["pcm"]["g_max_s"] and float(g.min()) >= 0
        assert state.baseline is None
