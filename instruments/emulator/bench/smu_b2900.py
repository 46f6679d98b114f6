"""Virtual Keysight B2901A SMU (one channel): the SCPI subset the bench driver uses.

It sources a voltage on the bench's SMU input and measures the current through whatever
devices the switch routes there: I = V·ΣG + read noise (the device array's read noise,
scaled by V). Readings beyond the current compliance are clamped to it and set the
compliance state (``:SENS:CURR:PROT:TRIP?``). A measurement holds the level on the devices
for its duration, so a level above the devices' switching threshold programs them: that is
how a list sweep applies pulses. Timing: with the TIMer trigger each point lasts the timer
interval (which must hold the acquire delay plus the aperture); otherwise a point lasts
acquire delay + aperture + 20 µs. Pulse shape: each point is a pulse of the triggered
level and the pulse width, measured at its end. Data come back as ASCII (``+1.234560E-05``)
or as IEEE blocks per ``:FORM:DATA``/``:FORM:BORD``.

Immediate and triggered levels (B2900 SCPI Command Reference Ed. 2, 4-93): ``:SOUR:VOLT``
changes the output at once; ``:SOUR:VOLT:TRIG`` is stored (0 V after power-on and
``*RST``) and becomes the output when a transient trigger arrives. ``:INIT`` and ``:READ``
(``:INIT`` + ``:FETC``) trigger the transient, so in DC fixed mode they measure at the
triggered level and the output stays there afterwards (the immediate level becomes the
triggered one); ``:MEAS`` is a spot measurement at the present output. In pulse shape the
triggered level is the peak and the immediate level the base the output returns to. With
the output on, the present level stays on the routed devices between triggers
(:meth:`~instruments.emulator.bench.bench.VirtualBench.hold`).
"""

from __future__ import annotations

import numpy as np

from instruments.emulator.bench.device import ScpiDevice, nr3, parse_chanlist, short_choice
from instruments.emulator.scpi import (
    BlockReply,
    ScpiError,
    block_reply,
    parse_bool,
    parse_choice,
    parse_float,
    parse_int,
)

__all__ = ["VirtualB2900"]

OVERHEAD_S = 20e-6  # per measurement point outside the timer trigger
SOURCE = "smu:B2900"
LINE_FREQUENCY_HZ = 50.0
MAX_LIST = 2500


def _num(lo: float, hi: float, name: str):
    return lambda arg: parse_float(arg, name, lo, hi)


def _choice(name: str, choices: tuple[str, ...]):
    return lambda arg: short_choice(arg, name, choices)


