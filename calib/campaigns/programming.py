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

from pathlib import Path
from typing import TypeVar

import numpy as np

from calib.campaigns.base import PartialSaver, ProgressCallback, run_campaign
from calib.campaigns.parameters import DriftParams, ProgrammingParams, ReadNoiseParams
from calib.campaigns.technology import DEFAULT_LEVELS_S, PROGRAM_DEFAULTS, default_levels
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
