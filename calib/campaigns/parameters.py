"""The parameters of every measurement campaign (SI units), with their command-line faces.

Fields left ``None`` take the defaults of the chip's technology
(:mod:`calib.campaigns.technology`) when the campaign runs, or from
``for_technology``/``resolved`` without a chip. Each field that ``calib measure ...`` offers
carries its :class:`~calib.campaigns.options.Option` (flag, help, unit, bounds), so a default
is declared here once. Light on imports: the command line builds its options from this
module without loading h5py or the instrument drivers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from calib.campaigns.options import option
from calib.campaigns.technology import (
    PROGRAM_DEFAULTS,
    PULSE_RESPONSE_DEFAULTS,
    default_levels,
    known_technology,
)
from calib.errors import CalibError

if TYPE_CHECKING:
    from instruments.chip import PulseTrainSpec

__all__ = [
    "DEFAULT_N_LEVELS",
    "CampaignParams",
    "DriftParams",
    "ProgrammingParams",
    "PulseResponseParams",
    "ReadNoiseParams",
]


@dataclass(frozen=True)
class CampaignParams:
    """Parameters every campaign has (SI units)."""

    n_devices: int = option(256, "--devices", "Number of devices to measure", minimum=1)
    #: "block": the first devices in row-major order; "random": a seeded sample
    selection: str = option(
        "random",
        "--selection",
        "First devices (block) or a random sample",
        choices=("block", "random"),
    )
    seed: int = option(
        0, "--seed", "Seed of device selection (and of the embedded emulator)", minimum=0
    )
    chunk_devices: int = option(
        4096, "--chunk", "Devices per chunk (written and flushed together)", minimum=1
    )
    read_voltage_v: float = option(
        0.2, "--read-voltage", "Read voltage", unit="V", minimum=0, min_open=True
    )
    chunk_seconds: float = 10.0  # instrument time between flushes, where chunking allows

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # every number of every campaign: no NaN/inf
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise CalibError(f"{field.name} must be a finite number, got {value}")
        if self.n_devices < 1:
            raise CalibError(f"n_devices must be >= 1, got {self.n_devices}")
        if self.selection not in ("block", "random"):
            raise CalibError(f"selection must be 'block' or 'random', got {self.selection!r}")
        if self.chunk_devices < 1:
            raise CalibError(f"chunk_devices must be >= 1, got {self.chunk_devices}")
        if not 0 < self.chunk_seconds < float("inf"):
            raise CalibError(f"chunk_seconds must be > 0 s and finite, got {self.chunk_seconds}")
        if not 0 < self.read_voltage_v <= 2.0:
            raise CalibError(f"read voltage {self.read_voltage_v} V outside (0, 2] V")


#: target levels of a campaign whose ``levels_s`` is left to the technology (the command
#: line's ``--n-levels`` default too)
DEFAULT_N_LEVELS = 8


@dataclass(frozen=True)
class ProgrammingParams(CampaignParams):
    """Program-and-verify settings (S, V, s) on top of the common campaign parameters.

    ``levels_s``, ``tolerance_s``, ``pulse_amplitude_v`` and ``pulse_width_s`` left ``None``
    take the defaults of the chip's technology when the campaign runs (``PROGRAM_DEFAULTS``;
    levels: :data:`DEFAULT_N_LEVELS` spread over ``DEFAULT_LEVELS_S``), so a PCM chip gets
    PCM's 1 V / 100 ns pulses and 1-24 µS targets; :meth:`for_technology` resolves them
    without a chip.
    """

    levels_s: tuple[float, ...] | None = None  # command line: --levels / --n-levels
    tolerance_s: float | None = option(
        None,
        "--tolerance",
        "Program-and-verify tolerance",
        unit="S",
        minimum=0,
        min_open=True,
        per_technology={tech: d[0] for tech, d in PROGRAM_DEFAULTS.items()},
    )
    max_iterations: int = option(
        100, "--max-iterations", "Program-and-verify iterations at most", minimum=1
    )
    pulse_amplitude_v: float | None = option(
        None,
        "--pulse-amplitude",
        "Programming pulse amplitude",
        unit="V",
        per_technology={tech: d[1] for tech, d in PROGRAM_DEFAULTS.items()},
    )
    pulse_width_s: float | None = option(
        None,
        "--pulse-width",
        "Programming pulse width",
        unit="s",
        minimum=0,
        min_open=True,
        per_technology={tech: d[2] for tech, d in PROGRAM_DEFAULTS.items()},
    )
    read_delay_s: float = option(
        20.0,
        "--read-delay",
        "Time after programming of the independent read",
        unit="s",
        minimum=0,
    )
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

    cli_omit: ClassVar[frozenset[str]] = frozenset({"read_delay_s"})  # reads are timed

    t_min_s: float = option(
        20.0,
        "--t-min",
        "First read time after programming",
        unit="s",
        minimum=0,
        min_open=True,
    )
    t_max_s: float = option(
        1e5, "--t-max", "Last read time after programming", unit="s", minimum=0, min_open=True
    )
    n_times: int = option(40, "--n-times", "Log-spaced read times", minimum=2)
    n_avg: int = option(4, "--n-avg", "Reads averaged per time point", minimum=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.t_min_s < self.t_max_s or self.n_times < 2:
            raise CalibError("need 0 < t_min_s < t_max_s and n_times >= 2")

    def times(self) -> np.ndarray:
        return np.geomspace(self.t_min_s, self.t_max_s, self.n_times)


@dataclass(frozen=True)
class ReadNoiseParams(ProgrammingParams):
    """``n_reads`` back-to-back reads per device, ``read_delay_s`` after programming."""

    n_reads: int = option(200, "--n-reads", "Back-to-back reads per device", minimum=2)
    read_delay_s: float = option(
        100.0,
        "--read-delay",
        "Wait after programming before the reads",
        unit="s",
        minimum=0,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_reads < 2:
            raise CalibError("read noise needs n_reads >= 2")


def _defaults(name: str) -> dict[str, float]:
    """``name`` of every technology's default train (for the option's help)."""
    return {tech: getattr(d, name) for tech, d in PULSE_RESPONSE_DEFAULTS.items()}


@dataclass(frozen=True)
class PulseResponseParams(CampaignParams):
    """Pulse-train protocol (V, s) on top of the common campaign parameters.

    Fields left ``None`` take the defaults of the chip's technology when the campaign runs
    (:data:`~calib.campaigns.technology.PULSE_RESPONSE_DEFAULTS`: ECRAM gets 3 V / 10 ms
    pulses and 2 cycles of 400 + 400, ReRAM 1.2 V / 1 µs and 3 cycles of 200 + 200);
    ``amplitude_down_v`` defaults to ``-amplitude_up_v``. :meth:`for_technology` resolves
    them without a chip.
    """

    n_up: int | None = option(
        None, "--n-up", "Up pulses per cycle", minimum=0, per_technology=_defaults("n_up")
    )
    n_down: int | None = option(
        None, "--n-down", "Down pulses per cycle", minimum=0, per_technology=_defaults("n_down")
    )
    cycles: int | None = option(
        None, "--cycles", "Cycles", minimum=1, per_technology=_defaults("cycles")
    )
    read_every: int = option(1, "--read-every", "Read after every k pulses", minimum=1)
    amplitude_up_v: float | None = option(
        None,
        "--pulse-amplitude",
        "Pulse amplitude",
        unit="V",
        note="up pulses +A, down pulses -A",
        old_names=("--amplitude",),
        per_technology=_defaults("amplitude_v"),
        mirror="amplitude_down_v",
    )
    amplitude_down_v: float | None = None  # command line: -|--pulse-amplitude|
    width_s: float | None = option(
        None,
        "--pulse-width",
        "Pulse width",
        unit="s",
        minimum=0,
        min_open=True,
        old_names=("--width",),
        per_technology=_defaults("width_s"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.amplitude_up_v is not None and self.amplitude_up_v <= 0) or (
            self.amplitude_down_v is not None and self.amplitude_down_v >= 0
        ):
            raise CalibError("amplitude_up_v must be > 0 and amplitude_down_v < 0")
        if self.is_resolved():
            try:
                self.train()
            except ValueError as exc:
                raise CalibError(f"pulse-response parameters: {exc}") from None

    @classmethod
    def for_technology(cls, technology: str | None, **fields: Any) -> PulseResponseParams:
        """Parameters with the defaults of ``technology`` (``reram``, ``ecram``, ``pcm``)."""
        return cls(**fields).resolved(technology)

    def is_resolved(self) -> bool:
        """True when no pulse setting is left to the technology."""
        return None not in (self.n_up, self.n_down, self.cycles, self.amplitude_up_v, self.width_s)

    def resolved(self, technology: str | None) -> PulseResponseParams:
        """A copy with every ``None`` field set from ``technology``'s defaults."""
        d = PULSE_RESPONSE_DEFAULTS[known_technology(technology, "pulse-response")]
        up_v = d.amplitude_v if self.amplitude_up_v is None else self.amplitude_up_v
        return dataclasses.replace(
            self,
            n_up=d.n_up if self.n_up is None else self.n_up,
            n_down=d.n_down if self.n_down is None else self.n_down,
            cycles=d.cycles if self.cycles is None else self.cycles,
            amplitude_up_v=up_v,
            amplitude_down_v=-up_v if self.amplitude_down_v is None else self.amplitude_down_v,
            width_s=d.width_s if self.width_s is None else self.width_s,
        )

    def train(self) -> PulseTrainSpec:
        """The pulse train (resolved parameters only)."""
        from instruments.chip import PulseSpec, PulseTrainSpec

        if not self.is_resolved():
            raise CalibError(
                "pulse-response parameters are not resolved: use "
                "PulseResponseParams.for_technology(...) or .resolved(technology)"
            )
        return PulseTrainSpec(
            n_up=self.n_up,
            up=PulseSpec(self.amplitude_up_v, self.width_s),
            n_down=self.n_down,
            down=PulseSpec(self.amplitude_down_v, self.width_s),
            cycles=self.cycles,
            read_every=self.read_every,
        )
