"""The chip interface over a lab bench: SMU + pulse generator + switch matrix.

The switch matrix routes one device at a time: its row line to the SMU (reads) or to the
pulse generator (pulses), its column line to ground (:class:`Routing`). Operations loop
over the selected devices because the instruments see one device at a time; they batch
where the instruments allow it:

* reads: one round trip per device (``n`` readings in one acquisition);
* pulse trains: one SMU list sweep per device (pulse levels and read levels interleaved,
  hardware-timed, one binary block back) when the pulses are long enough for the SMU,
  otherwise pulse-generator bursts between SMU reads;
* program-and-verify: a host-side adaptive loop (pulse width scaled to the remaining
  error) built from the same primitives.

The safe operating area (:class:`SafeOperatingArea`) is enforced twice before anything
reaches an instrument: :class:`BenchChip` checks every request, and every driver's
validators check every value against the same limits. It checks what the device sees,
not only each pulse: in an SMU list sweep consecutive points at one level are one
continuous hold (checked against the pulse width limit), a pulse period is kept (the
list gets 0 V points between pulses) and the duty cycle is limited. The pulse
generator has no current limit of its own, so its path needs a declared
:class:`SeriesLimiter` (resistor or transistor) whose worst-case current stays within
the compliance; before the generator is re-leveled or its polarity flipped the relays
are opened, so no device sees the intermediate levels. The bench file format is
documented in ``datasets/BENCH.md``. A reading at the current
compliance is clamped by the SMU, so it stops the operation with an
:class:`~instruments.visa_transport.InstrumentError` instead of being recorded; so does
any instrument error (the error queues are checked after every operation) or a lost
connection, with the device that was being measured named in the message.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from instruments.chip import (
    ChipInterface,
    Clock,
    ListSelection,
    ProgramResult,
    PulseSpec,
    PulseTrainSpec,
    RealClock,
    Selection,
    pulse_sequence,
)
from instruments.drivers.base import SafeLimits, SafeOperatingAreaError, SettingError
from instruments.drivers.keysight_e5250 import N_CARDS, N_INPUTS, N_OUTPUTS, matrix_channel
from instruments.visa_transport import InstrumentError

__all__ = [
    "BenchChip",
    "Routing",
    "SafeOperatingArea",
    "SeriesLimiter",
    "bench_is_virtual",
    "load_bench_description",
    "open_bench",
]

BENCH = "bench"  # resource name used in errors raised before any instrument is involved
GENERATOR_OHM = 50.0  # output impedance of the pulse generator


# --------------------------------------------------------------------------- routing
@dataclass(frozen=True)
class Routing:
    """How the crossbar is wired to the switch matrix.

    ``rows[r]`` and ``columns[c]`` are the (card, output) lines of row r and column c; the
    SMU, the pulse generator and ground are on switch inputs ``smu_input``,
    ``pulser_input`` and ``ground_input``.
    """

    rows: tuple[tuple[int, int], ...]
    columns: tuple[tuple[int, int], ...]
    smu_input: int = 1
    pulser_input: int = 2
    ground_input: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple((int(c), int(o)) for c, o in self.rows))
        object.__setattr__(self, "columns", tuple((int(c), int(o)) for c, o in self.columns))
        if not self.rows or not self.columns:
            raise ValueError("routing needs at least one row and one column line")
        lines = self.rows + self.columns
        if len(set(lines)) != len(lines):
            raise ValueError("routing uses a switch output for two lines")
        for card, output in lines:
            if not (1 <= card <= N_CARDS and 1 <= output <= N_OUTPUTS):
                raise ValueError(
                    f"routing line (card {card}, output {output}) does not exist "
                    f"(cards 1-{N_CARDS}, outputs 1-{N_OUTPUTS})"
                )
        inputs = (self.smu_input, self.pulser_input, self.ground_input)
        if len(set(inputs)) != 3 or not all(1 <= i <= N_INPUTS for i in inputs):
            raise ValueError(f"routing inputs {inputs} must be three different inputs 1-{N_INPUTS}")

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), len(self.columns))

    @classmethod
    def sequential(cls, shape: tuple[int, int], **inputs: int) -> Routing:
        """Rows then columns on consecutive outputs (12 per card, cards 1-4)."""
        n_lines = shape[0] + shape[1]
        if n_lines > N_CARDS * N_OUTPUTS:
            raise ValueError(
                f"a {shape[0]}x{shape[1]} array needs {n_lines} lines; the switch has "
                f"{N_CARDS * N_OUTPUTS} outputs"
            )
        lines = [(1 + k // N_OUTPUTS, 1 + k % N_OUTPUTS) for k in range(n_lines)]
        return cls(tuple(lines[: shape[0]]), tuple(lines[shape[0] :]), **inputs)

    def _pair(self, row: int, col: int, source: int) -> list[int]:
        (rc, ro), (cc, co) = self.rows[row], self.columns[col]
        return [matrix_channel(rc, source, ro), matrix_channel(cc, self.ground_input, co)]

    def read_channels(self, row: int, col: int) -> list[int]:
        """Switch channels that put device (row, col) between the SMU and ground."""
        return self._pair(row, col, self.smu_input)

    def pulse_channels(self, row: int, col: int) -> list[int]:
        """Switch channels that put device (row, col) between the pulse generator and ground."""
        return self._pair(row, col, self.pulser_input)

    def to_dict(self) -> dict:
        return {
            "rows": [list(line) for line in self.rows],
            "columns": [list(line) for line in self.columns],
            "smu_input": self.smu_input,
            "pulser_input": self.pulser_input,
            "ground_input": self.ground_input,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Routing:
        if not isinstance(doc, dict):
            raise ValueError("routing must be an object")
        unknown = sorted(set(doc) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"routing has unknown key(s) {', '.join(unknown)}")
        try:
            return cls(**doc)
        except TypeError as exc:
            raise ValueError(f"routing: {exc}") from None


# --------------------------------------------------------------------------- safety
@dataclass(frozen=True)
class SafeOperatingArea:
    """Limits no request may exceed (V, s, A); checked before any instrument is touched."""

    max_pulse_voltage_v: float = 5.0
    max_pulse_width_s: float = 1.0
    max_read_voltage_v: float = 0.5
    compliance_current_a: float = 1e-3
    max_duty_cycle: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"safe operating area: {f.name} must be a number > 0")
        if self.max_duty_cycle > 1:
            raise ValueError("safe operating area: max_duty_cycle must be <= 1")

    def limits(self) -> SafeLimits:
        """The same limits in the drivers' terms."""
        return SafeLimits(
            max_voltage_v=max(self.max_pulse_voltage_v, self.max_read_voltage_v),
            max_current_a=self.compliance_current_a,
            max_pulse_width_s=self.max_pulse_width_s,
            max_dc_voltage_v=self.max_read_voltage_v,
        )

    def check_read(self, v_read: float) -> None:
        if not (math.isfinite(v_read) and 0 < abs(v_read) <= self.max_read_voltage_v):
            raise SafeOperatingAreaError(
                BENCH,
                f"read at {v_read:g} V",
                f"read voltage must be non-zero and within ±{self.max_read_voltage_v:g} V "
                "(safe operating area); nothing was sent",
            )

    def check_pulse(self, pulse: PulseSpec) -> None:
        what = f"pulse {pulse.amplitude_v:g} V, {pulse.width_s:g} s"
        if not (
            math.isfinite(pulse.amplitude_v) and abs(pulse.amplitude_v) <= self.max_pulse_voltage_v
        ):
            raise SafeOperatingAreaError(
                BENCH,
                what,
                f"amplitude exceeds ±{self.max_pulse_voltage_v:g} V (safe operating area); "
                "nothing was sent",
            )
        if not (math.isfinite(pulse.width_s) and 0 < pulse.width_s <= self.max_pulse_width_s):
            raise SafeOperatingAreaError(
                BENCH,
                what,
                f"width must be in (0, {self.max_pulse_width_s:g}] s (safe operating area); "
                "nothing was sent",
            )
        if not (math.isfinite(pulse.period_s) and pulse.period_s >= 0):
            raise SafeOperatingAreaError(
                BENCH,
                what,
                "period must be finite and >= 0 s (safe operating area); nothing was sent",
            )
        if pulse.period_s > 0 and pulse.width_s / pulse.period_s > self.max_duty_cycle * (1 + 1e-9):
            raise SafeOperatingAreaError(
                BENCH,
                what,
                f"duty cycle {pulse.width_s / pulse.period_s:g} exceeds {self.max_duty_cycle:g} "
                "(safe operating area); nothing was sent",
            )

    def check_holds(self, levels_v: np.ndarray, step_s: float, what: str) -> None:
        """Each run of one level above the read limit lasts at most the pulse width limit."""
        self.limits().check_holds(levels_v, step_s, BENCH, what)


