"""Program-and-verify campaigns: programming statistics, drift, and read noise.

All three program their devices to target levels first (device k of the selection gets
level ``k mod n_levels``, so every chunk covers every level), then measure:

* ``programming``: an independent read ``read_delay_s`` after programming (the achieved
  conductance; its error against the target is the programming noise), iterations,
  convergence;
* ``drift``: reads at log-spaced times after programming, ``n_avg`` reads averaged each;
* ``read_noise``: ``n_reads`` back-to-back reads ``read_delay_s`` after programming.

Programming starts from a reset state (``reset_pulses`` depressing pulses; for PCM that is
an abrupt RESET), as in the usual RESET-then-iterative-SET protocols.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from calib.campaigns.base import CampaignParams, PartialSaver, ProgressCallback, run_campaign
from calib.errors import CalibError
from calib.io.hdf5 import RowSpec
from instruments.chip import ChipInterface, ListSelection, ProgramResult, PulseSpec

__all__ = [
    "DEFAULT_LEVELS_S",
    "PROGRAM_DEFAULTS",
    "DriftParams",
    "ProgrammingParams",
    "ReadNoiseParams",
    "default_levels",
    "measure_drift",
    "measure_programming",
    "measure_read_noise",
]

#: Default (lowest, highest) target conductance per technology, siemens.
DEFAULT_LEVELS_S = {
    "reram": (30e-6, 90e-6),
    "ecram": (2e-6, 8e-6),
    "pcm": (1e-6, 24e-6),
}


#: Default program-and-verify (tolerance S, pulse amplitude V, pulse width s) per technology.
PROGRAM_DEFAULTS = {
    "reram": (0.5e-6, 1.2, 1e-6),
    "ecram": (0.05e-6, 3.0, 10e-3),
    "pcm": (0.25e-6, 1.0, 100e-9),
}


def default_levels(technology: str, n_levels: int) -> tuple[float, ...]:
    """``n_levels`` evenly spaced targets inside the technology's usual range (S)."""
    lo, hi = DEFAULT_LEVELS_S.get(technology.lower(), DEFAULT_LEVELS_S["reram"])
    return tuple(float(v) for v in np.linspace(lo, hi, n_levels))


#: target levels of a campaign whose ``levels_s`` is left to the technology
DEFAULT_N_LEVELS = 4


@dataclass(frozen=True)
class ProgrammingParams(CampaignParams):
    """Program-and-verify settings (S, V, s) on top of the common campaign parameters.

    ``levels_s``, ``tolerance_s``, ``pulse_amplitude_v`` and ``pulse_width_s`` left ``None``
    take the defaults of the chip's technology when the campaign runs (``PROGRAM_DEFAULTS``;
    levels: :data:`DEFAULT_N_LEVELS` spread over ``DEFAULT_LEVELS_S``), so a PCM chip gets
    PCM's 1 V / 100 ns pulses and 1-24 µS targets; :meth:`for_technology` resolves them
    without a chip.
    """

    levels_s: tuple[float, ...] | None = None
    tolerance_s: float | None = None
    max_iterations: int = 100
    pulse_amplitude_v: float | None = None
    pulse_width_s: float | None = None
    read_delay_s: float = 20.0
    n_avg: int = 1
    reset_pulses: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reset_pulses < 0:
            raise CalibError(f"reset_pulses must be >= 0, got {self.reset_pulses}")
        if self.levels_s is not None:
            levels = np.asarray(self.levels_s, dtype=float)
            if levels.size == 0 or not np.all(np.isfinite(levels)) or np.any(levels < 0):
                raise CalibError(f"target levels must be finite and >= 0 S, got {self.levels_s}")
        if (self.tolerance_s is not None and self.tolerance_s <= 0) or self.max_iterations < 1:
            raise CalibError("tolerance must be > 0 S and max_iterations >= 1")
        if self.read_delay_s < 0 or self.n_avg < 1:
            raise CalibError("read_delay_s must be >= 0 s and n_avg >= 1")

    @classmethod
    def for_technology(cls, technology: str | None, **fields: Any) -> ProgrammingParams:
        """Parameters with the defaults of ``technology`` (``reram``, ``ecram``, ``pcm``)."""
        return cls(**fields).resolved(technology)

    def is_resolved(self) -> bool:
        """True when no setting is left to the technology."""
        return None not in (
            self.levels_s,
            self.tolerance_s,
            self.pulse_amplitude_v,
            self.pulse_width_s,
        )

    def resolved(self, technology: str | None) -> ProgrammingParams:
        """A copy with every ``None`` setting taken from ``technology``'s defaults."""
        if self.is_resolved():
            return self
        from calib.campaigns.technology import known_technology

        tech = known_technology(technology, "programming")
        tol, amplitude_v, width_s = PROGRAM_DEFAULTS[tech]
        levels = default_levels(tech, DEFAULT_N_LEVELS) if self.levels_s is None else None
        return dataclasses.replace(
            self,
            levels_s=tuple(self.levels_s) if levels is None else levels,
            tolerance_s=tol if self.tolerance_s is None else self.tolerance_s,
            pulse_amplitude_v=amplitude_v
            if self.pulse_amplitude_v is None
            else self.pulse_amplitude_v,
            pulse_width_s=width_s if self.pulse_width_s is None else self.pulse_width_s,
        )

    def targets(self, n: int, offset: int) -> np.ndarray:
        """Targets of ``n`` devices that start at position ``offset`` of the selection."""
        if self.levels_s is None:
            raise CalibError("target levels are not resolved: use .resolved(technology)")
        levels = np.asarray(self.levels_s, dtype=float)
        return levels[(offset + np.arange(n)) % levels.size]


