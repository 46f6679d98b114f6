"""The driver base: no I/O on attribute access, validation before sending, snapshots, timeouts."""

from __future__ import annotations

import json
import math

import pytest
from protocol import NO_ERROR, ProtocolTransport, expected_protocol

from instruments.drivers.base import (
    Choice,
    Flag,
    Number,
    SafeLimits,
    SafeOperatingAreaError,
    SettingError,
    format_number,
)
from instruments.drivers.keysight_b2900 import KeysightB2900
from instruments.drivers.keysight_e5250 import KeysightE5250A

B2900 = "Keysight Technologies,B2902A,MY1,1.0"
E5250 = "Agilent Technologies,E5250A,0,B.01.03"


def test_attribute_access_does_no_io() -> None:
    with expected_protocol(KeysightB2900, [], idn=B2900) as smu:
        param = smu.source_voltage_v  # a handle, not a query
        assert (param.name, param.unit, param.cached) == ("source_voltage_v", "V", None)
        assert "DC level" in param.doc
        assert "cached=None V" in repr(param)
        assert param.command(0.5) == ":SOUR1:VOLT 0.5"  # building a command sends nothing
        assert KeysightB2900.source_voltage_v.unit == "V"  # class access: the declaration


def test_ensure_writes_only_changes() -> None:
    dialogue = [(":SOUR1:VOLT 0.5", None), NO_ERROR, (":SOUR1:VOLT 0.25", None), NO_ERROR]
    with expected_protocol(KeysightB2900, dialogue, idn=B2900) as smu:
        assert smu.source_voltage_v.ensure(0.5) is True
        assert smu.source_voltage_v.ensure(0.5) is False
        assert smu.source_voltage_v.ensure(0.25) is True


def test_configure_validates_everything_before_sending_anything() -> None:
    limits = SafeLimits(max_voltage_v=1.0)
    with expected_protocol(KeysightB2900, [], idn=B2900, limits=limits) as smu:
        with pytest.raises(SafeOperatingAreaError):
            smu.configure(aperture_s=1e-3, source_voltage_v=1.5)  # first value fine, second not
        assert smu.aperture_s.cached is None
        with pytest.raises(AttributeError, match="no parameter 'volts'"):
            smu.configure(volts=1.0)


def test_safe_limits_name_the_limit_and_say_nothing_was_sent() -> None:
    limits = SafeLimits(max_voltage_v=2.0, max_current_a=1e-3, max_pulse_width_s=1e-3)
    limits.check("voltage", -2.0, "R", "x")  # the limit itself is allowed
    with pytest.raises(SafeOperatingAreaError, match=r"2\.1 V exceeds.*voltage <= 2 V.*nothing"):
        limits.check("voltage", -2.1, "R", "x")
    with pytest.raises(SafeOperatingAreaError, match="current"):
        limits.check("current", 2e-3, "R", "x")
    with pytest.raises(SafeOperatingAreaError, match="width"):
        limits.check("width", 2e-3, "R", "x")
    # SOA errors are instrument errors (one-line CLI message) and value errors
    assert issubclass(SafeOperatingAreaError, SettingError)
    assert issubclass(SettingError, ValueError)


def test_validators() -> None:
    with expected_protocol(KeysightB2900, [], idn=B2900) as smu:
        integer = Number(1, 10, integer=True)
        assert integer.validate(3.0, smu, "n") == 3 and integer.token(3) == "3"
        with pytest.raises(SettingError, match="not an integer"):
            integer.validate(2.5, smu, "n")
        assert "integer in [1, 10]" in integer.describe()
        choice = Choice({"a": "AAA", "b": "BBB"})
        assert choice.parse(' "aaa" ') == "a" and choice.describe() == "one of a, b"
        with pytest.raises(ValueError, match="unexpected reply"):
            choice.parse("CCC")
        flag = Flag()
        assert [flag.parse(x) for x in ("1", "ON", "true", "0", "off", "FALSE")] == [True] * 3 + [
            False
        ] * 3
        with pytest.raises(SettingError, match="True/False"):
            flag.validate(1, smu, "f")
        with pytest.raises(ValueError):
            flag.parse("maybe")
    with pytest.raises(ValueError, match="limit kind"):
        Number(limit="power")
    assert [format_number(v) for v in (0.2, 1e-6, 1234567.0, -1.5)] == [
        "0.2",
        "1e-06",
        "1234567",
        "-1.5",
    ]


