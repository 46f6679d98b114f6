"""Issue 15 regressions: what the instruments *do*, per their manuals, seen by the devices.

Each test drives a real driver (or the bench chip) through the virtual instruments, which
follow the programming manuals (see ``instruments/MANUALS.md``), and checks the voltage
every device actually saw (``VirtualBench.exposures``), not only the commands sent.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from protocol import ProtocolTransport

from instruments.bench_chip import BenchChip, Routing, SafeOperatingArea, SeriesLimiter
from instruments.chip import ListSelection, PulseSpec, PulseTrainSpec
from instruments.drivers import Keithley2600, Keysight33500B, KeysightB2900, KeysightE5250A
from instruments.drivers.base import SafeLimits, SafeOperatingAreaError, SettingError
from instruments.emulator.bench import running_bench
from instruments.emulator.bench.client import VirtualBenchChip, open_virtual_bench
from instruments.visa_transport import InstrumentError, VisaTransport

SHAPE = (4, 4)
WIDE = SafeLimits(max_voltage_v=10.0, max_current_a=0.1, max_pulse_width_s=1.0)


@pytest.fixture
def bench():
    with running_bench("reram", seed=21, shape=SHAPE) as res:
        yield res


def _route_to_smu(res, row: int, col: int) -> None:
    with KeysightE5250A.open(res.switch, timeout_s=5) as switch:
        switch.prepare()
        switch.connect(res.bench.routing.read_channels(row, col))


def _flat(row: int, col: int) -> int:
    return row * SHAPE[1] + col


# --------------------------------------------------------------------------- defect 1
def test_virtual_b2900_reads_at_the_triggered_level_which_is_0_v_after_reset(bench) -> None:
    """SCPI ref. 4-93: :READ (INIT + FETC) moves the output to the triggered level."""
    _route_to_smu(bench, 1, 2)
    with VisaTransport(bench.smu, timeout_s=5) as smu:
        smu.write("*RST;:SOUR:VOLT 0.2;:OUTP ON")
        assert float(smu.query(":READ:ARR:CURR? (@1)")) == 0.0  # triggered level: 0 V
        assert float(smu.query(":MEAS:CURR? (@1)")) == 0.0  # the output stayed there
        smu.write(":SOUR:VOLT:TRIG 0.2")
        assert float(smu.query(":READ:ARR:CURR? (@1)")) > 0
    levels = {e.volts for e in bench.bench.seen_by(_flat(1, 2))}
    assert levels == {0.2}


def test_b2900_read_after_a_pulse_applies_the_read_level_not_the_peak(bench) -> None:
    _route_to_smu(bench, 1, 2)
    device = _flat(1, 2)
    with KeysightB2900.open(bench.smu, timeout_s=5, limits=WIDE) as smu:
        smu.prepare()
        smu.pulse(2.0, 1e-4, 1, 1e-3)
        t_pulse = bench.bench.now()
        smu.configure_read(0.2, 1e-3, 1e-4)
        currents = smu.read_currents(3)
        smu.output_off()
    after = [e.volts for e in bench.bench.seen_by(device) if e.t_s >= t_pulse]
    assert after and max(abs(v) for v in after) == pytest.approx(0.2)
    g = bench.bench.array.conductance(np.array([device]))[0]
    # read noise is a few per cent; the peak would read 10x the current
    np.testing.assert_allclose(currents, 0.2 * g, rtol=0.2)


# --------------------------------------------------------------------------- defect 2
def test_a_polarity_flip_never_reaches_the_previously_pulsed_device(bench) -> None:
    with open_virtual_bench(bench.description(), timeout_s=5) as chip:
        chip.apply_pulses(ListSelection.of([_flat(0, 0)]), PulseSpec(1.5, 1e-5))
        chip.apply_pulses(ListSelection.of([_flat(2, 3)]), PulseSpec(-1.5, 1e-5))
        chip.apply_pulses(ListSelection.of([_flat(0, 0)]), PulseSpec(1.0, 1e-5))
    pulser = [e for e in bench.bench.exposures if e.source.startswith("pulser")]
    seen = {}
    for e in pulser:
        seen.setdefault(e.device, set()).add(e.volts)
    # each device saw its own pulses (behind the limiter: at most the amplitude) and
    # nothing of the other polarity; no third device saw anything
    assert set(seen) == {_flat(0, 0), _flat(2, 3)}
    assert all(0 < v <= 1.5 for v in seen[_flat(0, 0)])
    assert all(-1.5 <= v < 0 for v in seen[_flat(2, 3)])


# --------------------------------------------------------------------------- defect 3
def test_2600b_pulse_lasts_the_asked_width_measurement_included(bench) -> None:
    _route_to_smu(bench, 3, 1)
    with Keithley2600.open(bench.smu_tsp, timeout_s=5, limits=WIDE) as smu:
        smu.prepare()
        smu.configure_read(0.2, 1e-3, 1e-4)  # a 100 µs read aperture is left configured
        smu.pulse(1.2, 2e-4, 2, 1e-3)
    pulses = [e for e in bench.bench.seen_by(_flat(3, 1)) if e.volts == 1.2]
    assert len(pulses) == 2
    for e in pulses:  # ton + the 0.001-NPLC measurement = the requested 200 µs
        assert e.duration_s == pytest.approx(2e-4, rel=1e-9)


def test_2600b_width_limit_counts_the_measurement() -> None:
    limits = SafeLimits(max_voltage_v=2.0, max_pulse_width_s=1e-4)
    smu = Keithley2600(ProtocolTransport([], "Keithley Instruments Inc., Model 2602B, 1, 1"))
    smu.limits = limits
    with pytest.raises(SafeOperatingAreaError, match="ton \\+ measurement"):
        smu.pulse(1.2, 1.5e-4, 1, 1e-4)
    assert smu.transport.position == 0


# --------------------------------------------------------------------------- defect 4
def test_the_pulser_path_needs_a_declared_series_limiter(bench) -> None:
    doc = bench.description()
    del doc["series_limiter"]
    with pytest.raises(ValueError, match="series_limiter is missing"):
        open_virtual_bench(doc)
    weak = {"kind": "resistor", "resistance_ohm": 1000.0}  # 5 V / 1050 Ω = 4.8 mA > 1 mA
    with pytest.raises(ValueError, match=r"lets 0\.00476.* A through"):
        open_virtual_bench({**doc, "series_limiter": weak})
    smu = KeysightB2900(ProtocolTransport([], "Keysight Technologies,B2901A,X,1"))
    awg = Keysight33500B(ProtocolTransport([], "Keysight Technologies,33521B,X,1"))
    switch = KeysightE5250A(ProtocolTransport([], "Agilent Technologies,E5250A,0,1"))
    with pytest.raises(ValueError, match="no current limit"):
        BenchChip(smu, awg, switch, Routing.sequential(SHAPE), prepare=False)
    assert SeriesLimiter("resistor", resistance_ohm=4950.0).worst_current_a(5.0) == 1e-3


def test_a_series_resistor_divides_the_pulse_the_device_sees() -> None:
    limiter = SeriesLimiter("resistor", resistance_ohm=1e4)
    with (
        running_bench("reram", seed=4, shape=SHAPE, limiter=limiter) as res,
        open_virtual_bench(res.description(), timeout_s=5) as chip,
    ):
        device = _flat(1, 1)
        g = res.bench.array.conductance(np.array([device]))[0]
        chip.apply_pulses(ListSelection.of([device]), PulseSpec(1.5, 1e-5))
        seen = [e.volts for e in res.bench.seen_by(device) if e.source.startswith("pulser")]
    assert seen[0] == pytest.approx(1.5 / (1 + g * (1e4 + 50.0)))


def test_a_b2900_read_never_switches_the_output_on_behind_the_benchs_back(bench) -> None:
    """B2961A/B2962A SCPI ref. 4-67: with ``:OUTP:ON:AUTO`` on (the default) ``:READ``
    turns an output that is off on; after ``prepare()`` it is off, so a read with the
    output off fails with the instrument's error and no device sees a voltage."""
    _route_to_smu(bench, 0, 0)
    with KeysightB2900.open(bench.smu, timeout_s=5) as smu:
        smu.prepare()
        smu.output_off()
        assert smu.auto_output_on.get() is False
        with pytest.raises(InstrumentError, match=r"-221.*output is off"):
            smu.read_currents(1)
        assert smu.output_enabled.get() is False
    assert [e for e in bench.bench.exposures if e.source.startswith("smu")] == []


