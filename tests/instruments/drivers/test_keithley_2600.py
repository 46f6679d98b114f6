"""Protocol tests of the Keithley 2600B (TSP) driver: exact Lua dialogues, no instrument."""

from __future__ import annotations

import numpy as np
import pytest
from protocol import check_parameter, expected_protocol

from instruments.drivers.base import SafeLimits, SafeOperatingAreaError, SettingError
from instruments.drivers.keithley_2600 import Keithley2600, parse_numbers
from instruments.visa_transport import InstrumentError

IDN = "Keithley Instruments Inc., Model 2602B, 4123456, 3.3.5"
NO_ERROR = ("print(errorqueue.count)", "0.000000e+00")

# (parameter, query, reply, value, set command)
PARAMETERS = [
    (
        "source_function",
        "print(smua.source.func)",
        "1.000000e+00",
        "voltage",
        "smua.source.func = smua.OUTPUT_DCVOLTS",
    ),
    (
        "source_voltage_v",
        "print(smua.source.levelv)",
        "2.000000e-01",
        0.2,
        "smua.source.levelv = 0.2",
    ),
    ("voltage_range_v", "print(smua.source.rangev)", "2.000000e+00", 2.0, "smua.source.rangev = 2"),
    (
        "current_limit_a",
        "print(smua.source.limiti)",
        "1.000000e-03",
        1e-3,
        "smua.source.limiti = 0.001",
    ),
    ("nplc", "print(smua.measure.nplc)", "1.000000e-02", 0.01, "smua.measure.nplc = 0.01"),
    (
        "current_autorange",
        "print(smua.measure.autorangei)",
        "1.000000e+00",
        True,
        "smua.measure.autorangei = smua.AUTORANGE_ON",
    ),
    ("measure_count", "print(smua.measure.count)", "4.000000e+00", 4, "smua.measure.count = 4"),
    (
        "output_enabled",
        "print(smua.source.output)",
        "0.000000e+00",
        False,
        "smua.source.output = smua.OUTPUT_OFF",
    ),
    (
        "line_frequency_hz",
        "print(localnode.linefreq)",
        "6.000000e+01",
        60,
        "localnode.linefreq = 60",
    ),
    (
        "ascii_precision",
        "print(format.asciiprecision)",
        "7.000000e+00",
        7,
        "format.asciiprecision = 7",
    ),
    ("data_format", "print(format.data)", "1.000000e+00", "ascii", "format.data = format.ASCII"),
]


def test_the_table_covers_every_parameter() -> None:
    assert [row[0] for row in PARAMETERS] == list(Keithley2600.parameters())


@pytest.mark.parametrize("row", PARAMETERS, ids=[row[0] for row in PARAMETERS])
def test_parameter_get_and_set_dialogues(row) -> None:
    check_parameter(Keithley2600, IDN, row, [NO_ERROR])


def test_channel_b() -> None:
    dialogue = [("smub.source.levelv = -0.1", None), NO_ERROR]
    with expected_protocol(Keithley2600, dialogue, idn=IDN, channel="b") as smu:
        smu.source_voltage_v = -0.1
    with pytest.raises(ValueError, match="'a' or 'b'"):
        expected_protocol(Keithley2600, [], idn=IDN, channel="c").__enter__()


def test_error_queue_entries_are_read_one_by_one() -> None:
    dialogue = [
        ("smua.source.limiti = 0.001", None),
        ("print(errorqueue.count)", "2.000000e+00"),
        ("print(errorqueue.next())", "-2.860000e+02\tTSP Runtime error at line 1\t2.000000e+01\t1"),
        ("print(errorqueue.next())", "1.102000e+03\tParameter too small\t2.000000e+01\t1"),
    ]
    with (
        expected_protocol(Keithley2600, dialogue, idn=IDN) as smu,
        pytest.raises(InstrumentError, match=r"-286, TSP Runtime error.*1102, Parameter too"),
    ):
        smu.current_limit_a = 1e-3


def test_prepare_and_read_dialogues() -> None:
    dialogue = [
        ("errorqueue.clear()", None),
        (
            "format.data = format.ASCII;format.asciiprecision = 7;"
            "smua.source.func = smua.OUTPUT_DCVOLTS;smua.measure.autorangei = smua.AUTORANGE_ON",
            None,
        ),
        NO_ERROR,
        ("print(localnode.linefreq)", "5.000000e+01"),
        (
            "smua.source.limiti = 0.001;smua.source.levelv = 0.2;smua.measure.nplc = 0.005;"
            "smua.source.output = smua.OUTPUT_ON",
            None,
        ),
        NO_ERROR,
        ("smua.measure.count = 1", None),
        NO_ERROR,
        ("print(smua.measure.i())", "1.234568e-05"),
        ("smua.measure.count = 3", None),
        NO_ERROR,
        (
            "smua.nvbuffer1.clear(); smua.measure.i(smua.nvbuffer1); "
            "printbuffer(1, 3, smua.nvbuffer1.readings)",
            "1.000000e-05, 1.100000e-05, 9.000000e-06",
        ),
    ]
    with expected_protocol(Keithley2600, dialogue, idn=IDN) as smu:
        smu.prepare()
        smu.configure_read(0.2, 1e-3, 1e-4)
        assert smu.measure_current() == pytest.approx(1.234568e-05)
        np.testing.assert_allclose(smu.read_currents(3), [1e-5, 1.1e-5, 9e-6])


