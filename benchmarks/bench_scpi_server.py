"""Emulator server robustness costs (issue 18, items 5 and 13).

1. Framing a long unterminated message that arrives in 4 kB pieces: the incremental
   :class:`~instruments.emulator.scpi.MessageFramer` against rescanning the whole pending
   buffer on every piece (what the server did before, reproduced with ``split_messages``).
2. ``*IDN?`` latency of a second client while a first one streams a 3.9 MB line.
3. A reader that pauses 1.5 s in the middle of a 16 MB reply still receives all of it.

Run: ``.venv/bin/python benchmarks/bench_scpi_server.py`` (about 30 s).
"""

from __future__ import annotations

import platform
import socket
import threading
import time

from instruments.emulator.scpi import MessageFramer, split_messages
from instruments.emulator.server import running_emulator

PIECE = 4096


def framing(total: int) -> tuple[float, float]:
    """Seconds to frame ``total`` bytes of one message in 4 kB pieces: (incremental, rescan)."""
    piece = b"A" * PIECE
    framer = MessageFramer()
    t0 = time.perf_counter()
    for _ in range(total // PIECE):
        framer.feed(piece)
    framer.feed(b"\n")
    incremental = time.perf_counter() - t0
    buffer = bytearray()
    t0 = time.perf_counter()
    for _ in range(total // PIECE):
        buffer += piece
        split_messages(buffer)  # scans the whole pending buffer again, as before
    rescan = time.perf_counter() - t0
    return incremental, rescan


def idn_latency_during_a_long_line(resource: str) -> tuple[float, float]:
    """Median and max ``*IDN?`` round trip (s) while another client sends 3.9 MB unterminated."""
    port = int(resource.split("::")[2])
    stop = threading.Event()

    def stream() -> None:
        with socket.create_connection(("127.0.0.1", port)) as bad:
            for _ in range(3_900_000 // PIECE):
                if stop.is_set():
                    break
                bad.sendall(b"A" * PIECE)
            stop.wait()

    th = threading.Thread(target=stream)
    th.start()
    times = []
    with socket.create_connection(("127.0.0.1", port)) as good:
        good.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):
            t0 = time.perf_counter()
            good.sendall(b"*IDN?\n")
            data = b""
            while not data.endswith(b"\n"):
                data += good.recv(4096)
            times.append(time.perf_counter() - t0)
    stop.set()
    th.join()
    times.sort()
    return times[len(times) // 2], times[-1]


def slow_reader(resource: str) -> tuple[int, int]:
    """(bytes received, bytes expected) of a 16 MB reply read after a 1.5 s pause."""
    port = int(resource.split("::")[2])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"SEQ:PTR:DEF 500,1.2,500,-1.2,1e-6,1,1;:SEQ:INIT;:FETC:COND?\n")
    first = sock.recv(64)
    expected = int(first[2:10]) + 10 + 1
    time.sleep(1.5)
    received = len(first)
    while received < expected:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        received += len(chunk)
    sock.close()
    return received, expected


def main() -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    for total in (250_000, 1_000_000, 4_000_000):
        inc, rescan = framing(total)
        print(f"framing {total / 1e6:.2f} MB in 4 kB pieces: incremental {inc:.3f} s, "
              f"rescan {rescan:.3f} s")  # fmt: skip
    with running_emulator("reram", seed=1, shape=(4, 4)) as resource:
        median, worst = idn_latency_during_a_long_line(resource)
        print(f"*IDN? while another client streams 3.9 MB: median {median * 1e6:.0f} us, "
              f"max {worst * 1e3:.1f} ms")  # fmt: skip
    with running_emulator("reram", seed=2, shape=(64, 64)) as resource:
        got, want = slow_reader(resource)
        print(f"16 MB reply after a 1.5 s reader pause: {got} of {want} bytes")


if __name__ == "__main__":
    main()