@dataclass(frozen=True)
class SeriesLimiter:
    """The current limiter in series with the pulse generator (declared in the bench file).

    ``kind`` ``"resistor"`` with ``resistance_ohm`` (the generator's 50 Ω adds to it) or
    ``"transistor"`` with ``max_current_a`` (its saturation current at the gate bias used).
    """

    kind: str
    resistance_ohm: float | None = None
    max_current_a: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "resistor":
            value, name = self.resistance_ohm, "resistance_ohm"
            other = self.max_current_a
        elif self.kind == "transistor":
            value, name = self.max_current_a, "max_current_a"
            other = self.resistance_ohm
        else:
            raise ValueError(
                f"series_limiter: kind must be resistor or transistor, not {self.kind!r}"
            )
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"series_limiter: a {self.kind} needs {name} > 0")
        if other is not None:
            raise ValueError(f"series_limiter: a {self.kind} takes only {name}")

    def worst_current_a(self, volts: float) -> float:
        """Largest current at ``volts`` from the generator (a shorted device), A."""
        if self.kind == "resistor":
            return abs(volts) / (float(self.resistance_ohm) + GENERATOR_OHM)
        return float(self.max_current_a)

    def to_dict(self) -> dict:
        key = "resistance_ohm" if self.kind == "resistor" else "max_current_a"
        return {"kind": self.kind, key: getattr(self, key)}

    @classmethod
    def from_dict(cls, doc: Any) -> SeriesLimiter:
        if not isinstance(doc, dict):
            raise ValueError(
                "series_limiter must be an object {kind, resistance_ohm|max_current_a}"
            )
        unknown = sorted(set(doc) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"series_limiter has unknown key(s) {', '.join(unknown)}")
        if "kind" not in doc:
            raise ValueError("series_limiter needs 'kind' (resistor or transistor)")
        return cls(**doc)

    def check(self, soa: SafeOperatingArea) -> None:
        """Refuse a limiter that lets more than the compliance through at the pulse limit."""
        worst = self.worst_current_a(soa.max_pulse_voltage_v)
        if worst > soa.compliance_current_a * (1 + 1e-9):
            raise SafeOperatingAreaError(
                BENCH,
                "series limiter",
                f"the {self.kind} lets {worst:g} A through at the {soa.max_pulse_voltage_v:g} V "
                f"pulse limit, above the {soa.compliance_current_a:g} A compliance (safe "
                "operating area)",
            )


