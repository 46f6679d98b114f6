"""Batched commands of the emulated crossbar: pulse trains, drift reads, program-and-verify, MVM.

Mixed into :class:`~instruments.emulator.crossbar.EmulatedCrossbar`; each experiment of
REFERENCES.md [R23] is one definition, one ``SEQ:INIT``/``PROG:INIT`` and one fetch,
whatever the number of selected devices.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from instruments.emulator.device_array import VerifySettings
from instruments.emulator.scpi import (
    BlockReply,
    CommandTable,
    ScpiError,
    block_reply,
    decode_block,
    parse_float,
    parse_int,
)

if TYPE_CHECKING:
    from instruments.emulator.crossbar import EmulatedCrossbar

__all__ = ["MAX_DEVICE_PULSES", "MAX_RESULT_VALUES", "SequenceCommands"]

MAX_RESULT_VALUES = 4 * 10**8  # one sequence result (1.6 GB as float32)
MAX_DEVICE_PULSES = 10**10  # work of one command (minutes of emulation); split bigger jobs
MAX_DRIFT_TIMES = 10**4
MAX_MVM_VALUES = 5 * 10**7


class SequenceCommands:
    """SEQ, FETC, PROG and MVM command handlers (a mixin of the crossbar)."""

    def _reset_sequences(self: EmulatedCrossbar) -> None:
        self.sequence: dict | None = None
        self.result: np.ndarray | None = None
        self.result_times: np.ndarray | None = None
        self.prog_targets: np.ndarray | None = None
        self.prog_target_selection: np.ndarray | None = None
        self.prog_tol_s = 1e-6
        self.prog_max_iter = 50
        self.prog_amplitude_v = abs(self.truth.pulse_amplitude_v)
        self.prog_width_s = self.truth.pulse_width_s
        self.prog_result: dict[str, np.ndarray] | None = None

    def _register_sequences(self: EmulatedCrossbar, t: CommandTable) -> None:
        t.add("SEQuence:PTRain:DEFine", self._seq_ptr_def)
        t.add("SEQuence:DRIFt:TIMes", self._seq_drift_times, 1)
        t.add("SEQuence:INITiate", self._seq_init, 0)
        t.add("SEQuence:STATus?", lambda a: "DONE" if self.result is not None else "IDLE", 0)
        t.add("FETCh:CONDuctance?", self._fetch)
        t.add("FETCh:TIME?", self._fetch_time, 0)
        t.add("PROGram:TARGet", self._prog_targets, 1)
        t.add("PROGram:TOLerance", self._prog_setter("prog_tol_s", "tolerance", 1e-12, 1e-3), 1)
        t.add("PROGram:TOLerance?", lambda a: repr(self.prog_tol_s), 0)
        t.add("PROGram:MAXIterations", self._prog_max_iter, 1)
        t.add("PROGram:MAXIterations?", lambda a: str(self.prog_max_iter), 0)
        t.add("PROGram:AMPLitude", self._prog_amplitude, 1)
        t.add("PROGram:AMPLitude?", lambda a: repr(self.prog_amplitude_v), 0)
        t.add("PROGram:WIDTh", self._prog_width, 1)
        t.add("PROGram:WIDTh?", lambda a: repr(self.prog_width_s), 0)
        t.add("PROGram:INITiate", self._prog_init, 0)
        t.add("PROGram:RESult?", lambda a: self._prog_fetch("conductance", self.block_dtype), 0)
        t.add("PROGram:ITERations?", lambda a: self._prog_fetch("iterations", "<i4"), 0)
        t.add("PROGram:CONVerged?", lambda a: self._prog_fetch("converged", "|u1"), 0)
        t.add("PROGram:TIME?", lambda a: self._prog_fetch("time", "<f8"), 0)
        t.add("MEASure:MVM?", self._mvm, 1)

    # ------------------------------------------------------------------ pulse trains
    def _seq_ptr_def(self: EmulatedCrossbar, args: list) -> None:
        if len(args) not in (7, 8):
            code = -109 if len(args) < 7 else -108
            raise ScpiError(
                code,
                "SEQ:PTR:DEF takes <n_up>,<V_up>,<n_down>,<V_down>,<width>,<cycles>,"
                "<read_every>[,<width_down>]",
            )
        n_up = parse_int(args[0], "n_up", 0, 10**5)
        v_up = parse_float(args[1], "V_up")
        n_down = parse_int(args[2], "n_down", 0, 10**5)
        v_down = parse_float(args[3], "V_down")
        width = parse_float(args[4], "width")
        cycles = parse_int(args[5], "cycles", 1, 10**4)
        every = parse_int(args[6], "read_every", 1, 10**5)
        width_down = parse_float(args[7], "width_down") if len(args) == 8 else width
        if n_up + n_down == 0:
            raise ScpiError(-224, "pulse train has no pulses")
        if n_up % every or n_down % every:
            raise ScpiError(-224, "n_up and n_down must be multiples of read_every")
        self._check_pulse(v_up, width)
        self._check_pulse(v_down, width_down)
        self.sequence = {
            "kind": "ptrain",
            "n_up": n_up,
            "v_up": v_up,
            "n_down": n_down,
            "v_down": v_down,
            "width": width,
            "width_down": width_down,
            "cycles": cycles,
            "every": every,
        }

    def _seq_drift_times(self: EmulatedCrossbar, args: list) -> None:
        times = decode_block(args[0], "<f8", "read times")
        if times.size == 0 or times.size > MAX_DRIFT_TIMES:
            raise ScpiError(-222, f"need 1..{MAX_DRIFT_TIMES} read times, got {times.size}")
        if not np.all(np.isfinite(times)) or times.min() < 0 or times.max() > 1e10:
            raise ScpiError(-222, "read times must be finite and within [0, 1e10] s")
        if np.any(np.diff(times) < 0):
            raise ScpiError(-222, "read times must be non-decreasing")
        self.sequence = {"kind": "drift", "times": times}

    def _seq_init(self: EmulatedCrossbar, args: list) -> None:
        seq = self.sequence
        if seq is None:
            raise ScpiError(-221, "no sequence defined (SEQ:PTR:DEF or SEQ:DRIF:TIM first)")
        wall = time.perf_counter()
        if seq["kind"] == "ptrain":
            self._run_pulse_train(seq)
        else:
            self._run_drift_reads(seq)
        self.profile = {"physics_s": time.perf_counter() - wall, "command": "SEQ:INIT"}

    def _run_pulse_train(self: EmulatedCrossbar, seq: dict) -> None:
        idx = self.selection
        n_reads = 1 + seq["cycles"] * (seq["n_up"] + seq["n_down"]) // seq["every"]
        if n_reads * idx.size > MAX_RESULT_VALUES:
            raise ScpiError(-223, "result would exceed 4e8 values; reduce the selection")
        if seq["cycles"] * (seq["n_up"] + seq["n_down"]) * idx.size > MAX_DEVICE_PULSES:
            raise ScpiError(-223, "pulses x devices exceeds 1e10; split the sequence")
        # the safe area may have changed since SEQ:PTR:DEF
        self._check_pulse(seq["v_up"], seq["width"])
        self._check_pulse(seq["v_down"], seq["width_down"])
        self._check_read(idx)
        t0 = self._now()
        period = self._pulse_period(max(seq["width"], seq["width_down"]))
        g = self.array.pulse_train(
            idx,
            seq["n_up"],
            seq["n_down"],
            seq["cycles"],
            seq["every"],
            (seq["v_up"], seq["width"]),
            (seq["v_down"], seq["width_down"]),
            t=t0 + self.read_aperture_s,
            step_s=period,
            read_delay_s=self.pulse_overhead_s,
        )
        step = seq["every"] * period + self.read_aperture_s
        self.result_times = t0 + self.read_aperture_s + step * np.arange(n_reads)
        programs = (seq["n_up"] and self.array.strength(seq["v_up"], seq["width"]) > 0) or (
            seq["n_down"] and self.array.strength(seq["v_down"], seq["width_down"]) > 0
        )
        if programs:  # pulses below the switching threshold are no programming event
            # the last pulse ends one read aperture before the last read's end
            self.array.t_prog[idx] = (
                self.result_times[-1]
                - self.read_aperture_s
                - (period - max(seq["width"], seq["width_down"]))
            )
        self.clock.advance(float(self.result_times[-1] - t0))
        self.result = g

    def _run_drift_reads(self: EmulatedCrossbar, seq: dict) -> None:
        idx = self.selection
        times = seq["times"]
        if times.size * idx.size > MAX_RESULT_VALUES:
            raise ScpiError(-223, "result would exceed 4e8 values; reduce the selection")
        now = self._now()
        t_prog = self.array.t_prog[idx]
        late = int(np.count_nonzero(t_prog + times[0] < now))
        if late:
            raise ScpiError(
                -221,
                f"the first read time ({times[0]:g} s after programming) has already passed "
                f"for {late} of {idx.size} selected devices",
            )
        self._check_read(idx)
        self.result = self.array.read_after_programming(idx, times, self.n_avg).astype(np.float32)
        self.result_times = times.copy()
        t_end = float(t_prog.max() + times[-1]) + self.read_aperture_s * self.n_avg
        self.clock.advance(t_end - now)

    def _fetch(self: EmulatedCrossbar, args: list) -> BlockReply:
        if self.result is None:
            raise ScpiError(-221, "no result to fetch (SEQ:INIT first)")
        if not args:
            return self._block(self.result)
        if len(args) != 2:
            raise ScpiError(-109, "FETC:COND? takes no parameters or <first_row>,<rows>")
        first = parse_int(args[0], "first row", 0, self.result.shape[0] - 1)
        rows = parse_int(args[1], "rows", 1, self.result.shape[0] - first)
        return self._block(self.result[first : first + rows])

    def _fetch_time(self: EmulatedCrossbar, args: list) -> BlockReply:
        if self.result_times is None:
            raise ScpiError(-221, "no result to fetch (SEQ:INIT first)")
        return block_reply(self.result_times, "<f8")

    # ------------------------------------------------------------------ program and verify
    def _prog_targets(self: EmulatedCrossbar, args: list) -> None:
        arg = args[0]
        n = self.selection.size
        if isinstance(arg, bytes):
            targets = decode_block(arg, self.block_dtype, "targets").astype(np.float64)
            if targets.size != n:
                raise ScpiError(-222, f"expected {n} targets (one per selected device)")
        else:
            targets = np.full(n, parse_float(arg, "target"))
        if not np.all(np.isfinite(targets)) or targets.min() < 0 or targets.max() > 1e-2:
            raise ScpiError(-222, "targets must be finite conductances within [0, 0.01] S")
        self.prog_targets = targets
        self.prog_target_selection = self.selection.copy()

    def _prog_setter(self, attr: str, name: str, lo: float, hi: float):
        def setter(args: list) -> None:
            setattr(self, attr, parse_float(args[0], name, lo, hi))

        return setter

    def _prog_max_iter(self: EmulatedCrossbar, args: list) -> None:
        self.prog_max_iter = parse_int(args[0], "max iterations", 1, 10**4)

    def _prog_amplitude(self: EmulatedCrossbar, args: list) -> None:
        v = parse_float(args[0], "programming amplitude", 0.0)
        self._check_pulse(v, self.prog_width_s)
        self.prog_amplitude_v = v

    def _prog_width(self: EmulatedCrossbar, args: list) -> None:
        w = parse_float(args[0], "programming width")
        self._check_pulse(self.prog_amplitude_v, w)
        self.prog_width_s = w

    def _prog_init(self: EmulatedCrossbar, args: list) -> None:
        idx = self.selection
        if self.prog_targets is None or not np.array_equal(self.prog_target_selection, idx):
            raise ScpiError(-221, "no targets for the current selection (PROG:TARG first)")
        self._check_pulse(self.prog_amplitude_v, self.prog_width_s)
        self._check_read(idx)
        g_max = float(self.prog_targets.max())
        if g_max * self.read_voltage_v > self.soa.compliance_current_a:
            raise ScpiError(102, "a target's read current would exceed the compliance")
        settings = VerifySettings(
            tol_s=self.prog_tol_s,
            max_iter=self.prog_max_iter,
            amplitude_v=self.prog_amplitude_v,
            width_s=self.prog_width_s,
            n_avg=self.n_avg,
            pulse_overhead_s=self.pulse_overhead_s,
            read_aperture_s=self.read_aperture_s,
        )
        wall = time.perf_counter()
        out = self.array.verify_loop(idx, self.prog_targets, settings, self._now())
        self.profile = {"physics_s": time.perf_counter() - wall, "command": "PROG:INIT"}
        self.clock.advance(out.duration_s)
        self.prog_result = {
            "conductance": out.conductance_s,
            "iterations": out.iterations,
            "converged": out.converged.astype(np.uint8),
            "time": out.time_s,
        }

    def _prog_fetch(self: EmulatedCrossbar, name: str, dtype: str) -> BlockReply:
        if self.prog_result is None:
            raise ScpiError(-221, "no programming result (PROG:INIT first)")
        return block_reply(self.prog_result[name], dtype)

    # ------------------------------------------------------------------ MVM
    def _mvm(self: EmulatedCrossbar, args: list) -> BlockReply:
        """Apply input voltages to the selection's rows, return its column currents (A).

        The block holds ``n_vec x n_rows`` voltages (row-major); the reply is
        ``n_vec x n_cols`` currents. Device read noise adds up on each column:
        I_j = Σ_i V_i G_ij + sqrt(Σ_i V_i² σ_ij²)·ξ.
        """
        if self.selection_shape is None:
            raise ScpiError(-221, "MVM needs a rectangular selection (BLOC, ROW, COL or ALL)")
        n_rows, n_cols = self.selection_shape
        v = decode_block(args[0], self.block_dtype, "input voltages").astype(np.float64)
        if v.size == 0 or v.size % n_rows:
            raise ScpiError(-222, f"need a multiple of {n_rows} input voltages, got {v.size}")
        v = v.reshape(-1, n_rows)
        if v.shape[0] * n_cols > MAX_MVM_VALUES:
            raise ScpiError(-223, "vectors x columns exceeds 5e7 values; split the request")
        if not np.all(np.isfinite(v)):
            raise ScpiError(-222, "input voltages must be finite")
        idx = self.selection
        self._check_read(idx, v)
        now = self._now()
        g = self.array.conductance(idx, now).reshape(n_rows, n_cols)
        sigma = self.array.read_sigma(idx, now).reshape(n_rows, n_cols)
        noise = np.sqrt((v * v) @ (sigma * sigma))
        currents = v @ g + noise * self.array.noise.standard_normal(noise.shape)
        self.clock.advance(self.read_aperture_s * v.shape[0])
        return self._block(currents)