# --------------------------------------------------------------------------- defect 5
def test_keithley_ranges_come_from_the_identified_model() -> None:
    unlimited = SafeLimits(math.inf, math.inf, math.inf, math.inf)

    def smu(model: str) -> Keithley2600:
        idn = f"Keithley Instruments Inc., Model {model}, 1, 1"
        return Keithley2600(ProtocolTransport([], idn), limits=unlimited)

    for model in ("2601B", "2602B", "2604B"):
        with pytest.raises(SettingError, match=rf"range \({model}\) \[-40.4, 40.4\]"):
            smu(model).source_voltage_v.validate(100.0)
        with pytest.raises(SettingError, match=model):
            smu(model).current_limit_a.validate(100e-12)
    assert smu("2611B").source_voltage_v.validate(100.0) == 100.0
    with pytest.raises(SettingError, match="2611B"):
        smu("2611B").current_limit_a.validate(100e-12)
    assert smu("2636B").current_limit_a.validate(100e-12) == 100e-12
    with pytest.raises(SettingError, match="2636B"):
        smu("2636B").current_limit_a.validate(2.0)  # 1.5 A on the 200 V models


def test_the_virtual_2601b_refuses_what_a_2601b_cannot_source(bench) -> None:
    with VisaTransport(bench.smu_tsp, timeout_s=5, dialect="tsp") as tsp:
        tsp.write("smua.source.levelv = 100")
        assert tsp.query("print(errorqueue.count)").startswith("1")
        assert tsp.query("print(smua.source.levelv)") == "0.00000e+00"