def _tighter(a: SafeLimits, b: SafeLimits) -> SafeLimits:
    return SafeLimits(
        max_voltage_v=min(a.max_voltage_v, b.max_voltage_v),
        max_current_a=min(a.max_current_a, b.max_current_a),
        max_pulse_width_s=min(a.max_pulse_width_s, b.max_pulse_width_s),
        max_dc_voltage_v=min(a.max_dc_voltage_v, b.max_dc_voltage_v),
    )


# --------------------------------------------------------------------------- roles
class SourceMeter(Protocol):
    """What the bench needs from an SMU driver (KeysightB2900, Keithley2600)."""

    resource: str
    idn: str
    limits: SafeLimits
    min_list_step_s: float
    max_list_points: int
    min_pulse_width_s: float

    def prepare(self) -> None: ...
    def limit_current(self, compliance_a: float) -> None: ...
    def configure_read(self, v_read_v: float, compliance_a: float, aperture_s: float) -> None: ...
    def read_currents(self, n: int = 1) -> np.ndarray: ...
    def list_sweep(
        self, levels_v: np.ndarray, step_s: float, compliance_a: float, aperture_s: float
    ) -> np.ndarray: ...
    def pulse(
        self,
        peak_v: float,
        width_s: float,
        count: int,
        compliance_a: float,
        base_v: float = 0.0,
        period_s: float = 0.0,
    ) -> None: ...
    def output_off(self) -> None: ...
    def check_errors(self, context: str = ...) -> None: ...
    def snapshot(self, update: bool = True) -> dict: ...
    def close(self) -> None: ...


class PulseGenerator(Protocol):
    """What the bench needs from a pulse generator driver (Keysight33500B)."""

    resource: str
    idn: str
    limits: SafeLimits
    min_pulse_width_s: float

    def prepare(self) -> None: ...
    def configure_pulse(self, amplitude_v: float, width_s: float, period_s: float) -> None: ...
    def fire(self, n: int) -> None: ...
    def output_off(self) -> None: ...
    def check_errors(self, context: str = ...) -> None: ...
    def snapshot(self, update: bool = True) -> dict: ...
    def close(self) -> None: ...


class SwitchMatrix(Protocol):
    """What the bench needs from a switch driver (KeysightE5250A)."""

    resource: str
    idn: str
    limits: SafeLimits

    def prepare(self) -> None: ...
    def channel_number(self, card: int, input_port: int, output_port: int) -> int: ...
    def connect(self, channels: Sequence[int]) -> None: ...
    def open_all(self) -> None: ...
    def check_errors(self, context: str = ...) -> None: ...
    def snapshot(self, update: bool = True) -> dict: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- the chip
