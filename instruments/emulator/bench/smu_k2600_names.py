"""The rest of the virtual 2601B's TSP: names other drivers use (PyMeasure, QCoDeS).

The bench driver needs a small subset (:mod:`instruments.emulator.bench.smu_k2600`); a
lab's own scripts and the peer drivers also use the following, modelled after the Series
2600B Reference Manual (2600BS-901-01 Rev. F, section 11 "TSP command reference"; the
references are collected in ``instruments/emulator/COMMANDS.md``):

- ``localnode.model`` / ``serialno`` / ``revision`` (read-only), ``display.*`` (front panel:
  stored, nothing to see);
- ``smua.source.leveli`` / ``limitv`` / ``rangev`` / ``rangei`` / ``autorangev`` / ``autorangei``,
  ``smua.measure.rangev`` / ``rangei`` / ``autorangev`` / ``interval``, ``smua.sense``:
  a range setting picks the smallest range of the 2601B that holds the value (100 mV to
  40 V; 100 nA to 3 A) and switches autorange off, as the manual says;
- ``smua.measure.v()`` / ``i()`` / ``r()`` / ``p()`` / ``iv()`` with an optional reading
  buffer, in both source functions: sourcing voltage the output is the level unless the
  current limit holds it lower (V = limiti/ΣG); sourcing current the devices drop
  V = I/ΣG unless ``limitv`` caps it (I = limitv·ΣG); nothing routed reads 0 A or the limit;
  with the output off, the normal output-off state: 0 V on the devices, 0 A read;
- ``status.measurement.instrument.smua.condition``: bit 0 voltage limit, bit 1 current limit;
- ``format.data`` ``format.REAL32``/``REAL64`` and ``format.byteorder``: ``printnumber``
  and ``printbuffer`` then send ``#0`` followed by raw IEEE floats (``print`` stays ASCII);
- ``loadandrunscript`` ... ``endscript`` (anonymous scripts, section 6): the lines between
  are collected and run as one chunk when ``endscript`` arrives.

- reading buffers' ``appendmode`` (off after reset: a measurement into a buffer first
  clears it).

Numeric ``for`` loops and arithmetic run (:mod:`~instruments.emulator.bench.tsp`), so
QCoDeS's one-channel fastsweep works; ``if``, ``while`` and function definitions do not
(a -285 syntax error).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np

from instruments.emulator.bench.tsp import TspError

if TYPE_CHECKING:
    from instruments.emulator.bench.smu_k2600 import Virtual2600B

__all__ = ["install", "reset"]

MODEL = "2601B"
SERIAL = "4000001"
V_RANGES = (0.1, 1.0, 6.0, 40.0)
I_RANGES = (100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0, 3.0)
OVER = 1.01  # each range reaches 101 % of its nominal value
OVERFLOW = 9.91e37  # the 2600B's reading for an overflow
MAX_SCRIPT_CHARS = 1 << 20  # an anonymous script being loaded is dropped beyond this
CONSTANTS = {
    "smua.SENSE_LOCAL": 0.0,
    "smua.SENSE_REMOTE": 1.0,
    "smua.SENSE_CALA": 3.0,
    "format.NORMAL": 1.0,
    "format.BIGENDIAN": 1.0,
    "format.NETWORK": 1.0,
    "format.SWAPPED": 0.0,
    "format.LITTLEENDIAN": 0.0,
    "display.SMUA": 0.0,
    "display.SMUB": 1.0,
    "display.SMUA_SMUB": 2.0,
    "display.USER": 3.0,
}


def reset(smu: Virtual2600B) -> None:
    """The ``*RST``/``reset()`` values of the names below."""
    smu.rangev = V_RANGES[1]  # autorange is on; the range it starts from is nominal
    smu.leveli = 0.0
    smu.limitv = 20.0
    smu.rangei = 100e-3
    smu.autorangev = 1.0
    smu.autorangei_source = 1.0
    smu.measure_rangev = 1.0
    smu.measure_rangei = 100e-3
    smu.autorangev_measure = 1.0
    smu.interval = 0.0
    smu.sense = 0.0
    smu.condition = 0.0
    smu.byteorder = 0.0
    smu.display_screen = 0.0
    smu.display_text = ""
    smu.script = None  # lines of an anonymous script being loaded
    smu.appendmode = {1: 0.0, 2: 0.0}  # off: a measurement first clears its buffer


def install(smu: Virtual2600B) -> None:
    """Add the names to ``smu.names`` (after the bench subset, whose names it keeps)."""
    n = smu.names
    n.constants.update(CONSTANTS)
    for path, value in (
        ("localnode.model", MODEL),
        ("localnode.serialno", SERIAL),
        ("localnode.revision", smu.idn.split(",")[-1].strip()),
    ):
        n.attributes[path] = (lambda v=value: v, None)

    def number(path: str, name: str, lo: float, hi: float) -> None:
        def setter(value: object) -> None:
            x = smu._number(value, path)
            if x < lo:
                raise TspError(1102, f"Parameter too small: {path} = {x:g}")
            if x > hi:
                raise TspError(1103, f"Parameter too large: {path} = {x:g}")
            setattr(smu, name, x)

        n.attributes[path] = (lambda: getattr(smu, name), setter)

    def choice(path: str, name: str, allowed: tuple[float, ...]) -> None:
        def setter(value: object) -> None:
            x = smu._number(value, path)
            if x not in allowed:
                raise TspError(1101, f"Illegal parameter value: {path} = {x:g}")
            setattr(smu, name, x)

        n.attributes[path] = (lambda: getattr(smu, name), setter)

    def ranged(path: str, name: str, ranges: tuple[float, ...], auto: str) -> None:
        def setter(value: object) -> None:
            x = abs(smu._number(value, path))
            fits = [r for r in ranges if x <= r * OVER]
            if not fits:
                raise TspError(1103, f"Parameter too large: {path} = {x:g}")
            setattr(smu, name, fits[0])
            setattr(smu, auto, 0.0)  # setting a range turns its autorange off

        n.attributes[path] = (lambda: getattr(smu, name), setter)

    number("smua.source.leveli", "leveli", -I_RANGES[-1] * OVER, I_RANGES[-1] * OVER)
    number("smua.source.limitv", "limitv", 10e-3, V_RANGES[-1] * OVER)
    number("smua.measure.interval", "interval", 0.0, 1.0)
    ranged("smua.source.rangev", "rangev", V_RANGES, "autorangev")
    ranged("smua.source.rangei", "rangei", I_RANGES, "autorangei_source")
    ranged("smua.measure.rangev", "measure_rangev", V_RANGES, "autorangev_measure")
    ranged("smua.measure.rangei", "measure_rangei", I_RANGES, "autorangei")
    choice("smua.source.autorangev", "autorangev", (0.0, 1.0))
    choice("smua.source.autorangei", "autorangei_source", (0.0, 1.0))
    choice("smua.measure.autorangev", "autorangev_measure", (0.0, 1.0))
    choice("smua.sense", "sense", (0.0, 1.0, 3.0))
    choice("format.byteorder", "byteorder", (0.0, 1.0))
    choice("display.screen", "display_screen", (0.0, 1.0, 2.0, 3.0))
    for k in (1, 2):
        n.attributes[f"smua.nvbuffer{k}.appendmode"] = (
            lambda k=k: smu.appendmode[k],
            lambda v, k=k: smu.appendmode.__setitem__(k, _flag(smu, v, "appendmode")),
        )
    n.attributes["status.measurement.instrument.smua.condition"] = (lambda: smu.condition, None)
    n.attributes["format.data"] = (lambda: smu.data_format, lambda v: _set_format(smu, v))
    n.functions.update(
        {
            "smua.measure.v": lambda buf=None: _measure(smu, "v", buf),
            "smua.measure.i": lambda buf=None: _measure(smu, "i", buf),
            "smua.measure.r": lambda buf=None: _measure(smu, "r", buf),
            "smua.measure.p": lambda buf=None: _measure(smu, "p", buf),
            "smua.measure.iv": lambda ibuf=None, vbuf=None: _measure_iv(smu, ibuf, vbuf),
            "display.clear": lambda: setattr(smu, "display_text", ""),
            "display.settext": lambda text: setattr(smu, "display_text", str(text)[:32]),
            "display.sendkey": lambda key: None,
            "printnumber": lambda *values: _printnumber(smu, values),
            "printbuffer": lambda first, last, *bufs: _printbuffer(smu, first, last, bufs),
        }
    )


# --------------------------------------------------------------------------- measurements
def _point(smu: Virtual2600B) -> tuple[float, float]:
    """One reading of (volts, amps) at the output, in either source function.

    With the output off the SMU is in its normal output-off state (Reference Manual 2-42:
    0 V, current limit ``offlimiti``): the routed devices see 0 V and read 0 A.
    """
    bench = smu.bench
    if smu.output != 1.0:
        bench.clock.advance(smu.nplc / smu.linefreq + 30e-6)
        smu.compliance, smu.condition = False, 0.0
        return 0.0, 0.0
    idx = bench.devices_on(bench.routing.smu_input)
    if smu.func == 1.0:  # voltage source: the bench subset's reading, then the voltage
        amps = smu._reading(smu.levelv, 0.0)
        volts = smu.levelv
        if smu.compliance:
            g = float(np.sum(bench.array.conductance(idx))) if idx.size else 0.0
            volts = float(np.sign(volts)) * min(abs(volts), smu.limiti / g if g else 0.0)
        smu.condition = 2.0 if smu.compliance else 0.0
        return volts, amps
    # current source: the devices drop I/G unless the voltage limit holds it
    aperture = smu.nplc / smu.linefreq
    t = bench.now()
    g = bench.current(idx, 1.0, t) if idx.size else 0.0  # ΣG read with its noise
    want = smu.leveli / g if g > 0 else np.inf * np.sign(smu.leveli or 1.0)
    limited = abs(want) > smu.limitv
    volts = float(np.sign(want)) * smu.limitv if limited else float(want)
    amps = volts * g if limited else smu.leveli
    bench.apply_voltage(idx, volts, aperture, t, "smu:2600B")
    bench.clock.advance(aperture + 30e-6)
    smu.compliance = limited
    smu.condition = 1.0 if limited else 0.0
    return volts, amps


def _value(kind: str, volts: float, amps: float) -> float:
    if kind == "v":
        return volts
    if kind == "i":
        return amps
    if kind == "p":
        return volts * amps
    return volts / amps if amps else OVERFLOW


def _buffer(smu: Virtual2600B, buf: object) -> list[float] | None:
    if buf is None:
        return None
    if buf not in smu.buffers:
        raise TspError(-286, "TSP Runtime error: a measurement needs a reading buffer")
    return smu.buffers[int(buf)].readings


def _readings(smu: Virtual2600B) -> list[tuple[float, float]]:
    """``measure.count`` readings, ``measure.interval`` apart (at most)."""
    points = []
    for k in range(int(smu.count)):
        t0 = smu.bench.now()
        points.append(_point(smu))
        spent = smu.bench.now() - t0
        if k + 1 < int(smu.count) and smu.interval > spent:
            smu.bench.clock.advance(smu.interval - spent)
    return points


def _measure(smu: Virtual2600B, kind: str, buf: object) -> float:
    target = _buffer(smu, buf)
    if target is not None and not smu.appendmode[int(buf)]:
        target.clear()  # append mode off: the new readings replace the buffer's
    if kind == "i" and smu.func == 1.0 and smu.interval == 0.0 and smu.output == 1.0:
        value = smu._measure_i(buf)  # the bench subset's reading, unchanged
        smu.condition = 2.0 if smu.compliance else 0.0
        return value
    values = [_value(kind, v, i) for v, i in _readings(smu)]
    if target is not None:
        target.extend(values)
    return values[-1]


def _measure_iv(smu: Virtual2600B, ibuf: object, vbuf: object) -> tuple[float, float]:
    itarget, vtarget = _buffer(smu, ibuf), _buffer(smu, vbuf)
    for buf, target in ((ibuf, itarget), (vbuf, vtarget)):
        if target is not None and not smu.appendmode[int(buf)]:
            target.clear()
    points = _readings(smu)
    if itarget is not None:
        itarget.extend(i for _, i in points)
    if vtarget is not None:
        vtarget.extend(v for v, _ in points)
    return points[-1][1], points[-1][0]


# --------------------------------------------------------------------------- output
def _set_format(smu: Virtual2600B, value: object) -> None:
    x = smu._number(value, "format.data")
    if x not in (1.0, 3.0, 4.0):
        raise TspError(1101, f"Illegal parameter value: format.data = {x:g}")
    smu.data_format = x


def _binary(smu: Virtual2600B, values: list[float]) -> bytes:
    """``#0`` and the values as IEEE floats (REAL32: 4 bytes, REAL64: 8) in the byte order."""
    code = "f" if smu.data_format == 4.0 else "d"
    order = "<" if smu.byteorder == 0.0 else ">"
    return b"#0" + struct.pack(f"{order}{len(values)}{code}", *values)


