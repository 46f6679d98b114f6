"""Protocol tests of the Keysight E5250A switch driver: exact dialogues, no instrument."""

from __future__ import annotations

import pytest
from protocol import NO_ERROR, check_parameter, expected_protocol

from instruments.drivers.base import SettingError
from instruments.drivers.keysight_e5250 import KeysightE5250A, format_channels, parse_channels
from instruments.visa_transport import InstrumentError

IDN = "Agilent Technologies,E5250A,0,B.01.03"
OK = '+0,"No error"'

# (parameter, query, reply, value, set command)
PARAMETERS = [
    ("configuration_mode", ":ROUT:FUNC?", "NCON", "normal", ":ROUT:FUNC NCON"),
    ("connection_rule", ":ROUT:CONN:RULE? 1", "SROU", "single", ":ROUT:CONN:RULE ALL,SROU"),
    (
        "connection_sequence",
        ":ROUT:CONN:SEQ? 1",
        "BBM",
        "break_before_make",
        ":ROUT:CONN:SEQ ALL,BBM",
    ),
    ("bias_mode", ":ROUT:BIAS:STAT? 1", "0", False, ":ROUT:BIAS:STAT ALL,OFF"),
    ("couple_mode", ":ROUT:COUP:STAT? 1", "0", False, ":ROUT:COUP:STAT ALL,OFF"),
]


def test_the_table_covers_every_parameter() -> None:
    assert [row[0] for row in PARAMETERS] == list(KeysightE5250A.parameters())


@pytest.mark.parametrize("row", PARAMETERS, ids=[row[0] for row in PARAMETERS])
def test_parameter_get_and_set_dialogues(row) -> None:
    check_parameter(KeysightE5250A, IDN, row, [NO_ERROR])


def test_rule_and_sequence_of_another_card_are_queried_with_its_number() -> None:
    with expected_protocol(KeysightE5250A, [(":ROUT:CONN:RULE? 3", "FREE")], idn=IDN, card=3) as sw:
        assert sw.connection_rule.get() == "free"


def test_prepare_resets_turns_bias_and_couple_mode_off_and_opens_every_relay() -> None:
    # E5250A Guide 5-11: a bias mode left on would put every unrouted line on the bias port
    dialogue = [
        ("*RST", None),
        ("*CLS", None),
        (
            ":ROUT:BIAS:STAT ALL,OFF;:ROUT:COUP:STAT ALL,OFF;:ROUT:FUNC NCON;"
            ":ROUT:CONN:RULE ALL,SROU;:ROUT:CONN:SEQ ALL,BBM",
            None,
        ),
        NO_ERROR,
        (":ROUT:OPEN:CARD ALL;:SYST:ERR?", OK),
    ]
    with expected_protocol(KeysightE5250A, dialogue, idn=IDN) as sw:
        sw.prepare()


def test_connect_is_break_before_make_in_one_round_trip_and_cached() -> None:
    route = ":ROUT:OPEN:CARD ALL;:ROUT:CLOS (@10101,10309)"
    dialogue = [
        (route + ";:SYST:ERR?", OK),
        (":ROUT:OPEN:CARD ALL;:ROUT:CLOS (@10201,10309);:SYST:ERR?", OK),
        (route + ";:SYST:ERR?", '-224,"Illegal parameter value"'),
        (":SYST:ERR?", OK),
        (route + ";:SYST:ERR?", OK),  # after a failure the route is not assumed
        (route + ";:SYST:ERR?", OK),  # nor after forget_route()
        ("*RST", None),
        (route + ";:SYST:ERR?", OK),  # nor after a reset
    ]
    with expected_protocol(KeysightE5250A, dialogue, idn=IDN) as sw:
        sw.connect([10101, 10309])
        sw.connect([10101, 10309])  # already closed: nothing sent
        sw.connect([10201, 10309])
        with pytest.raises(InstrumentError, match="-224"):
            sw.connect([10101, 10309])
        sw.connect([10101, 10309])
        sw.forget_route()
        sw.connect([10101, 10309])
        sw.reset()
        sw.connect([10101, 10309])


def test_single_relays_and_queries() -> None:
    dialogue = [
        (":ROUT:CLOS (@10101);:SYST:ERR?", OK),
        (":ROUT:OPEN (@10101);:SYST:ERR?", OK),
        (":ROUT:CLOS? (@10101,10102)", "0,1"),
        (":ROUT:CLOS:CARD? 1", "(@10102,10305)"),
        (":ROUT:CLOS:CARD? 2", "(@)"),
        (":ROUT:CLOS? (@10101)", "1,1"),
    ]
    with expected_protocol(KeysightE5250A, dialogue, idn=IDN) as sw:
        sw.close_channels([10101])
        sw.open_channels([10101])
        assert sw.is_closed([10101, 10102]) == [False, True]
        assert sw.closed_channels() == [10102, 10305]
        assert sw.closed_channels(2) == []
        with pytest.raises(InstrumentError, match="2 states for 1"):
            sw.is_closed([10101])


def test_channels_that_do_not_exist_never_leave_the_driver() -> None:
    with expected_protocol(KeysightE5250A, [], idn=IDN) as sw:
        assert sw.channel_number(2, 3, 12) == 20312
        for bad in ([50101], [11101], [10113], [10100], []):
            with pytest.raises(SettingError):
                sw.connect(bad)
    with pytest.raises(ValueError, match="card must be"):
        expected_protocol(KeysightE5250A, [], idn=IDN, card=5).__enter__()


def test_channel_list_text() -> None:
    assert format_channels([10101, 20305]) == "(@10101,20305)"
    assert parse_channels("(@10101:10103,20305)") == [10101, 10102, 10103, 20305]
    with pytest.raises(ValueError):
        parse_channels("10101")