class BenchChip(ChipInterface):
    """A crossbar on a bench, driven device by device through real instrument drivers.

    ``pulser`` may be ``None``: pulses then come from the SMU (its pulse mode, so at least
    its minimum pulse width). ``train_mode`` chooses how pulse trains run: ``"auto"`` (an
    SMU list sweep when the pulses allow it, else pulser bursts), ``"list"`` or
    ``"pulser"``. ``read_aperture_s`` is the SMU integration time of a read. ``limiter``
    (the series limiter of the pulser path) is required with a pulse generator.
    """

    #: whether the chip runs on a virtual bench's clock (see :func:`open_bench`)
    virtual = False

    def __init__(
        self,
        smu: SourceMeter,
        pulser: PulseGenerator | None,
        switch: SwitchMatrix,
        routing: Routing,
        *,
        soa: SafeOperatingArea | None = None,
        clock: Clock | None = None,
        read_aperture_s: float = 1e-4,
        train_mode: str = "auto",
        prepare: bool = True,
        limiter: SeriesLimiter | None = None,
    ) -> None:
        if train_mode not in ("auto", "list", "pulser"):
            raise ValueError(f"train_mode must be auto, list or pulser, got {train_mode!r}")
        if train_mode == "pulser" and pulser is None:
            raise ValueError("train_mode 'pulser' needs a pulse generator")
        self.smu, self.pulser, self.switch, self.routing = smu, pulser, switch, routing
        self.soa = soa or SafeOperatingArea()
        if pulser is not None:
            if limiter is None:
                raise ValueError(
                    "the pulse generator path has no current limit: declare its series "
                    "limiter (resistor or transistor, 'series_limiter' in the bench file)"
                )
            limiter.check(self.soa)
        self.limiter = limiter
        self._pulser_setting: tuple[float, float, float] | None = None
        self.shape = routing.shape
        self.clock = clock or RealClock()
        self.read_aperture_s = float(read_aperture_s)
        self.train_mode = train_mode
        for inst in self.instruments:
            inst.limits = _tighter(inst.limits, self.soa.limits())
        for card, output in routing.rows:  # every route must exist on this switch
            for source in (routing.smu_input, routing.pulser_input):
                switch.channel_number(card, source, output)
        for card, output in routing.columns:
            switch.channel_number(card, routing.ground_input, output)
        if prepare:
            self.prepare()

    @property
    def instruments(self) -> tuple:
        return tuple(i for i in (self.smu, self.pulser, self.switch) if i is not None)

    def prepare(self) -> None:
        """Bench defaults: relays open, SMU compliance from the safe area, outputs idle."""
        self._pulser_setting = None
        self.switch.prepare()
        self.smu.prepare()
        self.smu.limit_current(self.soa.compliance_current_a)
        if self.pulser is not None:
            self.pulser.prepare()

    # ------------------------------------------------------------------ metadata
    def identity(self) -> str:
        idns = " | ".join(inst.idn for inst in self.instruments)
        return f"BENCH,{self.shape[0]}x{self.shape[1]},{idns}"

    def snapshot(self) -> dict:
        """Identity, every instrument's settings, routing and safe operating area."""
        return {
            "idn": self.identity(),
            "kind": "bench",
            "shape": list(self.shape),
            "smu": self.smu.snapshot(),
            "pulser": self.pulser.snapshot() if self.pulser is not None else None,
            "switch": self.switch.snapshot(),
            "routing": self.routing.to_dict(),
            "safe_operating_area": asdict(self.soa),
            "series_limiter": self.limiter.to_dict() if self.limiter else None,
            "read_aperture_s": self.read_aperture_s,
            "train_mode": self.train_mode,
            "clock": "virtual" if getattr(self.clock, "virtual", False) else "real",
        }

    def close(self) -> None:
        """Outputs off, relays open (best effort), connections closed."""
        actions = [self.smu.output_off, self.switch.open_all]
        if self.pulser is not None:
            actions.insert(1, self.pulser.output_off)
        for action in actions:
            with contextlib.suppress(InstrumentError, OSError):
                action()
        for inst in self.instruments:
            with contextlib.suppress(Exception):
                inst.close()

    # ------------------------------------------------------------------ helpers
    def _device(self, flat: int) -> tuple[int, int]:
        row, col = divmod(int(flat), self.shape[1])
        return row, col

    @contextlib.contextmanager
    def _on_device(self, flat: int, what: str) -> Iterator[None]:
        """Name the device in any instrument error raised while working on it."""
        try:
            yield
        except SafeOperatingAreaError:
            raise
        except InstrumentError as exc:
            row, col = self._device(flat)
            raise type(exc)(
                exc.resource, exc.command, f"{exc.reason} [{what} of device ({row}, {col})]"
            ) from exc

    def _check_instruments(self, what: str) -> None:
        for inst in self.instruments:
            inst.check_errors(what)

    def _check_compliance(self, currents: np.ndarray, what: str) -> None:
        limit = self.soa.compliance_current_a
        if np.any(np.abs(currents) >= limit * (1 - 1e-3)):
            raise InstrumentError(
                self.smu.resource,
                what,
                f"current compliance ({limit:g} A) reached, the reading is clamped; lower the "
                "voltage or raise the compliance within the safe operating area",
            )

    def _read_device(self, flat: int, v_read: float, n: int) -> np.ndarray:
        """``n`` conductance readings (S) of one device."""
        row, col = self._device(flat)
        self.smu.configure_read(v_read, self.soa.compliance_current_a, self.read_aperture_s)
        self.switch.connect(self.routing.read_channels(row, col))
        currents = self.smu.read_currents(n)
        self._check_compliance(currents, f"read at {v_read:g} V")
        return currents / v_read

    @staticmethod
    def _period(pulse: PulseSpec) -> float:
        return max(pulse.period_s, pulse.width_s + max(pulse.width_s, 1e-6))

    def _configure_pulse(self, pulse: PulseSpec) -> None:
        if self.pulser is not None:
            setting = (pulse.amplitude_v, pulse.width_s, self._period(pulse))
            if setting != self._pulser_setting:
                # open the relays first: while the generator is re-leveled (or its polarity
                # flipped) its output passes through intermediate levels
                self._pulser_setting = None
                self.switch.open_all()
                self.pulser.configure_pulse(*setting)
                self._pulser_setting = setting
        elif pulse.width_s < self.smu.min_pulse_width_s:
            raise SettingError(
                self.smu.resource,
                "pulse",
                f"{pulse.width_s:g} s is shorter than the SMU's {self.smu.min_pulse_width_s:g} s "
                "and no pulse generator is connected",
            )

    def _pulse_device(self, flat: int, pulse: PulseSpec, n: int) -> None:
        row, col = self._device(flat)
        if self.pulser is not None:
            self.switch.connect(self.routing.pulse_channels(row, col))
            self.pulser.fire(n)
        else:
            self.switch.connect(self.routing.read_channels(row, col))
            self.smu.pulse(
                pulse.amplitude_v,
                pulse.width_s,
                n,
                self.soa.compliance_current_a,
                period_s=self._period(pulse),
            )

    # ------------------------------------------------------------------ primitives
    def read_conductance(self, sel: Selection, v_read: float, n_avg: int = 1) -> np.ndarray:
        self.soa.check_read(v_read)
        if n_avg < 1:
            raise ValueError(f"n_avg must be >= 1, got {n_avg}")
        idx = sel.indices(self.shape)
        out = np.empty(idx.size)
        for k, flat in enumerate(idx):
            with self._on_device(flat, "read"):
                out[k] = self._read_device(flat, v_read, n_avg).mean()
        self._check_instruments("read")
        return out

    def apply_pulses(self, sel: Selection, pulse: PulseSpec, n: int = 1) -> None:
        self.soa.check_pulse(pulse)
        if n < 1:
            raise ValueError(f"pulse count must be >= 1, got {n}")
        idx = sel.indices(self.shape)
        self._configure_pulse(pulse)
        for flat in idx:
            with self._on_device(flat, "pulses"):
                self._pulse_device(flat, pulse, n)
        self.note_programmed(idx, self.clock.now())
        self._check_instruments("pulses")

    def repeated_reads(self, sel: Selection, n: int, v_read: float) -> np.ndarray:
        """``n`` back-to-back reads per device, one acquisition each, shape ``(n, n_sel)``."""
        self.soa.check_read(v_read)
        idx = sel.indices(self.shape)
        out = np.empty((n, idx.size))
        for k, flat in enumerate(idx):
            with self._on_device(flat, "repeated reads"):
                out[:, k] = self._read_device(flat, v_read, n)
        self._check_instruments("repeated reads")
        return out

    def read_at_times(
        self, sel: Selection, times_s: np.ndarray, v_read: float, n_avg: int = 1
    ) -> np.ndarray:
        """Reads ``times_s`` after each device's programming (waits on :attr:`clock`)."""
        self.soa.check_read(v_read)  # before waiting, not after
        return super().read_at_times(sel, times_s, v_read, n_avg)

    # ------------------------------------------------------------------ pulse trains
    def _list_possible(self, spec: PulseTrainSpec) -> bool:
        pulses = [p for n, p in ((spec.n_up, spec.up), (spec.n_down, spec.down)) if n]
        width = pulses[0].width_s
        ok = (
            all(p.width_s == width for p in pulses)
            and width >= self.smu.min_list_step_s
            and len({_list_gap(p) for p in pulses}) == 1
            and _list_gap(pulses[0]) >= 0
        )
        if self.train_mode == "list" and not ok:
            raise SettingError(
                self.smu.resource,
                "pulse train",
                "an SMU list sweep needs equal pulse widths of at least "
                f"{self.smu.min_list_step_s:g} s and equal periods that are whole multiples "
                "of the width",
            )
        return ok and self.train_mode != "pulser"

    def pulse_train_with_reads(
        self, sel: Selection, spec: PulseTrainSpec, v_read: float
    ) -> np.ndarray:
        """Per device: one SMU list sweep (long pulses) or pulser bursts between SMU reads."""
        self.soa.check_read(v_read)
        for n, pulse in ((spec.n_up, spec.up), (spec.n_down, spec.down)):
            if n:
                self.soa.check_pulse(pulse)
        idx = sel.indices(self.shape)
        counts = pulse_sequence(spec)
        out = np.empty((spec.n_reads, idx.size))
        if self._list_possible(spec):
            levels, is_read = _train_levels(spec, counts, v_read)
            step = spec.up.width_s if spec.n_up else spec.down.width_s
            self.soa.check_holds(levels, step, "pulse train as an SMU list")
            bounds = _chunks(is_read, self.smu.max_list_points)
            for k, flat in enumerate(idx):
                with self._on_device(flat, "list sweep"):
                    out[:, k] = self._train_by_list(flat, levels, is_read, bounds, spec, v_read)
                self.note_programmed(np.array([flat]), self.clock.now())
        else:
            for k, flat in enumerate(idx):
                with self._on_device(flat, "pulse train"):
                    out[:, k] = self._train_by_pulses(flat, spec, counts, v_read)
                self.note_programmed(np.array([flat]), self.clock.now())
        self._check_instruments("pulse train")
        return out

    def _train_by_list(
        self,
        flat: int,
        levels: np.ndarray,
        is_read: np.ndarray,
        bounds: list[tuple[int, int]],
        spec: PulseTrainSpec,
        v_read: float,
    ) -> np.ndarray:
        row, col = self._device(flat)
        self.switch.connect(self.routing.read_channels(row, col))
        step = spec.up.width_s if spec.n_up else spec.down.width_s
        aperture = min(self.read_aperture_s, 0.5 * step)
        currents = np.concatenate(
            [
                self.smu.list_sweep(levels[a:b], step, self.soa.compliance_current_a, aperture)
                for a, b in bounds
            ]
        )
        self._check_compliance(currents, "list sweep")
        return currents[is_read] / v_read

    def _train_by_pulses(
        self, flat: int, spec: PulseTrainSpec, counts: np.ndarray, v_read: float
    ) -> np.ndarray:
        reads = [self._read_device(flat, v_read, 1)[0]]
        for count in counts[1:]:
            pulse = spec.up if count > 0 else spec.down
            self._configure_pulse(pulse)
            self._pulse_device(flat, pulse, int(abs(count)))
            reads.append(self._read_device(flat, v_read, 1)[0])
        return np.array(reads)

    # ------------------------------------------------------------------ program and verify
    def program_verify(
        self,
        sel: Selection,
        targets_s: np.ndarray,
        tol_s: float,
        max_iter: int,
        v_read: float,
        pulse: PulseSpec,
    ) -> ProgramResult:
        """Host-side adaptive program-and-verify, one pulse per device per iteration.

        Each iteration pulses every device outside ``tol_s`` towards its target (polarity
        = sign of the error) and reads it back. The pulse width is the full ``pulse``
        width until the device has responded, then ``0.7·|error|`` over the device's
        learned response per unit width in that direction (kept between the pulse
        generator's shortest pulse and the full width); the learned response is the
        running mean of the observed ones and grows 1.5x after an overshoot in that
        direction. Reads come milliseconds after each pulse (relay switching), so they see
        post-programming relaxation: technologies with a large one (PCM) need a tolerance
        wider than an on-chip loop's.
        """
        idx = sel.indices(self.shape)
        targets = np.broadcast_to(np.asarray(targets_s, dtype=float), idx.shape).copy()
        if not np.all(np.isfinite(targets)) or np.any(targets < 0):
            raise ValueError("targets must be finite conductances >= 0 S")
        if not tol_s > 0 or max_iter < 1:
            raise ValueError("tol_s must be > 0 and max_iter >= 1")
        amplitude = abs(pulse.amplitude_v)
        for sign in (1.0, -1.0):
            self.soa.check_pulse(PulseSpec(sign * amplitude, pulse.width_s, pulse.period_s))
        self.soa.check_read(v_read)
        shortest = self.pulser.min_pulse_width_s if self.pulser else self.smu.min_pulse_width_s
        min_fraction = min(max(shortest / pulse.width_s, 1.0 / 256.0), 1.0)
        n = idx.size
        iterations = np.zeros(n, dtype=np.int32)
        last_pulse = self.programming_times(sel)
        response = np.full((2, n), np.nan)  # learned dG per unit width fraction: up, down
        last_sign = np.zeros(n)
        g = self.read_conductance(sel, v_read)
        for _ in range(max_iter):
            error = targets - g
            active = np.flatnonzero(np.abs(error) > tol_s)
            if active.size == 0:
                break
            fractions = np.ones(active.size)
            for j, k in enumerate(active):
                sign = 1.0 if error[k] > 0 else -1.0
                way = 0 if sign > 0 else 1
                if last_sign[k] and last_sign[k] != sign:  # overshoot: smaller steps that way
                    response[0 if last_sign[k] > 0 else 1, k] *= 1.5
                last_sign[k] = sign
                if np.isfinite(response[way, k]):
                    fractions[j] = np.clip(
                        0.7 * abs(error[k]) / response[way, k], min_fraction, 1.0
                    )
                step = PulseSpec(sign * amplitude, pulse.width_s * fractions[j], pulse.period_s)
                with self._on_device(idx[k], "program-and-verify pulse"):
                    self._configure_pulse(step)
                    self._pulse_device(idx[k], step, 1)
            now = self.clock.now()
            last_pulse[active] = now
            self.note_programmed(idx[active], now)
            iterations[active] += 1
            g_before = g[active]
            g[active] = self.read_conductance(ListSelection.of(idx[active]), v_read)
            signs = last_sign[active]
            observed = (g[active] - g_before) * signs / fractions
            for j, k in enumerate(active):
                way = 0 if signs[j] > 0 else 1
                if observed[j] > 0:
                    old = response[way, k]
                    response[way, k] = observed[j] if np.isnan(old) else 0.5 * (old + observed[j])
        converged = np.abs(targets - g) <= tol_s
        self._check_instruments("program-and-verify")
        return ProgramResult(g, iterations, converged, last_pulse)