def test_the_2600b_driver_caches_the_range_the_instrument_chose(bench) -> None:
    """Rev. C 7-247: a range setting selects a fixed range large enough for the value and
    reads back that range's full scale (2601B source ranges 0.1, 1, 6, 40 V)."""
    with Keithley2600.open(bench.smu_tsp, timeout_s=5) as smu:
        smu.voltage_range_v = 2.0
        assert smu.voltage_range_v.cached == 6.0
        smu.configure(voltage_range_v=0.5)
        assert smu.voltage_range_v.cached == 1.0 == smu.voltage_range_v.get()


# --------------------------------------------------------------------------- defect 6
def test_standalone_drivers_are_safe_by_default() -> None:
    smu = KeysightB2900(ProtocolTransport([], "Keysight Technologies,B2901A,X,1"))
    with pytest.raises(SafeOperatingAreaError):
        smu.source_voltage_v.validate(200.0)
    with pytest.raises(SafeOperatingAreaError):  # 5 V held 100 s per step
        smu.list_sweep(np.array([0.2, 5.0, 0.2]), 100.0, 1e-4, 1e-3)
    k = Keithley2600(ProtocolTransport([], "Keithley Instruments Inc., Model 2611B, 1, 1"))
    with pytest.raises(SafeOperatingAreaError):
        k.pulse(150.0, 10.0, 1, 1e-4)
    with pytest.raises(SafeOperatingAreaError):
        k.configure_read(1.2, 1e-4, 1e-3)  # a DC level above the read limit is held
    assert smu.transport.position == 0 and k.transport.position == 0


def test_consecutive_list_points_at_one_level_are_one_hold() -> None:
    limits = SafeLimits(max_voltage_v=2.0, max_pulse_width_s=1.0, max_dc_voltage_v=0.5)
    levels = np.array([0.2] + [1.2] * 200 + [0.2])  # 200 x 10 ms: 2 s at 1.2 V
    with pytest.raises(SafeOperatingAreaError, match=r"points 1-200 hold 1\.2 V for 2 s"):
        limits.check_holds(levels, 10e-3, "X", "list")
    limits.check_holds(np.array([0.2, 1.2, 0.0] * 200), 10e-3, "X", "list")  # gaps: fine


