"""Keysight (Agilent) 33500B-series waveform generator as a triggered pulse source, SCPI.

The bench uses the pulse function in triggered burst mode: ``configure_pulse`` sets the
levels, width and period once, ``fire(n)`` sends a bus trigger that emits a burst of ``n``
pulses and waits until the burst is complete. Levels assume a high-impedance device
(``OUTP:LOAD INF``): with the default 50 Ω setting an open load sees twice the programmed
voltage, so :meth:`Keysight33500B.prepare` sets INF and the safe-limit check uses the
voltage the device really sees.

Between triggers the output sits at the idle level (the low level; the high level when
inverted), so re-leveling with the output on reaches the connected device: see
:meth:`Keysight33500B.configure_pulse`. The manuals are listed in ``instruments/MANUALS.md``.

Polarity: a positive pulse is ``VOLT:HIGH V; VOLT:LOW 0`` (the pulse is at the high level),
a negative pulse ``VOLT:HIGH 0; VOLT:LOW -V`` with ``OUTP:POL INV`` (inversion about the
offset puts the pulse at -V and the idle level at 0 V). Levels and width/period are written
in an order that never violates high > low or width < period.

Commands and where they were checked (Agilent 33500 Series Operating and Service Guide;
Keysight 33500 web help; [unverified]: family syntax, page not read):

=============================================  ===========================================
``FUNC:PULS:WIDT`` (16 ns to 1e6 s)            verified (Operating Guide p. 69)
``OUTP{c}:LOAD INF``; 50 Ω into open doubles   verified (Operating Guide p. 61)
``BURS:MODE TRIG``, ``BURS:NCYC`` (1 to 1e8),  verified (web help, BURSt subsystem)
``BURS:STAT ON``
``TRIG{c}:SOUR BUS``, ``*TRG``; ``*OPC?``/      verified (Operating Guide p. 318: "*OPC?
``*WAI`` wait for the burst to complete        returns 1 when the sweep or burst is complete")
``FUNC PULS``, ``FUNC:PULS:PER``               [unverified] (PyMeasure agilent33500 uses it)
``FUNC:PULS:TRAN:BOTH`` (8.4 ns minimum edge)  [unverified command]; minimum edge verified
``VOLT:HIGH``, ``VOLT:LOW``                    [unverified] (±10 V into high impedance)
``OUTP{c}:POL NORM|INV`` about the offset      [unverified]
``OUTP{c} ON|OFF``                             [unverified]
=============================================  ===========================================
"""

from __future__ import annotations

import math
from typing import ClassVar

from instruments.drivers.base import (
    Choice,
    Flag,
    Number,
    Parameter,
    ScpiInstrument,
    SettingError,
    Validator,
    format_number,
)

__all__ = ["Keysight33500B"]

MAX_LEVEL_V = 10.0  # into a high-impedance load
INF_OHM = 9.9e37  # the instrument's reply for "infinite" load


class _Load(Validator):
    """Output termination: ``math.inf`` (high impedance) or 1 Ω to 10 kΩ."""

    def validate(self, value, inst, what):
        number = float(value)
        if math.isinf(number) and number > 0:
            return math.inf
        if not 1.0 <= number <= 10e3:
            raise SettingError(inst.resource, what, f"{value!r} is not inf or 1 Ω to 10 kΩ")
        return number

    def token(self, value):
        return "INF" if math.isinf(value) else format_number(value)

    def parse(self, reply):
        number = float(reply)
        return math.inf if number >= INF_OHM else number

    def describe(self):
        return "inf (high impedance) or 1 Ω to 10 kΩ"


class _Level(Number):
    """A programmed level; the safe limit applies to the voltage at a high-impedance device.

    That is the level times the load factor of the cached load setting (2 when the setting
    is unknown: the 50 Ω default after ``*RST``); validation does no I/O.
    """

    def __init__(self) -> None:
        super().__init__(-MAX_LEVEL_V, MAX_LEVEL_V)

    def validate(self, value, inst, what):
        number = super().validate(value, inst, what)
        load = inst.output_load_ohm.cached
        factor = 2.0 if load is None else _factor(load)
        inst.limits.check("voltage", number * factor, inst.resource, f"{what} (at the device)")
        return number

    def describe(self):
        return super().describe() + ", safe voltage limit at the device"