class VirtualB2900(ScpiDevice):
    idn = "Keysight Technologies,B2901A,EMU00001,3.4.2011.5100"

    def reset(self) -> None:
        self.function = "VOLT"
        self.shape = "DC"
        self.mode = "FIX"
        self.level = 0.0
        self.triggered_level = 0.0
        self.range = 2.0
        self.pulse_width = 1e-4
        self.pulse_delay = 0.0
        self.compliance = 1e-4
        self.autorange = True
        self.sense = '"CURR"'
        self.aperture = 0.1 / LINE_FREQUENCY_HZ
        self.trigger_source = "AINT"
        self.count = 1
        self.timer = 1e-4
        self.acquire_delay = 0.0
        self.transient_delay = 0.0
        self.output = False
        self.data_format = "ASC"
        self.byte_order = "NORM"
        self.list_levels = np.zeros(1)
        self.data = np.zeros(0)
        self.tripped = False
        self._reset_peer()

    def register(self) -> None:
        s = self.setting
        s(":SOURce{c}:FUNCtion:MODE", "function", _choice("function", ("VOLTage", "CURRent")))
        s(":SOURce{c}:FUNCtion:SHAPe", "shape", _choice("shape", ("DC", "PULSe")))
        s(":SOURce{c}:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "level", _num(-210, 210, "level"))
        s(
            ":SOURce{c}:VOLTage[:LEVel]:TRIGgered[:AMPLitude]",
            "triggered_level",
            _num(-210, 210, "triggered level"),
        )
        s(":SOURce{c}:VOLTage:MODE", "mode", _choice("mode", ("FIXed", "LIST", "SWEep")))
        s(":SOURce{c}:VOLTage:RANGe", "range", _num(0, 210, "range"))
        s(":SOURce{c}:PULSe:WIDTh", "pulse_width", _num(50e-6, 1e5, "pulse width"))
        s(":SOURce{c}:PULSe:DELay", "pulse_delay", _num(0, 99999.9, "pulse delay"))
        s(":SENSe{c}:CURRent[:DC]:PROTection[:LEVel]", "compliance", _num(1e-9, 3.03, "limit"))
        s(":SENSe{c}:CURRent[:DC]:APERture", "aperture", _num(8e-6, 2, "aperture"))
        s(":SENSe{c}:CURRent[:DC]:RANGe:AUTO", "autorange", lambda a: parse_bool(a, "autorange"))
        s(":TRIGger{c}[:ALL]:SOURce", "trigger_source", _choice("source", ("AINT", "BUS", "TIMer")))
        s(":TRIGger{c}[:ALL]:COUNt", "count", lambda a: parse_int(a, "count", 1, 100000))
        s(":TRIGger{c}[:ALL]:TIMer", "timer", _num(1e-5, 1e5, "timer"))
        s(":TRIGger{c}:ACQuire:DELay", "acquire_delay", _num(0, 100, "acquire delay"))
        s(":TRIGger{c}:TRANsient:DELay", "transient_delay", _num(0, 100, "transient delay"))
        s(":OUTPut{c}[:STATe]", "output", lambda a: parse_bool(a, "output"))
        s(":FORMat:BORDer", "byte_order", _choice("byte order", ("NORMal", "SWAPped")))
        self.add(":SENSe{c}:CURRent[:DC]:NPLCycles", self._set_nplc, 1)
        self.add(":SENSe{c}:CURRent[:DC]:NPLCycles?", lambda a: nr3(self.aperture * 50), 0)
        self.add(":SENSe{c}:FUNCtion[:ON]", self._set_sense)
        self.add(":SENSe{c}:FUNCtion[:ON]?", lambda a: self.sense, 0)
        self.add(":SENSe{c}:CURRent[:DC]:PROTection:TRIPped?", lambda a: nr3(self.tripped), 0)
        self.add(":FORMat[:DATA]", self._set_format)
        self.add(":FORMat[:DATA]?", lambda a: self.data_format, 0)
        self.add(":SOURce{c}:LIST:VOLTage", self._set_list)
        self.add(":SOURce{c}:LIST:VOLTage?", lambda a: ",".join(map(nr3, self.list_levels)), 0)
        self.add(":SOURce{c}:LIST:VOLTage:POINts?", lambda a: str(self.list_levels.size), 0)
        self.add(":INITiate[:IMMediate][:ALL]", self._initiate)
        self.add(":MEASure:CURRent[:DC]?", self._measure)
        self.add(":FETCh:ARRay:CURRent[:DC]?", self._fetch)
        self.add(":READ:ARRay:CURRent[:DC]?", self._read)
        self._register_peer()

    # ------------------------------------------------------------------ settings
    def execute(self, message: bytes) -> list:
        replies = super().execute(message)
        idle = self.level if self.output else 0.0
        if idle != self.bench.held(SOURCE):
            self.bench.hold(SOURCE, self.bench.routing.smu_input, idle)
        return replies

    def _set_nplc(self, args: list) -> None:
        self.aperture = float(np.clip(parse_float(args[0], "nplc", 4e-4, 100) / 50, 8e-6, 2))

    def _set_sense(self, args: list) -> None:
        text = ",".join(a.decode() if isinstance(a, bytes) else a for a in args).upper()
        if text.strip('"') not in ("CURR", "CURRENT", "CURR:DC", "CURRENT:DC"):
            raise ScpiError(-224, "the virtual SMU measures current only")
        self.sense = '"CURR"'

    def _set_format(self, args: list) -> None:
        kind = parse_choice(args[0], "format", ("ASCii", "REAL"))
        if kind == "ASCII":
            if len(args) > 1:
                raise ScpiError(-108, "ASCii takes no length")
            self.data_format = "ASC"
            return
        bits = parse_int(args[1], "length") if len(args) > 1 else 32
        if bits not in (32, 64):
            raise ScpiError(-224, "REAL length must be 32 or 64")
        self.data_format = f"REAL,{bits}"

    def _set_list(self, args: list) -> None:
        if not args or len(args) > MAX_LIST:
            raise ScpiError(-223 if args else -109, f"a list holds 1 to {MAX_LIST} values")
        self.list_levels = np.array([parse_float(a, "list value", -210, 210) for a in args])

    # ------------------------------------------------------------------ measurements
    def _channels(self, args: list) -> None:
        if parse_chanlist(args, (1,)) != [1]:
            raise ScpiError(-224, "the B2901A has channel 1 only")

    def _levels(self, spot: bool) -> np.ndarray:
        n = 1 if spot else self.count
        if self.shape == "PULS":
            return np.full(n, self.triggered_level)
        if self.mode == "LIST" and not spot:
            if n > self.list_levels.size:
                raise ScpiError(
                    -221, f"trigger count {n} exceeds the {self.list_levels.size} list points"
                )
            return self.list_levels[:n]
        return np.full(n, self.level if spot else self.triggered_level)

    def _acquire(self, spot: bool) -> None:
        """Run a sweep (or one spot point) and keep its currents in ``self.data``."""
        if not self.output:
            if spot or not self.auto_on:
                raise ScpiError(-221, "output is off")
            self.output = True  # :OUTP:ON:AUTO (on by default): INIT and READ turn it on
        if self.function != "VOLT":
            if spot and self.shape == "DC":
                self._force_current()  # a spot reading while sourcing current
                return
            raise ScpiError(-221, "the virtual SMU sweeps and pulses voltage only")
        levels = self._levels(spot)
        timed = self.trigger_source == "TIM" and not spot
        settle = self.acquire_delay + self.aperture
        if timed and self.shape == "DC" and settle > self.timer * (1 + 1e-9):
            raise ScpiError(-221, "timer interval shorter than acquire delay + aperture")
        if timed and self.shape == "PULS" and self.pulse_delay + self.pulse_width > self.timer:
            raise ScpiError(-221, "timer interval shorter than pulse delay + pulse width")
        bench = self.bench
        bench.release(SOURCE)  # the idle level lasted until now; the acquisition takes over
        idx = bench.devices_on(bench.routing.smu_input)
        currents = np.empty(levels.size)
        for k, volts in enumerate(levels):
            t = bench.now()
            if self.shape == "PULS":
                hold = self.pulse_width
                bench.apply_voltage(idx, volts, hold, t + self.pulse_delay, SOURCE)
                t_read, step = t + self.pulse_delay + hold, self.pulse_delay + hold + OVERHEAD_S
                if self.trigger_source == "TIM":  # one pulse per timer interval
                    step = max(step, self.timer)
            else:
                step = self.timer if timed else settle + OVERHEAD_S
                bench.apply_voltage(idx, volts, step, t, SOURCE)
                t_read = t + min(settle, step)
            currents[k] = bench.current(idx, volts, t_read)
            bench.clock.advance(step)
        bench.restart(SOURCE)
        if not spot and self.shape == "DC" and self.mode == "FIX":
            self.level = self.triggered_level  # the transient moved the output there
        clamped = np.abs(currents) > self.compliance
        currents[clamped] = np.sign(currents[clamped]) * self.compliance
        self.tripped = bool(clamped[-1]) if clamped.size else False
        self.data = currents

    def _reply(self) -> str | BlockReply:
        if self.data_format == "ASC":
            return ",".join(f"{v:+.6E}" for v in self.data)
        bits = 4 if self.data_format == "REAL,32" else 8
        order = "<" if self.byte_order == "SWAP" else ">"
        return block_reply(self.data, f"{order}f{bits}")

    def _initiate(self, args: list) -> None:
        self._channels(args)
        self._acquire(spot=False)

    def _measure(self, args: list) -> str | BlockReply:
        self._channels(args)
        self._acquire(spot=True)
        return self._reply()

    def _fetch(self, args: list) -> str | BlockReply:
        self._channels(args)
        if self.data.size == 0:
            raise ScpiError(-230, "no data; INIT first")
        return self._reply()

    def _read(self, args: list) -> str | BlockReply:
        self._channels(args)
        self._acquire(spot=False)
        return self._reply()

    # ------------------------------------------------------------------ other drivers' queries
    # What QCoDeS's B2962A driver (and any B2900 program) may ask besides the bench's
    # subset (B2900 SCPI Command Reference: :SOURce:CURRent, :SENSe:VOLTage:PROTection,
    # :SENSe:REMote, :MEASure:VOLTage?, :MEASure:RESistance?).
    def _reset_peer(self) -> None:
        self.current_level = 0.0
        self.voltage_limit = 2.0
        self.remote_sense = False
        self.forced_volts = 0.0
        self.auto_on = True

    def _register_peer(self) -> None:
        s = self.setting
        s(
            ":SOURce{c}:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            "current_level",
            _num(-3.03, 3.03, "current level"),
        )
        s(":SENSe{c}:VOLTage[:DC]:PROTection[:LEVel]", "voltage_limit", _num(0.2, 210, "limit"))
        s(":SENSe{c}:REMote", "remote_sense", lambda a: parse_bool(a, "remote sense"))
        s(":OUTPut{c}:ON:AUTO", "auto_on", lambda a: parse_bool(a, "automatic output on"))
        self.add(":MEASure:VOLTage[:DC]?", self._measure_voltage)
        self.add(":MEASure:RESistance?", self._measure_resistance)

    def _force_current(self) -> None:
        """Source ``current_level`` into the routed devices for one reading: they drop
        V = I/ΣG unless the voltage limit holds it (then I = V·ΣG); nothing routed: the
        limit. The devices see that voltage for the acquire delay plus the aperture."""
        bench = self.bench
        bench.release(SOURCE)
        idx = bench.devices_on(bench.routing.smu_input)
        t = bench.now()
        g = bench.current(idx, 1.0, t) if idx.size else 0.0  # ΣG read with its noise
        sign = 1.0 if self.current_level >= 0 else -1.0
        want = self.current_level / g if g > 0 else sign * np.inf
        limited = abs(want) > self.voltage_limit
        volts = sign * self.voltage_limit if limited else float(want)
        step = self.acquire_delay + self.aperture + OVERHEAD_S
        bench.apply_voltage(idx, volts, step, t, SOURCE)
        bench.clock.advance(step)
        bench.restart(SOURCE)
        self.forced_volts = volts
        self.data = np.array([volts * g if limited else self.current_level])

    def _spot(self, args: list) -> tuple[float, float]:
        """One spot measurement: (volts at the output, amps). With the current limit reached
        the output voltage is what the limit lets the routed devices drop."""
        self._channels(args)
        self._acquire(spot=True)
        amps = float(self.data[-1])
        if self.function == "CURR":
            return self.forced_volts, amps
        volts = self.level
        if self.tripped:
            bench = self.bench
            g = float(np.sum(bench.array.conductance(bench.devices_on(bench.routing.smu_input))))
            volts = float(np.sign(self.level)) * min(abs(self.level), self.compliance / g)
        return volts, amps

    def _one(self, value: float) -> str | BlockReply:
        if self.data_format == "ASC":
            return f"{value:+.6E}"
        order = "<" if self.byte_order == "SWAP" else ">"
        return block_reply(
            np.array([value]), f"{order}f{4 if self.data_format == 'REAL,32' else 8}"
        )

    def _measure_voltage(self, args: list) -> str | BlockReply:
        return self._one(self._spot(args)[0])

    def _measure_resistance(self, args: list) -> str | BlockReply:
        volts, amps = self._spot(args)
        return self._one(volts / amps if amps else 9.91e37)  # SCPI NaN for an open circuit
