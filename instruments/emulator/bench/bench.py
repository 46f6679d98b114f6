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

Between triggers an instrument whose output is on keeps its idle level on its switch
input (:meth:`VirtualBench.hold`): the SMU its present source level, the pulse generator
the level between pulses. Whatever devices the relays connect to that input see it for
as long as both last, so a level changed while a device is still routed reaches that
device. Every voltage a device sees (pulses, list points, measurements, idle levels) is
recorded in :attr:`VirtualBench.exposures` with its time, duration and source, so tests
can check that no device saw a voltage it was not meant to. The pulse generator's path
has a series limiter (:class:`SeriesLimiter`): a resistor divides the pulse with the
device, a transistor caps its current; the device sees what is left.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instruments.bench_chip import Routing, SeriesLimiter
from instruments.emulator.crossbar import VirtualClock
from instruments.emulator.pcm import PcmTruth
from instruments.emulator.physics import PulsedTruth, chip_truth, make_device_array
from instruments.emulator.server import EmulatorServer

__all__ = ["BenchResources", "Exposure", "VirtualBench", "limited_voltage", "running_bench"]

SOURCE_OHM = 50.0  # output impedance of the pulse generator
MAX_EXPOSURES = 200_000  # exposures kept (about 20 MB); 0 keeps none


@dataclass(frozen=True, slots=True)
class Exposure:
    """A voltage one device saw: from ``t_s`` for ``duration_s`` (0: a step), ``count`` times."""

    device: int
    volts: float
    t_s: float
    duration_s: float
    source: str
    count: int = 1


def limited_voltage(limiter: SeriesLimiter, volts: float, conductance_s: float) -> float:
    """Voltage across a device of ``conductance_s`` when the generator drives ``volts``.

    A resistor divides (with the generator's 50 Ω); a transistor in saturation passes the
    full voltage up to its current, then holds the current (its on-resistance neglected).
    """
    if limiter.kind == "resistor":
        return volts / (1.0 + conductance_s * (float(limiter.resistance_ohm) + SOURCE_OHM))
    cap = float(limiter.max_current_a)
    if conductance_s * abs(volts) > cap:
        return float(np.sign(volts)) * cap / conductance_s
    return volts


