"""PyVISA message transport shared by our drivers: terminations, handshake, fast blocks, errors.

Every socket/VISA failure becomes :class:`InstrumentError` naming the resource and the
command. Binary blocks are read with the termination character switched off while the
known-length payload arrives (a float32 payload contains 0x0A bytes by chance), which is
10-25x faster than ``query_binary_values`` on raw sockets (instruments.md section 1.3).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

import numpy as np
import pyvisa
from pyvisa import constants

__all__ = ["InstrumentError", "VisaTransport"]

#: every SCPI exchange at DEBUG level (``calib -v``), truncated to :data:`TRAFFIC_CHARS`
traffic_log = logging.getLogger("instruments.traffic")
TRAFFIC_CHARS = 120


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
    """An open message-based VISA session with LF terminations and a checked identity."""

    def __init__(self, resource: str, timeout_s: float = 10.0, backend: str = "@py") -> None:
        self.resource = resource
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
        self.idn = self.query("*IDN?")
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
        traffic_log.debug("%s <- %s", self.resource, _short(command))
        try:
            reply = self._inst.query(command).strip()
        except (pyvisa.Error, OSError) as exc:
            raise InstrumentError(self.resource, command, _reason(exc)) from exc
        traffic_log.debug("%s -> %s", self.resource, _short(reply))
        return reply

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
        off while the known-length payload arrives, which may contain LF bytes.
        """
        inst = self._inst
        traffic_log.debug("%s <- %s", self.resource, _short(command))
        try:
            if payload is None:
                inst.write(command)
            else:
                inst.write_raw(_block_message(command, payload, payload_dtype))
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
            finally:
                inst.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, constants.VI_TRUE)
        except _NotABlockError:
            errors = self.errors()
            raise InstrumentError(
                self.resource, command, "; ".join(errors) or "reply is not a binary block"
            ) from None
        except (pyvisa.Error, OSError, ValueError) as exc:
            self._resync()
            raise InstrumentError(self.resource, command, _reason(exc)) from exc
        if data[-1:] != b"\n":
            raise InstrumentError(self.resource, command, "binary block not terminated by LF")
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
        """Drain the SCPI error queue; returns the entries (empty when there is none)."""
        found = []
        for _ in range(64):
            entry = self.query("SYST:ERR?")
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


def _block_message(command: str, values: np.ndarray, dtype: str) -> bytes:
    """``command #<d><len><payload>`` + LF, the payload being ``values`` as ``dtype``."""
    payload = np.ascontiguousarray(values, dtype=dtype).tobytes()
    length = str(len(payload)).encode()
    return command.encode() + b" #" + str(len(length)).encode() + length + payload + b"\n"


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
