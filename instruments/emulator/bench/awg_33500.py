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

    def register(self) -> None:
        s = self.setting
        s(
            "[:SOURce{c}]:FUNCtion",
            "function",
            lambda a: short_choice(a, "function", ("PULSe", "SINusoid", "SQUare", "DC")),
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
