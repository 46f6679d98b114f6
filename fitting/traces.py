"""Pulse-response traces as the fitter consumes them, with input validation.

A trace set is a conductance matrix ``(n_devices, n_reads)`` in siemens and one signed
pulse sequence ``(n_reads,)`` shared by all devices: entry k is the number of pulses
applied just before read k (+n up, -n down, 0 a plain read), as in the dataset format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FitInputError", "PulseTraces"]


class FitInputError(ValueError):
    """The data cannot be fitted as given; the message says what is wrong."""


@dataclass
class PulseTraces:
    """Validated pulse-response data of many devices."""

    conductance_s: np.ndarray  # (n_devices, n_reads)
    pulses: np.ndarray  # (n_reads,) signed pulse counts before each read
    device_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source: str = "<memory>"

    def __post_init__(self) -> None:
        g = np.asarray(self.conductance_s, dtype=np.float64)
        p = np.asarray(self.pulses)
        if g.ndim != 2:
            raise FitInputError(f"{self.source}: conductance must be 2-D (devices x reads)")
        if p.ndim != 1 or p.size != g.shape[1]:
            raise FitInputError(
                f"{self.source}: pulse sequence has {p.size} entries for {g.shape[1]} reads"
            )
        if g.shape[0] == 0 or g.shape[1] < 3:
            raise FitInputError(f"{self.source}: need at least one device and three reads")
        if not np.all(np.isfinite(p)) or np.any(p != np.round(p)):
            raise FitInputError(f"{self.source}: pulse counts must be finite integers")
        if not np.any(p > 0) or not np.any(p < 0):
            raise FitInputError(
                f"{self.source}: traces need both up (+) and down (-) pulses to fit a "
                "bidirectional device model"
            )
        self.conductance_s = g
        self.pulses = p.astype(np.int64)
        if self.device_ids.size == 0:
            self.device_ids = np.arange(g.shape[0], dtype=np.int64)
        elif self.device_ids.size != g.shape[0]:
            raise FitInputError(f"{self.source}: {self.device_ids.size} ids for {g.shape[0]} rows")

    @property
    def n_devices(self) -> int:
        return self.conductance_s.shape[0]

    @property
    def n_reads(self) -> int:
        return self.conductance_s.shape[1]
