"""A failed query is reported at once with the instrument's own error text.

IEEE 488.2 §6.3: a query that fails puts nothing in the output queue (its error is
queued), so a driver waiting for its reply would sit out the whole I/O timeout (600 s
during sequences) and then say "timed out". Our transport confirms every query (SCPI:
``<query>;*OPC?``, IEEE 488.2 §8.4.1 compound responses; TSP: an end-marker chunk), so
the failure is seen on the next byte and the error queue says why. The I/O timeout is
20 s in these tests: on the code before the fix each of them ended in "timed out" after
20 s instead of the error text asserted here (no timing is asserted).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from instruments.chip import BlockSelection, DeviceSelection, PulseSpec, PulseTrainSpec
from instruments.drivers import Keithley2600, Keysight33500B, KeysightB2900, KeysightE5250A
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.bench import running_bench
from instruments.emulator.server import running_emulator
from instruments.visa_transport import InstrumentError, VisaTransport

TIMEOUT_S = 20.0  # far longer than any answer here; a timeout would say "timed out"


@pytest.fixture
def chip() -> Iterator[ScpiCrossbarChip]:
    with running_emulator("reram", seed=4, shape=(4, 4)) as resource:
        chip = ScpiCrossbarChip(resource, timeout_s=TIMEOUT_S)
        try:
            yield chip
        finally:
            chip.close()


@pytest.fixture(scope="module")
def bench():
    with running_bench("reram", seed=2, shape=(4, 4)) as res:
        yield res


# --------------------------------------------------------------------------- emulated chip
def test_a_read_beyond_compliance_says_so_and_the_next_read_is_in_step(chip) -> None:
    chip.transport.command("SAFE:ICOM 1e-9")  # any device's read current is above 1 nA
    with pytest.raises(InstrumentError, match=r"'MEAS:COND\?'.*102.*exceed compliance"):
        chip.read_conductance(DeviceSelection(1, 2), 0.2)
    assert chip.transport.errors() == []  # the error was read out for the message
    chip.transport.command("SAFE:ICOM 1e-3")
    g = chip.read_conductance(DeviceSelection(1, 2), 0.2)
    assert g.shape == (1,) and 0 < g[0] < 1e-3


def test_a_fetch_out_of_range_says_so(chip) -> None:
    with pytest.raises(InstrumentError, match=r"-221,"):  # nothing measured yet
        chip.transport.query_block("FETC:COND? 0,1")
    spec = PulseTrainSpec(2, PulseSpec(1.2, 1e-6), 2, PulseSpec(-1.2, 1e-6), cycles=1)
    sel = BlockSelection(0, 0, 2, 2)
    g = chip.pulse_train_with_reads(sel, spec, 0.2)
    with pytest.raises(InstrumentError, match=r"'FETC:COND\? 0,99'.*-222,.*outside \[1, 5\]"):
        chip.transport.query_block("FETC:COND? 0,99")  # 5 reads were taken
    again = chip._fetch_rows(spec.n_reads, 4)  # the stream is still in step
    np.testing.assert_array_equal(again, g)


def test_a_failed_mvm_with_a_block_argument_says_so(chip) -> None:
    chip.transport.command("ROUT:SEL:BLOC 0,0,2,2")
    with pytest.raises(InstrumentError, match=r"'MEAS:MVM\?'.*-222"):
        chip.transport.query_block("MEAS:MVM?", payload=np.full(3, 0.1, dtype="<f4"))
    currents = chip.mvm(BlockSelection(0, 0, 2, 2), np.array([0.1, 0.1]))
    assert currents.shape == (2,) and np.all(currents > 0)


def test_failed_text_queries_say_why(chip) -> None:
    t = chip.transport
    with pytest.raises(InstrumentError, match=r"-113,\"Undefined header"):
        t.query("SOUR:PULS:BOGUS?")
    with pytest.raises(InstrumentError, match=r"-108,\"Parameter not allowed"):
        t.query("SAFE:VMAX? 3")
    with pytest.raises(InstrumentError, match="answered nothing and the instrument queued no"):
        t.query("*CLS")  # not a query: nothing answers it, and nothing failed
    assert t.query("ROUT:SEL?") == "ALL"
    assert t.query("EMU:PROF?;:ROUT:SEL?").endswith(";ALL")  # several units: ';' kept


# --------------------------------------------------------------------------- virtual bench
def test_b2900_failed_fetch_and_query_say_why(bench) -> None:
    with KeysightB2900.open(bench.smu, timeout_s=TIMEOUT_S) as smu:
        smu.prepare()
        smu.reset()  # no measurement data
        smu.prepare()
        with pytest.raises(InstrumentError, match=r"-230.*no data"):
            smu._fetch(":FETC:ARR:CURR? {chanlist}", 1)  # binary block path
        with pytest.raises(InstrumentError, match=r"-114,\"Header suffix out of range"):
            smu.query(":SOUR2:VOLT?")  # a B2901A has one channel
        assert smu.source_voltage_v.get() == 0.0
        assert smu.errors() == []


def test_33500b_failed_query_says_why(bench) -> None:
    with Keysight33500B.open(bench.pulser, timeout_s=TIMEOUT_S) as awg:
        with pytest.raises(InstrumentError, match=r"-114,\"Header suffix out of range"):
            awg.query(":SOUR2:FUNC?")  # a 33521B has one channel
        with pytest.raises(InstrumentError, match=r"-108"):
            awg.query(":SOUR1:VOLT? 1,2")
        assert awg.query("*IDN?").startswith("Keysight Technologies,33521B")
        assert awg.errors() == []


def test_e5250a_failed_query_says_why(bench) -> None:
    with KeysightE5250A.open(bench.switch, timeout_s=TIMEOUT_S) as switch:
        with pytest.raises(InstrumentError, match=r"-224.*card 0"):
            switch.closed_channels(card=0)
        assert switch.closed_channels(card=1) == []
        assert switch.errors() == []


def test_2601b_failed_query_says_why(bench) -> None:
    with Keithley2600.open(bench.smu_tsp, timeout_s=TIMEOUT_S, channel="b") as smu:
        # a 2601B has one channel: smub does not exist (Lua runtime error, nothing printed)
        with pytest.raises(InstrumentError, match=r"-286, TSP Runtime error.*smub"):
            smu.source_voltage_v.get()
        assert smu.errors() == []
        assert smu.query("print(2 * 3)").startswith("6")
    with Keithley2600.open(bench.smu_tsp, timeout_s=TIMEOUT_S) as smu:
        with pytest.raises(InstrumentError, match=r"-285"):  # syntax error: nothing runs
            smu.query("print(smua.source.levelv")
        assert float(smu.query("print(errorqueue.count)")) == 0
        lines = smu.query('print("two", "lines"); print(3)').split("\n")  # every line
        assert lines[0] == "two\tlines" and float(lines[1]) == 3


# --------------------------------------------------------------------------- replies without *OPC?
@pytest.fixture
def one_reply_server() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback instrument that answers ``*IDN?`` and then every message with the next
    canned reply, whatever was asked (an instrument that ignores ``;*OPC?``)."""
    replies: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            buffer = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    message, buffer = buffer.split(b"\n", 1)
                    conn.sendall(b"FAKE,ONE,0,0\n" if message == b"*IDN?" else replies.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"TCPIP::127.0.0.1::{server.getsockname()[1]}::SOCKET", replies
    server.close()


def test_a_reply_without_the_confirmation_is_refused_not_misread(one_reply_server) -> None:
    resource, replies = one_reply_server
    with VisaTransport(resource, timeout_s=TIMEOUT_S) as t:
        replies += [b"0.5\n", b"0.5;1\n", b"#14" + np.float32([2.0]).tobytes() + b"\n"]
        with pytest.raises(InstrumentError, match="lacks the \\*OPC\\? confirmation"):
            t.query("VOLT?")
        assert t.query("VOLT?") == "0.5"
        with pytest.raises(InstrumentError, match="not followed by ';1' and LF"):
            t.query_block("DATA?")