@dataclass(frozen=True)
class DriftParams(ProgrammingParams):
    """Reads at ``n_times`` log-spaced times in [t_min_s, t_max_s] after programming."""

    t_min_s: float = 20.0
    t_max_s: float = 1e5
    n_times: int = 40
    n_avg: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.t_min_s < self.t_max_s or self.n_times < 2:
            raise CalibError("need 0 < t_min_s < t_max_s and n_times >= 2")

    def times(self) -> np.ndarray:
        return np.geomspace(self.t_min_s, self.t_max_s, self.n_times)


@dataclass(frozen=True)
class ReadNoiseParams(ProgrammingParams):
    """``n_reads`` back-to-back reads per device, ``read_delay_s`` after programming."""

    n_reads: int = 200
    read_delay_s: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_reads < 2:
            raise CalibError("read noise needs n_reads >= 2")


def _program(chip: ChipInterface, sel: ListSelection, targets: np.ndarray, p: ProgrammingParams):
    """RESET-then-program: ``reset_pulses`` depressing pulses, then program-and-verify.

    Starting from a reset state makes every device receive fresh programming pulses, so
    its drift clock starts now (a device already at its target from an earlier campaign
    would otherwise keep its old programming time).
    """
    t_start = chip.clock.now()
    if p.reset_pulses:
        chip.apply_pulses(
            sel, PulseSpec(-abs(p.pulse_amplitude_v), p.pulse_width_s), p.reset_pulses
        )
    result: ProgramResult = chip.program_verify(
        sel,
        targets,
        p.tolerance_s,
        p.max_iterations,
        p.read_voltage_v,
        PulseSpec(p.pulse_amplitude_v, p.pulse_width_s),
    )
    n = targets.size
    program_time = np.broadcast_to(np.asarray(result.time_s, dtype=float), (n,))
    stale = program_time < t_start
    if np.any(stale):
        first = int(sel.indices(chip.shape)[np.argmax(stale)])
        raise CalibError(
            f"{int(stale.sum())} device(s) (first: flat index {first}) needed no programming "
            "pulse, so their time since programming is unknown; increase reset_pulses"
        )
    return {
        "target": targets,
        "verify_conductance": np.asarray(result.conductance_s, dtype=float),
        "iterations": np.asarray(result.iterations, dtype=np.int32),
        "converged": np.asarray(result.converged, dtype=bool),
        "program_time": program_time.copy(),
    }


P = TypeVar("P", bound=ProgrammingParams)


def _resolve(chip: ChipInterface, params: P) -> P:
    """``params`` with settings left ``None`` taken from the chip's technology."""
    if params.is_resolved():
        return params
    from calib.campaigns.technology import chip_technology

    return params.resolved(chip_technology(chip))


PROGRAM_ROWS = {
    "target": RowSpec((), "f8", "S"),
    "verify_conductance": RowSpec((), "f8", "S"),
    "iterations": RowSpec((), "i4", None),
    "converged": RowSpec((), "?", None),
    "program_time": RowSpec((), "f8", "s"),
}


def measure_programming(
    chip: ChipInterface,
    params: ProgrammingParams,
    output: str | Path,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    overwrite: bool = False,
    resume_on_other_chip: bool = False,
) -> Path:
    """Program-and-verify statistics per target level (group ``programming``)."""
    params = _resolve(chip, params)

    def measure(sel: ListSelection, chunk: np.ndarray, first: int) -> dict[str, np.ndarray]:
        targets = params.targets(chunk.size, first)
        rows = _program(chip, sel, targets, params)
        g = chip.read_at_times(
            sel, np.array([params.read_delay_s]), params.read_voltage_v, params.n_avg
        )
        rows["conductance"] = np.asarray(g, dtype=float)[0]
        return rows

    rows = {**PROGRAM_ROWS, "conductance": RowSpec((), "f8", "S")}
    return run_campaign(
        chip,
        "programming",
        params,
        output,
        rows,
        measure,
        progress=progress,
        resume=resume,
        overwrite=overwrite,
        fixed_wait_s=params.read_delay_s,
        resume_on_other_chip=resume_on_other_chip,
    )


