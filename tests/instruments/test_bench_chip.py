"""BenchChip: the safe operating area before any I/O, and every operation against the physics.

Operations run on the virtual bench through PyVISA and the real drivers. Their results are
compared with a *twin* device array (same truth and seed, noise restarted from the same
seed) given the same sequence of operations: the bench must reproduce it exactly, read
noise included (up to the float32 transfer).
"""

from __future__ import annotations

import numpy as np
import pytest
from protocol import ProtocolTransport

from instruments.bench_chip import BenchChip, Routing, SafeOperatingArea, SeriesLimiter
from instruments.chip import ListSelection, PulseSpec, PulseTrainSpec, pulse_sequence
from instruments.drivers import Keysight33500B, KeysightB2900, KeysightE5250A
from instruments.drivers.base import SafeOperatingAreaError, SettingError
from instruments.emulator.bench import running_bench
from instruments.emulator.bench.client import open_virtual_bench as open_bench
from instruments.emulator.physics import make_device_array
from instruments.visa_transport import InstrumentError

SHAPE = (4, 4)
SEED = 13
DEVICES = np.array([1, 6, 11])


def fake_bench(**kwargs) -> BenchChip:
    """A bench on transports that refuse any message: proves nothing was sent."""
    smu = KeysightB2900(ProtocolTransport([], "Keysight Technologies,B2901A,X,1"))
    awg = Keysight33500B(ProtocolTransport([], "Keysight Technologies,33521B,X,1"))
    switch = KeysightE5250A(ProtocolTransport([], "Agilent Technologies,E5250A,0,1"))
    kwargs.setdefault("limiter", SeriesLimiter("transistor", max_current_a=1e-4))
    return BenchChip(smu, awg, switch, Routing.sequential(SHAPE), prepare=False, **kwargs)


@pytest.fixture(scope="module")
def bench():
    with running_bench("reram", seed=SEED, shape=SHAPE) as res:
        yield res


@pytest.fixture
def chip(bench):
    with open_bench(bench.description(), timeout_s=5) as c:
        c.seed_noise(5)
        yield c


def twin(bench):
    """The bench's device array as it is now, noise restarted from seed 5."""
    array = make_device_array(bench.bench.truth, SHAPE, SEED)
    array.w[:] = bench.bench.array.w
    array.reseed_noise(5)
    return array


# --------------------------------------------------------------------------- safety
def test_requests_outside_the_safe_operating_area_send_nothing() -> None:
    chip = fake_bench(soa=SafeOperatingArea(max_pulse_voltage_v=2.0, max_pulse_width_s=1e-3))
    sel = ListSelection.of([0, 1])
    requests = [
        lambda: chip.read_conductance(sel, 0.6),  # over the 0.5 V read limit
        lambda: chip.read_conductance(sel, 0.0),
        lambda: chip.repeated_reads(sel, 3, -0.7),
        lambda: chip.apply_pulses(sel, PulseSpec(2.5, 1e-6)),  # over 2 V
        lambda: chip.apply_pulses(sel, PulseSpec(-1.0, 2e-3)),  # longer than 1 ms
        lambda: chip.apply_pulses(sel, PulseSpec(1.0, 1e-6, period_s=-1.0)),
        lambda: chip.apply_pulses(sel, PulseSpec(float("nan"), 1e-6)),
        lambda: chip.pulse_train_with_reads(
            sel, PulseTrainSpec(2, PulseSpec(1.0, 1e-6), 2, PulseSpec(-2.5, 1e-6)), 0.2
        ),
        lambda: chip.program_verify(sel, 5e-5, 1e-6, 10, 0.2, PulseSpec(3.0, 1e-6)),
        lambda: chip.read_at_times(sel, np.array([1.0]), 0.8),
    ]
    for request in requests:
        with pytest.raises(SafeOperatingAreaError, match=r"safe operating area|nothing was sent"):
            request()
    for inst in chip.instruments:
        assert inst.transport.position == 0, f"{type(inst).__name__} was sent a message"


def test_the_drivers_enforce_the_same_limits_on_their_own() -> None:
    chip = fake_bench(soa=SafeOperatingArea(max_pulse_voltage_v=2.0, compliance_current_a=1e-4))
    assert chip.smu.limits.max_current_a == 1e-4 and chip.pulser.limits.max_voltage_v == 2.0
    with pytest.raises(SafeOperatingAreaError):
        chip.pulser.configure_pulse(-2.2, 1e-6, 2e-6)
    with pytest.raises(SafeOperatingAreaError):
        chip.smu.configure_read(0.2, 1e-3, 1e-4)  # compliance above the bench's 100 µA
    with pytest.raises(SafeOperatingAreaError):
        chip.smu.list_sweep(np.array([0.2, 2.5]), 1e-4, 1e-4, 2e-5)
    assert all(inst.transport.position == 0 for inst in chip.instruments)


