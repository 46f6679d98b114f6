"""Driver of crossbar chips speaking the AIMC crossbar SCPI set: :class:`ChipInterface`.

The command set is ``instruments/emulator/COMMANDS.md``; any instrument that answers
``*IDN?`` with ``EMU,AIMC-XBAR-*`` and speaks it is driven here (our emulator is one such
instrument, firmware on a test chip another). Settings (read voltage, averaging, pulse
period, the program-and-verify loop) are declared :class:`~instruments.drivers.base.Parameter`
objects with units and validators, so a bad value raises before anything is sent; the
operations (selections, pulse trains, sequences, block fetches) are explicit methods. Pulse
amplitudes and widths, read and MVM voltages are checked against the chip's safe operating
area (``SYST:CONF?``, or the ``limits`` given) before any I/O, as the chip itself checks
them (``SAFE:*``): :class:`~instruments.drivers.base.SafeOperatingAreaError`, nothing sent.

Each operation is one or a few round trips regardless of the number of devices: the
selection is sent once (a block of int32 indices for arbitrary lists), sequences run on
the chip, and results come back as binary blocks, fetched in chunks of at most
:attr:`ScpiCrossbarChip.max_block_bytes` straight into the result array. Every setting is
checked with ``SYST:ERR?`` before the operation that depends on it runs. Every query is
confirmed by the transport (``<query>;*OPC?``), so a query the chip refuses (a read over
the compliance limit, a fetch out of range) raises :class:`InstrumentError` with the
chip's error text at once instead of waiting out the I/O timeout (600 s in sequences).
"""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any, ClassVar

import numpy as np

from instruments.chip import (
    BlockSelection,
    ChipInterface,
    DeviceSelection,
    ListSelection,
    ProgramResult,
    PulseSpec,
    PulseTrainSpec,
    Selection,
    mvm_voltages,
)
from instruments.drivers.base import (
    Choice,
    Number,
    Parameter,
    SafeLimits,
    ScpiInstrument,
    Transport,
)
from instruments.visa_transport import InstrumentError, VisaTransport

__all__ = ["LONG_TIMEOUT_S", "ScpiClock", "ScpiCrossbarChip"]

LONG_TIMEOUT_S = 600.0  # sequences and program-and-verify on large selections

_POSITIVE = Number(0.0, math.inf)


def _chip_limits(area: dict) -> SafeLimits:
    """The chip's safe operating area (``SYST:CONF?``) as driver limits; defaults if absent."""
    default = SafeLimits()
    return SafeLimits(
        max_voltage_v=float(area.get("max_pulse_amplitude_v", default.max_voltage_v)),
        max_current_a=float(area.get("compliance_current_a", default.max_current_a)),
        max_pulse_width_s=float(area.get("max_pulse_width_s", default.max_pulse_width_s)),
        max_dc_voltage_v=float(area.get("max_read_voltage_v", default.max_dc_voltage_v)),
    )


class ScpiClock:
    """The chip's own clock (``SYST:CLOC:*``); virtual unless the chip runs in real mode."""

    def __init__(self, chip: ScpiCrossbarChip) -> None:
        self._t = chip.transport
        self.virtual = chip.clock_mode.get() == "virtual"

    def now(self) -> float:
        return float(self._t.query("SYST:CLOC:TIME?"))

    def advance(self, dt_s: float) -> None:
        if dt_s > 0:
            # a virtual advance answers at once; VISA timeouts cannot exceed ~49 days
            wait = 0.0 if self.virtual else dt_s
            with self._t.timeout(min(max(self._t.timeout_s, wait + 10.0), 4.0e6)):
                self._t.command(f"SYST:CLOC:ADV {float(dt_s)!r}")


