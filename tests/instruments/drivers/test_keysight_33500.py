"""Protocol tests of the Keysight 33500B pulse-generator driver: exact dialogues, no instrument."""

from __future__ import annotations

import math

import pytest
from protocol import NO_ERROR, check_parameter, expected_protocol

from instruments.drivers.base import SafeLimits, SafeOperatingAreaError, SettingError
from instruments.drivers.keysight_33500 import Keysight33500B
from instruments.visa_transport import InstrumentError

IDN = "Agilent Technologies,33522B,MY52800001,3.05-1.19-2.00-52-00"

# (parameter, query, reply, value, set command)
PARAMETERS = [
    ("function", ":SOUR1:FUNC?", "PULS", "pulse", ":SOUR1:FUNC PULS"),
    (
        "pulse_width_s",
        ":SOUR1:FUNC:PULS:WIDT?",
        "+1.000000000000000E-06",
        1e-6,
        ":SOUR1:FUNC:PULS:WIDT 1e-06",
    ),
    (
        "pulse_period_s",
        ":SOUR1:FUNC:PULS:PER?",
        "+2.000000000000000E-06",
        2e-6,
        ":SOUR1:FUNC:PULS:PER 2e-06",
    ),
    (
        "edge_time_s",
        ":SOUR1:FUNC:PULS:TRAN:LEAD?",
        "+8.400000000000000E-09",
        8.4e-9,
        ":SOUR1:FUNC:PULS:TRAN:BOTH 8.4e-09",
    ),
    ("high_level_v", ":SOUR1:VOLT:HIGH?", "+1.200000000000000E+00", 1.2, ":SOUR1:VOLT:HIGH 1.2"),
    ("low_level_v", ":SOUR1:VOLT:LOW?", "+0.000000000000000E+00", 0.0, ":SOUR1:VOLT:LOW 0"),
    ("output_load_ohm", ":OUTP1:LOAD?", "+9.900000000000000E+37", math.inf, ":OUTP1:LOAD INF"),
    ("polarity", ":OUTP1:POL?", "INV", "inverted", ":OUTP1:POL INV"),
    ("output_enabled", ":OUTP1?", "1", True, ":OUTP1 ON"),
    ("burst_enabled", ":SOUR1:BURS:STAT?", "1", True, ":SOUR1:BURS:STAT ON"),
    ("burst_mode", ":SOUR1:BURS:MODE?", "TRIG", "triggered", ":SOUR1:BURS:MODE TRIG"),
    ("burst_cycles", ":SOUR1:BURS:NCYC?", "+5.000000000000000E+00", 5, ":SOUR1:BURS:NCYC 5"),
    ("trigger_source", ":TRIG1:SOUR?", "BUS", "bus", ":TRIG1:SOUR BUS"),
]

PREPARE = [
    ("*CLS", None),
    (":OUTP1 OFF", None),
    NO_ERROR,
    (
        ":OUTP1:LOAD INF;:SOUR1:FUNC PULS;:SOUR1:FUNC:PULS:TRAN:BOTH 8.4e-09;"
        ":SOUR1:BURS:MODE TRIG;:TRIG1:SOUR BUS;:SOUR1:BURS:STAT ON",
        None,
    ),
    NO_ERROR,
    # levels and timing are read first: the order of the changes depends on them
    (":SOUR1:VOLT:HIGH?", "+5.000000000000000E-02"),
    (":SOUR1:VOLT:LOW?", "-5.000000000000000E-02"),
    (":SOUR1:FUNC:PULS:PER?", "+1.000000000000000E-03"),
    (":SOUR1:FUNC:PULS:WIDT?", "+1.000000000000000E-04"),
    (
        ":SOUR1:VOLT:HIGH 0.001;:SOUR1:VOLT:LOW 0;:SOUR1:FUNC:PULS:WIDT 1e-06;"
        ":SOUR1:FUNC:PULS:PER 2e-06;:OUTP1:POL NORM",
        None,
    ),
    NO_ERROR,
    (":OUTP1 ON", None),
    NO_ERROR,
]


def test_the_table_covers_every_parameter() -> None:
    assert [row[0] for row in PARAMETERS] == list(Keysight33500B.parameters())


@pytest.mark.parametrize("row", PARAMETERS, ids=[row[0] for row in PARAMETERS])
def test_parameter_get_and_set_dialogues(row) -> None:
    check_parameter(Keysight33500B, IDN, row, [NO_ERROR])


