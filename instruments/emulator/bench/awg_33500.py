"""Virtual Keysight 33521B waveform generator (one channel): triggered pulse bursts.

A bus trigger (``*TRG`` with ``TRIG:SOUR BUS``) in triggered burst mode with the pulse
function and the output on sends ``BURS:NCYC`` pulses, ``FUNC:PULS:PER`` apart, to the
devices routed to the bench's pulser input: each pulse is at the high level (normal
polarity) or at the low level (inverted, i.e. mirrored about the offset), for the pulse
width; between pulses the output sits at the other level. The levels are programmed for
the expected load: into the bench's high-impedance devices the voltage is the displayed
one times (R + 50 Ω)/R for a finite load setting R (twice it for the 50 Ω default), and
changing the load setting rescales the displayed levels (the output itself does not
change), as the instrument does. The burst takes ``NCYC·PER`` of the bench clock.

Output state between triggers (33500 Operating Guide, burst mode): with the output on,
the output sits at the idle level (the low level, or the high level when inverted)
whenever no burst runs, and every level, polarity or load change takes effect at once on
whatever the switch routes to the pulser input (recorded as an exposure of those devices,
:meth:`~instruments.emulator.bench.bench.VirtualBench.hold`). Pulses reach the devices
through the bench's series limiter (resistor divider or transistor current cap).

Refused with an error and no change: a width that leaves less than 16 ns of the period
(-221), high <= low (-221), a level beyond ±10 V open-circuit (-222), a trigger from the
wrong source (-211), and a trigger in a mode other than triggered pulse bursts (-221, not
modelled).
"""

from __future__ import annotations

import math

from instruments.emulator.bench.device import ScpiDevice, nr3, short_choice
from instruments.emulator.scpi import ScpiError, parse_bool, parse_float, parse_int

__all__ = ["Virtual33500B"]

#: waveforms of FUNCtion (arbitrary waveforms are not modelled); triggers need PULSe
FUNCTIONS = ("PULSe", "SINusoid", "SQUare", "DC", "TRIangle", "RAMP", "PRBS", "NOISe")
MIN_WIDTH_S = 16e-9
SOURCE = "pulser:33500B"
IDLE_SETTINGS = frozenset({"high", "low", "polarity", "output", "load"})
MAX_OPEN_CIRCUIT_V = 10.0


