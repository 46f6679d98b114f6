"""Measurement defaults per chip technology, and the technology of a connected chip.

A campaign's pulse and program-and-verify settings that are left ``None`` are taken from
the technology the chip reports (``SYST:CONF?`` of the emulator, ``technology`` of a
driver), so the Python API and the CLI give the same campaign on the same chip. The numbers
are those of the emulator's chip kinds (``instruments/emulator/physics.py``, ``pcm.py``):

* ReRAM: 1.2 V / 1 µs pulses; 200 up + 200 down pulses, 3 cycles cross its window;
* ECRAM: 3 V / 10 ms pulses; its steps are ~0.02 µS on an 8 µS window, so a train needs
  ~400 pulses per direction (2 cycles of 400 up + 400 down, the recipe of
  :mod:`calib.recipes`, which meets the validation target where 200/200 does not);
* PCM: 1 V / 100 ns SET pulses (gradual SET, abrupt RESET).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from instruments.chip import ChipInterface

__all__ = [
    "DEFAULT_LEVELS_S",
    "PROGRAM_DEFAULTS",
    "PULSE_RESPONSE_DEFAULTS",
    "PulseTrainDefaults",
    "chip_technology",
    "default_levels",
    "known_technology",
]

log = logging.getLogger(__name__)

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


FALLBACK = "reram"


@dataclass(frozen=True)
class PulseTrainDefaults:
    """Default pulse-response train of a technology (counts, V, s)."""

    n_up: int
    n_down: int
    cycles: int
    amplitude_v: float
    width_s: float


def _train(kind: str, n: int, cycles: int) -> PulseTrainDefaults:
    _, amplitude_v, width_s = PROGRAM_DEFAULTS[kind]
    return PulseTrainDefaults(n, n, cycles, amplitude_v, width_s)


#: Default pulse-response train per technology.
PULSE_RESPONSE_DEFAULTS = {
    "reram": _train("reram", 200, 3),
    "ecram": _train("ecram", 400, 2),
    "pcm": _train("pcm", 200, 3),
}


def known_technology(technology: str | None, what: str) -> str:
    """``technology`` in lower case if it has defaults; else the fallback, with a warning."""
    tech = (technology or "").lower()
    if tech in PULSE_RESPONSE_DEFAULTS:
        return tech
    log.warning(
        "chip technology %r has no %s defaults; using %s's (set them explicitly)",
        technology,
        what,
        FALLBACK,
    )
    return FALLBACK


def chip_technology(chip: ChipInterface) -> str | None:
    """The technology a chip reports (``reram``, ``ecram``, ``pcm``), or ``None``.

    The driver's :attr:`~instruments.chip.ChipInterface.technology` (no I/O: a bench's
    snapshot would query every instrument).
    """
    return str(chip.technology).lower() if chip.technology else None
