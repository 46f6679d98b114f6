"""SCPI engine: framing around binary blocks, header matching, error queue."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.emulator.scpi import (
    CommandTable,
    ErrorQueue,
    ScpiError,
    encode_block,
    parse_float,
    split_messages,
)


def test_split_keeps_linefeeds_inside_blocks_and_waits_for_incomplete_ones() -> None:
    payload = np.array([10.0, 0.0], dtype="<f4").tobytes() + b"\n\n"
    block = b"#2" + str(len(payload)).encode() + payload
    buf = bytearray(b"*IDN?\nDATA " + block + b"\nSEQ:INIT")
    messages, used = split_messages(buf)
    assert messages == [b"*IDN?", b"DATA " + block]
    assert buf[used:] == b"SEQ:INIT"
    half = bytearray(b"DATA #210abc")  # declares 10 bytes, 3 arrived
    assert split_messages(half) == ([], 0)


def test_short_and_long_forms_and_errors() -> None:
    table = CommandTable()
    seen = []
    table.add("ROUTe:SELect:BLOCk", lambda a: seen.append(a), 4)
    table.add("MEASure:CONDuctance?", lambda a: "1.5", 0)
    q = ErrorQueue()
    assert table.execute(b"rout:sel:bloc 0,0,2,2;:MEASURE:COND?", q) == ["1.5"]
    assert seen == [["0", "0", "2", "2"]]
    table.execute(b"ROUT:SEL:BLOC 1,2", q)  # missing parameters
    table.execute(b"NOPE:CMD", q)
    assert q.pop().startswith("-109")
    assert q.pop().startswith("-113")
    assert q.pop() == '0,"No error"'


def test_error_queue_overflow_replaces_last_entry() -> None:
    q = ErrorQueue(size=3)
    for _ in range(5):
        q.push(-113, '"Undefined header"')
    assert len(q) == 3
    assert q.pop_all().endswith('-350,"Queue overflow"')


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "abc"])
def test_non_finite_or_non_numeric_parameters_are_refused(text: str) -> None:
    with pytest.raises(ScpiError):
        parse_float(text, "x")


def test_encode_block_header() -> None:
    block = encode_block(np.zeros(3), "<f4")
    assert block[:4] == b"#212" and len(block) == 16
