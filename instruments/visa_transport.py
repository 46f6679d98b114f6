"""PyVISA message transport shared by our drivers: terminations, handshake, fast blocks, errors.

Every socket/VISA failure becomes :class:`InstrumentError` naming the resource and the
command. Binary blocks are read with the termination character switched off while the
known-length payload arrives (a float32 payload contains 0x0A bytes by chance), which is
10-25x faster than ``query_binary_values`` on raw sockets (REFERENCES.md [R22]).

Failed queries are reported at once with the instrument's own error text. A query that
fails produces no response at all (IEEE 488.2 §6.3: its error is queued), so waiting for
its reply would last the whole I/O timeout. Each query is therefore confirmed:

- SCPI (``dialect="scpi"``): the query is sent as the compound ``<query>;*OPC?``. The
  response units of one program message are joined by ``;`` and end with one terminator
  (IEEE 488.2 §8.4.1, compound response messages), so a query that succeeds answers
  ``<response>;1`` (a definite-length block: the block, ``;1`` and LF) and one that
  fails answers only ``1``; the error queue (``SYST:ERR?``) then gives the reason.
  A command error (bad header or syntax) may make an instrument skip the rest of the
  message; our drivers validate every value before sending, so only execution and
  device errors are expected, and those leave ``*OPC?`` answered.
- TSP (``dialect="tsp"``, Keithley 2600B): the query chunk is followed by a second chunk
  that prints :data:`TSP_END`. A chunk with a Lua runtime error stops there and one with
  a syntax error runs nothing (2600B Reference Manual, "Effects of errors on scripts"),
  so a failed query prints nothing before the end marker; ``errorqueue`` gives the
  reason. (``errorqueue.count`` alone cannot tell: informational entries count too.)
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

import numpy as np
import pyvisa
from pyvisa import constants

__all__ = ["DIALECTS", "TSP_END", "InstrumentError", "VisaTransport", "tsp_error_entry"]

#: every SCPI exchange at DEBUG level (``calib -v``), truncated to :data:`TRAFFIC_CHARS`
traffic_log = logging.getLogger("instruments.traffic")
TRAFFIC_CHARS = 120

#: message dialects a transport speaks (how queries are confirmed and errors read)
DIALECTS = ("scpi", "tsp")
#: appended to every SCPI query; a query that succeeded answers ``<response>;1``
SCPI_CONFIRM = ";*OPC?"
#: what ends a confirmed block reply: the ``*OPC?`` response unit and the terminator
_BLOCK_END = b";1\n"
#: the line a TSP instrument prints after every query chunk (never a value we read)
TSP_END = "__end_of_reply__"
_TSP_END_CHUNK = f'print("{TSP_END}")'
#: most lines one TSP query may print before the end marker
MAX_TSP_LINES = 4096


def _short(text: str) -> str:
    text = text.rstrip("\n")
    return text if len(text) <= TRAFFIC_CHARS else f"{text[:TRAFFIC_CHARS]}... ({len(text)} chars)"


class InstrumentError(RuntimeError):
    """An instrument could not be reached or reported an error."""

    def __init__(self, resource: str, command: str, reason: str) -> None:
        self.resource = resource
        self.command = command
        self.reason = reason
        super().__init__(f"{resource}: {command!r}: {reason}")


_RESOURCE_MANAGERS: dict[str, pyvisa.ResourceManager] = {}


def _resource_manager(backend: str) -> pyvisa.ResourceManager:
    if backend not in _RESOURCE_MANAGERS:
        _RESOURCE_MANAGERS[backend] = pyvisa.ResourceManager(backend)
    return _RESOURCE_MANAGERS[backend]


class VisaTransport:
    """An open message-based VISA session with LF terminations and a checked identity.

    ``dialect`` (one of :data:`DIALECTS`) says how queries are confirmed and how the error
    queue is read (see the module docstring).
    """

    def __init__(
        self,
        resource: str,
        timeout_s: float = 10.0,
        backend: str = "@py",
        dialect: str = "scpi",
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
        self.resource = resource
        self.dialect = dialect
        self._inst = None
        try:
            rm = _resource_manager(backend)
            self._inst = rm.open_resource(
                resource,
                read_termination="\n",
                write_termination="\n",
                timeout=int(timeout_s * 1000),
            )
        except (pyvisa.Error, OSError, ValueError) as exc:
            raise InstrumentError(resource, "open", _reason(exc)) from exc
        self._tune_socket()
        self.idn = self.query_unconfirmed("*IDN?")  # common to both dialects, never fails
        if not self.idn:
            raise InstrumentError(resource, "*IDN?", "empty identity reply")

    def _tune_socket(self) -> None:
        """TCP_NODELAY and a 64 KiB receive size on pyvisa-py sockets (no-op elsewhere); an
        instrument that closes the connection is reported at once (see :class:`_EofSocket`)."""
        with contextlib.suppress(Exception):
            session = self._inst.visalib.sessions[self._inst.session]
            session.interface.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session.max_recv_size = 65536
            if isinstance(session.interface, socket.socket):
                session.interface = _EofSocket(session.interface)

    # ------------------------------------------------------------------ primitives
    @property
    def timeout_s(self) -> float:
        return self._inst.timeout / 1000.0

    @contextlib.contextmanager
    def timeout(self, seconds: float) -> Iterator[None]:
        """Temporarily change the I/O timeout (for long operations)."""
        old = self._inst.timeout
        self._inst.timeout = int(seconds * 1000)
        try:
            yield
        finally:
            self._inst.timeout = old

    def write(self, command: str) -> None:
        traffic_log.debug("%s <- %s", self.resource, _short(command))
        try:
            self._inst.write(command)
        except (pyvisa.Error, OSError) as exc:
            raise InstrumentError(self.resource, command, _reason(exc)) from exc

    def query(self, command: str) -> str:
        """Send one query and return its reply (stripped); confirmed in the transport's
        dialect, so a failed query raises :class:`InstrumentError` with the instrument's
        error text at once instead of waiting out the I/O timeout."""
        if self.dialect == "tsp":
            return self._query_tsp(command)
        command = command.rstrip()
        reply = self.query_unconfirmed(command + SCPI_CONFIRM)
        body, separator, last = reply.rpartition(";")
        if separator and last.strip() == "1":
            return body.strip()
        if reply == "1":
            self._raise_failed(command)
        raise InstrumentError(
            self.resource, command, f"reply {reply[:60]!r} lacks the *OPC? confirmation ';1'"
        )

    def query_unconfirmed(self, command: str) -> str:
        """Send ``command`` and read one line, as is: for queries that cannot fail
        (``*IDN?``, the error queue) or messages holding their own confirmation."""
        traffic_log.debug("%s <- %s", self.resource, _short(command))
        try:
            reply = self._inst.query(command).strip()
        except (pyvisa.Error, OSError) as exc:
            raise InstrumentError(self.resource, command, _reason(exc)) from exc
        traffic_log.debug("%s -> %s", self.resource, _short(reply))
        return reply

    def _query_tsp(self, command: str) -> str:
        """A TSP chunk, then one printing :data:`TSP_END`: the lines before the marker."""
        self.write(f"{command.rstrip()}\n{_TSP_END_CHUNK}")
        lines: list[str] = []
        try:
            while True:
                line = self._inst.read().strip()
                if line == TSP_END:
                    break
                lines.append(line)
                if len(lines) > MAX_TSP_LINES:
                    raise InstrumentError(
                        self.resource, command, f"more than {MAX_TSP_LINES} lines printed"
                    )
        except (pyvisa.Error, OSError) as exc:
            raise InstrumentError(self.resource, command, _reason(exc)) from exc
        reply = "\n".join(lines)
        traffic_log.debug("%s -> %s", self.resource, _short(reply))
        if not lines:
            self._raise_failed(command)
        return reply

    def _raise_failed(self, command: str) -> None:
        """The query answered nothing: raise with the queued errors (the reason)."""
        errors = self.errors()
        raise InstrumentError(
            self.resource,
            command,
            "; ".join(errors) or "query answered nothing and the instrument queued no error",
        )

    def write_block(self, command: str, values: np.ndarray, dtype: str = "<f4") -> None:
        """Send ``command`` followed by ``values`` as an IEEE definite-length block."""
        traffic_log.debug(
            "%s <- %s <block of %d x %s>", self.resource, _short(command), np.size(values), dtype
        )
        try:
            self._inst.write_raw(_block_message(command, values, dtype))
        except (pyvisa.Error, OSError) as exc:
            raise InstrumentError(self.resource, command, _reason(exc)) from exc

    def query_block(
        self,
        command: str,
        dtype: str = "<f4",
        payload: np.ndarray | None = None,
        payload_dtype: str = "<f4",
    ) -> np.ndarray:
        """Send a query (optionally with a block argument) and read its block reply.

        Returns a read-only 1-D array of ``dtype``. The termination character is switched
        off while the known-length payload arrives, which may contain LF bytes. SCPI only:
        the query is confirmed with ``*OPC?`` (module docstring), so the block is followed
        by ``;1`` and LF, and a failed query (reply ``1``) raises with the queued errors.
        """
        inst = self._inst
        if self.dialect != "scpi":
            raise InstrumentError(self.resource, command, "block queries are SCPI only")
        command = command.rstrip()
        traffic_log.debug("%s <- %s", self.resource, _short(command))
        try:
            if payload is None:
                inst.write(command + SCPI_CONFIRM)
            else:
                inst.write_raw(_block_message(command, payload, payload_dtype, SCPI_CONFIRM))
            inst.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, constants.VI_FALSE)
            try:
                head = self._read_exact(1)
                if head != b"#":
                    inst.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, constants.VI_TRUE)
                    rest = b"" if head == b"\n" else inst.read_raw()  # rest of the text line
                    raise _NotABlockError(head + rest)
                nd = int(self._read_exact(1))
                n = int(self._read_exact(nd)) if nd else 0
                data = self._read_exact(n + 1)
                end = data[n:]  # ';' then the *OPC? unit; anything else is refused at once
                if end == b";":
                    end += self._read_exact(len(_BLOCK_END) - 1)
            finally:
                inst.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, constants.VI_TRUE)
        except _NotABlockError as exc:
            text = exc.args[0].decode("ascii", "replace").strip()
            if text == "1":  # only the *OPC? unit: the query failed
                self._raise_failed(command)
            errors = self.errors()
            raise InstrumentError(
                self.resource,
                command,
                "; ".join(errors) or f"reply is not a binary block: {_short(text)!r}",
            ) from None
        except (pyvisa.Error, OSError, ValueError) as exc:
            self._resync()
            raise InstrumentError(self.resource, command, _reason(exc)) from exc
        if end != _BLOCK_END:
            self._resync()
            raise InstrumentError(
                self.resource, command, f"binary block not followed by ';1' and LF: {end!r}"
            )
        itemsize = np.dtype(dtype).itemsize
        if n % itemsize:
            raise InstrumentError(
                self.resource, command, f"block of {n} bytes is not a multiple of {itemsize}"
            )
        traffic_log.debug("%s -> <block of %d bytes>", self.resource, n)
        return np.frombuffer(data, dtype=dtype, count=n // itemsize)

    def _read_exact(self, count: int) -> bytes:
        """Read exactly ``count`` bytes with viRead (``visalib.read``).

        One library call for the whole payload: ``read_bytes`` would copy it twice more.
        """
        inst = self._inst
        with inst.ignore_warning(
            constants.StatusCode.success_max_count_read,
            constants.StatusCode.success_device_not_present,
        ):
            data, _ = inst.visalib.read(inst.session, count)
            if len(data) == count:
                return bytes(data)
            buffer = bytearray(data)
            while len(buffer) < count:
                chunk, _ = inst.visalib.read(inst.session, count - len(buffer))
                if not chunk:
                    raise pyvisa.errors.VisaIOError(constants.StatusCode.error_timeout)
                buffer += chunk
            return bytes(buffer)

    def _resync(self) -> None:
        """Drop whatever is left of a broken reply so the next query is not shifted."""
        with contextlib.suppress(Exception):
            self._inst.clear()

    # ------------------------------------------------------------------ errors
    def errors(self) -> list[str]:
        """Drain the error queue; returns the entries (empty when there is none).

        SCPI: ``SYST:ERR?`` until ``0,...``. TSP: ``errorqueue.count`` entries of
        ``errorqueue.next()``, each as ``"code, message"``.
        """
        found = []
        if self.dialect == "tsp":
            count = int(float(self.query_unconfirmed("print(errorqueue.count)")))
            for _ in range(min(count, 64)):
                found.append(tsp_error_entry(self.query_unconfirmed("print(errorqueue.next())")))
            return found
        for _ in range(64):
            entry = self.query_unconfirmed("SYST:ERR?")
            if entry.startswith(("0,", "+0,")):
                break
            found.append(entry)
        return found

    def check_errors(self, command: str = "configuration") -> None:
        """Raise :class:`InstrumentError` if the instrument queued any error."""
        errors = self.errors()
        if errors:
            raise InstrumentError(self.resource, command, "; ".join(errors))

    def command(self, command: str) -> None:
        """Write a setting and verify that the instrument accepted it."""
        self.write(command)
        self.check_errors(command)

    def __enter__(self) -> VisaTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._inst is not None:
            with contextlib.suppress(Exception):
                self._inst.close()
            self._inst = None


class _NotABlockError(Exception):
    pass


CONNECTION_CLOSED = "connection closed by the instrument"


class _EofSocket:
    """A socket whose ``recv`` raises when the peer has closed the connection.

    pyvisa-py's socket session treats an empty ``recv`` (end of stream) like "no data yet"
    and polls until the I/O timeout, which is minutes during long sequences; an empty
    ``recv`` after ``select`` reported the socket readable means the peer closed it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int, *flags: int) -> bytes:
        data = self._sock.recv(size, *flags)
        if not data and size > 0:
            raise ConnectionAbortedError(CONNECTION_CLOSED)
        return data

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def tsp_error_entry(reply: str) -> str:
    """One printed ``errorqueue.next()`` (code, message, severity, node; tab-separated)
    as ``"code, message"``."""
    parts = reply.split("\t")
    code = int(float(parts[0])) if parts and parts[0].strip() else 0
    message = parts[1].strip() if len(parts) > 1 else ""
    return f"{code}, {message}"


def _block_message(command: str, values: np.ndarray, dtype: str, suffix: str = "") -> bytes:
    """``command #<d><len><payload>`` + ``suffix`` + LF, the payload being ``values`` as
    ``dtype``."""
    payload = np.ascontiguousarray(values, dtype=dtype).tobytes()
    length = str(len(payload)).encode()
    return (
        command.encode()
        + b" #"
        + str(len(length)).encode()
        + length
        + payload
        + suffix.encode()
        + b"\n"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, pyvisa.errors.VisaIOError):
        if exc.abbreviation == "VI_ERROR_TMO":
            return "timed out waiting for the instrument (is it running and answering?)"
        return f"{exc.abbreviation}: {exc.description}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens at that address)"
    if isinstance(exc, ConnectionAbortedError | ConnectionResetError | BrokenPipeError):
        return CONNECTION_CLOSED
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__
