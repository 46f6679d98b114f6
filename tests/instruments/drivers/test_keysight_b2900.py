"""Protocol tests of the Keysight B2900 SMU driver: exact command/reply dialogues, no instrument."""

from __future__ import annotations

import math

import numpy as np
import pytest
from protocol import NO_ERROR, block, check_parameter, expected_protocol

from instruments.drivers.base import SafeLimits, SafeOperatingAreaError, SettingError
from instruments.drivers.keysight_b2900 import KeysightB2900
from instruments.visa_transport import InstrumentError

IDN = "Keysight Technologies,B2901A,MY51140001,3.4.2011.5100"

# (parameter, query, reply, value, set command)
PARAMETERS = [
    ("source_function", ":SOUR1:FUNC:MODE?", "VOLT", "voltage", ":SOUR1:FUNC:MODE VOLT"),
    ("source_shape", ":SOUR1:FUNC:SHAP?", "PULS", "pulse", ":SOUR1:FUNC:SHAP PULS"),
    ("voltage_mode", ":SOUR1:VOLT:MODE?", "LIST", "list", ":SOUR1:VOLT:MODE LIST"),
    ("source_voltage_v", ":SOUR1:VOLT?", "+2.000000E-01", 0.2, ":SOUR1:VOLT 0.2"),
    ("pulse_peak_v", ":SOUR1:VOLT:TRIG?", "-1.500000E+00", -1.5, ":SOUR1:VOLT:TRIG -1.5"),
    ("voltage_range_v", ":SOUR1:VOLT:RANG?", "+2.000000E+00", 2.0, ":SOUR1:VOLT:RANG 2"),
    ("pulse_width_s", ":SOUR1:PULS:WIDT?", "+1.000000E-04", 1e-4, ":SOUR1:PULS:WIDT 0.0001"),
    ("pulse_delay_s", ":SOUR1:PULS:DEL?", "+0.000000E+00", 0.0, ":SOUR1:PULS:DEL 0"),
    ("current_compliance_a", ":SENS1:CURR:PROT?", "+1.000000E-03", 1e-3, ":SENS1:CURR:PROT 0.001"),
    ("current_autorange", ":SENS1:CURR:RANG:AUTO?", "1", True, ":SENS1:CURR:RANG:AUTO ON"),
    ("sense_function", None, None, "current", ':SENS1:FUNC "CURR"'),
    ("aperture_s", ":SENS1:CURR:APER?", "+2.000000E-05", 2e-5, ":SENS1:CURR:APER 2e-05"),
    ("trigger_source", ":TRIG1:SOUR?", "TIM", "timer", ":TRIG1:SOUR TIM"),
    ("trigger_count", ":TRIG1:COUN?", "+10", 10, ":TRIG1:COUN 10"),
    ("trigger_timer_s", ":TRIG1:TIM?", "+1.000000E-04", 1e-4, ":TRIG1:TIM 0.0001"),
    ("acquire_delay_s", ":TRIG1:ACQ:DEL?", "+5.000000E-05", 5e-5, ":TRIG1:ACQ:DEL 5e-05"),
    ("output_enabled", ":OUTP1?", "0", False, ":OUTP1 OFF"),
    ("auto_output_on", ":OUTP1:ON:AUTO?", "0", False, ":OUTP1:ON:AUTO OFF"),
    ("data_format", ":FORM:DATA?", "REAL,32", "real32", ":FORM:DATA REAL,32"),
    ("byte_order", ":FORM:BORD?", "SWAP", "swapped", ":FORM:BORD SWAP"),
]

PREPARE = [
    ("*CLS", None),
    (
        ':FORM:DATA REAL,32;:FORM:BORD SWAP;:SOUR1:FUNC:MODE VOLT;:SENS1:FUNC "CURR";'
        ":SENS1:CURR:RANG:AUTO ON;:OUTP1:ON:AUTO OFF",
        None,
    ),
    NO_ERROR,
]
READ_SETUP = (
    ":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE FIX;:SENS1:CURR:PROT 0.001;:SOUR1:VOLT 0.2;"
    ":SOUR1:VOLT:TRIG 0.2;:SENS1:CURR:APER 0.0001;:TRIG1:SOUR AINT;:TRIG1:ACQ:DEL 0;:OUTP1 ON"
)