def test_list_sweep_uses_the_factory_script() -> None:
    dialogue = [
        ("print(localnode.linefreq)", "5.000000e+01"),
        ("smua.source.limiti = 0.001;smua.measure.nplc = 0.001;smua.measure.count = 1", None),
        NO_ERROR,
        (
            "SweepVListMeasureI(smua, {0.2, 1.2, 0.2}, 0.00018, 3); "
            "printbuffer(1, 3, smua.nvbuffer1.readings)",
            "2.000000e-05, 1.200000e-04, 2.100000e-05",
        ),
        NO_ERROR,
    ]
    with expected_protocol(Keithley2600, dialogue, idn=IDN) as smu:
        got = smu.list_sweep(np.array([0.2, 1.2, 0.2]), 2e-4, 1e-3, 2e-5)
        assert smu.transport.timeouts == [pytest.approx(3 * 2e-4 + 10)]
        assert smu.source_voltage_v.cached is None  # the script leaves the level unknown
    np.testing.assert_allclose(got, [2e-5, 1.2e-4, 2.1e-5])


def test_pulse_uses_the_factory_script() -> None:
    # the level lasts ton + the 0.001-NPLC measurement (20 µs at 50 Hz): ton = 200 - 20 µs
    dialogue = [
        ("print(localnode.linefreq)", "5.000000e+01"),
        ("smua.source.limiti = 0.001;smua.measure.count = 1;smua.measure.nplc = 0.001", None),
        NO_ERROR,
        ("PulseVMeasureI(smua, 0, 1.5, 0.00018, 0.0002, 4); print(smua.nvbuffer1.n)", "4.0e+00"),
        NO_ERROR,
    ]
    with expected_protocol(Keithley2600, dialogue, idn=IDN) as smu:
        smu.pulse(1.5, 2e-4, 4, 1e-3)


def test_compliance_reset_and_output_off() -> None:
    dialogue = [
        ("smua.source.limiti = 0.0005", None),
        NO_ERROR,
        ("print(smua.source.compliance)", "true"),
        ("smua.reset()", None),
        ("smua.source.output = smua.OUTPUT_OFF", None),
        NO_ERROR,
    ]
    with expected_protocol(Keithley2600, dialogue, idn=IDN) as smu:
        smu.limit_current(5e-4)
        assert smu.compliance_tripped() is True
        smu.reset()
        smu.output_off()


def test_values_outside_the_safe_area_or_range_never_leave_the_driver() -> None:
    limits = SafeLimits(max_voltage_v=2.0, max_current_a=1e-3, max_pulse_width_s=1e-3)
    with expected_protocol(Keithley2600, [], idn=IDN, limits=limits) as smu:
        with pytest.raises(SafeOperatingAreaError):
            smu.source_voltage_v = -2.5
        with pytest.raises(SafeOperatingAreaError):
            smu.current_limit_a = 0.1
        with pytest.raises(SafeOperatingAreaError):
            smu.list_sweep(np.array([0.2, 2.5, 0.2]), 2e-4, 1e-3, 2e-5)
        with pytest.raises(SafeOperatingAreaError):
            smu.pulse(1.5, 1e-2, 1, 1e-3)
        with pytest.raises(SafeOperatingAreaError):
            smu.pulse(2.5, 2e-4, 1, 1e-3)
        with pytest.raises(SettingError, match="instrument's range"):
            smu.nplc = 30
        with pytest.raises(SettingError, match="2 to 2000"):
            smu.list_sweep(np.zeros(1), 2e-4, 1e-3, 2e-5)


def test_ascii_numbers_and_bad_replies() -> None:
    np.testing.assert_allclose(parse_numbers("1.0e-05, 2.0e-05\t3.0e-05"), [1e-5, 2e-5, 3e-5])
    dialogue = [("smua.measure.count = 1", None), NO_ERROR, ("print(smua.measure.i())", "nil")]
    with (
        expected_protocol(Keithley2600, dialogue, idn=IDN) as smu,
        pytest.raises(InstrumentError, match="unexpected reply"),
    ):
        smu.measure_current()


def test_the_voltage_range_cached_is_the_one_the_instrument_chose() -> None:
    """Rev. C 7-247: ``rangev = 2`` selects a fixed range large enough (6 V on a 2601B)
    and reading it returns that range's full scale: the cache must hold 6, not 2."""
    dialogue = [
        ("smua.source.rangev = 2", None),
        NO_ERROR,
        ("print(smua.source.rangev)", "6.000000e+00"),
    ]
    with expected_protocol(Keithley2600, dialogue, idn=IDN) as smu:
        assert smu.configure(voltage_range_v=2.0) == "smua.source.rangev = 2"
        assert smu.voltage_range_v.cached == 6.0