def _printnumber(smu: Virtual2600B, values: tuple) -> None:
    numbers = [smu._number(v, "printnumber value") for v in values]
    if smu.data_format != 1.0:
        smu._out.append(_binary(smu, numbers))
    else:
        smu._out.append(", ".join(smu._format(v) for v in numbers))


def _printbuffer(smu: Virtual2600B, first: object, last: object, bufs: tuple) -> None:
    lo = max(int(smu._number(first, "start index")), 1)
    hi = int(smu._number(last, "end index"))
    columns = []
    for buf in bufs:
        if not isinstance(buf, list):
            raise TspError(-286, "TSP Runtime error: printbuffer needs buffer readings")
        columns.append(buf[lo - 1 : hi])
    values = [v for row in zip(*columns, strict=False) for v in row]
    if smu.data_format != 1.0:
        smu._out.append(_binary(smu, values))
    else:
        smu._out.append(", ".join(smu._format(v) for v in values))


def join_output(parts: list[str | bytes]) -> str | bytes:
    """The chunk's printed lines as one reply (bytes when any of them is binary)."""
    if all(isinstance(p, str) for p in parts):
        return "\n".join(parts)
    return b"\n".join(p if isinstance(p, bytes) else p.encode() for p in parts)


def _flag(smu: Virtual2600B, value: object, what: str) -> float:
    x = smu._number(value, what)
    if x not in (0.0, 1.0):
        raise TspError(1101, f"Illegal parameter value: {what} = {x:g}")
    return x