def test_the_table_covers_every_parameter() -> None:
    assert [row[0] for row in PARAMETERS] == list(KeysightB2900.parameters())


@pytest.mark.parametrize("row", PARAMETERS, ids=[row[0] for row in PARAMETERS])
def test_parameter_get_and_set_dialogues(row) -> None:
    check_parameter(KeysightB2900, IDN, row, [NO_ERROR])


def test_channel_two_uses_its_suffix_and_channel_list() -> None:
    dialogue = [
        (":SOUR2:VOLT 0.1", None),
        NO_ERROR,
        (":FORM:DATA?", "ASC"),
        (":MEAS:CURR? (@2)", "+1.000000E-06"),
    ]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN, channel=2) as smu:
        smu.source_voltage_v = 0.1
        assert smu.measure_current() == pytest.approx(1e-6)


def test_prepare_and_cached_configuration_send_only_changes() -> None:
    dialogue = [
        *PREPARE,
        (READ_SETUP, None),
        NO_ERROR,
        (":SOUR1:VOLT 0.1;:SOUR1:VOLT:TRIG 0.1", None),  # only the levels changed
        NO_ERROR,
    ]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        smu.prepare()
        smu.configure_read(0.2, 1e-3, 1e-4)
        smu.configure_read(0.2, 1e-3, 1e-4)  # nothing to send
        smu.configure_read(0.1, 1e-3, 1e-4)


def test_read_currents_fetch_one_little_endian_block() -> None:
    currents = [1e-5, 1.1e-5, 0.9e-5]
    dialogue = [
        *PREPARE,
        (":TRIG1:COUN 3", None),
        NO_ERROR,
        (":READ:ARR:CURR? (@1)", block(currents, "<f4")),
    ]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        smu.prepare()
        got = smu.read_currents(3)
    np.testing.assert_allclose(got, currents, rtol=1e-6)  # float32 transfer


def test_unknown_data_format_is_queried_before_reading() -> None:
    dialogue = [
        (":TRIG1:COUN 1", None),
        NO_ERROR,
        (":FORM:DATA?", "REAL,64"),
        (":FORM:BORD?", "NORM"),
        (":READ:ARR:CURR? (@1)", block([2.5e-6], ">f8")),
    ]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        assert smu.read_currents(1)[0] == 2.5e-6


def test_no_data_reply_and_wrong_count_are_errors() -> None:
    dialogue = [*PREPARE, (":MEAS:CURR? (@1)", block([np.nan]))]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        smu.prepare()
        with pytest.raises(InstrumentError, match="no data"):
            smu.measure_current()
    dialogue = [*PREPARE, (":TRIG1:COUN 2", None), NO_ERROR, (":READ:ARR:CURR? (@1)", block([1.0]))]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        smu.prepare()
        with pytest.raises(InstrumentError, match="expected 2 values, got 1"):
            smu.read_currents(2)


def test_list_sweep_dialogue_and_timeout() -> None:
    levels = [0.2, 1.2, 0.2, -1.2, 0.2]
    currents = [1e-5, 7e-5, 1.2e-5, -6e-5, 1e-5]
    setup = (
        ":SOUR1:FUNC:SHAP DC;:SENS1:CURR:PROT 0.001;:SENS1:CURR:APER 2e-05;:TRIG1:SOUR TIM;"
        ":TRIG1:TIM 0.0001;:TRIG1:COUN 5;:TRIG1:ACQ:DEL 7e-05;:SOUR1:VOLT:MODE LIST;:OUTP1 ON"
    )
    dialogue = [
        *PREPARE,
        (setup, None),
        NO_ERROR,
        (":SOUR1:LIST:VOLT 0.2,1.2,0.2,-1.2,0.2", None),
        (":READ:ARR:CURR? (@1)", block(currents)),
        NO_ERROR,
    ]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        smu.prepare()
        got = smu.list_sweep(np.array(levels), 1e-4, 1e-3, 2e-5)
        assert smu.transport.timeouts == [pytest.approx(5 * 1e-4 + 10)]
    np.testing.assert_allclose(got, currents, rtol=1e-6)


