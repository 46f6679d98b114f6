"""The virtual bench through PyVISA and the real drivers: each instrument's observable physics.

Exactness checks use a *twin* device array (same truth, seed and noise seed) that is given
the same operations directly: whatever the instruments do to the devices must equal what
the twin predicts, reading noise included.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from instruments.bench_chip import Routing
from instruments.drivers import Keithley2600, Keysight33500B, KeysightB2900, KeysightE5250A
from instruments.emulator.bench import running_bench
from instruments.emulator.physics import chip_truth, make_device_array
from instruments.visa_transport import InstrumentError, VisaTransport

SHAPE = (4, 4)
SEED = 21


@pytest.fixture(scope="module")
def bench():
    with running_bench("reram", seed=SEED, shape=SHAPE) as res:
        yield res


@pytest.fixture
def instruments(bench):
    """Prepared drivers on the shared bench; the noise stream restarts from seed 5."""
    smu = KeysightB2900.open(bench.smu, timeout_s=5)
    awg = Keysight33500B.open(bench.pulser, timeout_s=5)
    switch = KeysightE5250A.open(bench.switch, timeout_s=5)
    for inst in (switch, smu, awg):
        inst.prepare()
    switch.write("EMU:NOIS:SEED 5")
    yield smu, awg, switch
    for inst in (smu, awg, switch):
        inst.close()


def twin(bench) -> object:
    """A copy of the bench's device array in its present state, noise restarted from 5."""
    array = make_device_array(bench.bench.truth, SHAPE, SEED)
    for name in ("w", "t_prog"):
        if hasattr(bench.bench.array, name):
            setattr(array, name, getattr(bench.bench.array, name).copy())
    array.reseed_noise(5)
    return array


def route(switch: KeysightE5250A, row: int, col: int, source: int) -> None:
    switch.connect(Routing.sequential(SHAPE, smu_input=1)._pair(row, col, source))


def test_smu_measures_the_routed_device_with_its_read_noise(bench, instruments) -> None:
    smu, _, switch = instruments
    expected = twin(bench)
    route(switch, 1, 2, source=1)
    smu.configure_read(0.2, 1e-3, 1e-4)
    currents = smu.read_currents(5)
    flat = np.array([1 * SHAPE[1] + 2])
    predicted = [0.2 * expected.read(flat, 1)[0] for _ in range(5)]
    # the same draws of read noise: equal up to the float32 transfer
    np.testing.assert_allclose(currents, predicted, rtol=1e-6)


def test_smu_sees_nothing_without_a_route_and_parallel_devices_with_two(bench, instruments):
    smu, _, switch = instruments
    smu.configure_read(0.2, 1e-3, 1e-4)
    switch.open_all()
    assert smu.read_currents(1)[0] == 0.0
    switch.connection_rule = "free"
    try:
        switch.close_channels([10101, 10102, 10305])  # rows 0, 1 on the SMU; column 0 grounded
        g = bench.bench.array.conductance(np.array([0, SHAPE[1]]))
        # I = V·(G0 + G1): read noise 0.25 µS per device is 0.5 % of the sum
        assert smu.read_currents(1)[0] == pytest.approx(0.2 * g.sum(), rel=0.02)
    finally:
        switch.prepare()


def test_compliance_clamps_the_current_and_sets_the_status(bench, instruments) -> None:
    smu, _, switch = instruments
    route(switch, 0, 0, source=1)
    smu.configure_read(0.2, 1e-6, 1e-4)  # 1 µA, far below G·V ≈ 10 µA
    assert smu.read_currents(1)[0] == pytest.approx(1e-6)
    assert smu.compliance_tripped() is True
    smu.configure_read(0.2, 1e-3, 1e-4)
    smu.read_currents(1)
    assert smu.compliance_tripped() is False