def _list_gap(pulse: PulseSpec) -> int:
    """0 V list points after each pulse that keep its period (-1: not a whole multiple).

    A period of 0 means "as the bench chooses": one gap point (50 % duty cycle), as the
    pulse generator path does. A period equal to the width means back-to-back pulses.
    """
    if pulse.period_s == 0:
        return 1
    ratio = pulse.period_s / pulse.width_s
    k = round(ratio)
    return k - 1 if k >= 1 and abs(ratio - k) <= 1e-6 * ratio else -1


def _train_levels(
    spec: PulseTrainSpec, counts: np.ndarray, v_read: float
) -> tuple[np.ndarray, np.ndarray]:
    """SMU levels of a pulse train (read, pulses with 0 V gaps, read, ...) and which are reads.

    Each pulse is one list step followed by the 0 V steps that keep its period, so the
    device sees the requested duty cycle (consecutive pulses without gaps would be one
    long pulse).
    """
    levels, is_read = [v_read], [True]
    for count in counts[1:]:
        pulse = spec.up if count > 0 else spec.down
        one = [pulse.amplitude_v] + [0.0] * _list_gap(pulse)
        levels += one * int(abs(count)) + [v_read]
        is_read += [False] * (len(one) * int(abs(count))) + [True]
    return np.array(levels), np.array(is_read)