def test_bench_construction_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="train_mode"):
        fake_bench(train_mode="fast")
    with pytest.raises(ValueError, match="max_read_voltage_v"):
        SafeOperatingArea(max_read_voltage_v=0)
    smu = KeysightB2900(ProtocolTransport([], "Keysight Technologies,B2901A,X,1"))
    switch = KeysightE5250A(ProtocolTransport([], "Agilent Technologies,E5250A,0,1"))
    with pytest.raises(ValueError, match="needs a pulse generator"):
        BenchChip(smu, None, switch, Routing.sequential(SHAPE), train_mode="pulser", prepare=False)


# --------------------------------------------------------------------------- physics
def test_reads_and_pulses_reproduce_the_device_physics(bench, chip) -> None:
    expected = twin(bench)
    got = chip.read_conductance(ListSelection.of(DEVICES), 0.2, n_avg=3)
    predicted = [expected.read(np.array([d]), 1)[0] for d in DEVICES for _ in range(3)]
    np.testing.assert_allclose(got, np.reshape(predicted, (3, 3)).mean(axis=1), rtol=1e-6)
    t0 = chip.clock.now()
    chip.apply_pulses(ListSelection.of(DEVICES), PulseSpec(1.2, 1e-6), 4)
    for d in DEVICES:
        expected.apply_pulses(np.array([d]), 1.2, 1e-6, 4, 0.0, 2e-6)
    np.testing.assert_allclose(
        bench.bench.array.conductance(DEVICES), expected.conductance(DEVICES)
    )
    times = chip.programming_times(ListSelection.of(DEVICES))
    assert np.all(times > t0) and np.all(times <= chip.clock.now())
    assert chip.clock.virtual


def _train_by_pulses_twin(expected, spec: PulseTrainSpec) -> np.ndarray:
    out = []
    for d in DEVICES:
        idx, reads = np.array([d]), [expected.read(np.array([d]), 1)[0]]
        for count in pulse_sequence(spec)[1:]:
            pulse = spec.up if count > 0 else spec.down
            period = pulse.width_s + max(pulse.width_s, 1e-6)
            expected.apply_pulses(idx, pulse.amplitude_v, pulse.width_s, int(abs(count)), 0, period)
            reads.append(expected.read(idx, 1)[0])
        out.append(reads)
    return np.array(out).T


def _train_by_list_twin(expected, spec: PulseTrainSpec, v_read: float) -> np.ndarray:
    out = []
    for d in DEVICES:
        idx, reads = np.array([d]), []
        levels = [v_read]
        for count in pulse_sequence(spec)[1:]:
            pulse = spec.up if count > 0 else spec.down
            levels += [pulse.amplitude_v] * int(abs(count)) + [v_read]
        for volts in levels:
            if expected.strength(volts, spec.up.width_s) > 0:
                expected.apply_pulses(idx, volts, spec.up.width_s, 1, 0.0)
            value = expected.read(idx, 1)[0]
            if volts == v_read:
                reads.append(value)
        out.append(reads)
    return np.array(out).T


@pytest.mark.parametrize("width", [1e-6, 1e-4], ids=["pulser bursts", "smu list sweep"])
def test_pulse_trains_reproduce_the_device_physics(bench, chip, width: float) -> None:
    spec = PulseTrainSpec(4, PulseSpec(1.2, width), 4, PulseSpec(-1.1, width), 2, read_every=2)
    expected = twin(bench)
    got = chip.pulse_train_with_reads(ListSelection.of(DEVICES), spec, 0.2)
    if width < chip.smu.min_list_step_s:
        predicted = _train_by_pulses_twin(expected, spec)
    else:
        predicted = _train_by_list_twin(expected, spec, 0.2)
    assert got.shape == (spec.n_reads, DEVICES.size)
    np.testing.assert_allclose(got, predicted, rtol=1e-6)


def test_long_trains_are_split_into_several_lists(bench) -> None:
    with open_bench({**bench.description(), "train_mode": "list"}, timeout_s=5) as chip:
        chip.seed_noise(5)
        chip.smu.max_list_points = 7  # a 2500-point list in miniature
        spec = PulseTrainSpec(4, PulseSpec(1.2, 1e-4), 4, PulseSpec(-1.2, 1e-4), 1)
        expected = twin(bench)
        got = chip.pulse_train_with_reads(ListSelection.of(DEVICES), spec, 0.2)
        np.testing.assert_allclose(got, _train_by_list_twin(expected, spec, 0.2), rtol=1e-6)
        with pytest.raises(SettingError, match="list sweep needs"):
            chip.pulse_train_with_reads(
                ListSelection.of(DEVICES),
                PulseTrainSpec(1, PulseSpec(1.2, 1e-6), 1, PulseSpec(-1.2, 1e-6)),
                0.2,
            )
        chip.smu.max_list_points = 1
        with pytest.raises(SettingError, match="between two reads"):
            chip.pulse_train_with_reads(ListSelection.of(DEVICES), spec, 0.2)


