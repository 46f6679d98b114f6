"""Protocol tests without an instrument: a fake transport that plays an expected dialogue.

``expected_protocol(Driver, [(sent, reply), ...], idn=...)`` builds the driver on a
:class:`ProtocolTransport` and checks, in order, that every message the driver sends is the
expected one (terminators excluded) and that writes get no reply while queries get theirs;
on leaving the block, the whole dialogue must have been consumed. A reply given as bytes
is a binary block (see :func:`block`) and can only be read with ``query_block``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from instruments.visa_transport import InstrumentError

__all__ = ["NO_ERROR", "ProtocolTransport", "block", "check_parameter", "expected_protocol"]

#: the error-queue query and its empty reply, as SCPI instruments answer it
NO_ERROR = (":SYST:ERR?", '+0,"No error"')

Reply = str | bytes | None


def block(values: Sequence[float] | np.ndarray, dtype: str = "<f4") -> bytes:
    """An IEEE 488.2 definite-length block of ``values`` as ``dtype``."""
    payload = np.asarray(values, dtype=dtype).tobytes()
    length = str(len(payload))
    return f"#{len(length)}{length}".encode() + payload


class ProtocolTransport:
    """A transport that asserts the exact (sent, reply) dialogue."""

    def __init__(self, dialogue: Sequence[tuple[str, Reply]], idn: str) -> None:
        self.dialogue = list(dialogue)
        self.position = 0
        self.idn = idn
        self.resource = "PROTOCOL::INSTR"
        self.timeouts: list[float] = []
        self.closed = False
        self._timeout_s = 10.0

    @property
    def remaining(self) -> list[tuple[str, Reply]]:
        return self.dialogue[self.position :]

    def _next(self, command: str, kind: str) -> Reply:
        if self.position >= len(self.dialogue):
            raise AssertionError(f"unexpected {kind} {command!r}: the dialogue is over")
        expected, reply = self.dialogue[self.position]
        if command != expected:
            raise AssertionError(
                f"step {self.position}: driver sent {command!r}, expected {expected!r}"
            )
        self.position += 1
        return reply

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @contextlib.contextmanager
    def timeout(self, seconds: float) -> Iterator[None]:
        old = self._timeout_s
        self._timeout_s = seconds
        self.timeouts.append(seconds)
        try:
            yield
        finally:
            self._timeout_s = old

    def write(self, command: str) -> None:
        reply = self._next(command, "write")
        if reply is not None:
            raise AssertionError(f"{command!r} was written, but the dialogue has a reply")

    def query(self, command: str) -> str:
        reply = self._next(command, "query")
        if not isinstance(reply, str):
            raise AssertionError(f"{command!r} was queried as text; the dialogue has {reply!r}")
        return reply.strip()

    def query_block(self, command: str, dtype: str = "<f4") -> np.ndarray:
        reply = self._next(command, "block query")
        if isinstance(reply, str):
            raise InstrumentError(self.resource, command, "reply is not a binary block")
        if not isinstance(reply, bytes) or reply[:1] != b"#":
            raise AssertionError(f"{command!r} expects a block; the dialogue has {reply!r}")
        digits = int(reply[1:2])
        length = int(reply[2 : 2 + digits])
        payload = reply[2 + digits :]
        assert len(payload) == length, "malformed block in the dialogue"
        return np.frombuffer(payload, dtype=dtype)

    def close(self) -> None:
        self.closed = True


@contextlib.contextmanager
def expected_protocol(
    driver: type, dialogue: Sequence[tuple[str, Reply]], *, idn: str, **kwargs: Any
) -> Iterator[Any]:
    """The driver on a :class:`ProtocolTransport`; asserts the dialogue was consumed."""
    transport = ProtocolTransport(dialogue, idn)
    instrument = driver(transport, **kwargs)
    yield instrument
    if transport.remaining:
        raise AssertionError(f"dialogue not consumed: {transport.remaining}")


def check_parameter(
    driver: type,
    idn: str,
    row: tuple[str, str | None, str | None, Any, str | None],
    no_error: Sequence[tuple[str, Reply]],
    **kwargs: Any,
) -> None:
    """One parameter's get and set dialogues: ``row = (name, get_cmd, reply, value, set_cmd)``.

    The value parsed from ``reply`` must equal ``value``, and setting ``value`` must send
    exactly ``set_cmd`` followed by ``no_error`` (the error-queue check) when the parameter
    checks errors after a set, then ``get_cmd`` for a ``readback`` parameter.
    """
    name, get_cmd, reply, value, set_cmd = row
    spec = driver.parameters()[name]
    if get_cmd is not None:
        with expected_protocol(driver, [(get_cmd, reply)], idn=idn, **kwargs) as inst:
            got = getattr(inst, name).get()
            assert got == value, f"{name}: parsed {got!r} from {reply!r}, expected {value!r}"
            assert getattr(inst, name).cached == value
    else:
        assert spec.get_cmd is None, f"{name} has a query the table does not test"
    if set_cmd is not None:
        dialogue = [(set_cmd, None), *(no_error if spec.check_errors else [])]
        if getattr(spec, "readback", False):  # the value the instrument chose is read back
            dialogue.append((get_cmd, reply))
        with expected_protocol(driver, dialogue, idn=idn, **kwargs) as inst:
            setattr(inst, name, value)
            assert getattr(inst, name).cached == value
    else:
        assert spec.set_cmd is None, f"{name} has a set command the table does not test"
