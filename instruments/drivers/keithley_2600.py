"""Keithley 2600B-series System SourceMeter (2601B ... 2636B), TSP (Lua) command set.

Commands are Lua statements on the SMU channel object (``smua``/``smub``); values are read
back with ``print(...)``. Several statements go in one line separated by ``;``. Data come
back as ASCII (``format.data = format.ASCII``): the binary ``printbuffer`` output is an
indefinite ``#0`` block that the shared transport does not read, and bench loops move at
most a few thousand values per device.

Commands and where they were checked (Series 2600B Reference Manual, 2600BS-901-01 Rev. C
2016 and Rev. F 2021; [unverified]: syntax of the family, page not read):

====================================================  ==========================================
``smuX.source.levelv``, ``smuX.source.limiti``          verified (Rev. F 9-244: limit 10 nA-3 A,
                                                        100 pA on 2634B-2636B)
``smuX.source.compliance`` (true/false)                 verified (Rev. F 9-240)
``smuX.reset()``                                        verified (2606B manual example)
``errorqueue.count``, ``errorqueue.next()``             verified (Rev. B E-3: code, message,
                                                        severity, node; 0 "Queue Is Empty")
``errorqueue.clear()``                                  verified (Rev. B E-3)
``printbuffer(i, j, buf)``; ``format.data``,            verified (Rev. C 7-167; 2600A 19-61:
``format.asciiprecision`` (1 to 16)                     ASCII "4.07205e-05, 4.10966e-05, ...")
``SweepVListMeasureI(smu, vlist, stime, points)``       verified (Rev. F 9-364: readings in
                                                        ``smuX.nvbuffer1``)
``PulseVMeasureI(smu, bias, level, ton, toff, points)`` verified (2600 Rev. C 13-4)
``smuX.nvbuffer1.clear()``, ``.readings``, ``.n``       verified (Rev. C 7-36, buffer attributes)
``smuX.source.func = smuX.OUTPUT_DCVOLTS``              [unverified] (constant printed as 1)
``smuX.source.output = smuX.OUTPUT_ON``                 [unverified] (constant printed as 1)
``smuX.source.rangev``                                   verified (Rev. C 7-247: a fixed range
                                                        large enough; reads its full scale)
``smuX.measure.nplc``                                   [unverified] (nplc 0.001 to 25)
``smuX.measure.autorangei = smuX.AUTORANGE_ON``         [unverified]
``smuX.measure.count``, ``smuX.measure.i(buffer)``      [unverified]
``print(smuX.measure.i())``                             [unverified] (QCoDeS/PyMeasure usage)
``localnode.linefreq``                                  [unverified]
====================================================  ==========================================

Model ranges (2600B datasheet and Reference Manual Rev. F 9-244, ``smuX.source.limiti``):
2601B/2602B/2604B source up to ±40 V (40.4 V full scale) and 3 A; 2611B/2612B/2614B and
2634B/2635B/2636B up to ±200 V (202 V) and 1.5 A; the 100 pA current limit exists on
2634B-2636B only (10 nA elsewhere). The driver takes them from the ``*IDN?`` model; an
unknown 26xx model gets the narrowest (2601B) ranges.

``PulseVMeasureI`` (2600 Reference Manual Rev. C, 13-4, KIPulse factory script): bias for
``toff``, then per point the level for ``ton``, a current measurement *at the level*
(``smuX.measure.nplc`` / line frequency), the bias for ``toff``. The device therefore
sees the level for ``ton`` plus the measurement: :meth:`Keithley2600.pulse` measures at
the shortest integration (0.001 NPLC) and subtracts it from the requested width.
The manuals are listed in ``instruments/MANUALS.md``.
"""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np

from instruments.drivers.base import (
    Choice,
    Flag,
    Instrument,
    Number,
    Parameter,
    SettingError,
    format_number,
)
from instruments.visa_transport import InstrumentError, tsp_error_entry