def test_burst_applies_n_pulses_of_the_programmed_amplitude(bench, instruments) -> None:
    _, awg, switch = instruments
    expected = twin(bench)
    route(switch, 2, 3, source=2)
    flat = np.array([2 * SHAPE[1] + 3])
    before = awg.query("EMU:CLOC:TIME?")
    awg.configure_pulse(1.2, 1e-6, 5e-6)
    delivered = bench.bench.pulser.delivered
    awg.fire(7)
    assert bench.bench.pulser.delivered - delivered == 7
    expected.apply_pulses(flat, 1.2, 1e-6, 7, 0.0, 5e-6)
    np.testing.assert_allclose(bench.bench.array.conductance(flat), expected.conductance(flat))
    # the burst took 7 periods of the bench clock (plus the settling of relays before it)
    assert float(awg.query("EMU:CLOC:TIME?")) - float(before) == pytest.approx(7 * 5e-6)
    awg.configure_pulse(-1.2, 1e-6, 5e-6)  # inverted polarity: a depressing pulse at -1.2 V
    awg.fire(3)
    expected.apply_pulses(flat, -1.2, 1e-6, 3, 0.0, 5e-6)
    np.testing.assert_allclose(bench.bench.array.conductance(flat), expected.conductance(flat))


def test_a_50_ohm_load_setting_doubles_the_pulse_at_the_device(bench, instruments) -> None:
    _, awg, switch = instruments
    expected = twin(bench)
    awg.output_load_ohm = 50.0  # displayed levels halve; the output stays
    awg.configure_pulse(1.3, 1e-6, 5e-6)  # the driver programs 0.65 V for 1.3 V at the device
    assert awg.high_level_v.get() == pytest.approx(0.65)
    route(switch, 3, 1, source=2)
    awg.fire(2)
    flat = np.array([3 * SHAPE[1] + 1])
    expected.apply_pulses(flat, 1.3, 1e-6, 2, 0.0, 5e-6)
    np.testing.assert_allclose(bench.bench.array.conductance(flat), expected.conductance(flat))


def test_list_sweep_pulses_and_reads_in_one_block(bench, instruments) -> None:
    smu, _, switch = instruments
    expected = twin(bench)
    route(switch, 1, 1, source=1)
    levels = np.array([0.2, 1.1, 1.1, 0.2, -1.1, 0.2])
    currents = smu.list_sweep(levels, 1e-4, 1e-3, 2e-5)
    flat = np.array([1 * SHAPE[1] + 1])
    predicted = []
    for volts in levels:
        if expected.strength(volts, 1e-4) > 0:
            expected.apply_pulses(flat, volts, 1e-4, 1, 0.0)
        predicted.append(volts * expected.read(flat, 1)[0])
    np.testing.assert_allclose(currents, predicted, rtol=1e-6)


def test_the_2600b_speaks_tsp_on_the_same_devices(bench, instruments) -> None:
    _, _, switch = instruments
    expected = twin(bench)
    smu = Keithley2600.open(bench.smu_tsp, timeout_s=5)
    try:
        smu.prepare()
        route(switch, 0, 3, source=1)
        smu.configure_read(0.1, 1e-3, 1e-4)
        readings = smu.read_currents(3)
        flat = np.array([3])
        predicted = [0.1 * expected.read(flat, 1)[0] for _ in range(3)]
        np.testing.assert_allclose(readings, predicted, rtol=1e-6)  # 7 printed digits
        smu.configure_read(0.1, 1e-7, 1e-4)
        assert smu.measure_current() == pytest.approx(1e-7)
        assert smu.compliance_tripped() is True
        list_currents = smu.list_sweep(np.array([0.1, 0.1]), 2e-4, 1e-3, 2e-5)
        assert list_currents.shape == (2,)
    finally:
        smu.close()


def test_tsp_errors_are_queued_and_failed_chunks_print_nothing(bench) -> None:
    with VisaTransport(bench.smu_tsp, timeout_s=20, dialect="tsp") as t:
        t.write("errorqueue.clear()")
        t.write("format.asciiprecision = 7")  # what it prints, whatever ran before
        t.write("smua.source.levelv = 0.1 smua.source.levelv = 0.2")  # missing ';'
        t.write("smua.nonsense = 1")
        t.write("smua.source.compliance = true")
        t.write("smua.source.limiti = 0")
        assert t.query("print(errorqueue.count)") == "4.000000e+00"
        codes = [t.query("print(errorqueue.next())").split("\t")[0] for _ in range(4)]
        assert [int(float(c)) for c in codes] == [-285, -286, -286, 1102]
        assert t.query("print(errorqueue.next())").split("\t")[1] == "Queue Is Empty"
        assert t.query("print(1, true, nil, 'x')") == "1.000000e+00\ttrue\tnil\tx"
        assert t.query_unconfirmed("*IDN?").startswith("Keithley Instruments Inc., Model 2601B")
        # like the instrument, the failing chunk prints nothing: the error says why at once
        with pytest.raises(InstrumentError, match="-286"):
            t.query("print(undefined.thing)")
        assert t.query("print(2)") == "2.000000e+00"  # nothing left shifted


