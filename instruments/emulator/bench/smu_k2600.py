"""Virtual Keithley 2601B SourceMeter (channel ``smua``): a TSP subset on the bench.

It accepts IEEE 488.2 common commands (``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``) and Lua
chunks (see :mod:`instruments.emulator.bench.tsp`) over: ``smua.source.*`` (func, levelv,
rangev, limiti, output, compliance), ``smua.measure.*`` (nplc, autorangei, count,
``i([buffer])``), ``smua.nvbuffer1/2`` (``clear()``, ``n``, ``readings``), ``smua.reset()``,
``errorqueue.*``, ``format.data``/``format.asciiprecision``, ``localnode.linefreq``,
``print``, ``printbuffer``, ``waitcomplete``, ``delay`` and the factory scripts
``SweepVListMeasureI`` and ``PulseVMeasureI`` (more names other drivers use:
:mod:`~instruments.emulator.bench.smu_k2600_names`). A chunk with a syntax error runs and
prints nothing; a runtime error stops it there (what it printed before is sent); either
error is queued, exactly like the instrument, so a failed query times out.

Ranges are the 2601B's (Reference Manual Rev. F 9-244 and datasheet): levels up to
±40.4 V (``smua.source.levelv``, ``rangev``, list values), current limit 10 nA to 3.03 A;
beyond them the chunk fails with error 1102/1103 and nothing changes.

``PulseVMeasureI(smu, bias, level, ton, toff, points)`` (2600 Reference Manual Rev. C,
13-4): bias for ``toff``; then per point the level for ``ton``, a measurement *at the
level* for the integration time (``nplc`` / line frequency), the bias for ``toff``. The
devices see the level for ``ton`` plus the measurement.

The physics is the same as the virtual B2900's: I = V·ΣG through the routed devices,
clamped to ``limiti`` (``smua.source.compliance`` becomes true), levels above the
switching threshold program the devices for as long as they are held.
"""

from __future__ import annotations

import numpy as np

from instruments.emulator.bench import smu_k2600_names
from instruments.emulator.bench.device import VirtualDevice
from instruments.emulator.bench.tsp import Namespace, TspError, run_chunk
from instruments.emulator.scpi import CommandTable, ErrorQueue, StatusModel, register_common

__all__ = ["Virtual2600B"]

OVERHEAD_S = 30e-6  # per reading, besides the integration time
MAX_V = 40.4  # 2601B full scale of the 40 V range
MIN_LIMIT_I, MAX_LIMIT_I = 10e-9, 3.03
CONSTANTS = {
    "smua.OUTPUT_DCAMPS": 0.0,
    "smua.OUTPUT_DCVOLTS": 1.0,
    "smua.OUTPUT_OFF": 0.0,
    "smua.OUTPUT_ON": 1.0,
    "smua.AUTORANGE_OFF": 0.0,
    "smua.AUTORANGE_ON": 1.0,
    "format.ASCII": 1.0,
    "format.REAL32": 4.0,
    "format.REAL64": 3.0,
}


class _Buffer:
    def __init__(self) -> None:
        self.readings: list[float] = []


