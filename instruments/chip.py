"""The chip interface: vectorized operations over a device selection.

Measurement campaigns see only :class:`ChipInterface`. A backend (the emulated chip over
SCPI, a bench of SMU + pulse generator + switch matrix, ...) subclasses it and overrides the
operations it can batch; everything else falls back to loops over the two primitives
:meth:`ChipInterface.read_conductance` and :meth:`ChipInterface.apply_pulses`.

Conventions: conductances in siemens, voltages in volts, currents in amperes, times in
seconds. Devices are addressed by flat index ``row * n_cols + col``; results are ordered
like the selection. Chip time is the backend's :class:`Clock` (virtual on the emulator).

Every device has a *programming time*: the chip time of its last programming pulse.
:meth:`ChipInterface.read_at_times` counts from it (drift experiments), and
:meth:`ChipInterface.program_verify` reports it in :attr:`ProgramResult.time_s`. The
generic fallbacks keep it for the devices they program themselves
(:meth:`ChipInterface.note_programmed`); a backend that knows it overrides
:meth:`ChipInterface.programming_times`.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

__all__ = [
    "OPTIONAL_CAPABILITIES",
    "BlockSelection",
    "ChipInterface",
    "Clock",
    "DeviceSelection",
    "ListSelection",
    "NotSupportedError",
    "ProgramResult",
    "PulseSpec",
    "PulseTrainSpec",
    "RealClock",
    "Selection",
    "VirtualClock",
    "mvm_voltages",
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
    """Outcome of program-and-verify for each selected device.

    ``time_s`` is the chip time of each device's last programming pulse (the origin of
    :meth:`ChipInterface.read_at_times`), ``iterations`` the number of pulses it got.
    """

    conductance_s: np.ndarray  # (n_sel,) final verify read, S
    iterations: np.ndarray  # (n_sel,) int
    converged: np.ndarray  # (n_sel,) bool
    time_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_sel,) chip time, s


def mvm_voltages(sel: BlockSelection, voltages_v: np.ndarray) -> tuple[np.ndarray, bool]:
    """Validated MVM inputs as ``(n_vec, n_rows)`` volts, and whether one vector was given."""
    if not isinstance(sel, BlockSelection):
        raise TypeError("mvm needs a BlockSelection (rows are inputs, columns outputs)")
    v = np.asarray(voltages_v, dtype=float)
    single = v.ndim == 1
    v = np.atleast_2d(v)
    if v.ndim != 2 or v.shape[1] != sel.n_rows or not np.all(np.isfinite(v)):
        raise ValueError(f"voltages must be finite with {sel.n_rows} values per vector")
    return v, single


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


class VirtualClock:
    """Host-side virtual time: ``advance`` adds to it at once (simulated backends, tests)."""

    virtual = True

    def __init__(self, t0_s: float = 0.0) -> None:
        self._t = float(t0_s)

    def now(self) -> float:
        return self._t

    def advance(self, dt_s: float) -> None:
        if dt_s > 0:
            self._t += dt_s


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
#: optional operations a backend may offer (:attr:`ChipInterface.capabilities`):
#: ``seed_noise`` restart the noise stream (emulators and virtual benches), ``ground_truth``
#: the hidden truth as a preset document and ``ground_truth_array`` per-device truth arrays
#: (emulators and virtual benches), ``profile`` wall time of the last on-chip sequence.
OPTIONAL_CAPABILITIES = frozenset({"seed_noise", "ground_truth", "ground_truth_array", "profile"})


class NotSupportedError(NotImplementedError):
    """An optional chip operation the backend does not offer (one-line message)."""


class ChipInterface(abc.ABC):
    """Vectorized access to a crossbar of two-terminal analog memory devices.

    Subclasses implement :meth:`read_conductance` and :meth:`apply_pulses`, plus
    :attr:`shape`, :attr:`clock` and :meth:`identity`; they override the batched operations
    when the hardware can do them in fewer round trips.

    Optional operations (:data:`OPTIONAL_CAPABILITIES`) are declared here and raise
    :class:`NotSupportedError` unless the backend lists them in :attr:`capabilities` and
    overrides them; callers ask :meth:`supports` instead of probing attributes.
    """

    shape: tuple[int, int]
    clock: Clock
    #: device technology the chip reports (``reram``, ``ecram``, ``pcm``); None: unknown
    technology: str | None = None
    #: the optional operations this backend implements (subset of OPTIONAL_CAPABILITIES)
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def supports(self, capability: str) -> bool:
        """Whether the optional operation ``capability`` is available on this chip."""
        if capability not in OPTIONAL_CAPABILITIES:
            raise ValueError(
                f"unknown chip capability {capability!r}; one of {sorted(OPTIONAL_CAPABILITIES)}"
            )
        return capability in self.capabilities

    def _not_supported(self, capability: str) -> NotSupportedError:
        return NotSupportedError(
            f"{type(self).__name__} ({self.identity()}) does not support {capability}"
        )

    # -- optional operations (see OPTIONAL_CAPABILITIES)
    def seed_noise(self, seed: int) -> None:
        """Restart the chip's noise stream (c2c, read, programming) with ``seed``."""
        raise self._not_supported("seed_noise")

    def ground_truth(self) -> dict:
        """The chip's hidden truth as a preset document (emulated chips only)."""
        raise self._not_supported("ground_truth")

    def ground_truth_array(self, name: str) -> np.ndarray:
        """A per-device truth array in flat device order, e.g. ``"delta_up"``."""
        raise self._not_supported("ground_truth_array")

    def profile(self) -> dict:
        """Wall time (s) the chip spent in its last on-chip sequence, by phase."""
        raise self._not_supported("profile")

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

    # -- programming times
    def note_programmed(self, idx: np.ndarray, times_s: np.ndarray | float) -> None:
        """Record the chip time of the last programming pulse of devices ``idx`` (flat)."""
        if getattr(self, "_programmed_at", None) is None:
            self._programmed_at = np.full(self.shape[0] * self.shape[1], np.nan)
        self._programmed_at[np.asarray(idx, dtype=np.int64)] = times_s

    def programming_times(self, sel: Selection) -> np.ndarray:
        """Chip time (s) of each selected device's last programming pulse; NaN if unknown."""
        idx = sel.indices(self.shape)
        known = getattr(self, "_programmed_at", None)
        return np.full(idx.size, np.nan) if known is None else known[idx].copy()

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
                    self.note_programmed(sel.indices(self.shape), self.clock.now())
                    reads.append(self.read_conductance(sel, v_read))
        return np.stack(reads)

    def repeated_reads(self, sel: Selection, n: int, v_read: float) -> np.ndarray:
        """``n`` back-to-back reads, shape ``(n, n_sel)``."""
        return np.stack([self.read_conductance(sel, v_read) for _ in range(n)])

    def read_at_times(
        self, sel: Selection, times_s: np.ndarray, v_read: float, n_avg: int = 1
    ) -> np.ndarray:
        """Read each device ``times_s[k]`` s after its last programming pulse.

        Shape ``(n_times, n_sel)``. Devices with an unknown programming time count from
        now. The fallback waits on :attr:`clock` and reads, at each distinct chip time, the
        devices due then (one read per group of devices programmed together); a read that
        is already overdue is taken at once.
        """
        times_s = np.asarray(times_s, dtype=float).ravel()
        if times_s.size == 0 or not np.all(np.isfinite(times_s)) or np.any(times_s < 0):
            raise ValueError("read times must be a non-empty list of finite times >= 0 s")
        if np.any(np.diff(times_s) < 0):
            raise ValueError("read times must be non-decreasing")
        idx = sel.indices(self.shape)
        origin = self.programming_times(sel)
        origin = np.where(np.isfinite(origin), origin, self.clock.now())
        due = origin[None, :] + times_s[:, None]  # (n_times, n_sel) absolute chip times
        out = np.empty(due.shape)
        for t_abs in np.unique(due):
            rows, cols = np.nonzero(due == t_abs)
            wait = t_abs - self.clock.now()
            if wait > 0:
                self.clock.advance(wait)
            ucols, inverse = np.unique(cols, return_inverse=True)
            g = self.read_conductance(ListSelection.of(idx[ucols]), v_read, n_avg)
            out[rows, cols] = g[inverse]
        return out

    def mvm(self, sel: BlockSelection, voltages_v: np.ndarray) -> np.ndarray:
        """Analog matrix-vector multiply on a block: voltages on its rows, column currents.

        ``voltages_v`` has shape ``(n_rows,)`` or ``(n_vec, n_rows)``; returns amperes of
        shape ``(n_cols,)`` or ``(n_vec, n_cols)``: I_j = Σ_i V_i G_ij. The fallback reads
        the block once at the largest input voltage and multiplies on the host (so its
        read noise is shared by all vectors).
        """
        v, single = mvm_voltages(sel, voltages_v)
        v_read = float(np.max(np.abs(v))) or 0.1
        g = self.read_conductance(sel, v_read).reshape(sel.n_rows, sel.n_cols)
        currents = v @ g
        return currents[0] if single else currents

    def program_verify(
        self,
        sel: Selection,
        targets_s: np.ndarray,
        tol_s: float,
        max_iter: int,
        v_read: float,
        pulse: PulseSpec,
    ) -> ProgramResult:
        """Program each device to its target: read, pulse towards it, until within ``tol_s``.

        The fallback applies one pulse of ``pulse`` (polarity from the error sign) per
        iteration to the devices not yet converged; backends override it with an on-chip
        loop. ``targets_s`` is one value or one per selected device.
        """
        idx = sel.indices(self.shape)
        targets_s = np.broadcast_to(np.asarray(targets_s, dtype=float), idx.shape).copy()
        if not np.all(np.isfinite(targets_s)) or np.any(targets_s < 0):
            raise ValueError("targets must be finite conductances >= 0 S")
        if not tol_s > 0 or max_iter < 1:
            raise ValueError("tol_s must be > 0 and max_iter >= 1")
        iterations = np.zeros(idx.size, dtype=np.int32)
        last_pulse = self.programming_times(sel)
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
                    last_pulse[mask] = self.clock.now()
                    self.note_programmed(idx[mask], last_pulse[mask])
            iterations[todo] += 1
            g_new = self.read_conductance(ListSelection.of(idx[todo]), v_read)
            g[todo] = g_new
            done = np.abs(g - targets_s) <= tol_s
        return ProgramResult(g, iterations, done, last_pulse)
