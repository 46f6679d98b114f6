"""PyVISA driver for the emulated crossbar chip: :class:`ChipInterface` over SCPI.

Each operation is one or a few round trips regardless of the number of devices: the
selection is sent once (a block of int32 indices for arbitrary lists), sequences run on
the chip, and results come back as binary blocks, fetched in chunks of at most
:attr:`EmulatedChip.max_block_bytes` straight into the result array. Every setting is
checked with ``SYST:ERR?`` before the operation that depends on it runs. Every query is
confirmed by the transport (``<query>;*OPC?``), so a query the chip refuses (a read over
the compliance limit, a fetch out of range) raises :class:`InstrumentError` with the
chip's error text at once instead of waiting out the I/O timeout (600 s in sequences).
"""

from __future__ import annotations

import json
import time

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
from instruments.visa_transport import InstrumentError, VisaTransport

__all__ = ["EmulatedChip", "ScpiClock"]

LONG_TIMEOUT_S = 600.0  # sequences and program-and-verify on large selections


class ScpiClock:
    """The chip's own clock (``SYST:CLOC:*``); virtual unless the chip runs in real mode."""

    def __init__(self, transport: VisaTransport) -> None:
        self._t = transport
        self.virtual = transport.query("SYST:CLOC:MODE?").upper().startswith("VIRT")

    def now(self) -> float:
        return float(self._t.query("SYST:CLOC:TIME?"))

    def advance(self, dt_s: float) -> None:
        if dt_s > 0:
            # a virtual advance answers at once; VISA timeouts cannot exceed ~49 days
            wait = 0.0 if self.virtual else dt_s
            with self._t.timeout(min(max(self._t.timeout_s, wait + 10.0), 4.0e6)):
                self._t.command(f"SYST:CLOC:ADV {float(dt_s)!r}")


class EmulatedChip(ChipInterface):
    """Driver for ``EMU,AIMC-XBAR-*`` instruments (our emulator, or firmware speaking its set)."""

    max_block_bytes = 4 << 20  # largest block per fetch; 4 MiB measured fastest (RESULTS.md)

    def __init__(self, resource: str, timeout_s: float = 30.0) -> None:
        self.transport = VisaTransport(resource, timeout_s=timeout_s)
        t = self.transport
        try:
            if not t.idn.startswith("EMU,AIMC-XBAR"):
                raise InstrumentError(resource, "*IDN?", f"not an AIMC crossbar: {t.idn!r}")
            t.write("*CLS")
            try:
                conf = json.loads(t.query("SYST:CONF?"))
            except json.JSONDecodeError:
                raise InstrumentError(resource, "SYST:CONF?", "reply is not JSON") from None
            self.shape = (int(conf["rows"]), int(conf["cols"]))
            self.technology = conf["technology"]
            self.configuration = conf
            t.command("FORM:DATA REAL,32")
            self.clock = ScpiClock(t)
        except BaseException:
            t.close()
            raise
        self._selection_key: object = None
        self.timing: dict[str, float] = {}  # split of the last batched operation (s)

    # ------------------------------------------------------------------ metadata
    def identity(self) -> str:
        return self.transport.idn

    def snapshot(self) -> dict:
        return {
            "idn": self.identity(),
            "resource": self.transport.resource,
            "shape": list(self.shape),
            "configuration": self.configuration,
        }

    def close(self) -> None:
        self.transport.close()

    # ------------------------------------------------------------------ helpers
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

    def _configure(self, *commands: str) -> None:
        """Send settings as one program message and check that all were accepted."""
        message = ";:".join(commands)
        self.transport.write(message)
        self.transport.check_errors(message)

    def _set_read(self, v_read: float, n_avg: int = 1) -> None:
        self._configure(f"SENS:VOLT {float(v_read)!r}", f"SENS:AVER {int(n_avg)}")

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
        with self.transport.timeout(max(self.transport.timeout_s, LONG_TIMEOUT_S)):
            self.transport.command(command)
        self.timing = {"run_s": time.perf_counter() - t0}

    # ------------------------------------------------------------------ primitives
    def read_conductance(self, sel: Selection, v_read: float, n_avg: int = 1) -> np.ndarray:
        n = self._select(sel)
        self._set_read(v_read, n_avg)
        return self._fetch("MEAS:COND?", (n,))

    def apply_pulses(self, sel: Selection, pulse: PulseSpec, n: int = 1) -> None:
        self._select(sel)
        self._configure(
            f"SOUR:PULS:PER {float(pulse.period_s)!r}",
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
        n = self._select(sel)
        self._set_read(v_read, 1)
        period = max(spec.up.period_s, spec.down.period_s)
        self._configure(
            f"SOUR:PULS:PER {float(period)!r}",
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
        n = self._select(sel)
        self._set_read(v_read, 1)
        t = self.transport
        t.write_block("PROG:TARG", targets.astype("<f4"), "<f4")
        t.check_errors("PROG:TARG")
        self._configure(
            f"PROG:TOL {float(tol_s)!r}",
            f"PROG:MAXI {int(max_iter)}",
            f"PROG:WIDT {float(pulse.width_s)!r}",
            f"PROG:AMPL {abs(float(pulse.amplitude_v))!r}",
        )
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
        self._select(sel)
        currents = self.transport.query_block("MEAS:MVM?", "<f4", payload=v.astype("<f4"))
        if currents.size != v.shape[0] * sel.n_cols:
            raise InstrumentError(self.transport.resource, "MEAS:MVM?", "wrong reply size")
        currents = currents.reshape(v.shape[0], sel.n_cols).astype(np.float64)
        return currents[0] if single else currents

    # ------------------------------------------------------------------ emulator-only
    def seed_noise(self, seed: int) -> None:
        """Reseed the emulator's noise (c2c, read, programming) without changing any device."""
        self.transport.command(f"EMU:NOIS:SEED {int(seed)}")

    def profile(self) -> dict:
        """Wall time the emulator spent in its last sequence (``EMU:PROF?``)."""
        return json.loads(self.transport.query("EMU:PROF?") or "{}")

    def ground_truth(self) -> dict:
        """The emulator's hidden truth as a preset document (``EMU:TRUTH?``)."""
        return json.loads(self.transport.query("EMU:TRUTH?"))

    def ground_truth_array(self, name: str) -> np.ndarray:
        """A per-device ground-truth array (flat device order), e.g. ``"delta_up"``."""
        n = self.shape[0] * self.shape[1]
        data = self.transport.query_block(f"EMU:GTRU? {name}", "<f8")
        if data.size != n:
            raise InstrumentError(self.transport.resource, "EMU:GTRU?", "wrong size")
        return data