#: Time left between one segment's last read and the next segment's first (s), besides the
#: spread of the chunk's programming times and 1 % of the read time: the reads of a segment
#: and the command round trips must end before any device's next read falls due.
SEGMENT_SLACK_S = 1.0


def drift_segments(times_s: np.ndarray, spread_s: float, seconds: float) -> np.ndarray:
    """End indices (exclusive) of the segments in which a drift chunk's reads are taken.

    Segments are runs of consecutive read times. One closes once it covers ``seconds`` of
    instrument time (from programming, or from the previous segment's last read) and only
    before a read that comes late enough that no device's read is overdue when the next
    segment starts: the gap must exceed ``spread_s`` (the spread of the chunk's programming
    times) plus :data:`SEGMENT_SLACK_S` plus 1 % of the time read last. The result depends on
    these numbers alone, so a resumed run cuts the same segments as an uninterrupted one.
    """
    ends = []
    since = 0.0
    for k in range(1, times_s.size):
        gap = times_s[k] - times_s[k - 1]
        room = spread_s + SEGMENT_SLACK_S + 0.01 * times_s[k - 1]
        if times_s[k - 1] - since >= seconds and gap > room:
            ends.append(k)
            since = float(times_s[k - 1])
    ends.append(times_s.size)
    return np.asarray(ends, dtype=np.int64)


def measure_drift(
    chip: ChipInterface,
    params: DriftParams,
    output: str | Path,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    overwrite: bool = False,
    resume_on_other_chip: bool = False,
) -> Path:
    """Program, then read at log-spaced times after programming (group ``drift``).

    A chunk's reads are taken in segments of consecutive read times (:func:`drift_segments`),
    each still timed from the devices' programming; after every segment but the last the
    reads so far are stored in ``drift/partial`` (``times_complete`` of ``n_times``), so an
    interruption during a long wait keeps them.
    """
    params = _resolve(chip, params)
    times = params.times()

    def measure(
        sel: ListSelection, chunk: np.ndarray, first: int, save_partial: PartialSaver
    ) -> dict[str, np.ndarray]:
        targets = params.targets(chunk.size, first)
        rows = _program(chip, sel, targets, params)
        spread = float(np.ptp(rows["program_time"]))
        ends = drift_segments(times, spread, params.chunk_seconds)
        g = np.full((chunk.size, times.size), np.nan)
        start = 0
        for end in ends:
            reads = chip.read_at_times(sel, times[start:end], params.read_voltage_v, params.n_avg)
            g[:, start:end] = np.asarray(reads, dtype=float).T
            start = int(end)
            if start < times.size:
                attrs = {
                    "times_complete": start,
                    "n_times": int(times.size),
                    "segment_ends": [int(e) for e in ends],
                }
                save_partial({**rows, "conductance": g}, start, int(times.size), attrs)
        rows["conductance"] = g
        return rows

    rows = {**PROGRAM_ROWS, "conductance": RowSpec((times.size,), "f4", "S")}
    return run_campaign(
        chip,
        "drift",
        params,
        output,
        rows,
        measure,
        columns={"time": times},
        column_units={"time": "s"},
        extra_attrs={"n_avg": params.n_avg},
        progress=progress,
        resume=resume,
        overwrite=overwrite,
        fixed_wait_s=params.t_max_s,
        resume_on_other_chip=resume_on_other_chip,
        segmented=True,
    )


def measure_read_noise(
    chip: ChipInterface,
    params: ReadNoiseParams,
    output: str | Path,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    overwrite: bool = False,
    resume_on_other_chip: bool = False,
) -> Path:
    """Program, wait ``read_delay_s``, then ``n_reads`` back-to-back reads (``read_noise``)."""
    params = _resolve(chip, params)

    def measure(sel: ListSelection, chunk: np.ndarray, first: int) -> dict[str, np.ndarray]:
        targets = params.targets(chunk.size, first)
        rows = _program(chip, sel, targets, params)
        wait = rows["program_time"].max() + params.read_delay_s - chip.clock.now()
        if wait > 0:
            chip.clock.advance(float(wait))
        t_start = chip.clock.now()
        g = chip.repeated_reads(sel, params.n_reads, params.read_voltage_v)
        t_end = chip.clock.now()
        read_times = np.linspace(t_start, t_end, params.n_reads)
        rows["conductance"] = np.asarray(g, dtype=float).T
        rows["time"] = read_times[None, :] - rows["program_time"][:, None]
        return rows

    rows = {
        **PROGRAM_ROWS,
        "conductance": RowSpec((params.n_reads,), "f4", "S"),
        "time": RowSpec((params.n_reads,), "f8", "s"),
    }
    return run_campaign(
        chip,
        "read_noise",
        params,
        output,
        rows,
        measure,
        progress=progress,
        resume=resume,
        overwrite=overwrite,
        fixed_wait_s=params.read_delay_s,
        resume_on_other_chip=resume_on_other_chip,
    )
