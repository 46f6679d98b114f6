"""The emulated crossbar chip as an SCPI instrument: selection, pulses, reads, sequences.

Commands follow ``instruments/emulator/COMMANDS.md`` (the full list is in
``COMMANDS.md`` next to this file); units are SI. Bulk data use IEEE definite-length
blocks, little-endian float32 by default (``FORM:DATA REAL,64`` switches to float64).
``EMU:`` commands exist only on the emulator. Every command that fails (unknown header,
bad or non-finite number, value outside the safe operating area) queues an SCPI error and
changes nothing.

The chip has a clock (:class:`VirtualClock`): every operation advances it by its modelled
duration (pulse widths and periods, read apertures), ``SYST:CLOC:ADV`` advances it
explicitly, and ``SYST:CLOC:MODE REAL`` ties it to wall time for demos.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from instruments.emulator.device_array import DeviceArray
from instruments.emulator.pcm import PcmTruth
from instruments.emulator.physics import PulsedTruth, chip_truth, make_device_array
from instruments.emulator.scpi import (
    BlockReply,
    CommandTable,
    ErrorQueue,
    ScpiError,
    StatusModel,
    block_reply,
    decode_block,
    parse_choice,
    parse_float,
    parse_int,
    register_common,
)
from instruments.emulator.sequences import MAX_DEVICE_PULSES, SequenceCommands

__all__ = ["EmulatedCrossbar", "SafeOperatingArea", "VirtualClock"]

FIRMWARE = "0.2.0"


@dataclass
class SafeOperatingArea:
    """Limits enforced on every command; anything outside is refused (-222), never applied."""

    max_pulse_amplitude_v: float = 5.0
    max_pulse_width_s: float = 1.0
    max_read_voltage_v: float = 0.5
    compliance_current_a: float = 1e-3


class VirtualClock:
    """Chip time in seconds since ``*RST``: advanced by every operation, or tied to wall time."""

    def __init__(self) -> None:
        self.real = False
        self._t = 0.0
        self._wall0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._wall0 if self.real else self._t

    def advance(self, dt: float) -> None:
        if self.real:
            if dt > 0:
                time.sleep(min(dt, 3600.0))
        else:
            self._t += max(dt, 0.0)

    def set_real(self, real: bool) -> None:
        now = self.now()
        self.real = real
        self._wall0 = time.monotonic() - now
        self._t = now


class EmulatedCrossbar(SequenceCommands):
    """One emulated chip; thread-safe (all commands run under one lock)."""

    read_aperture_s = 10e-6  # modelled duration of one parallel read of the selection
    pulse_overhead_s = 1e-6  # modelled gap between pulses (also: pulse to read delay)

    def __init__(
        self,
        kind: str = "reram",
        shape: tuple[int, int] = (256, 256),
        seed: int = 0,
        truth: PulsedTruth | PcmTruth | None = None,
        soa: SafeOperatingArea | None = None,
    ) -> None:
        if shape[0] < 1 or shape[1] < 1:
            raise ValueError(f"chip shape must be positive, got {shape}")
        self.kind = kind
        self.shape = (int(shape[0]), int(shape[1]))
        self.truth = truth if truth is not None else chip_truth(kind)
        self.soa = soa or SafeOperatingArea()
        self.seed = seed
        self.lock = threading.Lock()
        self.errors = ErrorQueue()
        self.status = StatusModel(self.errors)
        self.clock = VirtualClock()
        self.table = CommandTable()
        self.profile: dict[str, float] = {}
        self._register()
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.array: DeviceArray = make_device_array(self.truth, self.shape, self.seed)
        self._sel_all([])
        self.read_voltage_v = 0.2
        self.n_avg = 1
        self.pulse_amplitude_v = self.truth.pulse_amplitude_v
        self.pulse_width_s = self.truth.pulse_width_s
        self.pulse_period_s = 0.0
        self.pulse_count = 1
        self.block_dtype = "<f4"
        self.clock = VirtualClock()
        self._reset_sequences()

    def identity(self) -> str:
        return f"EMU,AIMC-XBAR-{self.kind.upper()},SN{self.seed:08d},{FIRMWARE}"

    def handle(self, message: bytes) -> list[str | bytes | BlockReply]:
        """Execute one program message; returns the replies to its queries."""
        with self.lock:
            return self.table.execute(message, self.errors)

    # ------------------------------------------------------------------ helpers
    def _n(self) -> int:
        return self.shape[0] * self.shape[1]

    def _now(self) -> float:
        return self.clock.now()

    def _check_pulse(self, amplitude_v: float, width_s: float) -> None:
        soa = self.soa
        if abs(amplitude_v) > soa.max_pulse_amplitude_v:
            raise ScpiError(
                -222, f"pulse amplitude {amplitude_v:g} V exceeds {soa.max_pulse_amplitude_v:g} V"
            )
        if not 0 < width_s <= soa.max_pulse_width_s:
            raise ScpiError(
                -222, f"pulse width {width_s:g} s outside (0, {soa.max_pulse_width_s:g}] s"
            )

    def _check_read(self, idx: np.ndarray, voltages_v: float | np.ndarray | None = None) -> None:
        """Refuse a read whose voltage or expected current is outside the safe area."""
        v = self.read_voltage_v if voltages_v is None else voltages_v
        v_max = float(np.max(np.abs(v))) if np.size(v) else 0.0
        if v_max > self.soa.max_read_voltage_v:
            raise ScpiError(
                -221, f"read voltage {v_max:g} V exceeds {self.soa.max_read_voltage_v:g} V"
            )
        g = self.array.conductance(idx, self._now())
        current = float(np.max(np.abs(g))) * v_max if g.size else 0.0
        if current > self.soa.compliance_current_a:
            raise ScpiError(
                102,
                f"read current {current:g} A would exceed compliance "
                f"{self.soa.compliance_current_a:g} A",
            )

    def _block(self, array: np.ndarray) -> BlockReply:
        return block_reply(array, self.block_dtype)

    def _read(self, idx: np.ndarray, n_avg: int) -> np.ndarray:
        self._check_read(idx)
        g = self.array.read(idx, n_avg, self._now())
        self.clock.advance(self.read_aperture_s * n_avg)
        return g

    def _pulse_period(self, width_s: float) -> float:
        return max(self.pulse_period_s, width_s + self.pulse_overhead_s)

    # ------------------------------------------------------------------ commands
    def _register(self) -> None:
        t = self.table
        # IEEE 488.2 common commands
        register_common(t, self.status, self.identity, self._reset)
        t.add("SYSTem:CONFiguration?", self._conf, 0)
        # data format
        t.add("FORMat[:DATA]", self._form_data)
        t.add("FORMat[:DATA]?", lambda a: "REAL,32" if self.block_dtype == "<f4" else "REAL,64", 0)
        # clock
        t.add("SYSTem:CLOCk:TIME?", lambda a: repr(self.clock.now()), 0)
        t.add("SYSTem:CLOCk:ADVance", self._clock_advance, 1)
        t.add("SYSTem:CLOCk:MODE", self._clock_mode, 1)
        t.add("SYSTem:CLOCk:MODE?", lambda a: "REAL" if self.clock.real else "VIRT", 0)
        t.add("SYSTem:CLOCk:TPRogram?", self._time_since_programming, 0)
        # safe operating area
        for name, attr, hi in (
            ("SAFE:VMAX", "max_pulse_amplitude_v", 20.0),
            ("SAFE:WMAX", "max_pulse_width_s", 10.0),
            ("SAFE:VREAd", "max_read_voltage_v", 2.0),
            ("SAFE:ICOMpliance", "compliance_current_a", 0.1),
        ):
            t.add(name, self._soa_setter(attr, hi), 1)
            t.add(name + "?", self._soa_getter(attr), 0)
        # selection
        t.add("ROUTe:SELect:DEVice", self._sel_device, 2)
        t.add("ROUTe:SELect:BLOCk", self._sel_block, 4)
        t.add("ROUTe:SELect:ROW", self._sel_row, 1)
        t.add("ROUTe:SELect:COLumn", self._sel_col, 1)
        t.add("ROUTe:SELect:ALL", self._sel_all, 0)
        t.add("ROUTe:SELect:LIST", self._sel_list, 1)
        t.add("ROUTe:SELect:COUNt?", lambda a: str(self.selection.size), 0)
        t.add("ROUTe:SELect?", lambda a: self.selection_text, 0)
        # pulses
        t.add("SOURce:PULSe:AMPLitude", self._set_amplitude, 1)
        t.add("SOURce:PULSe:AMPLitude?", lambda a: repr(self.pulse_amplitude_v), 0)
        t.add("SOURce:PULSe:WIDTh", self._set_width, 1)
        t.add("SOURce:PULSe:WIDTh?", lambda a: repr(self.pulse_width_s), 0)
        t.add("SOURce:PULSe:PERiod", self._set_period, 1)
        t.add("SOURce:PULSe:PERiod?", lambda a: repr(self.pulse_period_s), 0)
        t.add("SOURce:PULSe:COUNt", self._set_count, 1)
        t.add("SOURce:PULSe:COUNt?", lambda a: str(self.pulse_count), 0)
        t.add("PULSe:APPLy", self._pulse_apply)
        # reads
        t.add("SENSe:VOLTage", self._set_read_voltage, 1)
        t.add("SENSe:VOLTage?", lambda a: repr(self.read_voltage_v), 0)
        t.add("SENSe:AVERage", self._set_average, 1)
        t.add("SENSe:AVERage?", lambda a: str(self.n_avg), 0)
        t.add(
            "MEASure:CONDuctance?", lambda a: self._block(self._read(self.selection, self.n_avg)), 0
        )
        t.add("MEASure:CURRent?", self._meas_current, 0)
        t.add("MEASure:CONDuctance:REPeat?", self._meas_repeat, 1)
        self._register_sequences(t)
        # emulator-only
        t.add("EMU:TRUTh?", lambda a: json.dumps(self.truth_preset(), allow_nan=False), 0)
        t.add("EMU:GTRUth?", self._ground_truth, 1)
        t.add("EMU:SEED", self._seed, 1)
        t.add("EMU:SEED?", lambda a: str(self.seed), 0)
        t.add("EMU:NOISe:SEED", self._noise_seed, 1)
        t.add("EMU:PROFile?", lambda a: json.dumps(self.profile, allow_nan=False), 0)

    def _conf(self, args: list) -> str:
        return json.dumps(
            {
                "rows": self.shape[0],
                "cols": self.shape[1],
                "technology": self.kind,
                "firmware": FIRMWARE,
                "safe_operating_area": asdict(self.soa),
                "read_aperture_s": self.read_aperture_s,
                "pulse_overhead_s": self.pulse_overhead_s,
                "nominal_pulse": {
                    "amplitude_v": self.truth.pulse_amplitude_v,
                    "width_s": self.truth.pulse_width_s,
                },
            }
        )

    def _form_data(self, args: list) -> None:
        if not args:
            raise ScpiError(-109, "FORM:DATA needs REAL,32 or REAL,64")
        if len(args) > 2:
            raise ScpiError(-108, "FORM:DATA takes REAL[,32|64]")
        kind = parse_choice(args[0], "format", ("REAL", "ASCii"))
        if kind != "REAL":
            raise ScpiError(-224, "only REAL,32 and REAL,64 are supported")
        bits = parse_int(args[1], "bits") if len(args) > 1 else 32
        if bits not in (32, 64):
            raise ScpiError(-224, "REAL length must be 32 or 64")
        self.block_dtype = "<f4" if bits == 32 else "<f8"

    def _clock_advance(self, args: list) -> None:
        self.clock.advance(parse_float(args[0], "time", 0.0, 1e10))

    def _clock_mode(self, args: list) -> None:
        self.clock.set_real(parse_choice(args[0], "clock mode", ("VIRTual", "REAL")) == "REAL")

    def _time_since_programming(self, args: list) -> BlockReply:
        return block_reply(self._now() - self.array.t_prog[self.selection], "<f8")

    def _soa_setter(self, attr: str, hi: float):
        def setter(args: list) -> None:
            default = getattr(SafeOperatingArea(), attr)  # DEFault: the power-on area
            setattr(self.soa, attr, parse_float(args[0], attr, 0.0, hi, default))

        return setter

    def _soa_getter(self, attr: str):
        return lambda args: repr(getattr(self.soa, attr))

    # -- selection
    def _set_selection(self, idx: np.ndarray, shape: tuple[int, int] | None, text: str) -> None:
        self.selection = idx.astype(np.int64, copy=False)
        self.selection_shape = shape  # (rows, cols) when rectangular, for MVM
        self.selection_text = text

    def _sel_device(self, args: list) -> None:
        r = parse_int(args[0], "row", 0, self.shape[0] - 1)
        c = parse_int(args[1], "column", 0, self.shape[1] - 1)
        self._set_selection(np.array([r * self.shape[1] + c]), (1, 1), f"DEV {r},{c}")

    def _sel_block(self, args: list) -> None:
        r0 = parse_int(args[0], "row0", 0, self.shape[0] - 1)
        c0 = parse_int(args[1], "col0", 0, self.shape[1] - 1)
        nr = parse_int(args[2], "rows", 1, self.shape[0] - r0)
        nc = parse_int(args[3], "cols", 1, self.shape[1] - c0)
        rows = np.arange(r0, r0 + nr)
        cols = np.arange(c0, c0 + nc)
        idx = (rows[:, None] * self.shape[1] + cols[None, :]).ravel()
        self._set_selection(idx, (nr, nc), f"BLOC {r0},{c0},{nr},{nc}")

    def _sel_row(self, args: list) -> None:
        r = parse_int(args[0], "row", 0, self.shape[0] - 1)
        idx = r * self.shape[1] + np.arange(self.shape[1])
        self._set_selection(idx, (1, self.shape[1]), f"ROW {r}")

    def _sel_col(self, args: list) -> None:
        c = parse_int(args[0], "column", 0, self.shape[1] - 1)
        idx = np.arange(self.shape[0]) * self.shape[1] + c
        self._set_selection(idx, (self.shape[0], 1), f"COL {c}")

    def _sel_all(self, args: list) -> None:
        self._set_selection(np.arange(self._n()), self.shape, "ALL")

    def _sel_list(self, args: list) -> None:
        idx = decode_block(args[0], "<i4", "device list").astype(np.int64)
        if idx.size == 0:
            raise ScpiError(101, "selection empty")
        if idx.min() < 0 or idx.max() >= self._n():
            raise ScpiError(-222, f"device index outside 0..{self._n() - 1}")
        self._set_selection(idx, None, f"LIST {idx.size}")

    # -- pulses
    def _set_amplitude(self, args: list) -> None:
        v = parse_float(args[0], "pulse amplitude")
        self._check_pulse(v, self.pulse_width_s)
        self.pulse_amplitude_v = v

    def _set_width(self, args: list) -> None:
        w = parse_float(args[0], "pulse width")
        self._check_pulse(self.pulse_amplitude_v, w)
        self.pulse_width_s = w

    def _set_period(self, args: list) -> None:
        self.pulse_period_s = parse_float(args[0], "pulse period", 0.0, 10.0)

    def _set_count(self, args: list) -> None:
        self.pulse_count = parse_int(args[0], "pulse count", 1, 10**6)

    def _pulse_apply(self, args: list) -> None:
        if args and len(args) != 3:
            raise ScpiError(-109, "PULS:APPL takes no parameters or <count>,<V>,<width>")
        if args:
            n = parse_int(args[0], "pulse count", 1, 10**6)
            v = parse_float(args[1], "pulse amplitude")
            w = parse_float(args[2], "pulse width")
        else:
            n, v, w = self.pulse_count, self.pulse_amplitude_v, self.pulse_width_s
        self._check_pulse(v, w)
        if n * self.selection.size > MAX_DEVICE_PULSES:
            raise ScpiError(-223, "pulses x devices exceeds 1e10; split the request")
        period = self._pulse_period(w)
        self.array.apply_pulses(self.selection, v, w, n, self._now(), period)
        self.clock.advance(n * period)

    # -- reads
    def _set_read_voltage(self, args: list) -> None:
        self.read_voltage_v = parse_float(
            args[0], "read voltage", 1e-3, self.soa.max_read_voltage_v
        )

    def _set_average(self, args: list) -> None:
        self.n_avg = parse_int(args[0], "averages", 1, 10**4)

    def _meas_current(self, args: list) -> BlockReply:
        return self._block(self._read(self.selection, self.n_avg) * self.read_voltage_v)

    def _meas_repeat(self, args: list) -> BlockReply:
        n = parse_int(args[0], "repeats", 1, 10**5)
        idx = self.selection
        if n * idx.size > 5 * 10**7:
            raise ScpiError(-223, "repeats x selection exceeds 5e7 values; split the request")
        self._check_read(idx)
        t0 = self._now()
        reads = np.empty((n, idx.size), dtype=np.float32)
        for k in range(n):  # back to back, one read aperture apart
            reads[k] = self.array.read(idx, 1, t0 + k * self.read_aperture_s)
        self.clock.advance(n * self.read_aperture_s)
        return self._block(reads)

    # -- emulator-only
    def truth_preset(self) -> dict:
        preset = self.array.truth_preset()
        preset["emulator"] = {
            "kind": self.kind,
            "seed": self.seed,
            "shape": list(self.shape),
            "idn": self.identity(),
        }
        return preset

    def _ground_truth(self, args: list) -> BlockReply:
        name = args[0].decode("ascii", "replace") if isinstance(args[0], bytes) else args[0]
        table = self.array.per_device_truth()
        key = name.strip().strip('"').lower()
        if key not in table:
            raise ScpiError(-224, f"unknown ground-truth array {key!r}; have {sorted(table)}")
        return block_reply(table[key], "<f8")

    def _seed(self, args: list) -> None:
        seed = parse_float(args[0], "seed", 0, 2**32 - 1)
        if not math.isclose(seed, int(seed)):
            raise ScpiError(-224, "seed must be an integer")
        self.seed = int(seed)

    def _noise_seed(self, args: list) -> None:
        self.array.reseed_noise(parse_int(args[0], "noise seed", 0, 2**63 - 1))
