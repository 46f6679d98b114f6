"""Keysight (Agilent) B2900-series source/measure unit (B2901A/B2902A/B2911A/B2912A), SCPI.

One channel per driver object (``channel`` 1 or 2). The SMU sources a voltage and measures
current: spot reads, repeated reads (``:READ:ARR:CURR?``), list sweeps (a hardware-timed
sequence of levels with one measurement per level, fetched as one binary block) and
SMU pulses. Every level is checked against the driver's :class:`~.base.SafeLimits` before
it is written.

Commands and where they were checked (B2900 SCPI Command Reference, Edition 2, part
B2910-90030, and B2900 User's Guide; B2961A/B2962A SCPI Command Reference, Edition 6, for
commands shared by the family). Commands marked [unverified] follow the family's syntax
and public drivers, but their page could not be read. The manuals are listed in
``instruments/MANUALS.md``.

Models (B2900 User's Guide Ed. 5, Tables 2-4 and 2-5): every B2901A/B2902A/B2911A/B2912A
sources up to ±210 V and ±3.03 A DC (±1.515 A above 6 V, ±105 mA above 21 V); the 10 nA
measurement range exists on the B2911A/B2912A only, which this driver never selects (it
measures in autorange). So the declared ranges hold for the whole family; the identified
model is reported in errors and snapshots.

Immediate and triggered levels (SCPI ref. 4-93): ``:SOUR:VOLT`` changes the output at once;
``:SOUR:VOLT:TRIG`` is where the output goes when the transient trigger of an ``:INIT``
(or of ``:READ``, which is ``:INIT`` + ``:FETC``) arrives. A read therefore sets *both*
to the read level: with only the immediate level set, a read after a pulse would apply
the pulse peak (still the triggered level) to the device.

================================================  ===============================================
``:SOUR{c}:VOLT <v>``                             verified (SCPI ref. 4-93, level, default 0)
``:SOUR{c}:VOLT:TRIG <v>``                        verified (SCPI ref. 4-93: the level the output
                                                  moves to on a transient trigger, default 0;
                                                  the pulse peak in pulse mode)
``:SOUR{c}:VOLT:RANG <v>``                        verified (SCPI ref. 4-95)
``:SOUR{c}:LIST:VOLT <v,...>`` / ``:POIN?``       verified (SCPI ref. 4-105: at most 2500 values)
``:SENS{c}:CURR:APER <s>``                        verified (SCPI ref. 4-73: 8e-6 to 2 s)
``:SENS{c}:CURR:PROT:TRIP?``                      verified (B2961A ref. 4-91: 1 in compliance)
``:FORM:DATA ASC|REAL,32|REAL,64``, ``:FORM:BORD`` verified (B2961A ref. 4-19)
``:MEAS:CURR? (@c)``                              verified (SCPI ref. 4-45, spot measurement)
``:READ:ARR:CURR? (@c)``                          verified (SCPI ref. 4-68 ``:READ:ARR?``;
                                                  ``:READ:ARR:CURR?`` example in B2961A ref.)
pulse width 50 µs to 100000 s                     verified (User's Guide 6-7)
trigger sources AINT, BUS, TIM                    verified (User's Guide 6-27)
``:SENS{c}:CURR:PROT <a>`` (compliance)           [unverified] (B2961A uses ``:PROT:POS``)
``:SOUR{c}:FUNC:MODE``, ``:FUNC:SHAP``            [unverified]
``:SOUR{c}:VOLT:MODE FIX|LIST|SWE``               [unverified]
``:SOUR{c}:PULS:WIDT``, ``:PULS:DEL``             [unverified]
``:TRIG{c}:SOUR``, ``:COUN``, ``:TIM``, ``:ACQ:DEL``  [unverified]
``:SENS{c}:FUNC "CURR"``, ``:CURR:RANG:AUTO``     [unverified]
``:OUTP{c} ON|OFF``                               [unverified]
``:OUTP{c}:ON:AUTO ON|OFF``                       verified (B2961A ref. 4-67: :INIT/:READ turn
                                                  the output on; default ON)
================================================  ===============================================
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from instruments.drivers.base import (
    Choice,
    Flag,
    Number,
    Parameter,
    ScpiInstrument,
    SettingError,
    format_number,
)
from instruments.visa_transport import InstrumentError

__all__ = ["KeysightB2900"]

_DTYPES = {
    ("real32", "swapped"): "<f4",
    ("real32", "normal"): ">f4",
    ("real64", "swapped"): "<f8",
    ("real64", "normal"): ">f8",
}
NO_DATA = 9.9e37  # the SMU answers +9.91E+37 (ASCII) or NaN (binary) for "no data"


class KeysightB2900(ScpiInstrument):
    """A B2900-series SMU channel: voltage source, current measurement."""

    models = ("B290", "B291")
    family = "Keysight B2900-series SMU"

    #: shortest list step (s) the bench uses: aperture plus settling (conservative)
    min_list_step_s: ClassVar[float] = 50e-6
    #: longest list (SCPI ref. 4-105)
    max_list_points: ClassVar[int] = 2500
    #: shortest SMU pulse (User's Guide 6-7)
    min_pulse_width_s: ClassVar[float] = 50e-6

    source_function = Parameter(
        ":SOUR{ch}:FUNC:MODE?",
        ":SOUR{ch}:FUNC:MODE {value}",
        Choice({"voltage": "VOLT", "current": "CURR"}),
        doc="Source function [unverified].",
    )
    source_shape = Parameter(
        ":SOUR{ch}:FUNC:SHAP?",
        ":SOUR{ch}:FUNC:SHAP {value}",
        Choice({"dc": "DC", "pulse": "PULS"}),
        doc="DC or pulsed output [unverified].",
    )
    voltage_mode = Parameter(
        ":SOUR{ch}:VOLT:MODE?",
        ":SOUR{ch}:VOLT:MODE {value}",
        Choice({"fixed": "FIX", "list": "LIST", "sweep": "SWE"}),
        doc="Fixed level, list sweep or staircase sweep [unverified].",
    )
    source_voltage_v = Parameter(
        ":SOUR{ch}:VOLT?",
        ":SOUR{ch}:VOLT {value}",
        Number(-210, 210, limit="voltage"),
        unit="V",
        doc="DC level; the base level in pulse mode.",
    )
    pulse_peak_v = Parameter(
        ":SOUR{ch}:VOLT:TRIG?",
        ":SOUR{ch}:VOLT:TRIG {value}",
        Number(-210, 210, limit="voltage"),
        unit="V",
        doc="Level after a trigger; the peak level in pulse mode.",
    )
    voltage_range_v = Parameter(
        ":SOUR{ch}:VOLT:RANG?",
        ":SOUR{ch}:VOLT:RANG {value}",
        Number(0, 210),
        unit="V",
        doc="Source range.",
    )
    pulse_width_s = Parameter(
        ":SOUR{ch}:PULS:WIDT?",
        ":SOUR{ch}:PULS:WIDT {value}",
        Number(50e-6, 1e5, limit="width"),
        unit="s",
        doc="SMU pulse width (50 µs to 100000 s).",
    )
    pulse_delay_s = Parameter(
        ":SOUR{ch}:PULS:DEL?",
        ":SOUR{ch}:PULS:DEL {value}",
        Number(0, 99999.9),
        unit="s",
        doc="Delay from trigger to pulse [unverified].",
    )
    current_compliance_a = Parameter(
        ":SENS{ch}:CURR:PROT?",
        ":SENS{ch}:CURR:PROT {value}",
        Number(1e-9, 3.03, limit="current"),
        unit="A",
        doc="Current compliance of the voltage source [unverified].",
    )
    current_autorange = Parameter(
        ":SENS{ch}:CURR:RANG:AUTO?",
        ":SENS{ch}:CURR:RANG:AUTO {value}",
        Flag(),
        doc="Automatic current measurement range [unverified].",
    )
    sense_function = Parameter(
        None,
        ":SENS{ch}:FUNC {value}",
        Choice({"current": '"CURR"'}),
        doc="Measured quantity (write-only here) [unverified].",
    )
    aperture_s = Parameter(
        ":SENS{ch}:CURR:APER?",
        ":SENS{ch}:CURR:APER {value}",
        Number(8e-6, 2),
        unit="s",
        doc="Integration time of one measurement (8 µs to 2 s).",
    )
    trigger_source = Parameter(
        ":TRIG{ch}:SOUR?",
        ":TRIG{ch}:SOUR {value}",
        Choice({"auto": "AINT", "bus": "BUS", "timer": "TIM"}),
        doc="Trigger source of source and measurement [unverified].",
    )
    trigger_count = Parameter(
        ":TRIG{ch}:COUN?",
        ":TRIG{ch}:COUN {value}",
        Number(1, 100000, integer=True),
        doc="Triggers per INIT: points of a list or repeated read [unverified].",
    )
    trigger_timer_s = Parameter(
        ":TRIG{ch}:TIM?",
        ":TRIG{ch}:TIM {value}",
        Number(1e-5, 1e5),
        unit="s",
        doc="Interval of the TIMer trigger: one list step [unverified].",
    )
    acquire_delay_s = Parameter(
        ":TRIG{ch}:ACQ:DEL?",
        ":TRIG{ch}:ACQ:DEL {value}",
        Number(0, 100),
        unit="s",
        doc="Delay from trigger to measurement [unverified].",
    )
    output_enabled = Parameter(
        ":OUTP{ch}?", ":OUTP{ch} {value}", Flag(), doc="Output relay [unverified]."
    )
    auto_output_on = Parameter(
        ":OUTP{ch}:ON:AUTO?",
        ":OUTP{ch}:ON:AUTO {value}",
        Flag(),
        doc="Automatic output on: :INIT and :READ switch the output on (B2961A/B2962A SCPI "
        "ref. 4-67, default ON); off after prepare().",
    )
    data_format = Parameter(
        ":FORM:DATA?",
        ":FORM:DATA {value}",
        Choice({"ascii": "ASC", "real32": "REAL,32", "real64": "REAL,64"}),
        doc="Format of measurement data.",
    )
    byte_order = Parameter(
        ":FORM:BORD?",
        ":FORM:BORD {value}",
        Choice({"normal": "NORM", "swapped": "SWAP"}),
        doc="Byte order of binary data (swapped = little-endian).",
    )

    @property
    def model(self) -> str:
        """The model named in ``*IDN?`` (second field), e.g. ``B2902A``."""
        parts = [p.strip() for p in self.idn.split(",")]
        return parts[1] if len(parts) > 1 else ""

    def fields(self) -> dict:
        return {"ch": self.channel, "chanlist": f"(@{self.channel})"}

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Bench defaults: clear errors, little-endian float32 data, voltage source, and
        automatic output on disabled.

        With ``:OUTP:ON:AUTO`` on (the default, B2961A/B2962A SCPI ref. 4-67) an ``:INIT``
        or ``:READ`` switches an output that is off on, at the triggered level, onto
        whatever the switch routes. Every operation of this driver switches the output on
        itself (:meth:`configure_read`, :meth:`list_sweep`, :meth:`pulse`), so with it off
        a read while the output is off fails with the instrument's error instead.
        """
        self.clear_status()
        self.configure(
            data_format="real32",
            byte_order="swapped",
            source_function="voltage",
            sense_function="current",
            current_autorange=True,
            auto_output_on=False,
        )

    def limit_current(self, compliance_a: float) -> None:
        """Set the current compliance (before any output is switched on)."""
        self.configure(current_compliance_a=compliance_a)

    def configure_read(self, v_read_v: float, compliance_a: float, aperture_s: float) -> None:
        """DC level ``v_read_v`` with current compliance, measurements of ``aperture_s``.

        Sets the immediate *and* the triggered level (SCPI ref. 4-93): ``:READ`` initiates
        a transient trigger, which moves the output to the triggered level. The level is
        held between reads, so it must be within the DC (read) limit.
        """
        self.limits.check("dc", v_read_v, self.resource, "read level (held)")
        self.configure(
            source_shape="dc",
            voltage_mode="fixed",
            current_compliance_a=compliance_a,
            source_voltage_v=v_read_v,
            pulse_peak_v=v_read_v,
            aperture_s=aperture_s,
            trigger_source="auto",
            acquire_delay_s=0.0,
            output_enabled=True,
        )

    def output_off(self) -> None:
        self.configure(output_enabled=False)

    # ------------------------------------------------------------------ measurements
    def read_currents(self, n: int = 1) -> np.ndarray:
        """``n`` back-to-back measurements at the present level (A), one round trip."""
        self.configure(trigger_count=n)
        return self._fetch(":READ:ARR:CURR? {chanlist}", n)

    def measure_current(self) -> float:
        """One spot measurement (A)."""
        return float(self._fetch(":MEAS:CURR? {chanlist}", 1)[0])

    def compliance_tripped(self) -> bool:
        """Whether the source is in current compliance now."""
        return Flag().parse(self.query(self.render(":SENS{ch}:CURR:PROT:TRIP?")))

    def list_points(self) -> int:
        return int(float(self.query(self.render(":SOUR{ch}:LIST:VOLT:POIN?"))))

    def list_sweep(
        self, levels_v: np.ndarray, step_s: float, compliance_a: float, aperture_s: float
    ) -> np.ndarray:
        """Hardware-timed list: each level held ``step_s``, current measured at its end.

        Returns the currents (A), one per level. Every level is checked against the safe
        limits and the instrument's range, and what the device sees (consecutive points
        at one level are one continuous hold) against the pulse width limit, before
        anything is sent (:meth:`~.base.SafeLimits.check_holds`).
        """
        levels = np.asarray(levels_v, dtype=float).ravel()
        if not 1 <= levels.size <= self.max_list_points:
            raise SettingError(
                self.resource,
                "list sweep",
                f"{levels.size} points; the list holds 1 to {self.max_list_points}",
            )
        param = self.source_voltage_v
        tokens = [format_number(param.validate(v)) for v in levels]
        step = float(self.trigger_timer_s.validate(step_s))
        self.limits.check_holds(levels, step, self.resource, "list sweep")
        aperture = min(float(aperture_s), 0.5 * step)
        self.configure(
            source_shape="dc",
            current_compliance_a=compliance_a,
            aperture_s=aperture,
            trigger_source="timer",
            trigger_timer_s=step,
            trigger_count=levels.size,
            acquire_delay_s=max(0.9 * step - aperture, 0.0),
            voltage_mode="list",
            output_enabled=True,
        )
        self.write(self.render(":SOUR{ch}:LIST:VOLT ") + ",".join(tokens))
        with self.timeout(levels.size * step + 10.0):
            currents = self._fetch(":READ:ARR:CURR? {chanlist}", levels.size)
        self.check_errors("list sweep")
        return currents

    def pulse(
        self,
        peak_v: float,
        width_s: float,
        count: int,
        compliance_a: float,
        base_v: float = 0.0,
        period_s: float = 0.0,
    ) -> None:
        """``count`` SMU pulses of ``peak_v`` (from ``base_v``) and ``width_s``, ``period_s`` apart.

        The pulses are timer-triggered so the device sees the period asked for (0: twice
        the width, a 50 % duty cycle); with the AINT trigger they would follow each other
        as fast as the SMU can. The peak is the triggered level (SCPI ref. 4-93), so it
        stays the triggered level afterwards: :meth:`configure_read` resets it.
        """
        period = period_s if period_s > 0 else 2.0 * width_s
        self.configure(
            source_shape="pulse",
            voltage_mode="fixed",
            current_compliance_a=compliance_a,
            source_voltage_v=base_v,
            pulse_peak_v=peak_v,
            pulse_width_s=width_s,
            pulse_delay_s=0.0,
            trigger_source="timer",
            trigger_count=count,
            trigger_timer_s=period,
            output_enabled=True,
        )
        with self.timeout(count * period + 10.0):
            reply = self.query(self.render(":INIT {chanlist};*OPC?"))
        if reply.strip() != "1":
            raise InstrumentError(self.resource, ":INIT;*OPC?", f"unexpected reply {reply!r}")

    # ------------------------------------------------------------------ data
    def _fetch(self, template: str, n: int) -> np.ndarray:
        """Measurement data of ``n`` points in the present data format, as float64."""
        command = self.render(template)
        fmt = self.data_format.cached or self.data_format.get()
        if fmt == "ascii":
            reply = self.query(command)
            try:
                data = np.array([float(x) for x in reply.split(",")], dtype=float)
            except ValueError:
                errors = "; ".join(self.errors())
                raise InstrumentError(
                    self.resource, command, errors or f"unexpected reply {reply[:60]!r}"
                ) from None
        else:
            order = self.byte_order.cached or self.byte_order.get()
            data = self.transport.query_block(command, _DTYPES[fmt, order]).astype(float)
        if data.size != n:
            raise InstrumentError(self.resource, command, f"expected {n} values, got {data.size}")
        if not np.all(np.isfinite(data)) or np.any(np.abs(data) >= NO_DATA):
            raise InstrumentError(self.resource, command, "the SMU returned 'no data'")
        return data