def test_bench_list_trains_keep_the_pulse_period_and_merge_back_to_back_pulses(bench) -> None:
    spec = PulseTrainSpec(3, PulseSpec(1.2, 1e-4), 0, PulseSpec(-1.2, 1e-4), 1, read_every=3)
    with open_virtual_bench({**bench.description(), "train_mode": "list"}, timeout_s=5) as chip:
        chip.pulse_train_with_reads(ListSelection.of([_flat(0, 1)]), spec, 0.2)
    pulses = [e for e in bench.bench.seen_by(_flat(0, 1)) if e.volts == 1.2]
    assert len(pulses) == 3  # three 100 µs holds separated by 0 V steps: 50 % duty
    assert all(e.duration_s == pytest.approx(1e-4) for e in pulses)
    assert pulses[1].t_s - pulses[0].t_s == pytest.approx(2e-4)
    # back to back (period = width, duty 1 allowed) 200 x 10 ms is 2 s at 1.2 V: refused
    soa = SafeOperatingArea(max_duty_cycle=1.0)
    long_train = PulseTrainSpec(200, PulseSpec(1.2, 1e-2, 1e-2), 0, PulseSpec(-1.2, 1e-2), 1, 200)
    with (
        open_virtual_bench(
            {**bench.description(), "train_mode": "list", "safe_operating_area": vars(soa)}
        ) as chip,
        pytest.raises(SafeOperatingAreaError, match=r"hold 1\.2 V for 2 s"),
    ):
        chip.pulse_train_with_reads(ListSelection.of([0]), long_train, 0.2)
    with pytest.raises(SafeOperatingAreaError, match=r"duty cycle 1 exceeds 0\.5"):
        SafeOperatingArea().check_pulse(PulseSpec(1.2, 1e-2, 1e-2))


# --------------------------------------------------------------------------- defect 7
def test_prepare_clears_a_bias_mode_left_on_by_a_previous_session(bench) -> None:
    """E5250A Guide 5-11: with bias mode on, every unrouted line sits on the bias port."""
    with VisaTransport(bench.switch, timeout_s=5) as sw:  # a previous session's state
        sw.write(":ROUT:BIAS:PORT ALL,3;:ROUT:BIAS:STAT ALL,ON")  # bias port = ground input
    with open_virtual_bench(bench.description(), timeout_s=5) as chip:
        assert isinstance(chip, VirtualBenchChip)
        device = _flat(1, 2)
        g_true = bench.bench.array.conductance(np.array([device]))[0]
        g = chip.read_conductance(ListSelection.of([device]), 0.2)[0]
    # with bias mode on the read would see the whole row (4 devices in parallel)
    assert g == pytest.approx(g_true, rel=0.2)
    assert not any(bench.bench.switch.bias.values())


def test_the_33500b_driver_on_its_own_keeps_a_routed_device_off_while_releveling(bench) -> None:
    routing = bench.bench.routing
    with (
        KeysightE5250A.open(bench.switch, timeout_s=5) as switch,
        Keysight33500B.open(bench.pulser, timeout_s=5, limits=WIDE) as awg,
    ):
        switch.prepare()
        awg.prepare()
        switch.connect(routing.pulse_channels(2, 2))  # stays routed throughout
        awg.configure_pulse(1.5, 1e-5, 2e-5)
        awg.fire(2)
        awg.configure_pulse(-1.5, 1e-5, 2e-5)  # the polarity flip
        awg.configure_pulse(1.0, 1e-5, 2e-5)
    seen = {e.volts for e in bench.bench.seen_by(_flat(2, 2))}
    assert seen and min(seen) >= 0, f"the device saw {sorted(seen)} V"


def test_smu_pulses_keep_their_period(bench) -> None:
    _route_to_smu(bench, 0, 3)
    with KeysightB2900.open(bench.smu, timeout_s=5, limits=WIDE) as smu:
        smu.prepare()
        smu.pulse(1.2, 1e-4, 3, 1e-3)  # period 0: twice the width
        smu.pulse(1.1, 1e-4, 2, 1e-3, period_s=5e-4)
    starts = [e.t_s for e in bench.bench.seen_by(_flat(0, 3)) if e.volts == 1.2]
    assert np.diff(starts) == pytest.approx([2e-4, 2e-4])
    starts = [e.t_s for e in bench.bench.seen_by(_flat(0, 3)) if e.volts == 1.1]
    assert np.diff(starts) == pytest.approx([5e-4])