def _factor(load_ohm: float) -> float:
    """Volts at an open (high-impedance) load per programmed volt, for a load setting."""
    return 1.0 if math.isinf(load_ohm) else (load_ohm + 50.0) / load_ohm


class Keysight33500B(ScpiInstrument):
    """One output channel (1 or 2) of a 33500B/33600A waveform generator."""

    models = ("335", "336")
    family = "Keysight 33500B-series waveform generator"

    #: shortest pulse (Operating Guide p. 69)
    min_pulse_width_s: ClassVar[float] = 16e-9
    #: shortest edge time (Operating Guide p. 69)
    min_edge_s: ClassVar[float] = 8.4e-9

    function = Parameter(
        ":SOUR{ch}:FUNC?",
        ":SOUR{ch}:FUNC {value}",
        Choice({"pulse": "PULS", "sine": "SIN", "square": "SQU", "dc": "DC"}),
        doc="Waveform [unverified].",
    )
    pulse_width_s = Parameter(
        ":SOUR{ch}:FUNC:PULS:WIDT?",
        ":SOUR{ch}:FUNC:PULS:WIDT {value}",
        Number(16e-9, 1e6, limit="width"),
        unit="s",
        doc="Pulse width, 50 %-50 % (16 ns to 1e6 s).",
    )
    pulse_period_s = Parameter(
        ":SOUR{ch}:FUNC:PULS:PER?",
        ":SOUR{ch}:FUNC:PULS:PER {value}",
        Number(33e-9, 1e6),
        unit="s",
        doc="Pulse period: spacing of the pulses in a burst [unverified].",
    )
    edge_time_s = Parameter(
        ":SOUR{ch}:FUNC:PULS:TRAN:LEAD?",
        ":SOUR{ch}:FUNC:PULS:TRAN:BOTH {value}",
        Number(8.4e-9, 1e-6),
        unit="s",
        doc="Leading and trailing edge time [unverified].",
    )
    high_level_v = Parameter(
        ":SOUR{ch}:VOLT:HIGH?",
        ":SOUR{ch}:VOLT:HIGH {value}",
        _Level(),
        unit="V",
        doc="High level [unverified].",
    )
    low_level_v = Parameter(
        ":SOUR{ch}:VOLT:LOW?",
        ":SOUR{ch}:VOLT:LOW {value}",
        _Level(),
        unit="V",
        doc="Low level [unverified].",
    )
    output_load_ohm = Parameter(
        ":OUTP{ch}:LOAD?",
        ":OUTP{ch}:LOAD {value}",
        _Load(),
        unit="ohm",
        doc="Expected load; inf for a high-impedance device.",
    )
    polarity = Parameter(
        ":OUTP{ch}:POL?",
        ":OUTP{ch}:POL {value}",
        Choice({"normal": "NORM", "inverted": "INV"}),
        doc="Output polarity, inverted about the offset [unverified].",
    )
    output_enabled = Parameter(
        ":OUTP{ch}?", ":OUTP{ch} {value}", Flag(), doc="Output on/off [unverified]."
    )
    burst_enabled = Parameter(
        ":SOUR{ch}:BURS:STAT?", ":SOUR{ch}:BURS:STAT {value}", Flag(), doc="Burst mode."
    )
    burst_mode = Parameter(
        ":SOUR{ch}:BURS:MODE?",
        ":SOUR{ch}:BURS:MODE {value}",
        Choice({"triggered": "TRIG", "gated": "GAT"}),
        doc="Triggered (N cycles) or gated burst.",
    )
    burst_cycles = Parameter(
        ":SOUR{ch}:BURS:NCYC?",
        ":SOUR{ch}:BURS:NCYC {value}",
        Number(1, 1e8, integer=True),
        doc="Pulses per burst (1 to 1e8).",
        check_errors=False,  # checked by fire(), which queries the error queue anyway
    )
    trigger_source = Parameter(
        ":TRIG{ch}:SOUR?",
        ":TRIG{ch}:SOUR {value}",
        Choice({"bus": "BUS", "immediate": "IMM", "external": "EXT", "timer": "TIM"}),
        doc="Burst trigger source.",
    )

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Bench defaults: output off, high-impedance load, pulse bursts on bus triggers."""
        self.clear_status()
        self.configure(output_enabled=False)
        self.configure(
            output_load_ohm=math.inf,
            function="pulse",
            edge_time_s=self.min_edge_s,
            burst_mode="triggered",
            trigger_source="bus",
            burst_enabled=True,
        )
        self.configure_pulse(0.0, 1e-6, 2e-6)  # idle at 0 V before the output goes on
        self.configure(output_enabled=True)

    def load_factor(self) -> float:
        """Voltage at a high-impedance device per programmed volt (2 with a 50 Ω setting)."""
        load = self.output_load_ohm.cached
        if load is None:
            load = self.output_load_ohm.get()
        return _factor(load)

    def configure_pulse(self, amplitude_v: float, width_s: float, period_s: float) -> None:
        """Pulses of ``amplitude_v`` (sign = polarity) and ``width_s``, ``period_s`` apart.

        ``amplitude_v`` is the voltage at the (high-impedance) device: it and the width are
        checked against the safe limits before any I/O; the programmed levels account for
        the load setting. Only settings that change are sent, in an order the instrument
        accepts, as one program message with one error check. A level or polarity change
        while the output is on is bracketed by ``OUTP OFF`` ... ``OUTP ON``, so whatever
        the output is connected to never sees the intermediate levels (the bench also
        opens its relays first).
        """
        self.limits.check("voltage", amplitude_v, self.resource, "pulse amplitude")
        self.limits.check("width", width_s, self.resource, "pulse width")
        factor = self.load_factor()
        level = amplitude_v / factor
        high, low = (level, 0.0) if amplitude_v >= 0 else (0.0, level)
        if high <= low:  # a 0 V pulse still needs high > low
            high = low + 1e-3
        polarity = "normal" if amplitude_v >= 0 else "inverted"
        width = self.pulse_width_s.validate(width_s)
        period = self.pulse_period_s.validate(max(period_s, width + 2 * self.min_pulse_width_s))
        for name, value in (("high_level_v", high), ("low_level_v", low)):
            self.parameter(name).validate(value)
        commands = self._ordered(("high_level_v", high), ("low_level_v", low))
        commands += self._ordered(("pulse_period_s", period), ("pulse_width_s", width))
        pol = self.polarity
        if pol.cached != polarity:
            commands.append((pol, polarity))
        if not commands:
            return
        releveled = any(p.name in ("high_level_v", "low_level_v", "polarity") for p, _ in commands)
        if releveled and self.output_enabled.cached is True:
            # between these commands the output passes through intermediate levels (a
            # polarity flip briefly puts -V on the idle output): keep it off meanwhile
            out = self.output_enabled
            commands = [(out, False), *commands, (out, True)]
        message = self.write_all([p.command(v) for p, v in commands])
        try:
            self.check_errors(message)
        except Exception:
            for p, _ in commands:
                self._cache.pop(p.name, None)
            raise
        for p, v in commands:
            self._cache[p.name] = v

    def _ordered(self, upper: tuple, lower: tuple) -> list:
        """Changes of an (upper, lower) pair, ordered so that upper > lower holds throughout.

        Upper first works when the new upper exceeds the present lower; otherwise the new
        upper is below the present lower, so the lower goes first.
        """
        up, lo = self.parameter(upper[0]), self.parameter(lower[0])
        up_new, lo_new = up.validate(upper[1]), lo.validate(lower[1])
        up_now = up.cached if up.cached is not None else up.get()  # the order needs them
        lo_now = lo.cached if lo.cached is not None else lo.get()
        changes = []
        if not _close(up_now, up_new):
            changes.append((up, up_new))
        if not _close(lo_now, lo_new):
            changes.append((lo, lo_new))
        if len(changes) == 2 and not up_new > lo_now:
            changes.reverse()  # move the lower value first
        return changes

    def fire(self, n: int) -> None:
        """Trigger a burst of ``n`` pulses and return when it is complete (error-checked)."""
        self.burst_cycles.ensure(n)
        period = self.pulse_period_s.cached or 1e-3
        with self.timeout(n * period + 10.0):
            reply = self.query("*TRG;*WAI;:SYST:ERR?")
        self.raise_reply_error(f"*TRG (burst of {n})", reply)

    def output_off(self) -> None:
        self.configure(output_enabled=False)


def _close(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= 1e-12 * max(abs(float(a)), abs(float(b)), 1e-30)