def test_scpi_errors_change_nothing(bench, instruments) -> None:
    smu, awg, switch = instruments
    smu.write(":SOUR1:VOLT 500")
    smu.write(":SOUR1:VOLT:BOGUS 1")
    assert [e.split(",")[0] for e in smu.errors()] == ["-222", "-113"]
    assert smu.source_voltage_v.get() == 0.2 or smu.source_voltage_v.get() == 0.0
    awg.write(":SOUR1:FUNC:PULS:WIDT 1")  # longer than the period
    awg.write(":SOUR1:VOLT:LOW 5")  # above the high level
    assert [e.split(",")[0] for e in awg.errors()] == ["-221", "-221"]
    switch.write(":ROUT:CLOS (@50101)")
    assert switch.errors()[0].startswith("-224")


def test_switch_single_route_break_before_make_and_free_rule_protection(bench, instruments):
    _, _, switch = instruments
    virtual = bench.bench.switch
    switch.open_all()
    switch.close_channels([10101])
    switch.close_channels([10102])  # same input, single route: the old relay opens first
    assert switch.is_closed([10101, 10102]) == [False, True]
    assert switch.closed_channels() == [10102]
    switch.connection_sequence = "make_before_break"
    try:
        switch.close_channels([10202])  # input 2 takes output 2 from input 1 ...
        assert virtual.overlaps == 1  # ... and for a moment both were joined
    finally:
        switch.connection_sequence = "break_before_make"
    switch.connection_rule = "free"
    try:
        with pytest.raises(InstrumentError, match=r"-221.*would short"):
            switch.close_channels([10302])
    finally:
        switch.prepare()
    assert bench.bench.closed == set()


def test_virtual_clock_advances_with_every_action(bench, instruments) -> None:
    smu, _, switch = instruments
    t0 = float(switch.query("EMU:CLOC:TIME?"))
    route(switch, 0, 1, source=1)  # a relay change: 3 ms
    t1 = float(switch.query("EMU:CLOC:TIME?"))
    assert t1 - t0 == pytest.approx(3e-3)
    smu.configure_read(0.2, 1e-3, 1e-4)
    smu.read_currents(10)  # 10 x (aperture 100 µs + 20 µs)
    t2 = float(switch.query("EMU:CLOC:TIME?"))
    assert t2 - t1 == pytest.approx(10 * 120e-6)
    switch.write("EMU:CLOC:ADV 100")
    switch.wait()  # instruments are separate connections: sync before asking another one
    assert float(smu.query("EMU:CLOC:TIME?")) - t2 == pytest.approx(100.0)


def test_running_bench_yields_four_resources_and_a_description(bench) -> None:
    resources = list(bench)
    assert len(resources) == 4 and len(set(resources)) == 4
    doc = bench.description(smu="keithley_2600")
    assert doc["smu"]["resource"] == bench.smu_tsp and doc["virtual"] is True
    assert Routing.from_dict(doc["routing"]) == bench.bench.routing
    with pytest.raises(ValueError, match="smu must be"):
        bench.description(smu="hp4156")


def test_routing_must_fit_the_array_and_the_switch() -> None:
    with pytest.raises(ValueError, match="needs 50 lines"):
        Routing.sequential((25, 25))
    with (
        pytest.raises(ValueError, match="routing is for"),
        running_bench(shape=(4, 4), routing=Routing.sequential((3, 3))),
    ):
        pass
    with pytest.raises(ValueError, match="two lines"):
        Routing(((1, 1),), ((1, 1),))
    with pytest.raises(ValueError, match="does not exist"):
        Routing(((1, 13),), ((1, 1),))
    with pytest.raises(ValueError, match="three different inputs"):
        Routing(((1, 1),), ((1, 2),), smu_input=2)
    assert math.prod(Routing.sequential((24, 24)).shape) == 576
    assert chip_truth("pcm").threshold_v > 0.2  # reads at 0.2 V never program