def _chunks(is_read: np.ndarray, max_points: int) -> list[tuple[int, int]]:
    """Split the levels into lists of at most ``max_points``, each ending with a read."""
    ends = np.flatnonzero(is_read) + 1  # a list may end right after any read
    bounds, start = [], 0
    while start < is_read.size:
        fitting = ends[(ends > start) & (ends - start <= max_points)]
        if fitting.size == 0:
            raise SettingError(
                BENCH, "pulse train", f"more than {max_points} pulses between two reads"
            )
        end = int(fitting[-1])
        bounds.append((start, end))
        start = end
    return bounds


# --------------------------------------------------------------------------- descriptions
ROLES = {
    "smu": ("keysight_b2900", "keithley_2600"),
    "pulser": ("keysight_33500",),
    "switch": ("keysight_e5250",),
}
TOP_KEYS = (
    *ROLES,
    "routing",
    "safe_operating_area",
    "series_limiter",
    "read_aperture_s",
    "train_mode",
    "timeout_s",
    "virtual",
    "description",
)


def load_bench_description(description: str | Path | dict) -> dict:
    """Read and check a bench description (``datasets/BENCH.md``) without connecting.

    Returns the document with ``routing``, ``safe_operating_area`` and ``series_limiter``
    parsed into :class:`Routing`, :class:`SafeOperatingArea` and :class:`SeriesLimiter`
    (under ``_routing``, ``_soa``, ``_limiter``). Raises ``ValueError`` with one line
    naming the file and the key for anything wrong.
    """
    if isinstance(description, dict):
        doc, source = description, "bench description"
    else:
        source = str(description)
        try:
            doc = json.loads(Path(description).read_text())
        except OSError as exc:
            raise ValueError(f"{source}: cannot read ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{source}: expected a JSON object")
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(TOP_KEYS)})"
        )
    out = dict(doc)
    for role, allowed in ROLES.items():
        entry = doc.get(role)
        if entry is None and role == "pulser":
            continue
        if not isinstance(entry, dict) or "driver" not in entry or "resource" not in entry:
            raise ValueError(f"{source}: '{role}' needs an object with 'driver' and 'resource'")
        if entry["driver"] not in allowed:
            raise ValueError(
                f"{source}: {role}.driver {entry['driver']!r} is not one of {', '.join(allowed)}"
            )
        if not isinstance(entry["resource"], str) or not entry["resource"]:
            raise ValueError(f"{source}: {role}.resource must be a VISA resource string")
        extra = sorted(set(entry) - {"driver", "resource", "channel"})
        if extra:
            raise ValueError(f"{source}: {role} has unknown key(s) {', '.join(extra)}")
    parts = (
        ("routing", "_routing", lambda d: Routing.from_dict(d)),
        ("safe_operating_area", "_soa", lambda d: _soa_from(d)),
        ("series_limiter", "_limiter", lambda d: SeriesLimiter.from_dict(d)),
    )
    for key, slot, parse in parts:
        if key not in doc:
            if key == "routing":
                raise ValueError(f"{source}: 'routing' is missing")
            out[slot] = SafeOperatingArea() if key == "safe_operating_area" else None
            continue
        try:
            out[slot] = parse(doc[key])
        except (TypeError, ValueError) as exc:
            message = str(exc)
            prefix = "" if message.startswith(key) else f"{key}: "
            raise ValueError(f"{source}: {prefix}{message}") from None
    if doc.get("pulser") is not None and out["_limiter"] is None:
        raise ValueError(
            f"{source}: series_limiter is missing: the pulser path needs a declared series "
            'limiter ({"kind": "resistor", "resistance_ohm": ...} or '
            '{"kind": "transistor", "max_current_a": ...})'
        )
    if out["_limiter"] is not None:
        try:
            out["_limiter"].check(out["_soa"])
        except SafeOperatingAreaError as exc:
            raise ValueError(f"{source}: series_limiter: {exc.reason}") from None
    for key in ("read_aperture_s", "timeout_s"):
        if key in doc and not (
            isinstance(doc[key], int | float) and math.isfinite(doc[key]) and doc[key] > 0
        ):
            raise ValueError(f"{source}: {key} must be a number > 0 (seconds)")
    if doc.get("train_mode", "auto") not in ("auto", "list", "pulser"):
        raise ValueError(f"{source}: train_mode must be auto, list or pulser")
    if not isinstance(doc.get("virtual", False), bool):
        raise ValueError(f"{source}: virtual must be true or false")
    out["_source"] = source
    return out