def test_repeated_reads_and_reads_at_times(bench, chip) -> None:
    expected = twin(bench)
    reads = chip.repeated_reads(ListSelection.of(DEVICES), 4, 0.2)
    predicted = [[expected.read(np.array([d]), 1)[0] for _ in range(4)] for d in DEVICES]
    np.testing.assert_allclose(reads, np.array(predicted).T, rtol=1e-6)
    chip.apply_pulses(ListSelection.of(DEVICES), PulseSpec(1.2, 1e-6), 1)
    programmed = chip.programming_times(ListSelection.of(DEVICES))
    g = chip.read_at_times(ListSelection.of(DEVICES), np.array([10.0, 100.0]), 0.2)
    assert g.shape == (2, DEVICES.size)
    # the virtual clock was advanced to the last read time (plus the reads themselves)
    assert chip.clock.now() >= programmed.max() + 100.0
    assert chip.clock.now() < programmed.max() + 101.0


def test_compliance_stops_the_read_and_names_the_device(bench) -> None:
    soa = {"compliance_current_a": 1e-6}
    limiter = {"kind": "transistor", "max_current_a": 1e-6}
    doc = {**bench.description(), "safe_operating_area": soa, "series_limiter": limiter}
    with (
        open_bench(doc, timeout_s=5) as chip,
        pytest.raises(InstrumentError, match=r"compliance.*clamped.*device \(1, 2\)"),
    ):
        chip.read_conductance(ListSelection.of([6]), 0.2)


def test_a_bench_without_pulse_generator_pulses_with_the_smu(bench) -> None:
    doc = {**bench.description(), "pulser": None}
    with open_bench(doc, timeout_s=5) as chip:
        chip.seed_noise(5)
        expected = twin(bench)
        chip.apply_pulses(ListSelection.of([2]), PulseSpec(1.0, 1e-4), 2)
        for _ in range(2):
            expected.apply_pulses(np.array([2]), 1.0, 1e-4, 1, 0.0)
        np.testing.assert_allclose(
            bench.bench.array.conductance(np.array([2])), expected.conductance(np.array([2]))
        )
        with pytest.raises(SettingError, match="no pulse generator"):
            chip.apply_pulses(ListSelection.of([2]), PulseSpec(1.0, 1e-6), 1)
        assert chip.snapshot()["pulser"] is None


def test_program_and_verify_on_a_pcm_bench() -> None:
    targets = np.array([4e-6, 10e-6, 16e-6, 22e-6])
    with (
        running_bench("pcm", seed=4, shape=(4, 4)) as res,
        open_bench(res.description(), timeout_s=5) as chip,
    ):
        sel = ListSelection.of([0, 5, 10, 15])
        chip.apply_pulses(sel, PulseSpec(-1.0, 100e-9), 1)  # RESET first
        # reads come ms after each pulse and see PCM's post-programming relaxation
        # (σ_prog ≈ 0.6-1.1 µS at these levels): a 1 µS band is reachable, 0.25 µS is luck
        result = chip.program_verify(sel, targets, 1e-6, 100, 0.2, PulseSpec(1.0, 100e-9))
        stuck = res.bench.array.per_device_truth()["stuck"][[0, 5, 10, 15]] > 0
        ok = ~stuck
        assert result.converged[ok].all()
        assert np.all(np.abs(result.conductance_s - targets)[ok] <= 1e-6)
        assert np.all(result.iterations[ok] >= 1)
        assert np.all(np.isfinite(result.time_s[ok]))
        # programming times are chip times of the last pulse: before now, after the RESET
        assert np.all(result.time_s[ok] <= chip.clock.now())


def test_snapshot_identity_and_close(bench) -> None:
    chip = open_bench(bench.description(smu="keithley_2600"), timeout_s=5)
    snap = chip.snapshot()
    assert chip.identity().startswith("BENCH,4x4,Keithley Instruments Inc., Model 2601B")
    assert snap["smu"]["driver"] == "Keithley2600" and snap["switch"]["driver"] == "KeysightE5250A"
    assert snap["routing"] == bench.bench.routing.to_dict() and snap["clock"] == "virtual"
    assert snap["safe_operating_area"]["compliance_current_a"] == 1e-3
    chip.close()
    assert bench.bench.closed == set()  # relays opened on the way out
    assert not bench.bench.pulser.output


def test_bench_descriptions_are_validated(tmp_path, bench) -> None:
    good = bench.description()
    cases = [
        ({**good, "smu": {"driver": "hp4156", "resource": "x"}}, "not one of"),
        ({**good, "switch": None}, "'switch' needs"),
        ({**good, "extra": 1}, "unknown key"),
        ({**good, "routing": {**good["routing"], "rows": []}}, "at least one row"),
        ({**good, "safe_operating_area": {"max_volts": 1}}, "unknown key"),
        ({**good, "smu": {**good["smu"], "speed": 2}}, "unknown key"),
    ]
    for doc, message in cases:
        with pytest.raises(ValueError, match=message):
            open_bench(doc)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        open_bench(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="cannot read"):
        open_bench(tmp_path / "missing.json")
    with pytest.raises(InstrumentError):
        open_bench({**good, "smu": {**good["smu"], "resource": "TCPIP::127.0.0.1::9::SOCKET"}})
