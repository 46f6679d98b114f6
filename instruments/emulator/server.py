"""Loopback TCP server that exposes an emulated instrument as a raw SCPI socket.

Reach it with PyVISA's ``@py`` backend at ``TCPIP::127.0.0.1::<port>::SOCKET`` (LF
terminations), exactly like a LAN instrument on port 5025. One thread per client; the
instrument serializes commands with its own lock. The server survives garbage, dropped
clients and half-sent binary blocks.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Protocol

from instruments.emulator.scpi import BlockReply, split_messages

__all__ = ["EmulatorServer", "running_emulator"]

log = logging.getLogger(__name__)

MAX_PENDING_BYTES = 1 << 31  # drop a client whose unterminated message exceeds 2 GiB


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
        buffer = bytearray()
        try:
            conn.settimeout(0.5)
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(1 << 20)
                except TimeoutError:
                    continue
                if not chunk:
                    break  # client closed; any half-sent message is discarded
                buffer += chunk
                messages, used = split_messages(buffer)
                if used:
                    del buffer[:used]
                if len(buffer) > MAX_PENDING_BYTES:
                    log.warning("dropping client: unterminated message over 2 GiB")
                    break
                for message in messages:
                    replies = self.instrument.handle(message)
                    if replies:
                        for part in _frame(replies):
                            conn.sendall(part)
        except (ConnectionError, OSError) as exc:
            log.debug("client dropped: %s", exc)
        except Exception:  # a bug must cost one connection, never the server
            log.exception("closing a client after an internal error")
        finally:
            self._clients.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

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