class ScpiCrossbarChip(ScpiInstrument, ChipInterface):
    """A crossbar chip (``EMU,AIMC-XBAR-*``) over SCPI: our emulator or firmware speaking it.

    ``resource`` is a VISA resource string (opened with PyVISA) or an open transport.
    """

    models = ("EMU,AIMC-XBAR",)
    family = "crossbar chip speaking the AIMC command set"
    separator = ";:"  # every command of a program message from the root
    capabilities = frozenset({"seed_noise", "ground_truth", "ground_truth_array", "profile"})
    max_block_bytes: ClassVar[int] = 4 << 20  # largest block per fetch; 4 MiB measured fastest

    data_format = Parameter(
        "FORM:DATA?",
        "FORM:DATA {value}",
        Choice(
            {"real32": "REAL,32", "real64": "REAL,64"}, {"REAL,32": "real32", "REAL,64": "real64"}
        ),
        doc="Number format of the blocks the chip sends (float32 is what this driver reads).",
    )
    clock_mode = Parameter(
        "SYST:CLOC:MODE?",
        "SYST:CLOC:MODE {value}",
        Choice(
            {"virtual": "VIRT", "real": "REAL"},
            {"VIRT": "virtual", "VIRTUAL": "virtual", "REAL": "real"},
        ),
        doc="Chip time: virtual (advanced at once) or the wall clock.",
    )
    read_voltage_v = Parameter(
        "SENS:VOLT?", "SENS:VOLT {value}", Number(), unit="V", doc="Read voltage."
    )
    read_averages = Parameter(
        "SENS:AVER?",
        "SENS:AVER {value}",
        Number(1, math.inf, integer=True),
        doc="Reads averaged per result.",
    )
    pulse_period_s = Parameter(
        "SOUR:PULS:PER?",
        "SOUR:PULS:PER {value}",
        _POSITIVE,
        unit="s",
        doc="Pulse period (0: back to back).",
    )
    verify_tolerance_s = Parameter(
        "PROG:TOL?", "PROG:TOL {value}", _POSITIVE, unit="S", doc="Program-and-verify band."
    )
    verify_max_iterations = Parameter(
        "PROG:MAXI?",
        "PROG:MAXI {value}",
        Number(1, math.inf, integer=True),
        doc="Program-and-verify iteration cap.",
    )
    verify_width_s = Parameter(
        "PROG:WIDT?",
        "PROG:WIDT {value}",
        Number(0.0, math.inf, limit="width"),
        unit="s",
        doc="Verify pulse width.",
    )
    verify_amplitude_v = Parameter(
        "PROG:AMPL?",
        "PROG:AMPL {value}",
        Number(0.0, math.inf, limit="voltage"),
        unit="V",
        doc="Potentiating verify pulse amplitude (depressing: its negative).",
    )

    def __init__(self, resource: str | Transport, timeout_s: float = 30.0, **kwargs: Any):
        transport = (
            VisaTransport(resource, timeout_s=timeout_s, dialect=self.dialect)
            if isinstance(resource, str)
            else resource
        )
        try:
            super().__init__(transport, **kwargs)
            self.clear_status()
            try:
                conf = json.loads(self.query("SYST:CONF?"))
            except json.JSONDecodeError:
                raise InstrumentError(self.resource, "SYST:CONF?", "reply is not JSON") from None
            self.shape = (int(conf["rows"]), int(conf["cols"]))
            self.technology = conf["technology"]
            self.configuration = conf
            if "limits" not in kwargs:
                self.limits = _chip_limits(conf.get("safe_operating_area") or {})
            self.data_format.set("real32")
            self.clock = ScpiClock(self)
        except BaseException:
            transport.close()
            raise
        self._selection_key: object = None
        self.timing: dict[str, float] = {}  # split of the last batched operation (s)

    @classmethod
    @functools.cache
    def parameters(cls) -> dict[str, Parameter]:
        """The declared parameters, computed once per class (every operation looks them up)."""
        return super().parameters()

    # ------------------------------------------------------------------ metadata
    def identity(self) -> str:
        return self.transport.idn

    def snapshot(self) -> dict:  # type: ignore[override] - the chip's dataset metadata
        return {
            "idn": self.identity(),
            "resource": self.transport.resource,
            "shape": list(self.shape),
            "configuration": self.configuration,
        }

    def errors(self) -> list[str]:
        return self.transport.errors()

    def reset(self) -> None:
        """``*RST``: the chip is rebuilt from its seed; cached settings and selection forgotten."""
        super().reset()
        self._selection_key = None

    # ------------------------------------------------------------------ helpers
    def _send(self, settings: dict[str, Any], *actions: str) -> None:
        """Settings (validated before any I/O) then actions, as one program message; the
        error queue is checked once, and the settings cached only if all were accepted."""
        bound = [(self.parameter(name), value) for name, value in settings.items()]
        commands = [param.command(value) for param, value in bound]  # validates each value
        message = self.write_all([*commands, *actions])
        try:
            self.check_errors(message)
        except InstrumentError:
            for param, _ in bound:
                self._cache.pop(param.name, None)
            raise
        for param, value in bound:
            self._cache[param.name] = value

    def _select(self, sel: Selection) -> int:
        """Send the selection unless it is already active; returns its size."""
        idx = sel.indices(self.shape)  # validates on the host first
        if sel == self._selection_key:
            return idx.size
        self._selection_key = None
        t = self.transport
        if isinstance(sel, DeviceSelection):
            t.command(f"ROUT:SEL:DEV {sel.row},{sel.col}")
        elif isinstance(sel, BlockSelection):
            t.command(f"ROUT:SEL:BLOC {sel.row0},{sel.col0},{sel.n_rows},{sel.n_cols}")
        elif isinstance(sel, ListSelection):
            t.write_block("ROUT:SEL:LIST", idx.astype("<i4"), "<i4")
            t.check_errors("ROUT:SEL:LIST")
        else:  # pragma: no cover - Selection is a closed union
            raise TypeError(f"unsupported selection {sel!r}")
        self._selection_key = sel
        return idx.size

    def _set_read(self, v_read: float, n_avg: int = 1) -> None:
        self.limits.check("dc", v_read, self.resource, "read_voltage_v")
        self._send({"read_voltage_v": v_read, "read_averages": n_avg})

    def _check_pulse(self, pulse: PulseSpec, what: str) -> None:
        """The pulse is inside the safe operating area (raises before any I/O)."""
        self.limits.check("voltage", pulse.amplitude_v, self.resource, f"{what} amplitude")
        self.limits.check("width", pulse.width_s, self.resource, f"{what} width")

    def _fetch(self, command: str, shape: tuple[int, ...], dtype: str = "<f4") -> np.ndarray:
        data = self.transport.query_block(command, dtype)
        expected = int(np.prod(shape))
        if data.size != expected:
            raise InstrumentError(
                self.transport.resource, command, f"expected {expected} values, got {data.size}"
            )
        return data.reshape(shape).copy()  # writable, owns its memory

    def _fetch_rows(self, n_rows: int, n_cols: int) -> np.ndarray:
        """Fetch the chip's sequence result ``(n_rows, n_cols)`` in chunks of whole rows."""
        out = np.empty((n_rows, n_cols), dtype=np.float32)
        rows_per_chunk = max(1, self.max_block_bytes // (4 * max(n_cols, 1)))
        transfer = parse = 0.0
        for first in range(0, n_rows, rows_per_chunk):
            rows = min(rows_per_chunk, n_rows - first)
            command = f"FETC:COND? {first},{rows}"
            t0 = time.perf_counter()
            data = self.transport.query_block(command, "<f4")
            t1 = time.perf_counter()
            if data.size != rows * n_cols:
                raise InstrumentError(
                    self.transport.resource,
                    command,
                    f"expected {rows * n_cols} values, got {data.size}",
                )
            out[first : first + rows] = data.reshape(rows, n_cols)
            transfer += t1 - t0
            parse += time.perf_counter() - t1
        self.timing.update(transfer_s=transfer, parse_s=parse)
        return out

    def _run(self, command: str) -> None:
        """Run a long on-chip operation and check that it succeeded."""
        t0 = time.perf_counter()
        with self.timeout(LONG_TIMEOUT_S):
            self.transport.command(command)
        self.timing = {"run_s": time.perf_counter() - t0}

    # ------------------------------------------------------------------ primitives
    def read_conductance(self, sel: Selection, v_read: float, n_avg: int = 1) -> np.ndarray:
        n = self._select(sel)
        self._set_read(v_read, n_avg)
        return self._fetch("MEAS:COND?", (n,))

    def apply_pulses(self, sel: Selection, pulse: PulseSpec, n: int = 1) -> None:
        self._check_pulse(pulse, "PULS:APPL")
        self._select(sel)
        self._send(
            {"pulse_period_s": pulse.period_s},
            f"PULS:APPL {int(n)},{float(pulse.amplitude_v)!r},{float(pulse.width_s)!r}",
        )

    # ------------------------------------------------------------------ batched
    def repeated_reads(self, sel: Selection, n: int, v_read: float) -> np.ndarray:
        size = self._select(sel)
        self._set_read(v_read, 1)
        out = np.empty((n, size), dtype=np.float32)
        per_chunk = max(1, self.max_block_bytes // (4 * size))
        for first in range(0, n, per_chunk):
            k = min(per_chunk, n - first)
            out[first : first + k] = self._fetch(f"MEAS:COND:REP? {k}", (k, size))
        return out

    def pulse_train_with_reads(
        self, sel: Selection, spec: PulseTrainSpec, v_read: float
    ) -> np.ndarray:
        self._check_pulse(spec.up, "SEQ:PTR:DEF up")
        self._check_pulse(spec.down, "SEQ:PTR:DEF down")
        n = self._select(sel)
        self._set_read(v_read, 1)
        self._send(
            {"pulse_period_s": max(spec.up.period_s, spec.down.period_s)},
            f"SEQ:PTR:DEF {spec.n_up},{float(spec.up.amplitude_v)!r},{spec.n_down},"
            f"{float(spec.down.amplitude_v)!r},{float(spec.up.width_s)!r},{spec.cycles},"
            f"{spec.read_every},{float(spec.down.width_s)!r}",
        )
        self._run("SEQ:INIT")
        return self._fetch_rows(spec.n_reads, n)

    def read_at_times(
        self, sel: Selection, times_s: np.ndarray, v_read: float, n_avg: int = 1
    ) -> np.ndarray:
        """Reads ``times_s[k]`` s after each device's last programming pulse (on-chip)."""
        times_s = np.asarray(times_s, dtype=np.float64).ravel()
        if times_s.size == 0 or not np.all(np.isfinite(times_s)) or np.any(times_s < 0):
            raise ValueError("read times must be a non-empty list of finite times >= 0 s")
        if np.any(np.diff(times_s) < 0):
            raise ValueError("read times must be non-decreasing")
        n = self._select(sel)
        self._set_read(v_read, n_avg)
        self.transport.write_block("SEQ:DRIF:TIM", times_s, "<f8")
        self.transport.check_errors("SEQ:DRIF:TIM")
        self._run("SEQ:INIT")
        return self._fetch_rows(times_s.size, n).astype(np.float64)

    def program_verify(
        self,
        sel: Selection,
        targets_s: np.ndarray,
        tol_s: float,
        max_iter: int,
        v_read: float,
        pulse: PulseSpec,
    ) -> ProgramResult:
        """On-chip program-and-verify (``PROG:*``); see the emulator's ``verify_loop``."""
        idx = sel.indices(self.shape)
        targets = np.broadcast_to(np.asarray(targets_s, dtype=np.float64), idx.shape)
        if not np.all(np.isfinite(targets)) or np.any(targets < 0):
            raise ValueError("targets must be finite conductances >= 0 S")
        settings = {
            "verify_tolerance_s": tol_s,
            "verify_max_iterations": max_iter,
            "verify_width_s": pulse.width_s,
            "verify_amplitude_v": abs(float(pulse.amplitude_v)),
        }
        for name, value in settings.items():  # every value checked before any I/O
            self.parameter(name).validate(value)
        n = self._select(sel)
        self._set_read(v_read, 1)
        t = self.transport
        t.write_block("PROG:TARG", targets.astype("<f4"), "<f4")
        t.check_errors("PROG:TARG")
        self._send(settings)
        self._run("PROG:INIT")
        return ProgramResult(
            conductance_s=self._fetch("PROG:RES?", (n,)).astype(np.float64),
            iterations=self._fetch("PROG:ITER?", (n,), "<i4").astype(np.int32),
            converged=self._fetch("PROG:CONV?", (n,), "|u1").astype(bool),
            time_s=self._fetch("PROG:TIME?", (n,), "<f8"),
        )

    def programming_times(self, sel: Selection) -> np.ndarray:
        """Chip time of each selected device's last programming pulse (``SYST:CLOC:TPR?``)."""
        n = self._select(sel)
        now = self.clock.now()
        return now - self._fetch("SYST:CLOC:TPR?", (n,), "<f8")

    def mvm(self, sel: BlockSelection, voltages_v: np.ndarray) -> np.ndarray:
        """On-chip analog MVM (``MEAS:MVM?``): voltages on the block's rows -> column currents."""
        v, single = mvm_voltages(sel, voltages_v)
        self.limits.check("dc", float(np.max(np.abs(v))), self.resource, "MEAS:MVM? input")
        self._select(sel)
        currents = self.transport.query_block("MEAS:MVM?", "<f4", payload=v.astype("<f4"))
        if currents.size != v.shape[0] * sel.n_cols:
            raise InstrumentError(self.transport.resource, "MEAS:MVM?", "wrong reply size")
        currents = currents.reshape(v.shape[0], sel.n_cols).astype(np.float64)
        return currents[0] if single else currents

    # ------------------------------------------------------------------ emulator only (EMU:)
    def seed_noise(self, seed: int) -> None:
        """Restart the emulator's noise (c2c, read, programming) without changing any device."""
        self.transport.command(f"EMU:NOIS:SEED {int(seed)}")

    def profile(self) -> dict:
        """Wall time the emulator spent in its last sequence (``EMU:PROF?``)."""
        return json.loads(self.query("EMU:PROF?") or "{}")

    def ground_truth(self) -> dict:
        """The emulator's hidden truth as a preset document (``EMU:TRUTH?``)."""
        return json.loads(self.query("EMU:TRUTH?"))

    def ground_truth_array(self, name: str) -> np.ndarray:
        """A per-device ground-truth array (flat device order), e.g. ``"delta_up"``."""
        n = self.shape[0] * self.shape[1]
        data = self.transport.query_block(f"EMU:GTRU? {name}", "<f8")
        if data.size != n:
            raise InstrumentError(self.transport.resource, "EMU:GTRU?", "wrong size")
        return data