def test_prepare_then_negative_pulses_move_levels_in_a_legal_order() -> None:
    dialogue = [
        *PREPARE,
        # -1.2 V: the low level goes down first (high must stay above low), polarity
        # inverted, all with the output off (the idle output would pass through -1.2 V)
        (
            ":OUTP1 OFF;:SOUR1:VOLT:LOW -1.2;:SOUR1:VOLT:HIGH 0;:SOUR1:FUNC:PULS:PER 1.032e-06;"
            ":OUTP1:POL INV;:OUTP1 ON",
            None,
        ),
        NO_ERROR,
        # +1.2 V, 10 µs: the high level first, the period before the width
        (
            ":OUTP1 OFF;:SOUR1:VOLT:HIGH 1.2;:SOUR1:VOLT:LOW 0;:SOUR1:FUNC:PULS:PER 2e-05;"
            ":SOUR1:FUNC:PULS:WIDT 1e-05;:OUTP1:POL NORM;:OUTP1 ON",
            None,
        ),
        NO_ERROR,
    ]
    with expected_protocol(Keysight33500B, dialogue, idn=IDN) as awg:
        awg.prepare()
        awg.configure_pulse(-1.2, 1e-6, 0.0)
        awg.configure_pulse(-1.2, 1e-6, 0.0)  # unchanged: nothing sent
        awg.configure_pulse(1.2, 1e-5, 2e-5)


def test_fire_sets_the_burst_count_then_triggers_and_checks_errors() -> None:
    dialogue = [
        (":SOUR1:BURS:NCYC 3", None),
        ("*TRG;*WAI;:SYST:ERR?", '+0,"No error"'),
        ("*TRG;*WAI;:SYST:ERR?", '+0,"No error"'),  # same count: no NCYC
        (":SOUR1:BURS:NCYC 1", None),
        ("*TRG;*WAI;:SYST:ERR?", '-211,"Trigger ignored"'),
        (":SYST:ERR?", '+0,"No error"'),
        (":OUTP1 OFF", None),
        NO_ERROR,
    ]
    with expected_protocol(Keysight33500B, dialogue, idn=IDN) as awg:
        awg.fire(3)
        awg.fire(3)
        with pytest.raises(InstrumentError, match="-211"):
            awg.fire(1)
        assert awg.transport.timeouts[0] >= 10.0
        awg.output_off()


def test_a_50_ohm_setting_doubles_the_voltage_the_device_sees() -> None:
    limits = SafeLimits(max_voltage_v=2.0)
    dialogue = [
        (":OUTP1:LOAD?", "+5.000000000000000E+01"),
        (":SOUR1:VOLT:HIGH?", "+1.000000000000000E-01"),
        (":SOUR1:VOLT:LOW?", "+0.000000000000000E+00"),
        (":SOUR1:FUNC:PULS:PER?", "+2.000000000000000E-06"),
        (":SOUR1:FUNC:PULS:WIDT?", "+1.000000000000000E-06"),
        (":SOUR1:VOLT:HIGH 0.6;:OUTP1:POL NORM", None),  # 0.6 V programmed = 1.2 V at it
        NO_ERROR,
    ]
    with expected_protocol(Keysight33500B, dialogue, idn=IDN, limits=limits) as awg:
        assert awg.load_factor() == 2.0
        awg.configure_pulse(1.2, 1e-6, 2e-6)
        with pytest.raises(SafeOperatingAreaError, match=r"2\.4 V"):
            awg.high_level_v = 1.2  # programmed directly: 2.4 V at the device
    with (
        expected_protocol(Keysight33500B, [], idn=IDN, limits=limits) as awg,
        pytest.raises(SafeOperatingAreaError),  # load unknown: assume the 50 Ω default
    ):
        awg.low_level_v = -1.5


def test_values_outside_the_safe_area_or_range_never_leave_the_driver() -> None:
    limits = SafeLimits(max_voltage_v=2.0, max_pulse_width_s=1e-3)
    dialogue = [(":OUTP1:LOAD INF", None), NO_ERROR]
    with expected_protocol(Keysight33500B, dialogue, idn=IDN, limits=limits) as awg:
        awg.output_load_ohm = math.inf
        with pytest.raises(SafeOperatingAreaError):
            awg.configure_pulse(-2.5, 1e-6, 2e-6)
        with pytest.raises(SafeOperatingAreaError):
            awg.configure_pulse(1.0, 1e-2, 2e-2)
        with pytest.raises(SafeOperatingAreaError):
            awg.high_level_v = 3.0
        with pytest.raises(SettingError, match="instrument's range"):
            awg.pulse_width_s = 5e-9
        with pytest.raises(SettingError, match="inf or 1"):
            awg.output_load_ohm = 0.5
        with pytest.raises(SettingError, match="not one of"):
            awg.function = "ramp"