class Virtual2600B(VirtualDevice):
    idn = "Keithley Instruments Inc., Model 2601B, 4000001, 4.0.0"

    def __init__(self, bench) -> None:
        super().__init__(bench)
        self.errors = ErrorQueue()
        self.status = StatusModel(self.errors)
        self.names = Namespace(constants=dict(CONSTANTS))
        self._register()
        smu_k2600_names.install(self)  # the names other drivers use
        self.common = CommandTable()
        register_common(self.common, self.status, lambda: self.idn, self.reset)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.func = 1.0
        self.levelv = 0.0
        self.rangev = 2.0
        self.limiti = 0.1
        self.output = 0.0
        self.nplc = 1.0
        self.autorangei = 1.0
        self.count = 1
        self.compliance = False
        self.buffers = {1: _Buffer(), 2: _Buffer()}
        self.data_format = 1.0
        self.precision = 6
        self.linefreq = 50.0
        smu_k2600_names.reset(self)

    def inject_error(self) -> None:
        self.errors.push(5005, "Hardware fault (virtual fault injected)")

    # ------------------------------------------------------------------ messages
    def execute(self, message: bytes) -> list[str | bytes]:
        text = message.decode("ascii", "replace").strip()
        if self.script is not None:  # loading an anonymous script (Reference Manual 6)
            if text != "endscript":
                self.script.append(text)
                if sum(map(len, self.script)) > smu_k2600_names.MAX_SCRIPT_CHARS:
                    self.script = None
                    self.errors.push(-285, "Program syntax: script too long (not loaded)")
                return []
            text, self.script = "\n".join(self.script), None
        elif text.split(None, 1)[:1] == ["loadandrunscript"]:
            self.script = []
            return []
        elif text.startswith("*"):
            return self._common(text)
        self._out: list[str | bytes] = []
        try:
            run_chunk(text, self.names)
        except TspError as exc:
            self.errors.push(exc.code, exc.message)
            # a runtime error stops the chunk there: what it printed before is sent (a
            # syntax error runs nothing, so nothing was printed)
        return [smu_k2600_names.join_output(self._out)] if self._out else []

    def _common(self, text: str) -> list[str]:
        """IEEE 488.2 common commands (2600B Reference Manual, "Common commands")."""
        replies = self.common.execute(text.encode(), self.errors)
        return [str(r) for r in replies]

    # ------------------------------------------------------------------ names
    def _register(self) -> None:
        n = self.names

        def attr(path: str, name: str, lo: float | None = None, hi: float | None = None):
            def setter(value: object) -> None:
                number = self._number(value, path)
                if lo is not None and number < lo:
                    raise TspError(1102, f"Parameter too small: {path} = {number:g}")
                if hi is not None and number > hi:
                    raise TspError(1103, f"Parameter too large: {path} = {number:g}")
                setattr(self, name, number)

            n.attributes[path] = (lambda: getattr(self, name), setter)

        attr("smua.source.levelv", "levelv", -MAX_V, MAX_V)
        attr("smua.source.rangev", "rangev", 0, MAX_V)
        attr("smua.source.limiti", "limiti", MIN_LIMIT_I, MAX_LIMIT_I)
        attr("smua.measure.nplc", "nplc", 0.001, 25)
        attr("format.asciiprecision", "precision", 1, 16)
        attr("localnode.linefreq", "linefreq", 50, 60)
        attr("smua.source.func", "func", 0, 1)
        attr("smua.source.output", "output", 0, 1)
        attr("smua.measure.autorangei", "autorangei", 0, 1)
        attr("smua.measure.count", "count", 1, 60000)
        n.constants["smua"] = "smua"
        n.attributes["smua.source.compliance"] = (lambda: self.compliance, None)
        n.attributes["format.data"] = (lambda: self.data_format, self._set_format)
        n.attributes["errorqueue.count"] = (lambda: float(len(self.errors)), None)
        for k in (1, 2):
            buf = f"smua.nvbuffer{k}"
            n.constants[buf] = k
            n.attributes[buf + ".n"] = (lambda k=k: float(len(self.buffers[k].readings)), None)
            n.attributes[buf + ".readings"] = (lambda k=k: list(self.buffers[k].readings), None)
            n.functions[buf + ".clear"] = lambda k=k: self.buffers[k].readings.clear()
        n.functions.update(
            {
                "print": self._print,
                "printbuffer": self._printbuffer,
                "waitcomplete": lambda *a: None,
                "delay": lambda s: self.bench.clock.advance(max(self._number(s, "delay"), 0.0)),
                "reset": self.reset,
                "smua.reset": self.reset,
                "smua.measure.i": self._measure_i,
                "errorqueue.clear": self.errors.clear,
                "errorqueue.next": self._next_error,
                "SweepVListMeasureI": self._sweep_list,
                "PulseVMeasureI": self._pulse_measure,
            }
        )

    @staticmethod
    def _number(value: object, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TspError(-286, f"TSP Runtime error at line 1: {what} needs a number")
        return float(value)

    def _set_format(self, value: object) -> None:
        if self._number(value, "format.data") != CONSTANTS["format.ASCII"]:
            raise TspError(-286, "TSP Runtime error: binary output is not modelled (use ASCII)")

    def _format(self, value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "nil"
        if isinstance(value, int | float):
            return f"{float(value):.{int(self.precision) - 1}e}"
        return str(value)

    def _print(self, *values: object) -> None:
        self._out.append("\t".join(self._format(v) for v in values))

    def _printbuffer(self, first: object, last: object, *buffers: object) -> None:
        lo = max(int(self._number(first, "start index")), 1)
        hi = int(self._number(last, "end index"))
        columns = []
        for buf in buffers:
            if not isinstance(buf, list):
                raise TspError(-286, "TSP Runtime error: printbuffer needs buffer readings")
            columns.append(buf[lo - 1 : hi])
        values = [v for row in zip(*columns, strict=False) for v in row]
        self._out.append(", ".join(self._format(v) for v in values))

    def _next_error(self) -> tuple:
        entry = self.errors.pop()
        code, _, text = entry.partition(",")
        if int(code) == 0:
            return (0.0, "Queue Is Empty", 0.0, 0.0)
        return (float(code), text.strip().strip('"'), 20.0, 1.0)

    # ------------------------------------------------------------------ physics
    @staticmethod
    def _check_channel(smu: object) -> None:
        if smu != "smua":
            raise TspError(-286, "TSP Runtime error: the 2601B has channel smua only")

    def _check_source(self) -> None:
        if self.output != 1.0:
            raise TspError(5065, "Output is off (virtual bench)")
        if self.func != 1.0:
            raise TspError(5066, "The virtual SMU sources voltage only")

    def _reading(self, volts: float, hold_s: float) -> float:
        """Hold ``volts`` for ``hold_s`` plus the integration time, then read (A)."""
        bench = self.bench
        idx = bench.devices_on(bench.routing.smu_input)
        aperture = self.nplc / self.linefreq
        t = bench.now()
        bench.apply_voltage(idx, volts, hold_s + aperture, t, "smu:2600B")
        current = bench.current(idx, volts, t + hold_s + aperture)
        bench.clock.advance(hold_s + aperture + OVERHEAD_S)
        self.compliance = abs(current) > self.limiti
        if self.compliance:
            current = float(np.sign(current)) * self.limiti
        return current

    def _measure_i(self, buffer: object = None) -> float:
        self._check_source()
        readings = [self._reading(self.levelv, 0.0) for _ in range(int(self.count))]
        if buffer is not None:
            if buffer not in self.buffers:
                raise TspError(-286, "TSP Runtime error: measure.i needs a reading buffer")
            self.buffers[int(buffer)].readings.extend(readings)
        return readings[-1]

    def _sweep_list(self, smu: object, vlist: object, stime: object, points: object) -> None:
        self._check_channel(smu)
        if not isinstance(vlist, list) or not vlist:
            raise TspError(-286, "TSP Runtime error: SweepVListMeasureI needs a list of volts")
        settle = self._number(stime, "stime")
        npts = int(self._number(points, "points"))
        if npts < 2 or settle < 0:
            raise TspError(1102, "Parameter too small: points or stime")
        levels = [self._number(v, "list value") for v in vlist]
        if any(abs(v) > MAX_V for v in levels):
            raise TspError(1103, "Parameter too large: list value")
        was_on = self.output
        self.output = 1.0
        self._check_source()
        buf = self.buffers[1].readings
        buf.clear()
        for k in range(npts):
            buf.append(self._reading(levels[k % len(levels)], settle))
        self.output = was_on

    def _pulse_measure(self, smu, bias, level, ton, toff, points) -> None:
        self._check_channel(smu)
        bias, level = self._number(bias, "bias"), self._number(level, "level")
        ton, toff = self._number(ton, "ton"), self._number(toff, "toff")
        npts = int(self._number(points, "points"))
        if ton <= 0 or toff < 0 or npts < 1:
            raise TspError(1102, "Parameter too small: ton, toff or points")
        if max(abs(bias), abs(level)) > MAX_V:
            raise TspError(1103, "Parameter too large: bias or level")
        was_on = self.output
        self.output = 1.0
        self._check_source()
        bench = self.bench
        idx = bench.devices_on(bench.routing.smu_input)
        buf = self.buffers[1].readings
        buf.clear()
        bench.apply_voltage(idx, bias, toff, bench.now(), "smu:2600B")
        bench.clock.advance(toff)
        for _ in range(npts):
            buf.append(self._reading(level, ton))  # ton at the level, then the measurement
            bench.apply_voltage(idx, bias, toff, bench.now(), "smu:2600B")
            bench.clock.advance(toff)
        self.output = was_on
