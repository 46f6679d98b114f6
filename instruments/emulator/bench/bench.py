"""The virtual bench: one emulated device array wired to four virtual instruments.

A crossbar's row and column lines go to outputs of the virtual switch matrix (as in a
:class:`~instruments.bench_chip.Routing`); the SMU, the pulse generator and ground are on
three of its inputs. An instrument acts on the devices whose row line is switched to its
input and whose column line is switched to ground (with one row and one column routed,
exactly one device; lines that are not routed float, so there are no sneak paths). Both
SMU models (B2900 and 2600B) are alternatives on the same SMU input.

Every instrument action advances the one virtual clock by its modelled duration (relay
settling, measurement apertures, list steps, pulse periods), so drift experiments run in
no wall time and programming times are consistent across instruments.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instruments.bench_chip import Routing
from instruments.emulator.crossbar import VirtualClock
from instruments.emulator.pcm import PcmTruth
from instruments.emulator.physics import PulsedTruth, chip_truth, make_device_array
from instruments.emulator.server import EmulatorServer

__all__ = ["BenchResources", "VirtualBench", "running_bench"]


class VirtualBench:
    """Shared state of the virtual instruments: devices, wiring, relays, clock, lock."""

    relay_time_s = 3e-3  # settling of a relay change, virtual seconds

    def __init__(
        self,
        truth: PulsedTruth | PcmTruth,
        shape: tuple[int, int],
        seed: int,
        routing: Routing | None = None,
    ) -> None:
        from instruments.emulator.bench.awg_33500 import Virtual33500B
        from instruments.emulator.bench.smu_b2900 import VirtualB2900
        from instruments.emulator.bench.smu_k2600 import Virtual2600B
        from instruments.emulator.bench.switch_e5250 import VirtualE5250A

        self.truth = truth
        self.shape = (int(shape[0]), int(shape[1]))
        self.seed = int(seed)
        self.routing = routing or Routing.sequential(self.shape)
        if self.routing.shape != self.shape:
            raise ValueError(f"routing is for {self.routing.shape}, the array is {self.shape}")
        self.lock = threading.RLock()
        self.clock = VirtualClock()
        self.array = make_device_array(truth, self.shape, self.seed)
        self.closed: set[tuple[int, int, int]] = set()  # (card, input, output) relays
        self._rows = {line: r for r, line in enumerate(self.routing.rows)}
        self._cols = {line: c for c, line in enumerate(self.routing.columns)}
        self.switch = VirtualE5250A(self)
        self.smu = VirtualB2900(self)
        self.smu_tsp = Virtual2600B(self)
        self.pulser = Virtual33500B(self)

    @property
    def instruments(self) -> dict:
        return {
            "smu": self.smu,
            "smu_tsp": self.smu_tsp,
            "pulser": self.pulser,
            "switch": self.switch,
        }

    # ------------------------------------------------------------------ wiring
    def devices_on(self, input_port: int) -> np.ndarray:
        """Flat indices of the devices between ``input_port`` and ground, given the relays."""
        driven = {(card, out) for card, inp, out in self.closed if inp == input_port}
        grounded = {
            (card, out) for card, inp, out in self.closed if inp == self.routing.ground_input
        }
        rows = sorted(self._rows[line] for line in driven if line in self._rows)
        cols = sorted(self._cols[line] for line in grounded if line in self._cols)
        if not rows or not cols:
            return np.zeros(0, dtype=np.int64)
        return (np.array(rows)[:, None] * self.shape[1] + np.array(cols)[None, :]).ravel()

    # ------------------------------------------------------------------ physics helpers
    def now(self) -> float:
        return self.clock.now()

    def apply_voltage(self, idx: np.ndarray, volts: float, duration_s: float, t: float) -> None:
        """``idx`` held at ``volts`` for ``duration_s`` from ``t``: a pulse if it switches."""
        if idx.size and duration_s > 0 and self.array.strength(volts, duration_s) > 0:
            self.array.apply_pulses(idx, volts, duration_s, 1, t)

    def current(self, idx: np.ndarray, volts: float, t: float) -> float:
        """Current (A) through ``idx`` in parallel at ``volts``: I = V·ΣG, G read with noise."""
        if idx.size == 0 or volts == 0:
            return 0.0
        return float(volts * np.sum(self.array.read(idx, 1, t)))

    def reseed_noise(self, seed: int) -> None:
        self.array.reseed_noise(seed)

    def truth_preset(self) -> dict:
        preset = self.array.truth_preset()
        preset["emulator"] = {"seed": self.seed, "shape": list(self.shape), "bench": True}
        return preset


@dataclass(frozen=True)
class BenchResources:
    """VISA resources of a running virtual bench, and the bench itself (for tests)."""

    smu: str  # Keysight B2900 (SCPI)
    smu_tsp: str  # Keithley 2600B (TSP)
    pulser: str  # Keysight 33500B
    switch: str  # Keysight E5250A
    bench: VirtualBench

    def __iter__(self) -> Iterator[str]:
        return iter((self.smu, self.smu_tsp, self.pulser, self.switch))

    def description(self, smu: str = "keysight_b2900", timeout_s: float = 10.0) -> dict:
        """A bench description (see :func:`instruments.bench_chip.open_bench`)."""
        if smu not in ("keysight_b2900", "keithley_2600"):
            raise ValueError(f"smu must be keysight_b2900 or keithley_2600, got {smu!r}")
        return {
            "smu": {
                "driver": smu,
                "resource": self.smu if smu == "keysight_b2900" else self.smu_tsp,
            },
            "pulser": {"driver": "keysight_33500", "resource": self.pulser},
            "switch": {"driver": "keysight_e5250", "resource": self.switch},
            "routing": self.bench.routing.to_dict(),
            "timeout_s": timeout_s,
            "virtual": True,
        }

    def write_description(self, path: str | Path, **kwargs) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.description(**kwargs), indent=2))
        return path


@contextlib.contextmanager
def running_bench(
    chip: str = "reram",
    seed: int = 0,
    shape: tuple[int, int] = (8, 8),
    truth: PulsedTruth | PcmTruth | None = None,
    routing: Routing | None = None,
    host: str = "127.0.0.1",
) -> Iterator[BenchResources]:
    """Serve a virtual bench on four free loopback ports for the duration of the block.

    Yields :class:`BenchResources` (iterable as the four resource strings: B2900 SMU,
    2600B SMU, 33500B pulse generator, E5250A switch).
    """
    bench = VirtualBench(truth if truth is not None else chip_truth(chip), shape, seed, routing)
    servers = []
    try:
        for inst in (bench.smu, bench.smu_tsp, bench.pulser, bench.switch):
            servers.append(EmulatorServer(inst, host, 0).start())
        yield BenchResources(*(s.resource for s in servers), bench=bench)
    finally:
        for server in servers:
            server.stop()
