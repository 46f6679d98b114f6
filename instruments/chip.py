"""The chip interface: vectorized operations over a device selection.

Measurement campaigns see only :class:`ChipInterface`. A backend (the emulated chip over
SCPI, a bench of SMU + pulse generator + switch matrix, ...) subclasses it and overrides the
operations it can batch; everything else falls back to loops over the two primitives
:meth:`ChipInterface.read_conductance` and :meth:`ChipInterface.apply_pulses`.

Conventions: conductances in siemens, voltages in volts, times in seconds. Devices are
addressed by flat index ``row * n_cols + col``; results are ordered like the selection.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = [
    "BlockSelection",
    "ChipInterface",
    "Clock",
    "DeviceSelection",
    "ListSelection",
    "ProgramResult",
    "PulseSpec",
    "PulseTrainSpec",
    "RealClock",
    "Selection",
    "pulse_sequence",
]


# --------------------------------------------------------------------------- selections
@dataclass(frozen=True)
class DeviceSelection:
    """One device at (row, col)."""

    row: int
    col: int

    def indices(self, shape: tuple[int, int]) -> np.ndarray:
        _check_in_array(self.row, self.col, shape)
        return np.array([self.row * shape[1] + self.col], dtype=np.int64)


@dataclass(frozen=True)
class BlockSelection:
    """A rectangular block of ``n_rows x n_cols`` devices from (row0, col0), row-major."""

    row0: int
    col0: int
    n_rows: int
    n_cols: int

    def indices(self, shape: tuple[int, int]) -> np.ndarray:
        if self.n_rows < 1 or self.n_cols < 1:
            raise ValueError(f"block selection must be non-empty, got {self.n_rows}x{self.n_cols}")
        _check_in_array(self.row0, self.col0, shape)
        _check_in_array(self.row0 + self.n_rows - 1, self.col0 + self.n_cols - 1, shape)
        rows = np.arange(self.row0, self.row0 + self.n_rows)
        cols = np.arange(self.col0, self.col0 + self.n_cols)
        return (rows[:, None] * shape[1] + cols[None, :]).ravel().astype(np.int64)


@dataclass(frozen=True)
class ListSelection:
    """An arbitrary list of flat device indices (``row * n_cols + col``), in the given order."""

    flat_indices: tuple[int, ...]

    @classmethod
    def of(cls, indices: np.ndarray | list[int]) -> ListSelection:
        return cls(tuple(int(i) for i in np.asarray(indices).ravel()))

    def indices(self, shape: tuple[int, int]) -> np.ndarray:
        idx = np.asarray(self.flat_indices, dtype=np.int64)
        if idx.size == 0:
            raise ValueError("list selection is empty")
        n = shape[0] * shape[1]
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"list selection has indices outside the array of {n} devices")
        return idx


Selection = DeviceSelection | BlockSelection | ListSelection


def _check_in_array(row: int, col: int, shape: tuple[int, int]) -> None:
    if not (0 <= row < shape[0] and 0 <= col < shape[1]):
        raise ValueError(f"device ({row}, {col}) is outside the {shape[0]}x{shape[1]} array")


# --------------------------------------------------------------------------- pulse specs
@dataclass(frozen=True)
class PulseSpec:
    """One programming pulse. The sign of ``amplitude_v`` is the polarity (+ potentiates)."""

    amplitude_v: float
    width_s: float
    period_s: float = 0.0


@dataclass(frozen=True)
class PulseTrainSpec:
    """``cycles`` x (``n_up`` up pulses then ``n_down`` down pulses), a read every ``read_every``.

    The result of a pulse train has one initial read (before any pulse) and then one read
    after every ``read_every`` pulses of each branch.
    """

    n_up: int
    up: PulseSpec
    n_down: int
    down: PulseSpec
    cycles: int = 1
    read_every: int = 1

    def __post_init__(self) -> None:
        if self.n_up < 0 or self.n_down < 0 or self.n_up + self.n_down == 0:
            raise ValueError("a pulse train needs n_up >= 0, n_down >= 0 and at least one pulse")
        if self.cycles < 1:
            raise ValueError(f"cycles must be >= 1, got {self.cycles}")
        if self.read_every < 1:
            raise ValueError(f"read_every must be >= 1, got {self.read_every}")
        if self.n_up % self.read_every or self.n_down % self.read_every:
            raise ValueError("n_up and n_down must be multiples of read_every")

    @property
    def n_reads(self) -> int:
        """Reads per device including the initial read."""
        return 1 + self.cycles * (self.n_up + self.n_down) // self.read_every


def pulse_sequence(spec: PulseTrainSpec) -> np.ndarray:
    """Signed number of pulses applied just before each read, shape ``(n_reads,)``.

    ``+k``: k up pulses, ``-k``: k down pulses, ``0``: a plain read (the initial state).
    """
    per_cycle = [spec.read_every] * (spec.n_up // spec.read_every) + [-spec.read_every] * (
        spec.n_down // spec.read_every
    )
    return np.array([0, *per_cycle * spec.cycles], dtype=np.int32)


@dataclass
class ProgramResult:
    """Outcome of program-and-verify for each selected device."""

    conductance_s: np.ndarray  # (n_sel,) final verified read
    iterations: np.ndarray  # (n_sel,) int
    converged: np.ndarray  # (n_sel,) bool
    time_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # completion time per device


# --------------------------------------------------------------------------- clocks
class Clock(Protocol):
    """Time source of a chip: real (wall clock) or virtual (advanced by the instrument)."""

    virtual: bool

    def now(self) -> float:
        """Seconds since the chip's time origin."""
        ...

    def advance(self, dt_s: float) -> None:
        """Let ``dt_s`` seconds pass (sleep, or advance the virtual clock)."""
        ...


