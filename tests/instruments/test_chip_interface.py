"""ChipInterface operations on the emulated chip, on-chip versus the generic fallbacks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from instruments.chip import (
    BlockSelection,
    ChipInterface,
    DeviceSelection,
    ListSelection,
    PulseSpec,
    PulseTrainSpec,
)
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator


@pytest.fixture(scope="module")
def pcm_resource():
    with running_emulator("pcm", seed=5, shape=(64, 64)) as resource:
        yield resource


def test_program_verify_reaches_targets_and_reports_times(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        sel = BlockSelection(0, 0, 8, 32)
        targets = np.linspace(40e-6, 90e-6, 256)
        t_before = chip.clock.now()
        res = chip.program_verify(sel, targets, 0.5e-6, 200, 0.2, PulseSpec(1.2, 1e-6))
        stuck = chip.ground_truth_array("stuck")[:256].astype(bool)
        # every responsive device converges; stuck ones (2 %) only by chance
        assert res.converged[~stuck].all()
        assert np.all(np.abs(res.conductance_s - targets)[res.converged] <= 0.5e-6)
        assert res.iterations.dtype == np.int32 and res.iterations.max() <= 200
        pulsed = res.iterations > 0
        assert np.all(res.time_s[pulsed] > t_before)
        assert np.all(res.time_s <= chip.clock.now())
        np.testing.assert_allclose(chip.programming_times(sel), res.time_s, rtol=0, atol=1e-9)


def test_host_fallback_program_verify_agrees_with_on_chip(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        sel = ListSelection.of([3, 70, 500, 901])
        res = ChipInterface.program_verify(chip, sel, 60e-6, 1.5e-6, 100, 0.2, PulseSpec(1.2, 1e-6))
        ok = ~chip.ground_truth_array("stuck")[[3, 70, 500, 901]].astype(bool)
        assert res.converged[ok].all()
        again = chip.read_conductance(sel, 0.2, n_avg=16)
        # reram does not drift: 16-read averages stay within tol + 4 sigma of read noise
        assert np.all(np.abs(again - 60e-6)[ok] < 1.5e-6 + 4 * 0.25e-6 / 4)


def test_pcm_drift_reads_follow_power_law_in_virtual_time(pcm_resource: str) -> None:
    with ScpiCrossbarChip(pcm_resource) as chip:
        sel = BlockSelection(0, 0, 16, 64)
        targets = np.repeat(np.linspace(4e-6, 24e-6, 16), 64)
        wall = time.perf_counter()
        res = chip.program_verify(sel, targets, 0.25e-6, 100, 0.2, PulseSpec(1.0, 100e-9))
        times = np.logspace(0, 5, 26)  # 1 s .. 1e5 s after programming
        g = chip.read_at_times(sel, times, 0.2, n_avg=64)
        elapsed = time.perf_counter() - wall
        assert elapsed < 1.0  # 1e5 s of chip time in well under a second of wall time
        assert chip.clock.now() >= res.time_s.max() + 1e5
        nu = chip.ground_truth_array("nu")[:1024]
        g_prog = chip.ground_truth_array("g_prog")[:1024]
        ok = res.converged & (chip.ground_truth_array("stuck")[:1024] == 0)
        # flat before t0 = 20 s, then G = G(t0) (t/t0)^-nu per device
        late = times >= 20
        expected = g_prog[None, :] * (times[late, None] / 20.0) ** -nu[None, :]
        rel = (g[late] - expected)[:, ok] / expected[:, ok]
        # 64-read averages: relative read noise <= 0.2*5.6/8 = 14 % per point at x=0.16,
        # about 1 % at high levels; the median over devices must sit on the law
        assert np.all(np.abs(np.median(rel, axis=1)) < 0.01)
        early = g[times < 10][:, ok]
        assert np.all(np.abs(np.median((early - g_prog[ok]) / g_prog[ok], axis=1)) < 0.01)


def test_read_at_times_refuses_times_already_past(pcm_resource: str) -> None:
    with ScpiCrossbarChip(pcm_resource) as chip:
        sel = DeviceSelection(60, 60)
        chip.clock.advance(1000.0)
        with pytest.raises(Exception, match="already passed"):
            chip.read_at_times(sel, np.array([1.0, 2.0]), 0.2)
        with pytest.raises(ValueError, match="non-decreasing"):
            chip.read_at_times(sel, np.array([5.0, 2.0]), 0.2)


def test_generic_read_at_times_fallback_waits_on_the_clock(pcm_resource: str) -> None:
    with ScpiCrossbarChip(pcm_resource) as chip:
        sel = BlockSelection(20, 0, 2, 8)
        chip.program_verify(sel, 10e-6, 0.25e-6, 100, 0.2, PulseSpec(1.0, 100e-9))
        t_prog = chip.programming_times(sel)
        g = ChipInterface.read_at_times(chip, sel, np.array([30.0, 300.0]), 0.2, n_avg=16)
        assert g.shape == (2, 16)
        assert chip.clock.now() >= t_prog.max() + 300.0
        assert np.median(g[1] / g[0]) < 1.0  # drift lowers the conductance


def test_mvm_matches_conductances_and_fallback(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        sel = BlockSelection(4, 2, 8, 6)
        v = np.random.default_rng(0).uniform(-0.2, 0.2, size=(50, 8))
        i_chip = chip.mvm(sel, v)
        assert i_chip.shape == (50, 6)
        g = chip.read_conductance(sel, 0.2, n_avg=256).reshape(8, 6)
        ideal = v @ g
        # column noise: sqrt(sum V^2) * 0.25 uS <= 0.57 * 0.25e-6 = 0.14 uA (5 sigma bound)
        assert np.max(np.abs(i_chip - ideal)) < 5 * 0.15e-6
        single = ChipInterface.mvm(chip, sel, v[0])
        assert single.shape == (6,)
        assert np.max(np.abs(single - ideal[0])) < 5 * 0.15e-6
        with pytest.raises(ValueError, match="8 values"):
            chip.mvm(sel, np.zeros((2, 7)))


def test_noise_seed_makes_measurements_reproducible() -> None:
    spec = PulseTrainSpec(20, PulseSpec(1.2, 1e-6), 20, PulseSpec(-1.2, 1e-6), cycles=1)
    results = []
    for warmup in (0, 3):
        with (
            running_emulator("reram", seed=9, shape=(16, 16)) as res,
            ScpiCrossbarChip(res) as chip,
        ):
            sel = BlockSelection(0, 0, 16, 16)
            for _ in range(warmup):  # consume noise: a different history of reads
                chip.read_conductance(sel, 0.2)
            chip.seed_noise(1234)
            results.append(chip.pulse_train_with_reads(sel, spec, 0.2))
    np.testing.assert_array_equal(results[0], results[1])
    with running_emulator("reram", seed=9, shape=(16, 16)) as res, ScpiCrossbarChip(res) as chip:
        chip.seed_noise(99)
        other = chip.pulse_train_with_reads(BlockSelection(0, 0, 16, 16), spec, 0.2)
    assert not np.array_equal(other, results[0])
    # device states are untouched by reseeding: the noise-free start is the same
    assert np.allclose(np.median(other[0] - results[0][0]), 0.0, atol=0.1e-6)


class _PrimitivesOnlyChip(ChipInterface):
    """A backend with only the two primitives (like a bench of SMU + pulser + switch)."""

    def __init__(self, kind: str, shape: tuple[int, int], seed: int) -> None:
        from instruments.chip import VirtualClock
        from instruments.emulator.physics import chip_truth, make_device_array

        self.shape = shape
        self.clock = VirtualClock()
        self.array = make_device_array(chip_truth(kind), shape, seed)
        self.reads = 0

    def identity(self) -> str:
        return "TEST,PRIMITIVES-ONLY"

    def read_conductance(self, sel, v_read: float, n_avg: int = 1) -> np.ndarray:
        self.reads += 1
        g = self.array.read(sel.indices(self.shape), n_avg, self.clock.now())
        self.clock.advance(10e-6 * n_avg)
        return g

    def apply_pulses(self, sel, pulse: PulseSpec, n: int = 1) -> None:
        idx = sel.indices(self.shape)
        self.array.apply_pulses(idx, pulse.amplitude_v, pulse.width_s, n, self.clock.now())
        self.clock.advance(n * (pulse.width_s + 1e-6))
        self.note_programmed(idx, self.clock.now())


def test_generic_fallbacks_run_every_operation_from_two_primitives() -> None:
    chip = _PrimitivesOnlyChip("pcm", (8, 16), seed=2)
    sel = BlockSelection(0, 0, 8, 16)
    spec = PulseTrainSpec(5, PulseSpec(1.0, 100e-9), 1, PulseSpec(-1.0, 100e-9), cycles=2)
    g = chip.pulse_train_with_reads(sel, spec, 0.2)
    assert g.shape == (spec.n_reads, 128)
    assert np.median(g[5]) > np.median(g[0]) and np.median(g[6]) < 0.2e-6  # SET up, RESET
    res = chip.program_verify(sel, 8e-6, 0.5e-6, 200, 0.2, PulseSpec(1.0, 50e-9))
    assert res.converged.mean() > 0.95  # all but stuck devices (1 %) within a few percent
    np.testing.assert_array_equal(chip.programming_times(sel), res.time_s)
    reads_before = chip.reads
    drift = chip.read_at_times(sel, np.array([20.0, 2000.0]), 0.2, n_avg=8)
    assert drift.shape == (2, 128)
    assert chip.clock.now() >= res.time_s.max() + 2000.0
    # devices converged at different iterations: the fallback groups reads by due time
    assert chip.reads - reads_before == np.unique(res.time_s).size * 2
    assert np.median(drift[1] / drift[0]) < 1.0
    assert chip.repeated_reads(sel, 3, 0.2).shape == (3, 128)
    assert chip.mvm(BlockSelection(0, 0, 2, 3), np.array([0.1, 0.2])).shape == (3,)