def test_unparseable_replies_name_the_command() -> None:
    with (
        expected_protocol(KeysightB2900, [(":OUTP1?", "maybe")], idn=B2900) as smu,
        pytest.raises(Exception, match=r"':OUTP1\?': cannot parse reply 'maybe'"),
    ):
        smu.output_enabled.get()


def test_read_only_and_write_only_parameters() -> None:
    with (
        expected_protocol(KeysightB2900, [], idn=B2900) as smu,
        pytest.raises(SettingError, match="write-only"),
    ):
        smu.sense_function.get()


def test_snapshot_records_identity_limits_and_every_setting() -> None:
    dialogue = [
        (":ROUT:FUNC?", "NCON"),
        (":ROUT:CONN:RULE? 1", "SROU"),
        (":ROUT:CONN:SEQ? 1", "BBM"),
        (":ROUT:BIAS:STAT? 1", "0"),
        (":ROUT:COUP:STAT? 1", "0"),
    ]
    with expected_protocol(KeysightE5250A, dialogue, idn=E5250) as sw:
        snap = sw.snapshot()
        cached = sw.snapshot(update=False)  # from the cache: no I/O
    assert snap["driver"] == "KeysightE5250A" and snap["idn"] == E5250
    assert snap["settings"]["connection_rule"] == {"value": "single", "unit": ""}
    assert snap["limits"]["max_voltage_v"] == 5.0  # finite unless the caller states limits
    assert cached["settings"] == snap["settings"]
    json.dumps(snap)  # stored in dataset attributes


def test_timeout_context_only_ever_raises_the_timeout() -> None:
    transport = ProtocolTransport([], B2900)
    smu = KeysightB2900(transport)
    with smu.timeout(30.0):
        assert transport.timeout_s == 30.0
    with smu.timeout(1.0):  # shorter than the default: keep the default
        assert transport.timeout_s == 10.0
    assert transport.timeout_s == 10.0 and transport.timeouts == [30.0, 10.0]


def test_open_reports_unreachable_instruments_as_instrument_errors() -> None:
    from instruments.visa_transport import InstrumentError

    with pytest.raises(InstrumentError):
        KeysightB2900.open("TCPIP::127.0.0.1::9::SOCKET", timeout_s=0.5)


def test_infinite_values_are_jsonable_in_snapshots() -> None:
    dialogue = [
        (":ROUT:FUNC?", "NCON"),
        (":ROUT:CONN:RULE? 1", "FREE"),
        (":ROUT:CONN:SEQ? 1", "NSEQ"),
        (":ROUT:BIAS:STAT? 1", "0"),
        (":ROUT:COUP:STAT? 1", "0"),
    ]
    with expected_protocol(
        KeysightE5250A, dialogue, idn=E5250, limits=SafeLimits(max_current_a=math.inf)
    ) as sw:
        assert json.loads(json.dumps(sw.snapshot()))["limits"]["max_current_a"] == "inf"


def test_ieee_488_basics_reset_forgets_the_cache() -> None:
    dialogue = [
        (":SOUR1:VOLT 0.5", None),
        NO_ERROR,
        ("*RST", None),
        ("*CLS", None),
        ("*OPC?", "1"),
        ("*OPC?", "0"),
    ]
    with expected_protocol(KeysightB2900, dialogue, idn=B2900) as smu:
        smu.source_voltage_v = 0.5
        smu.reset()
        assert smu.source_voltage_v.cached is None
        smu.clear_status()
        smu.wait()
        with pytest.raises(Exception, match="unexpected reply '0'"):
            smu.wait()