__all__ = ["MODEL_RANGES", "Keithley2600"]

#: (max |V| source, min current limit, max current limit) per model family
MODEL_RANGES = {
    "260": (40.4, 10e-9, 3.03),  # 2601B, 2602B, 2604B
    "261": (202.0, 10e-9, 1.515),  # 2611B, 2612B, 2614B
    "263": (202.0, 100e-12, 1.515),  # 2634B, 2635B, 2636B
}
PULSE_NPLC = 0.001  # shortest integration, used for the measurement inside a pulse


def parse_numbers(reply: str) -> np.ndarray:
    """ASCII ``printbuffer``/``print`` output (comma or tab separated) as float64."""
    return np.array([float(x) for x in reply.replace("\t", ",").split(",") if x.strip()])


class Keithley2600(Instrument):
    """One channel (``"a"`` or ``"b"``) of a 2600B SourceMeter: voltage source, current meter."""

    models = ("Model 26",)
    family = "Keithley 2600B-series SourceMeter"
    dialect = "tsp"

    #: shortest list step (s): settling time plus a 0.001-NPLC measurement (conservative)
    min_list_step_s: ClassVar[float] = 100e-6
    #: values per ``SweepVListMeasureI`` call (keeps one command line below ~24 kB)
    max_list_points: ClassVar[int] = 2000
    #: shortest ``PulseVMeasureI`` on-time used by the bench [unverified]
    min_pulse_width_s: ClassVar[float] = 100e-6

    source_function = Parameter(
        "print({ch}.source.func)",
        "{ch}.source.func = {value}",
        Choice(
            {"voltage": "{ch}.OUTPUT_DCVOLTS", "current": "{ch}.OUTPUT_DCAMPS"},
            replies={"1": "voltage", "0": "current"},
        ),
        doc="Source function [unverified constants].",
    )
    source_voltage_v = Parameter(
        "print({ch}.source.levelv)",
        "{ch}.source.levelv = {value}",
        Number(-200, 200, limit="voltage"),
        unit="V",
        doc="Voltage source level.",
    )
    voltage_range_v = Parameter(
        "print({ch}.source.rangev)",
        "{ch}.source.rangev = {value}",
        Number(0, 200),
        unit="V",
        doc="Voltage source range: the instrument picks a fixed range large enough for the "
        "value and reads back its full scale (Rev. C 7-247; 2 V -> 6 V on a 2601B), so "
        "the cache holds the range read back after a set.",
        readback=True,
    )
    current_limit_a = Parameter(
        "print({ch}.source.limiti)",
        "{ch}.source.limiti = {value}",
        Number(1e-10, 3, limit="current"),
        unit="A",
        doc="Current compliance of the voltage source.",
    )
    nplc = Parameter(
        "print({ch}.measure.nplc)",
        "{ch}.measure.nplc = {value}",
        Number(0.001, 25),
        doc="Integration time in power-line cycles [unverified].",
    )
    current_autorange = Parameter(
        "print({ch}.measure.autorangei)",
        "{ch}.measure.autorangei = {value}",
        Flag("{ch}.AUTORANGE_ON", "{ch}.AUTORANGE_OFF"),
        doc="Automatic current range [unverified].",
    )
    measure_count = Parameter(
        "print({ch}.measure.count)",
        "{ch}.measure.count = {value}",
        Number(1, 60000, integer=True),
        doc="Readings per measure call [unverified].",
    )
    output_enabled = Parameter(
        "print({ch}.source.output)",
        "{ch}.source.output = {value}",
        Flag("{ch}.OUTPUT_ON", "{ch}.OUTPUT_OFF"),
        doc="Output on/off [unverified constants].",
    )
    line_frequency_hz = Parameter(
        "print(localnode.linefreq)",
        "localnode.linefreq = {value}",
        Choice({50: "50", 60: "60"}),
        unit="Hz",
        doc="Power-line frequency, converts NPLC to seconds [unverified].",
    )
    ascii_precision = Parameter(
        "print(format.asciiprecision)",
        "format.asciiprecision = {value}",
        Number(1, 16, integer=True),
        doc="Significant digits of printed numbers.",
    )
    data_format = Parameter(
        "print(format.data)",
        "format.data = {value}",
        Choice({"ascii": "format.ASCII"}, replies={"1": "ascii"}),
        doc="Output format; only ASCII is read by this driver.",
    )

    def __init__(self, transport, *, channel: str = "a", **kwargs) -> None:
        if channel not in ("a", "b"):
            raise ValueError(f"2600B channel must be 'a' or 'b', got {channel!r}")
        super().__init__(transport, channel=channel, **kwargs)
        found = re.search(r"Model\s+(26\d\d[A-Z]?)", transport.idn)
        self._model = found.group(1) if found else ""
        family = self._model[:3]
        self._ranges = MODEL_RANGES.get(family, MODEL_RANGES["260"])

    @property
    def model(self) -> str:
        return self._model

    def range_of(self, name: str) -> tuple[float, float] | None:
        volts, i_min, i_max = self._ranges
        return {
            "source_voltage_v": (-volts, volts),
            "voltage_range_v": (0.0, volts),
            "current_limit_a": (i_min, i_max),
        }.get(name)

    def fields(self) -> dict:
        return {"ch": f"smu{self.channel}"}

    # ------------------------------------------------------------------ errors
    def errors(self) -> list[str]:
        """Drain ``errorqueue``: entries as ``"code, message"``."""
        count = int(float(self.query("print(errorqueue.count)")))
        found = []
        for _ in range(min(count, 64)):
            found.append(tsp_error_entry(self.query("print(errorqueue.next())")))
        return found

    def reset(self) -> None:
        """``smuX.reset()``: the channel's defaults; the cache is forgotten."""
        self.write(self.render("{ch}.reset()"))
        self.invalidate_cache()

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Bench defaults: empty error queue, ASCII data, voltage source, autorange."""
        self.write("errorqueue.clear()")
        self.configure(
            data_format="ascii",
            ascii_precision=7,
            source_function="voltage",
            current_autorange=True,
        )

    def _nplc(self, aperture_s: float) -> float:
        freq = self.line_frequency_hz.cached or self.line_frequency_hz.get()
        return float(np.clip(aperture_s * freq, 0.001, 25.0))

    def limit_current(self, compliance_a: float) -> None:
        """Set the current compliance (before any output is switched on)."""
        self.configure(current_limit_a=compliance_a)

    def configure_read(self, v_read_v: float, compliance_a: float, aperture_s: float) -> None:
        """DC level ``v_read_v`` with current compliance, measurements of ``aperture_s``."""
        self.limits.check("dc", v_read_v, self.resource, "read level (held)")
        self.configure(
            current_limit_a=compliance_a,
            source_voltage_v=v_read_v,
            nplc=self._nplc(aperture_s),
            output_enabled=True,
        )

    def output_off(self) -> None:
        self.configure(output_enabled=False)

    # ------------------------------------------------------------------ measurements
    def read_currents(self, n: int = 1) -> np.ndarray:
        """``n`` readings at the present level (A), one round trip."""
        self.configure(measure_count=n)
        if n == 1:
            command = self.render("print({ch}.measure.i())")
        else:
            command = self.render(
                "{ch}.nvbuffer1.clear(); {ch}.measure.i({ch}.nvbuffer1); "
                "printbuffer(1, {n}, {ch}.nvbuffer1.readings)",
                n=n,
            )
        return self._numbers(command, n)

    def measure_current(self) -> float:
        """One reading (A)."""
        return float(self.read_currents(1)[0])

    def compliance_tripped(self) -> bool:
        return Flag().parse(self.query(self.render("print({ch}.source.compliance)")))

    def list_sweep(
        self, levels_v: np.ndarray, step_s: float, compliance_a: float, aperture_s: float
    ) -> np.ndarray:
        """``SweepVListMeasureI``: each level held ``step_s`` with a reading at its end (A)."""
        levels = np.asarray(levels_v, dtype=float).ravel()
        if not 2 <= levels.size <= self.max_list_points:
            raise SettingError(
                self.resource,
                "list sweep",
                f"{levels.size} points; SweepVListMeasureI takes 2 to {self.max_list_points}",
            )
        tokens = [format_number(self.source_voltage_v.validate(v)) for v in levels]
        self.limits.check_holds(levels, step_s, self.resource, "SweepVListMeasureI")
        nplc = self._nplc(min(aperture_s, 0.5 * step_s))
        freq = self.line_frequency_hz.cached or self.line_frequency_hz.get()
        settle = step_s - nplc / freq
        if settle < 0:
            raise SettingError(self.resource, "list sweep", f"step {step_s:g} s is too short")
        self.configure(current_limit_a=compliance_a, nplc=nplc, measure_count=1)
        command = self.render(
            "SweepVListMeasureI({ch}, {{{values}}}, {settle}, {n}); "
            "printbuffer(1, {n}, {ch}.nvbuffer1.readings)",
            values=", ".join(tokens),
            settle=format_number(settle),
            n=levels.size,
        )
        self._cache.pop("source_voltage_v", None)  # the script leaves its own level
        with self.timeout(levels.size * step_s + 10.0):
            currents = self._numbers(command, levels.size)
        self.check_errors("SweepVListMeasureI")
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
        """``PulseVMeasureI``: ``count`` pulses of ``peak_v`` lasting ``width_s`` from ``base_v``.

        The script measures at the level after ``ton``, so the device sees the level for
        ``ton`` + the measurement: the measurement is the shortest one (0.001 NPLC) and
        ``ton = width_s`` minus it. ``width_s`` (the whole time at the level) is what the
        width limit checks. The off time ``toff`` is ``period_s - width_s`` (0: the width,
        a 50 % duty cycle).
        """
        peak = self.source_voltage_v.validate(peak_v)
        base = self.source_voltage_v.validate(base_v)
        self.limits.check("width", width_s, self.resource, "PulseVMeasureI (ton + measurement)")
        freq = self.line_frequency_hz.cached or self.line_frequency_hz.get()
        measure_s = PULSE_NPLC / freq
        ton = width_s - measure_s
        toff = period_s - width_s if period_s > width_s else width_s
        if width_s < self.min_pulse_width_s or count < 1:
            raise SettingError(
                self.resource, "PulseVMeasureI", f"width {width_s:g} s or count {count} too small"
            )
        self.configure(current_limit_a=compliance_a, measure_count=1, nplc=PULSE_NPLC)
        command = self.render(
            "PulseVMeasureI({ch}, {base}, {peak}, {ton}, {toff}, {n}); print({ch}.nvbuffer1.n)",
            base=format_number(base),
            peak=format_number(peak),
            ton=format_number(ton),
            toff=format_number(toff),
            n=int(count),
        )
        self._cache.pop("source_voltage_v", None)
        with self.timeout(count * (width_s + toff) + toff + 10.0):
            done = int(float(self.query(command)))
        if done != count:
            raise InstrumentError(self.resource, "PulseVMeasureI", f"{done} of {count} pulses")
        self.check_errors("PulseVMeasureI")

    # ------------------------------------------------------------------ data
    def _numbers(self, command: str, n: int) -> np.ndarray:
        reply = self.query(command)
        try:
            data = parse_numbers(reply)
        except ValueError:
            raise InstrumentError(
                self.resource, command, f"unexpected reply {reply[:60]!r}"
            ) from None
        if data.size != n:
            raise InstrumentError(self.resource, command, f"expected {n} values, got {data.size}")
        return data
