"""What the fault-injection tests and ``benchmarks/probe_data_loss.py`` share.

Small campaigns of every kind (each runs in ~0.1-1 s on a 32 x 32 emulated chip), the
comparison of two campaign files that ignores the chip-clock stamps, and a TCP relay that
drops the connection to the emulator the way an unplugged instrument would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calib.campaigns import (
    DriftParams,
    ProgrammingParams,
    PulseResponseParams,
    ReadNoiseParams,
    measure_drift,
    measure_programming,
    measure_pulse_response,
    measure_read_noise,
)
from calib.campaigns.base import CampaignParams
from calib.io.hdf5 import read_campaign
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator

__all__ = [
    "CAMPAIGNS",
    "LEVELS",
    "STAMPS",
    "ConnectionDropRelay",
    "first_difference",
    "run_campaign",
]

SHAPE = (32, 32)
LEVELS = (30e-6, 50e-6, 70e-6, 90e-6)  # programming targets (S)
#: Clock stamps: they say when a device was measured, which a restarted emulator changes.
STAMPS = {"start_time", "program_time"}
#: HDF5 group -> (measure function, parameters): 96 devices in chunks of 16.
CAMPAIGNS: dict[str, tuple[Callable[..., Path], CampaignParams]] = {
    "pulse_response": (
        measure_pulse_response,
        PulseResponseParams(
            n_devices=96,
            chunk_devices=16,
            seed=4,
            n_up=8,
            n_down=8,
            cycles=1,
            amplitude_up_v=1.2,
            amplitude_down_v=-1.2,
            width_s=1e-6,
        ),
    ),
    "programming": (
        measure_programming,
        ProgrammingParams(n_devices=96, chunk_devices=16, seed=4, levels_s=LEVELS),
    ),
    "drift": (
        measure_drift,
        DriftParams(
            n_devices=96, chunk_devices=16, seed=4, levels_s=LEVELS, t_max_s=1e3, n_times=6
        ),
    ),
    "read_noise": (
        measure_read_noise,
        ReadNoiseParams(n_devices=96, chunk_devices=16, seed=4, levels_s=LEVELS, n_reads=8),
    ),
}


def run_campaign(
    group: str, path: Path, chip_kind: str = "reram", seed: int = 7, wrap=None, **kw
) -> Path:
    """Run the small ``group`` campaign into ``path`` on a fresh emulated chip."""
    measure, params = CAMPAIGNS[group]
    with running_emulator(chip_kind, seed=seed, shape=SHAPE) as res, ScpiCrossbarChip(res) as c:
        return measure(wrap(c) if wrap else c, params, path, **kw)


def first_difference(whole: Path, other: Path, group: str, prefix: bool = False) -> str | None:
    """Name of the first array in which ``other`` differs from ``whole`` (None: same data).

    Stamps aside; with ``prefix``, ``other`` may hold only the first devices of ``whole``
    (an interrupted run: its per-device arrays must equal the start of the whole run's).
    Read-noise read times are differences of two chip-clock stamps: equal up to the
    rounding of the clock's offset (1e-12 relative).
    """
    a, b = read_campaign(whole, group), read_campaign(other, group)
    n = b.n_devices
    for name in sorted(set(a.arrays) - STAMPS):
        u, v = a.arrays[name], b.arrays[name]
        if name not in b.arrays:
            return name
        if prefix:
            if name in ("pulses", "time") and group != "read_noise":
                continue
            if v.ndim and name != "pulses":
                u = u[:n]
        if group == "read_noise" and name == "time":
            if u.shape != v.shape or not np.allclose(u, v, rtol=1e-12):
                return name
        elif u.shape != v.shape or not np.array_equal(u, v):
            return name
    return None


class ConnectionDropRelay:
    """A TCP relay to the emulator that can drop the connection like an instrument would."""

    def __init__(self, resource_string: str) -> None:
        self.upstream = int(resource_string.split("::")[2])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.resource = f"TCPIP::127.0.0.1::{self.listener.getsockname()[1]}::SOCKET"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)

    def drop(self) -> None:
        """Shut both directions of every relayed connection."""
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.listener.close()
        self.drop()


def peek_while_written(path: Path, read: Callable[[h5py.File], Any], default: Any) -> Any:
    """``read`` of the campaign file ``path`` while another process writes it, ``default``
    where that read fails: not created yet, a group or attribute not written yet, or a read
    between the writer's metadata updates, which can see an inconsistent heap (h5py raises
    RuntimeError "bad heap free list", seen in CI). Such a poll says only "not yet"."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return read(f)
    except (OSError, KeyError, RuntimeError):
        return default
