"""Loopback TCP server that exposes an emulated instrument as a raw SCPI socket.

Reach it with PyVISA's ``@py`` backend at ``TCPIP::127.0.0.1::<port>::SOCKET`` (LF
terminations; CR LF is accepted too), exactly like a LAN instrument on port 5025. One
thread per client; the instrument serializes commands with its own lock. The server
survives garbage, dropped clients and half-sent binary blocks.

Each received byte is scanned once (:class:`~instruments.emulator.scpi.MessageFramer`);
a client whose unterminated message grows beyond the engine's limit (4 MiB of text, or
the largest block plus that) gets -223 queued and is dropped. Receiving polls every
:data:`RECV_POLL_S` (to notice :meth:`EmulatorServer.stop`); sending a reply may wait up to
:data:`SEND_TIMEOUT_S` for a slow reader. Dropped clients are logged at warning level.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Protocol

from instruments.emulator.scpi import BlockReply, LineTooLongError, MessageFramer, ScpiError

__all__ = ["EmulatorServer", "running_emulator"]

log = logging.getLogger(__name__)

RECV_POLL_S = 0.5  # how often a waiting client thread checks for stop()
SEND_TIMEOUT_S = 600.0  # a reader may pause this long in the middle of a reply


class ScpiInstrument(Protocol):
    def handle(self, message: bytes) -> list[str | bytes | BlockReply]: ...


class EmulatorServer:
    """Serve ``instrument`` on ``host:port`` (port 0 picks a free port)."""

    def __init__(self, instrument: ScpiInstrument, host: str = "127.0.0.1", port: int = 0) -> None:
        self.instrument = instrument
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self._sock.listen(8)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self._accept_thread: threading.Thread | None = None

    @property
    def resource(self) -> str:
        """VISA resource string of this server."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    def start(self) -> EmulatorServer:
        """Accept clients in a background thread."""
        self._accept_thread = threading.Thread(
            target=self.serve_forever, name=f"emulator:{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def serve_forever(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            th = threading.Thread(target=self._serve_client, args=(conn,), daemon=True)
            self._clients.add(conn)
            self._threads.append(th)
            th.start()

    def _serve_client(self, conn: socket.socket) -> None:
        framer = MessageFramer()
        peer = _peer(conn)
        try:
            conn.settimeout(RECV_POLL_S)
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(1 << 20)
                except TimeoutError:
                    continue
                if not chunk:
                    if framer.pending:
                        log.info(
                            "client %s closed with %d bytes unterminated", peer, framer.pending
                        )
                    break  # client closed; any half-sent message is discarded
                try:
                    messages = framer.feed(chunk)
                except LineTooLongError as exc:
                    self._queue_error(ScpiError(-223, str(exc)))
                    log.warning("dropping client %s: %s", peer, exc)
                    break
                for message in messages:
                    replies = self.instrument.handle(message)
                    if replies:
                        self._send(conn, _frame(replies))
        except (ConnectionError, OSError) as exc:
            if not self._stop.is_set():
                log.warning("client %s dropped: %s", peer, exc)
        except Exception:  # a bug must cost one connection, never the server
            log.exception("closing client %s after an internal error", peer)
        finally:
            self._clients.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    @staticmethod
    def _send(conn: socket.socket, parts: list[bytes | memoryview]) -> None:
        """Send a reply; a slow reader may pause up to :data:`SEND_TIMEOUT_S` (not the poll)."""
        conn.settimeout(SEND_TIMEOUT_S)
        try:
            for part in parts:
                conn.sendall(part)
        finally:
            conn.settimeout(RECV_POLL_S)

    def _queue_error(self, exc: ScpiError) -> None:
        """Queue ``exc`` on the instrument's error queue, if it has one."""
        errors = getattr(self.instrument, "errors", None)
        lock = getattr(self.instrument, "lock", None) or getattr(
            getattr(self.instrument, "bench", None), "lock", None
        )
        if errors is None:
            return
        with lock if lock is not None else contextlib.nullcontext():
            errors.push(exc.code, exc.text)

    def stop(self) -> None:
        """Stop accepting, close every client, and join the threads."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once (Linux)
        with contextlib.suppress(OSError):
            self._sock.close()
        for conn in list(self._clients):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        for th in self._threads:
            th.join(timeout=5)


def _peer(conn: socket.socket) -> str:
    try:
        host, port = conn.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


def _frame(replies: list[str | bytes | BlockReply]) -> list[bytes | memoryview]:
    """The replies of one program message joined with ';' and terminated with LF.

    Small replies become one buffer; a block payload is sent from its own memory, without
    being copied into a joined message (a 300 MB fetch would otherwise be copied twice).
    """
    parts: list[bytes | memoryview] = []
    pending = bytearray()
    for k, reply in enumerate(replies):
        if k:
            pending += b";"
        if isinstance(reply, BlockReply):
            pending += reply.header
            if reply.payload.nbytes < 65536:
                pending += reply.payload
            else:
                parts.append(bytes(pending))
                parts.append(reply.payload)
                pending = bytearray()
        else:
            pending += reply if isinstance(reply, bytes) else reply.encode()
    pending += b"\n"
    parts.append(bytes(pending))
    return parts


@contextlib.contextmanager
def running_emulator(
    chip: str = "reram",
    seed: int = 0,
    shape: tuple[int, int] = (256, 256),
    host: str = "127.0.0.1",
    port: int = 0,
    truth: object | None = None,
) -> Iterator[str]:
    """Run an emulated chip in this process for the duration of the block.

    Yields the VISA resource string (``TCPIP::127.0.0.1::PORT::SOCKET``). ``truth`` (a
    :class:`~instruments.emulator.physics.PulsedTruth` or ``PcmTruth``, e.g. from
    :func:`~instruments.emulator.physics.load_truth_file`) replaces the kind's defaults.
    """
    from instruments.emulator.crossbar import EmulatedCrossbar

    server = EmulatorServer(EmulatedCrossbar(chip, shape, seed, truth=truth), host, port).start()
    try:
        yield server.resource
    finally:
        server.stop()