class RealClock:
    """Wall clock; ``advance`` sleeps."""

    virtual = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def advance(self, dt_s: float) -> None:
        if dt_s > 0:
            time.sleep(dt_s)


# --------------------------------------------------------------------------- interface
class ChipInterface(abc.ABC):
    """Vectorized access to a crossbar of two-terminal analog memory devices.

    Subclasses implement :meth:`read_conductance` and :meth:`apply_pulses`, plus
    :attr:`shape`, :attr:`clock` and :meth:`identity`; they override the batched operations
    when the hardware can do them in fewer round trips.
    """

    shape: tuple[int, int]
    clock: Clock

    # -- required primitives
    @abc.abstractmethod
    def identity(self) -> str:
        """The instrument's ``*IDN?`` string (or an equivalent for a bench)."""

    @abc.abstractmethod
    def read_conductance(self, sel: Selection, v_read: float, n_avg: int = 1) -> np.ndarray:
        """One (averaged) read of each selected device, siemens, shape ``(n_sel,)``."""

    @abc.abstractmethod
    def apply_pulses(self, sel: Selection, pulse: PulseSpec, n: int = 1) -> None:
        """Apply ``n`` identical pulses to every selected device."""

    # -- optional metadata
    def snapshot(self) -> dict:
        """Identity and settings, stored in every dataset written from this chip."""
        return {"idn": self.identity(), "shape": list(self.shape)}

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release the connection."""

    def __enter__(self) -> ChipInterface:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def n_selected(self, sel: Selection) -> int:
        return int(sel.indices(self.shape).size)

    # -- batched operations with generic fallbacks
    def pulse_train_with_reads(
        self, sel: Selection, spec: PulseTrainSpec, v_read: float
    ) -> np.ndarray:
        """Run a pulse train; conductance after each read, shape ``(spec.n_reads, n_sel)``."""
        reads = [self.read_conductance(sel, v_read)]
        for _ in range(spec.cycles):
            for n, pulse in ((spec.n_up, spec.up), (spec.n_down, spec.down)):
                for _ in range(n // spec.read_every):
                    self.apply_pulses(sel, pulse, spec.read_every)
                    reads.append(self.read_conductance(sel, v_read))
        return np.stack(reads)

    def repeated_reads(self, sel: Selection, n: int, v_read: float) -> np.ndarray:
        """``n`` back-to-back reads, shape ``(n, n_sel)``."""
        return np.stack([self.read_conductance(sel, v_read) for _ in range(n)])

    def read_at_times(
        self, sel: Selection, times_s: np.ndarray, v_read: float, n_avg: int = 1
    ) -> np.ndarray:
        """Read at times (s) measured from now, shape ``(n_times, n_sel)``."""
        times_s = np.asarray(times_s, dtype=float)
        if np.any(np.diff(times_s) < 0):
            raise ValueError("read times must be non-decreasing")
        t_start = self.clock.now()
        out = []
        for t in times_s:
            wait = t_start + t - self.clock.now()
            if wait > 0:
                self.clock.advance(wait)
            out.append(self.read_conductance(sel, v_read, n_avg))
        return np.stack(out)

    def program_verify(
        self,
        sel: Selection,
        targets_s: np.ndarray,
        tol_s: float,
        max_iter: int,
        v_read: float,
        pulse: PulseSpec,
    ) -> ProgramResult:
        """Host-side program-and-verify: read, pulse towards the target, until within ``tol_s``.

        The fallback applies one pulse of ``pulse`` (polarity from the error sign) per
        iteration to the devices not yet converged; backends override it with an on-chip loop.
        """
        idx = sel.indices(self.shape)
        targets_s = np.broadcast_to(np.asarray(targets_s, dtype=float), idx.shape).copy()
        iterations = np.zeros(idx.size, dtype=np.int32)
        g = self.read_conductance(sel, v_read)
        done = np.abs(g - targets_s) <= tol_s
        for _ in range(max_iter):
            todo = ~done
            if not todo.any():
                break
            for sign in (1.0, -1.0):
                mask = todo & (np.sign(targets_s - g) == sign)
                if mask.any():
                    sub = ListSelection.of(idx[mask])
                    amp = sign * abs(pulse.amplitude_v)
                    self.apply_pulses(sub, PulseSpec(amp, pulse.width_s, pulse.period_s))
            iterations[todo] += 1
            g_new = self.read_conductance(ListSelection.of(idx[todo]), v_read)
            g[todo] = g_new
            done = np.abs(g - targets_s) <= tol_s
        return ProgramResult(g, iterations, done, np.full(idx.size, self.clock.now()))