def test_list_points_query() -> None:
    with expected_protocol(KeysightB2900, [(":SOUR1:LIST:VOLT:POIN?", "+5")], idn=IDN) as smu:
        assert smu.list_points() == 5


def test_smu_pulse_dialogue() -> None:
    setup = (
        ":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT:MODE FIX;:SENS1:CURR:PROT 0.001;:SOUR1:VOLT 0;"
        ":SOUR1:VOLT:TRIG 1.5;:SOUR1:PULS:WIDT 0.0001;:SOUR1:PULS:DEL 0;:TRIG1:SOUR TIM;"
        ":TRIG1:COUN 3;:TRIG1:TIM 0.0002;:OUTP1 ON"  # timer-triggered: period 2x width
    )
    dialogue = [(setup, None), NO_ERROR, (":INIT (@1);*OPC?", "1")]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        smu.pulse(1.5, 1e-4, 3, 1e-3)


def test_compliance_limit_state_and_output_off() -> None:
    dialogue = [
        (":SENS1:CURR:PROT 0.0005", None),
        NO_ERROR,
        (":SENS1:CURR:PROT:TRIP?", "1"),
        (":OUTP1 OFF", None),
        NO_ERROR,
    ]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        smu.limit_current(5e-4)
        assert smu.compliance_tripped() is True
        smu.output_off()


def test_values_outside_the_safe_area_or_range_never_leave_the_driver() -> None:
    limits = SafeLimits(max_voltage_v=2.0, max_current_a=1e-3, max_pulse_width_s=1e-3)
    with expected_protocol(KeysightB2900, [], idn=IDN, limits=limits) as smu:
        with pytest.raises(SafeOperatingAreaError, match="nothing was sent"):
            smu.source_voltage_v = 2.5
        with pytest.raises(SafeOperatingAreaError):
            smu.current_compliance_a = 0.01
        with pytest.raises(SafeOperatingAreaError):
            smu.pulse_width_s = 1e-2
        with pytest.raises(SafeOperatingAreaError):  # one bad level stops the whole list
            smu.list_sweep(np.array([0.2, 1.2, 3.0, 0.2]), 1e-4, 1e-3, 2e-5)
        with pytest.raises(SafeOperatingAreaError):  # nothing of a batch is sent either
            smu.configure_read(2.5, 1e-3, 1e-4)
        with pytest.raises(SettingError, match="instrument's range"):
            smu.aperture_s = 1e-6
        with pytest.raises(SettingError, match="not a number"):
            smu.source_voltage_v = "high"
        with pytest.raises(SettingError, match="not finite"):
            smu.source_voltage_v = math.nan
        with pytest.raises(SettingError, match="2500"):
            smu.list_sweep(np.zeros(2501), 1e-4, 1e-3, 2e-5)


def test_an_error_after_a_setting_raises_and_forgets_the_cache() -> None:
    dialogue = [
        (":SOUR1:VOLT 0.2", None),
        (":SYST:ERR?", '-222,"Data out of range"'),
        (":SYST:ERR?", '+0,"No error"'),
    ]
    with expected_protocol(KeysightB2900, dialogue, idn=IDN) as smu:
        with pytest.raises(InstrumentError, match="-222"):
            smu.configure(source_voltage_v=0.2)
        assert smu.source_voltage_v.cached is None


def test_wrong_instrument_is_refused() -> None:
    with (
        pytest.raises(InstrumentError, match="not a Keysight B2900"),
        expected_protocol(KeysightB2900, [], idn="Keithley Instruments Inc., Model 2601B"),
    ):
        pass