def _soa_from(doc: Any) -> SafeOperatingArea:
    if not isinstance(doc, dict):
        raise ValueError("safe_operating_area must be an object")
    unknown = sorted(set(doc) - {f.name for f in fields(SafeOperatingArea)})
    if unknown:
        raise ValueError(f"safe_operating_area has unknown key(s) {', '.join(unknown)}")
    return SafeOperatingArea(**doc)


def bench_is_virtual(description: str | Path | dict) -> bool:
    """Whether a (checked) bench description is the emulator's virtual bench."""
    return bool(load_bench_description(description).get("virtual", False))


def open_bench(
    description: str | Path | dict,
    *,
    timeout_s: float | None = None,
    prepare: bool = True,
    chip_class: type[BenchChip] = BenchChip,
) -> BenchChip:
    """Connect to the bench a description (JSON file or dict) names and build its chip.

    The format is documented in ``datasets/BENCH.md``: ``smu``, ``pulser`` (may be null)
    and ``switch``, each ``{"driver": ..., "resource": ..., "channel": ...}``, a
    ``routing`` (:meth:`Routing.to_dict`), ``series_limiter`` (required with a pulser),
    optionally ``safe_operating_area``, ``read_aperture_s``, ``train_mode``,
    ``timeout_s`` and ``virtual``. A virtual bench (the emulator's) needs a
    ``chip_class`` that runs on its virtual clock
    (``instruments.emulator.bench.client.VirtualBenchChip``): this module does not
    depend on the emulator. Raises ``ValueError`` naming the problem for a bad
    description, :class:`~instruments.visa_transport.InstrumentError` for an instrument.
    """
    from instruments.drivers import DRIVERS

    doc = load_bench_description(description)
    source = doc["_source"]
    if doc.get("virtual", False) and not getattr(chip_class, "virtual", False):
        raise ValueError(
            f"{source}: describes a virtual bench (virtual: true); open it with its virtual "
            "clock (instruments.emulator.bench.client.open_virtual_bench)"
        )
    timeout = float(timeout_s if timeout_s is not None else doc.get("timeout_s", 10.0))
    opened: dict[str, Any] = {}
    try:
        for role in ROLES:
            entry = doc.get(role)
            if entry is None:
                opened[role] = None
                continue
            kwargs = {"channel": entry["channel"]} if "channel" in entry else {}
            opened[role] = DRIVERS[entry["driver"]].open(
                entry["resource"], timeout_s=timeout, **kwargs
            )
        return chip_class(
            opened["smu"],
            opened["pulser"],
            opened["switch"],
            doc["_routing"],
            soa=doc["_soa"],
            read_aperture_s=float(doc.get("read_aperture_s", 1e-4)),
            train_mode=doc.get("train_mode", "auto"),
            prepare=prepare,
            limiter=doc["_limiter"] if opened["pulser"] is not None else None,
        )
    except BaseException:
        for inst in opened.values():
            if inst is not None:
                with contextlib.suppress(Exception):
                    inst.close()
        raise
