"""One writer per campaign file: an exclusive ``flock`` on ``FILE.h5.lock``.

The dataset writer opens and closes the HDF5 file around every chunk (so a killed process
leaves a consistent file), which means HDF5's own file locks do not cover the time between
chunks. This lock is held for the whole campaign instead. The kernel releases a ``flock``
when its process dies, so a lock file left by a killed run never blocks the next one; the
file holds the owner's pid and host for the refusal message.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from calib.errors import CalibError

__all__ = ["WriterLock"]

try:  # POSIX; elsewhere the lock is taken by exclusive creation (stale after a crash)
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]


class WriterLock:
    """Exclusive right to write ``path``; :meth:`acquire` refuses with one line if taken."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> WriterLock:
        if self._fd is not None:
            return self
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            if fcntl is None:  # pragma: no cover
                try:
                    fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    self._refuse()
                break
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                self._refuse()
            # the previous owner may have removed the file between our open and flock
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def _refuse(self) -> None:
        try:
            owner = self.lock_path.read_text().split()
        except OSError:
            owner = []
        who = f"process {owner[0]} on {owner[1]}" if len(owner) >= 2 else "another process"
        raise CalibError(
            f"{self.path}: {who} is writing this file; wait for it to finish or stop it "
            f"(lock {self.lock_path.name})"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)  # while still holding it (see acquire)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
