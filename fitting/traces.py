"""Pulse-response traces as the fitter consumes them, with input validation.

A trace set is a conductance matrix ``(n_devices, n_reads)`` and a signed pulse sequence:
entry k is the number of pulses applied just before read k (+n up, -n down, 0 a plain
read), as in the dataset format. The sequence is either shared by all devices, shape
``(n_reads,)``, or given per device, shape ``(n_devices, n_reads)`` (CSV files whose devices
saw different protocols). ``NaN`` conductances are missing reads (e.g. the padding of a
device with a shorter trace): the pairs of reads that involve them are not used, and they
are counted in the fit's diagnostics. Conductances are in siemens unless ``units`` is
``"normalized"`` (dimensionless data, e.g. published curves scaled to about ±1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["UNITS", "FitInputError", "PulseTraces", "check_pulse_directions"]

UNITS = ("S", "normalized")


class FitInputError(ValueError):
    """The data cannot be fitted as given; the message says what is wrong."""


@dataclass
class PulseTraces:
    """Validated pulse-response data of many devices."""

    conductance_s: np.ndarray  # (n_devices, n_reads); NaN marks a missing read
    pulses: np.ndarray  # (n_reads,) shared, or (n_devices, n_reads) per device
    device_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source: str = "<memory>"
    units: str = "S"

    def __post_init__(self) -> None:
        g = np.asarray(self.conductance_s)
        if not np.issubdtype(g.dtype, np.floating):
            g = g.astype(np.float64)
        p = np.asarray(self.pulses)
        src = self.source
        if self.units not in UNITS:
            raise FitInputError(f"{src}: unknown conductance units {self.units!r}; use {UNITS}")
        if g.ndim != 2:
            raise FitInputError(f"{src}: conductance must be 2-D (devices x reads)")
        if p.ndim == 1 and p.size != g.shape[1]:
            raise FitInputError(
                f"{src}: pulse sequence has {p.size} entries for {g.shape[1]} reads"
            )
        if p.ndim == 2 and p.shape != g.shape:
            raise FitInputError(
                f"{src}: per-device pulse matrix {p.shape} does not match conductance {g.shape}"
            )
        if p.ndim not in (1, 2):
            raise FitInputError(f"{src}: pulses must be 1-D (shared) or 2-D (per device)")
        if g.shape[0] == 0 or g.shape[1] < 3:
            raise FitInputError(f"{src}: need at least one device and three reads")
        if not np.all(np.isfinite(p)) or np.any(p != np.round(p)):
            raise FitInputError(f"{src}: pulse counts must be finite integers")
        if np.isinf(g).any():
            raise FitInputError(f"{src}: conductance contains infinite values")
        check_pulse_directions(p, src)
        if not np.isfinite(g).any():
            raise FitInputError(f"{src}: every read is NaN; there is nothing to fit")
        self.conductance_s = g
        self.pulses = p.astype(np.int64)
        ids = np.asarray(self.device_ids)
        if ids.size == 0:
            self.device_ids = np.arange(g.shape[0], dtype=np.int64)
        elif ids.size != g.shape[0]:
            raise FitInputError(f"{src}: {ids.size} ids for {g.shape[0]} rows")
        else:
            self.device_ids = ids

    @property
    def n_devices(self) -> int:
        return self.conductance_s.shape[0]

    @property
    def n_reads(self) -> int:
        return self.conductance_s.shape[1]

    @property
    def shared_pulses(self) -> bool:
        """True when every device saw the same pulse sequence."""
        return self.pulses.ndim == 1

    def pulses_of(self, rows: slice | np.ndarray) -> np.ndarray:
        """Pulse sequences of the devices ``rows``: 1-D if shared, else 2-D."""
        return self.pulses if self.shared_pulses else self.pulses[rows]

    def subset(self, rows: np.ndarray | slice) -> PulseTraces:
        """The traces of the devices ``rows`` (validation is not repeated)."""
        return PulseTraces.piece(
            self.conductance_s[rows],
            self.pulses_of(rows),
            self.device_ids[rows],
            self.source,
            self.units,
        )

    @classmethod
    def piece(
        cls,
        conductance_s: np.ndarray,
        pulses: np.ndarray,
        device_ids: np.ndarray,
        source: str,
        units: str,
    ) -> PulseTraces:
        """Some devices of a trace set validated as a whole elsewhere (a subset, or a piece of
        a large file whose reader checks every piece's values and the set's pulse
        directions): a piece may hold only up-only devices or only missing reads, so the
        whole-set checks of the constructor are not repeated; floats and int64 pulses."""
        out = object.__new__(cls)
        out.conductance_s = conductance_s
        out.pulses = np.asarray(pulses).astype(np.int64, copy=False)
        out.device_ids = np.asarray(device_ids).astype(np.int64, copy=False)
        out.source = source
        out.units = units
        return out


def check_pulse_directions(pulses: np.ndarray, source: str) -> None:
    """A trace set needs up (+) and down (-) pulses (:class:`FitInputError` otherwise)."""
    has_up, has_down = bool(np.any(pulses > 0)), bool(np.any(pulses < 0))
    if not (has_up and has_down):
        which = "up (+)" if has_up else "down (-)" if has_down else "no"
        raise FitInputError(
            f"{source}: traces contain only {which} pulses; a bidirectional device model "
            "needs both up (+) and down (-) pulses (single-direction ramps of several "
            "devices may be combined in one file: up-only and down-only devices are "
            "fitted direction-wise)"
        )