class Virtual33500B(ScpiDevice):
    idn = "Keysight Technologies,33521B,EMU00001,4.03-1.19-2.00-58-00"

    def reset(self) -> None:
        self.function = "SIN"
        self.width = 100e-6
        self.period = 1e-3
        self.edge = 10e-9
        self.high = 0.05
        self.low = -0.05
        self.load = 50.0
        self.polarity = "NORM"
        self.output = False
        self.burst = False
        self.burst_mode = "TRIG"
        self.cycles = 1
        self.trigger_source = "IMM"
        self.delivered = 0  # pulses that reached the output (for tests)
        self._reset_waveform()

    def register(self) -> None:
        s = self.setting
        s(
            "[:SOURce{c}]:FUNCtion",
            "function",
            lambda a: short_choice(a, "function", FUNCTIONS),
        )
        self.add("[:SOURce{c}]:FUNCtion:PULSe:WIDTh", self._set_width, 1)
        self.add("[:SOURce{c}]:FUNCtion:PULSe:WIDTh?", lambda a: nr3(self.width), 0)
        self.add("[:SOURce{c}]:FUNCtion:PULSe:PERiod", self._set_period, 1)
        self.add("[:SOURce{c}]:FUNCtion:PULSe:PERiod?", lambda a: nr3(self.period), 0)
        s(
            "[:SOURce{c}]:FUNCtion:PULSe:TRANsition[:BOTH]",
            "edge",
            lambda a: parse_float(a, "edge time", 8.4e-9, 1e-6),
        )
        self.add("[:SOURce{c}]:FUNCtion:PULSe:TRANsition:LEADing?", lambda a: nr3(self.edge), 0)
        self.add("[:SOURce{c}]:FUNCtion:PULSe:TRANsition:TRAiling?", lambda a: nr3(self.edge), 0)
        self.add("[:SOURce{c}]:VOLTage:HIGH", lambda a: self._set_level(a, high=True), 1)
        self.add("[:SOURce{c}]:VOLTage:HIGH?", lambda a: nr3(self.high), 0)
        self.add("[:SOURce{c}]:VOLTage:LOW", lambda a: self._set_level(a, high=False), 1)
        self.add("[:SOURce{c}]:VOLTage:LOW?", lambda a: nr3(self.low), 0)
        s(":OUTPut{c}[:STATe]", "output", lambda a: parse_bool(a, "output"))
        self.add(":OUTPut{c}:LOAD", self._set_load, 1)
        self.add(
            ":OUTPut{c}:LOAD?", lambda a: nr3(9.9e37 if math.isinf(self.load) else self.load), 0
        )
        s(
            ":OUTPut{c}:POLarity",
            "polarity",
            lambda a: short_choice(a, "polarity", ("NORMal", "INVerted")),
        )
        s("[:SOURce{c}]:BURSt:STATe", "burst", lambda a: parse_bool(a, "burst"))
        s(
            "[:SOURce{c}]:BURSt:MODE",
            "burst_mode",
            lambda a: short_choice(a, "burst mode", ("TRIGgered", "GATed")),
        )
        s("[:SOURce{c}]:BURSt:NCYCles", "cycles", lambda a: parse_int(a, "cycles", 1, 10**8))
        s(
            ":TRIGger{c}:SOURce",
            "trigger_source",
            lambda a: short_choice(a, "trigger source", ("IMMediate", "EXTernal", "TIMer", "BUS")),
        )
        self.table.add("*TRG", lambda a: self._trigger(bus=True), 0)
        self.add(":TRIGger{c}[:IMMediate]", lambda a: self._trigger(bus=False), 0)
        self._register_waveform()

    def __setattr__(self, name: str, value: object) -> None:
        # each command that moves the output takes effect at once, even in the middle of a
        # program message: the routed devices see every intermediate idle level
        super().__setattr__(name, value)
        if name in IDLE_SETTINGS and not self.__dict__.get("_rescaling", False):
            self._sync_idle()

    def _sync_idle(self) -> None:
        try:
            idle = self.idle_level() if self.output else 0.0
        except AttributeError:  # during reset(): not every setting exists yet
            return
        if idle != self.bench.held(SOURCE):
            self.bench.hold(SOURCE, self.bench.routing.pulser_input, idle)

    def idle_level(self) -> float:
        """Open-circuit voltage between pulses: the low level, the high level if inverted."""
        factor = self._factor()
        return (self.low if self.polarity == "NORM" else self.high) * factor

    # ------------------------------------------------------------------ settings
    def _factor(self, load: float | None = None) -> float:
        """Open-circuit volts per displayed volt for a load setting."""
        load = self.load if load is None else load
        return 1.0 if math.isinf(load) else (load + 50.0) / load

    def _set_width(self, args: list) -> None:
        width = parse_float(args[0], "pulse width", MIN_WIDTH_S, 1e6)
        if width > self.period - MIN_WIDTH_S:
            raise ScpiError(-221, f"width {width:g} s does not fit the period {self.period:g} s")
        self.width = width

    def _set_period(self, args: list) -> None:
        period = parse_float(args[0], "pulse period", 33e-9, 1e6)
        if self.pulse_hold == "DCYC":  # FUNC:PULS:HOLD DCYC: the duty cycle stays
            width = self.width * period / self.period
            if not MIN_WIDTH_S <= width <= period - MIN_WIDTH_S:
                raise ScpiError(-221, f"the duty cycle does not fit a {period:g} s period")
            self.period, self.width = period, width
            return
        if period < self.width + MIN_WIDTH_S:
            raise ScpiError(-221, f"period {period:g} s is shorter than the width + 16 ns")
        self.period = period

    def _set_level(self, args: list, high: bool) -> None:
        limit = MAX_OPEN_CIRCUIT_V / self._factor()
        value = parse_float(args[0], "level", -limit, limit)
        if (high and value <= self.low) or (not high and value >= self.high):
            raise ScpiError(-221, "the high level must stay above the low level")
        if high:
            self.high = value
        else:
            self.low = value

    def _set_load(self, args: list) -> None:
        text = (args[0].decode() if isinstance(args[0], bytes) else str(args[0])).strip().upper()
        load = math.inf if text in ("INF", "INFINITY", "MAX") else parse_float(text, "load", 1, 1e4)
        scale = self._factor() / self._factor(load)  # the output stays, the display changes
        self._rescaling = True
        self.high *= scale
        self.low *= scale
        self._rescaling = False
        self.load = load

    # ------------------------------------------------------------------ bursts
    def _trigger(self, bus: bool) -> None:
        if bus and self.trigger_source != "BUS":
            raise ScpiError(-211, "Trigger ignored")
        if not (self.burst and self.burst_mode == "TRIG" and self.function == "PULS"):
            raise ScpiError(-221, "the virtual generator models triggered pulse bursts only")
        if not self.output:
            return
        factor = self._factor()
        high, low = self.high * factor, self.low * factor
        pulse, base = (high, low) if self.polarity == "NORM" else (low, high)
        bench = self.bench
        bench.release(SOURCE)  # the idle level lasted until now
        idx = bench.devices_on(bench.routing.pulser_input)
        n, t = int(self.cycles), bench.now()
        if idx.size:
            seen = bench.pulser_voltage(idx, pulse, t)  # behind the series limiter
            bench.record(idx, seen, self.width, t, SOURCE, n)
            if bench.array.strength(seen, self.width) > 0:
                bench.array.apply_pulses(idx, seen, self.width, n, t, self.period)
            gap = self.period - self.width
            bench.record(idx, base, gap, t + self.width, SOURCE, n)
            if bench.array.strength(base, gap) > 0:  # a wrong idle level stresses the devices
                bench.array.apply_pulses(idx, base, gap, n, t + self.width, self.period)
        self.delivered += n
        bench.clock.advance(n * self.period)
        bench.restart(SOURCE)

    # ------------------------------------------------------------------ waveform settings
    # Settings of the 33500B that the bench does not use but any driver may (PyMeasure's
    # Agilent33500 does): stored and answered with the manual's ranges and couplings
    # (33500B Operating and Service Guide, SCPI reference: FREQuency, VOLTage,
    # VOLTage:OFFSet, PHASe, FUNCtion:SQUare/RAMP/PULSe, BURSt:INTernal:PERiod, OUTPut:TRIGger).
    def _reset_waveform(self) -> None:
        self.phase = 0.0
        self.square_duty = 50.0
        self.ramp_symmetry = 100.0
        self.pulse_hold = "WIDT"
        self.burst_period = 10e-3
        self.trigger_output = False
        self.display_text = ""

    def _register_waveform(self) -> None:
        s = self.setting
        # frequency and period are one setting (FUNCtion:PULSe:PERiod is coupled to it)
        self.add("[:SOURce{c}]:FREQuency[:CW]", self._set_frequency, 1)
        self.add("[:SOURce{c}]:FREQuency[:CW]?", lambda a: nr3(1.0 / self.period), 0)
        # amplitude (peak to peak) and offset are the high and low levels seen another way
        self.add("[:SOURce{c}]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", self._set_amplitude, 1)
        self.add(
            "[:SOURce{c}]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?",
            lambda a: nr3(self.high - self.low),
            0,
        )
        self.add("[:SOURce{c}]:VOLTage[:LEVel][:IMMediate]:OFFSet", self._set_offset, 1)
        self.add(
            "[:SOURce{c}]:VOLTage[:LEVel][:IMMediate]:OFFSet?",
            lambda a: nr3((self.high + self.low) / 2),
            0,
        )
        self.add("[:SOURce{c}]:VOLTage:UNIT", self._set_unit, 1)
        self.add("[:SOURce{c}]:VOLTage:UNIT?", lambda a: "VPP", 0)
        s("[:SOURce{c}]:PHASe[:ADJust]", "phase", lambda a: parse_float(a, "phase", -360, 360))
        s(
            "[:SOURce{c}]:FUNCtion:SQUare:DCYCle",
            "square_duty",
            lambda a: parse_float(a, "square duty cycle", 0.01, 99.99),
        )
        s(
            "[:SOURce{c}]:FUNCtion:RAMP:SYMMetry",
            "ramp_symmetry",
            lambda a: parse_float(a, "ramp symmetry", 0, 100),
        )
        s(
            "[:SOURce{c}]:FUNCtion:PULSe:HOLD",
            "pulse_hold",
            lambda a: short_choice(a, "pulse hold", ("WIDTh", "DCYCle")),
        )
        self.add("[:SOURce{c}]:FUNCtion:PULSe:DCYCle", self._set_duty, 1)
        self.add(
            "[:SOURce{c}]:FUNCtion:PULSe:DCYCle?", lambda a: nr3(100 * self.width / self.period), 0
        )
        s(
            "[:SOURce{c}]:BURSt:INTernal:PERiod",
            "burst_period",
            lambda a: parse_float(a, "burst period", 1e-6, 8000),
        )
        s(":OUTPut:TRIGger[:STATe]", "trigger_output", lambda a: parse_bool(a, "trigger out"))
        self.add(":SOURce{c}:PHASe:SYNChronize", lambda a: None, 0)
        self.add(":PHASe:SYNChronize", lambda a: None, 0)
        self.add(":SYSTem:BEEPer[:IMMediate]", lambda a: None, 0)
        self.add(":DISPlay:TEXT[:DATA]", self._set_text, 1)
        self.add(":DISPlay:TEXT[:DATA]?", lambda a: '"' + self.display_text + '"', 0)
        self.add(":DISPlay:TEXT:CLEar", lambda a: setattr(self, "display_text", ""), 0)

    def _set_frequency(self, args: list) -> None:
        frequency = parse_float(args[0], "frequency", 1e-6, 30e6)
        self._set_period([repr(1.0 / frequency)])

    def _set_amplitude(self, args: list) -> None:
        limit = 2 * MAX_OPEN_CIRCUIT_V / self._factor()
        amplitude = parse_float(args[0], "amplitude", 1e-3 / self._factor(), limit)
        self._set_both((self.high + self.low) / 2, amplitude)

    def _set_offset(self, args: list) -> None:
        limit = MAX_OPEN_CIRCUIT_V / self._factor()
        self._set_both(parse_float(args[0], "offset", -limit, limit), self.high - self.low)

    def _set_both(self, offset: float, amplitude: float) -> None:
        high, low = offset + amplitude / 2, offset - amplitude / 2
        limit = MAX_OPEN_CIRCUIT_V / self._factor()
        if max(abs(high), abs(low)) > limit * (1 + 1e-12):
            raise ScpiError(-222, f"offset and amplitude reach beyond ±{limit:g} V")
        self.high, self.low = high, low

    def _set_unit(self, args: list) -> None:
        unit = short_choice(args[0], "amplitude unit", ("VPP", "VRMS", "DBM"))
        if unit != "VPP":
            raise ScpiError(-221, "the virtual generator keeps amplitudes in VPP")

    def _set_duty(self, args: list) -> None:
        duty = parse_float(args[0], "pulse duty cycle", 0, 100)
        width = duty / 100 * self.period
        if not MIN_WIDTH_S <= width <= self.period - MIN_WIDTH_S:
            raise ScpiError(-221, f"a {duty:g} % pulse does not fit the period {self.period:g} s")
        self.width = width

    def _set_text(self, args: list) -> None:
        text = args[0].decode("ascii", "replace") if isinstance(args[0], bytes) else args[0]
        self.display_text = text.strip().strip('"').strip("'")[:40]