class VirtualBench:
    """Shared state of the virtual instruments: devices, wiring, relays, clock, lock."""

    relay_time_s = 3e-3  # settling of a relay change, virtual seconds

    def __init__(
        self,
        truth: PulsedTruth | PcmTruth,
        shape: tuple[int, int],
        seed: int,
        routing: Routing | None = None,
        limiter: SeriesLimiter | None = None,
        max_exposures: int = MAX_EXPOSURES,
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
        self.limiter = limiter or SeriesLimiter("transistor", max_current_a=1e-3)
        # the most recent exposures (a long campaign would otherwise fill the memory)
        self.exposures: collections.deque[Exposure] = collections.deque(maxlen=max_exposures)
        self._holds: dict[str, tuple[int, float, float]] = {}  # source -> (input, V, since)
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
    def connections(self) -> set[tuple[int, int, int]]:
        """Every (card, input, output) connection: closed relays plus the switch's bias mode."""
        return self.switch.connections()

    def devices_on(self, input_port: int) -> np.ndarray:
        """Flat indices of the devices between ``input_port`` and ground, given the relays."""
        links = self.connections()
        driven = {(card, out) for card, inp, out in links if inp == input_port}
        grounded = {(card, out) for card, inp, out in links if inp == self.routing.ground_input}
        rows = sorted(self._rows[line] for line in driven if line in self._rows)
        cols = sorted(self._cols[line] for line in grounded if line in self._cols)
        if not rows or not cols:
            return np.zeros(0, dtype=np.int64)
        return (np.array(rows)[:, None] * self.shape[1] + np.array(cols)[None, :]).ravel()

    # ------------------------------------------------------------------ physics helpers
    def now(self) -> float:
        return self.clock.now()

    def apply_voltage(
        self, idx: np.ndarray, volts: float, duration_s: float, t: float, source: str = "smu"
    ) -> None:
        """``idx`` held at ``volts`` for ``duration_s`` from ``t``: a pulse if it switches."""
        self.record(idx, volts, duration_s, t, source)
        if idx.size and duration_s > 0 and self.array.strength(volts, duration_s) > 0:
            self.array.apply_pulses(idx, volts, duration_s, 1, t)

    def record(
        self,
        idx: np.ndarray,
        volts: float,
        duration_s: float,
        t: float,
        source: str,
        count: int = 1,
    ) -> None:
        """Note that devices ``idx`` saw ``volts`` (nothing is noted for 0 V)."""
        if volts != 0 and self.exposures.maxlen:
            for k in np.asarray(idx).ravel():
                self.exposures.append(
                    Exposure(int(k), float(volts), t, duration_s, source, int(count))
                )

    def seen_by(self, device: int) -> list[Exposure]:
        """Everything device ``device`` (flat index) saw, in order."""
        return [e for e in self.exposures if e.device == device]

    # ------------------------------------------------------------------ idle levels
    def hold(self, source: str, input_port: int, volts: float) -> None:
        """From now on ``source`` keeps ``volts`` on ``input_port`` (0: off or floating)."""
        self.release(source)
        self._holds[source] = (input_port, float(volts), self.now())
        if volts != 0:  # the devices routed now see the new level at once
            self.record(self.devices_on(input_port), volts, 0.0, self.now(), source)

    def release(self, source: str) -> None:
        """Apply the idle level of ``source`` for the time it lasted; restart its timer."""
        port, volts, since = self._holds.get(source, (0, 0.0, self.now()))
        if volts != 0 and self.now() > since:
            self.apply_voltage(self.devices_on(port), volts, self.now() - since, since, source)
        self._holds[source] = (port, volts, self.now())

    def restart(self, source: str) -> None:
        """The instrument drove the input itself until now: its idle level restarts now."""
        port, volts, _ = self._holds.get(source, (0, 0.0, 0.0))
        self._holds[source] = (port, volts, self.now())

    def held(self, source: str) -> float:
        """The idle level ``source`` keeps now (0 V when none)."""
        return self._holds.get(source, (0, 0.0, 0.0))[1]

    def release_all(self) -> None:
        """Settle every idle level before the relays change (the switch calls this)."""
        for source in list(self._holds):
            self.release(source)

    def relays_changed(self) -> None:
        """After a relay change: devices newly routed to an idle level see it from now."""
        for source, (port, volts, _) in self._holds.items():
            if volts != 0:
                self.record(self.devices_on(port), volts, 0.0, self.now(), source)

    def pulser_voltage(self, idx: np.ndarray, volts: float, t: float) -> float:
        """What the devices ``idx`` see of the generator's ``volts`` behind the series limiter."""
        if idx.size == 0 or volts == 0:
            return volts
        g = float(np.sum(self.array.conductance(idx, t)))  # noise-free: no draw
        return limited_voltage(self.limiter, volts, max(g, 0.0))

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
            "series_limiter": self.bench.limiter.to_dict(),
            "timeout_s": timeout_s,
            "virtual": True,
        }

    def write_description(self, path: str | Path, **kwargs) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.description(**kwargs), indent=2, allow_nan=False))
        return path


@contextlib.contextmanager
def running_bench(
    chip: str = "reram",
    seed: int = 0,
    shape: tuple[int, int] = (8, 8),
    truth: PulsedTruth | PcmTruth | None = None,
    routing: Routing | None = None,
    host: str = "127.0.0.1",
    limiter: SeriesLimiter | None = None,
) -> Iterator[BenchResources]:
    """Serve a virtual bench on four free loopback ports for the duration of the block.

    Yields :class:`BenchResources` (iterable as the four resource strings: B2900 SMU,
    2600B SMU, 33500B pulse generator, E5250A switch).
    """
    bench = VirtualBench(
        truth if truth is not None else chip_truth(chip), shape, seed, routing, limiter
    )
    servers = []
    try:
        for inst in (bench.smu, bench.smu_tsp, bench.pulser, bench.switch):
            servers.append(EmulatorServer(inst, host, 0).start())
        yield BenchResources(*(s.resource for s in servers), bench=bench)
    finally:
        for server in servers:
            server.stop()
