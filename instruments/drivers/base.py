"""A small typed driver base: declarative parameters with units, validators and safe limits.

A driver declares its settings at class level::

    class MySmu(ScpiInstrument):
        source_voltage_v = Parameter(
            ":SOUR{ch}:VOLT?", ":SOUR{ch}:VOLT {value}", Number(-210, 210, limit="voltage"),
            unit="V", doc="DC source level.",
        )

Reading ``smu.source_voltage_v`` does **no I/O**: it returns a :class:`BoundParameter`
handle (name, unit, cached value). I/O happens only on explicit calls: ``.get()`` queries
the instrument, ``.set(v)`` (or ``smu.source_voltage_v = v``) validates, writes and checks
the error queue, ``.ensure(v)`` writes only when the cached value differs. Every value is
validated *before* anything is written: outside the instrument's range raises
:class:`SettingError`, outside the driver's :class:`SafeLimits` raises
:class:`SafeOperatingAreaError`; in both cases nothing was sent.

:meth:`Instrument.configure` sends several settings as one program message and checks the
error queue once; :meth:`Instrument.snapshot` records identity, limits and every setting
(the metadata campaigns store in their datasets); :meth:`Instrument.timeout` raises the I/O
timeout for long operations.

Units are SI and named in the attribute (``_v``, ``_a``, ``_s``); commands contain
``{ch}`` (the channel) and ``{value}`` (the formatted value).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from instruments.visa_transport import InstrumentError, VisaTransport

__all__ = [
    "BoundParameter",
    "Choice",
    "Flag",
    "Instrument",
    "Number",
    "Parameter",
    "SafeLimits",
    "SafeOperatingAreaError",
    "ScpiInstrument",
    "SettingError",
    "Transport",
    "format_number",
    "level_runs",
]


class Transport(Protocol):
    """What a driver needs from a message-based connection (``VisaTransport`` or a fake)."""

    resource: str
    idn: str

    @property
    def timeout_s(self) -> float: ...

    def write(self, command: str) -> None: ...

    def query(self, command: str) -> str: ...

    def query_block(self, command: str, dtype: str = "<f4") -> np.ndarray: ...

    def timeout(self, seconds: float) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...


class SettingError(InstrumentError, ValueError):
    """A value outside what the instrument accepts; raised before anything is sent."""


class SafeOperatingAreaError(SettingError):
    """A value outside the safe operating area of the bench; nothing was sent."""


@dataclass(frozen=True)
class SafeLimits:
    """Largest magnitudes a driver may ever send (volts, amperes, seconds).

    The defaults are finite and match the bench's default safe operating area
    (:class:`instruments.bench_chip.SafeOperatingArea`): a standalone driver is safe unless
    the caller states other limits (``math.inf`` must be written out to lift one).
    ``max_dc_voltage_v`` is the largest level that may be held for any time (a read
    level); a level above it is a pulse, held at most ``max_pulse_width_s`` in one piece.
    """

    max_voltage_v: float = 5.0
    max_current_a: float = 1e-3
    max_pulse_width_s: float = 1.0
    max_dc_voltage_v: float = 0.5

    def check(self, kind: str, value: float, resource: str, what: str) -> None:
        """Raise :class:`SafeOperatingAreaError` if ``value`` exceeds the ``kind`` limit."""
        limit, unit = {
            "voltage": (self.max_voltage_v, "V"),
            "current": (self.max_current_a, "A"),
            "width": (self.max_pulse_width_s, "s"),
            "dc": (self.max_dc_voltage_v, "V"),
        }[kind]
        if abs(value) > limit:
            raise SafeOperatingAreaError(
                resource,
                what,
                f"{abs(value):g} {unit} exceeds the safe operating area ({kind} <= {limit:g} "
                f"{unit}); nothing was sent",
            )

    def check_holds(self, levels_v: np.ndarray, step_s: float, resource: str, what: str) -> None:
        """Check what a device sees from a list of ``step_s`` holds (a list sweep).

        Consecutive points at the same level are one continuous hold: every hold above
        ``max_dc_voltage_v`` must last at most ``max_pulse_width_s``. Raises
        :class:`SafeOperatingAreaError` naming the first offending hold; nothing was sent.
        """
        for start, length, level in level_runs(levels_v):
            if abs(level) <= self.max_dc_voltage_v:
                continue
            held = length * step_s
            if held > self.max_pulse_width_s * (1 + 1e-9):
                raise SafeOperatingAreaError(
                    resource,
                    what,
                    f"points {start}-{start + length - 1} hold {level:g} V for {held:g} s in "
                    f"one piece (> {self.max_pulse_width_s:g} s pulse width limit above "
                    f"{self.max_dc_voltage_v:g} V); nothing was sent",
                )


def level_runs(levels_v: np.ndarray) -> list[tuple[int, int, float]]:
    """``(start, length, level)`` of each run of equal consecutive levels."""
    levels = np.asarray(levels_v, dtype=float).ravel()
    if levels.size == 0:
        return []
    edges = np.flatnonzero(np.diff(levels) != 0) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [levels.size]))
    return [(int(a), int(b - a), float(levels[a])) for a, b in zip(starts, ends, strict=True)]


def format_number(value: float) -> str:
    """Shortest exact-enough text for a number in a command (9 significant digits)."""
    return f"{value:.9g}"


# --------------------------------------------------------------------------- validators
class Validator:
    """Checks a Python value, turns it into a command token, parses the instrument's reply."""

    def validate(self, value: Any, inst: Instrument, what: str) -> Any:
        raise NotImplementedError

    def token(self, value: Any) -> str:
        raise NotImplementedError

    def parse(self, reply: str) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class Number(Validator):
    """A finite number in [lo, hi]; ``limit`` ("voltage"/"current"/"width") adds a safe limit."""

    def __init__(
        self,
        lo: float = -math.inf,
        hi: float = math.inf,
        *,
        integer: bool = False,
        limit: str | None = None,
    ) -> None:
        if limit not in (None, "voltage", "current", "width"):
            raise ValueError(f"unknown limit kind {limit!r}")
        self.lo, self.hi, self.integer, self.limit = lo, hi, integer, limit

    def validate(self, value: Any, inst: Instrument, what: str) -> float | int:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SettingError(inst.resource, what, f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise SettingError(inst.resource, what, f"{value!r} is not finite")
        if self.integer and number != int(number):
            raise SettingError(inst.resource, what, f"{value!r} is not an integer")
        if self.limit is not None:
            inst.limits.check(self.limit, number, inst.resource, what)
        lo, hi = inst.range_of(what) or (self.lo, self.hi)
        if not lo <= number <= hi:
            model = f" ({inst.model})" if inst.model else ""
            raise SettingError(
                inst.resource,
                what,
                f"{number:g} is outside the instrument's range{model} [{lo:g}, {hi:g}]; "
                "nothing was sent",
            )
        return int(number) if self.integer else number

    def token(self, value: float | int) -> str:
        return str(int(value)) if self.integer else format_number(float(value))

    def parse(self, reply: str) -> float | int:
        number = float(reply.strip().strip('"'))
        return int(number) if self.integer else number

    def describe(self) -> str:
        kind = "integer" if self.integer else "number"
        extra = f", safe {self.limit} limit" if self.limit else ""
        return f"{kind} in [{self.lo:g}, {self.hi:g}]{extra}"


class Choice(Validator):
    """One of a fixed set of values, each sent as its own token.

    ``replies`` maps normalized replies (upper case, or numbers for TSP instruments that
    print constants as numbers) to values; by default the upper-cased tokens do.
    """

    def __init__(self, tokens: Mapping[Any, str], replies: Mapping[str, Any] | None = None):
        self.tokens = dict(tokens)
        self.replies = (
            {_norm(k): v for k, v in replies.items()}
            if replies is not None
            else {_norm(t): v for v, t in self.tokens.items()}
        )

    def validate(self, value: Any, inst: Instrument, what: str) -> Any:
        if value not in self.tokens:
            raise SettingError(
                inst.resource, what, f"{value!r} is not one of {sorted(map(str, self.tokens))}"
            )
        return value

    def token(self, value: Any) -> str:
        return self.tokens[value]

    def parse(self, reply: str) -> Any:
        key = _norm(reply)
        if key not in self.replies:
            raise ValueError(f"unexpected reply {reply!r}")
        return self.replies[key]

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.tokens))


class Flag(Validator):
    """A boolean sent as ``on``/``off`` tokens; replies 1/0, ON/OFF, true/false."""

    def __init__(self, on: str = "ON", off: str = "OFF") -> None:
        self.on, self.off = on, off

    def validate(self, value: Any, inst: Instrument, what: str) -> bool:
        if not isinstance(value, bool | np.bool_):
            raise SettingError(inst.resource, what, f"{value!r} is not True/False")
        return bool(value)

    def token(self, value: bool) -> str:
        return self.on if value else self.off

    def parse(self, reply: str) -> bool:
        key = _norm(reply)
        if key in ("1", "ON", "TRUE"):
            return True
        if key in ("0", "OFF", "FALSE"):
            return False
        raise ValueError(f"unexpected reply {reply!r}")

    def describe(self) -> str:
        return f"True ({self.on}) or False ({self.off})"


def _norm(reply: Any) -> str:
    """Reply text for matching: quotes stripped, upper case, numbers as integers if whole."""
    text = str(reply).strip().strip('"').strip()
    try:
        number = float(text)
    except ValueError:
        return text.upper()
    return str(int(number)) if number == int(number) else repr(number)


# --------------------------------------------------------------------------- parameters
class Parameter:
    """A declared instrument setting: query/set commands, validator, unit, documentation.

    ``get_cmd`` or ``set_cmd`` may be ``None`` (write-only / read-only). ``check_errors``
    makes a plain ``set`` query the error queue afterwards. ``readback``: the instrument
    may adjust what it is sent (e.g. it picks the range that holds the value), so after a
    set the cache holds the value queried back, not the one sent.
    """

    def __init__(
        self,
        get_cmd: str | None,
        set_cmd: str | None,
        validator: Validator,
        *,
        unit: str = "",
        doc: str = "",
        check_errors: bool = True,
        readback: bool = False,
    ) -> None:
        if readback and get_cmd is None:
            raise ValueError("a read-back parameter needs a query")
        self.get_cmd, self.set_cmd, self.validator = get_cmd, set_cmd, validator
        self.unit, self.doc, self.check_errors = unit, doc, check_errors
        self.readback = readback
        self.name = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, inst: Instrument | None, owner: type) -> Any:
        if inst is None:
            return self
        return BoundParameter(inst, self)

    def __set__(self, inst: Instrument, value: Any) -> None:
        BoundParameter(inst, self).set(value)


class BoundParameter:
    """A parameter of one instrument. Attribute access never talks to the instrument."""

    __slots__ = ("_inst", "_spec")

    def __init__(self, inst: Instrument, spec: Parameter) -> None:
        self._inst, self._spec = inst, spec

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def unit(self) -> str:
        return self._spec.unit

    @property
    def doc(self) -> str:
        return self._spec.doc

    @property
    def cached(self) -> Any:
        """The last value read or written (``None`` if unknown); no I/O."""
        return self._inst._cache.get(self.name)

    def validate(self, value: Any) -> Any:
        """The value as it would be sent; raises before any I/O if it is not allowed."""
        return self._spec.validator.validate(value, self._inst, self.name)

    def command(self, value: Any) -> str:
        """The set command for ``value`` (validated); no I/O."""
        if self._spec.set_cmd is None:
            raise SettingError(self._inst.resource, self.name, "is read-only")
        token = self._spec.validator.token(self.validate(value))
        return self._inst.render(self._spec.set_cmd, value=self._inst.render(token))

    def get(self) -> Any:
        """Query the instrument; updates the cache."""
        if self._spec.get_cmd is None:
            raise SettingError(self._inst.resource, self.name, "is write-only")
        command = self._inst.render(self._spec.get_cmd)
        reply = self._inst.query(command)
        try:
            value = self._spec.validator.parse(reply)
        except (ValueError, KeyError):
            raise InstrumentError(
                self._inst.resource, command, f"cannot parse reply {reply!r}"
            ) from None
        self._inst._cache[self.name] = value
        return value

    def set(self, value: Any) -> None:
        """Validate, write, check the error queue (unless disabled); updates the cache
        (with the value read back for a ``readback`` parameter)."""
        value = self.validate(value)
        command = self.command(value)
        self._inst.write(command)
        if self._spec.check_errors:
            self._inst.check_errors(command)
        if self._spec.readback:
            self._inst._cache.pop(self.name, None)
            self.get()
        else:
            self._inst._cache[self.name] = value

    def ensure(self, value: Any) -> bool:
        """Set ``value`` unless it is already the cached value; returns whether it wrote."""
        if _same(self.cached, self.validate(value)):
            return False
        self.set(value)
        return True

    def __repr__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"<{type(self._inst).__name__}.{self.name} cached={self.cached!r}{unit}>"


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, float) or isinstance(b, float):
        return bool(np.isclose(float(a), float(b), rtol=1e-12, atol=0.0))
    return a == b


# --------------------------------------------------------------------------- instruments
class Instrument:
    """Base of every driver: transport, identity check, limits, cache, errors, snapshot."""

    #: substrings of ``*IDN?`` that identify models this driver supports
    models: ClassVar[tuple[str, ...]] = ()
    #: what the driver drives, for messages
    family: ClassVar[str] = "instrument"
    #: separator of several commands in one program message
    separator: ClassVar[str] = ";"
    #: how the transport confirms queries and reads errors (``VisaTransport`` dialects)
    dialect: ClassVar[str] = "scpi"

    def __init__(
        self,
        transport: Transport,
        *,
        limits: SafeLimits | None = None,
        channel: int | str = 1,
        check_model: bool = True,
    ) -> None:
        self.transport = transport
        self.limits = limits or SafeLimits()
        self.channel = channel
        self._cache: dict[str, Any] = {}
        if hasattr(transport, "dialect"):
            transport.dialect = self.dialect  # the driver knows its instrument's language
        if check_model and self.models and not any(m in transport.idn for m in self.models):
            raise InstrumentError(
                transport.resource,
                "*IDN?",
                f"{transport.idn!r} is not a {self.family} ({', '.join(self.models)})",
            )

    @classmethod
    def open(cls, resource: str, *, timeout_s: float = 10.0, **kwargs: Any) -> Instrument:
        """Connect through PyVISA (``@py``) and check the identity."""
        transport = VisaTransport(resource, timeout_s=timeout_s, dialect=cls.dialect)
        try:
            return cls(transport, **kwargs)
        except BaseException:
            transport.close()
            raise

    # ------------------------------------------------------------------ basics
    @property
    def resource(self) -> str:
        return self.transport.resource

    @property
    def idn(self) -> str:
        return self.transport.idn

    @property
    def model(self) -> str:
        """The identified model (empty when the driver does not distinguish models)."""
        return ""

    def range_of(self, name: str) -> tuple[float, float] | None:
        """The identified model's range of parameter ``name``; ``None``: the declared one."""
        return None

    def fields(self) -> dict[str, Any]:
        """Placeholders available in command templates."""
        return {"ch": self.channel}

    def render(self, template: str, **extra: Any) -> str:
        return template.format(**self.fields(), **extra)

    def write(self, command: str) -> None:
        self.transport.write(command)

    def query(self, command: str) -> str:
        """One query; the transport confirms it, so a failed query raises
        :class:`InstrumentError` with the instrument's error text at once."""
        return self.transport.query(command)

    def write_all(self, commands: Sequence[str]) -> str:
        """Send several commands as one program message; returns the message."""
        message = self.separator.join(commands)
        self.write(message)
        return message

    @contextlib.contextmanager
    def timeout(self, seconds: float) -> Iterator[None]:
        """Raise the I/O timeout to at least ``seconds`` for a long operation."""
        with self.transport.timeout(max(seconds, self.transport.timeout_s)):
            yield

    # ------------------------------------------------------------------ errors
    def errors(self) -> list[str]:
        """Drain the instrument's error queue; empty when there is none."""
        raise NotImplementedError

    def check_errors(self, context: str = "configuration") -> None:
        """Raise :class:`InstrumentError` naming ``context`` if the instrument queued errors."""
        found = self.errors()
        if found:
            raise InstrumentError(self.resource, context, "; ".join(found))

    # ------------------------------------------------------------------ settings
    @classmethod
    def parameters(cls) -> dict[str, Parameter]:
        """Every declared parameter, in declaration order (base classes first)."""
        found: dict[str, Parameter] = {}
        for klass in reversed(cls.__mro__):
            for name, attr in vars(klass).items():
                if isinstance(attr, Parameter):
                    found[name] = attr
        return found

    def parameter(self, name: str) -> BoundParameter:
        spec = self.parameters().get(name)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no parameter {name!r}")
        return BoundParameter(self, spec)

    def configure(self, force: bool = False, **values: Any) -> str | None:
        """Set several parameters in one program message and check errors once.

        Values equal to the cached ones are skipped unless ``force``. Every value is
        validated first, so nothing is sent if any is not allowed. Returns the message
        sent (``None`` when nothing had to change).
        """
        bound = [(self.parameter(name), value) for name, value in values.items()]
        pending = []
        for param, value in bound:
            value = param.validate(value)
            if force or not _same(param.cached, value):
                pending.append((param, value, param.command(value)))
        if not pending:
            return None
        message = self.write_all([command for _, _, command in pending])
        try:
            self.check_errors(message)
        except InstrumentError:
            for param, _, _ in pending:  # the instrument's state is unknown now
                self._cache.pop(param.name, None)
            raise
        for param, value, _ in pending:
            if param._spec.readback:
                self._cache.pop(param.name, None)
                param.get()
            else:
                self._cache[param.name] = value
        return message

    def invalidate_cache(self) -> None:
        self._cache.clear()

    def snapshot(self, update: bool = True) -> dict[str, Any]:
        """Identity, limits and every setting (queried when ``update``, else cached)."""
        settings = {}
        for name, spec in self.parameters().items():
            param = BoundParameter(self, spec)
            value = param.get() if update and spec.get_cmd is not None else param.cached
            settings[name] = {"value": _jsonable(value), "unit": spec.unit}
        return {
            "driver": type(self).__name__,
            "idn": self.idn,
            "model": self.model,
            "resource": self.resource,
            "channel": self.channel,
            "limits": {k: _jsonable(v) for k, v in asdict(self.limits).items()},
            "settings": settings,
        }

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Instrument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, np.generic):
        return value.item()
    return value


class ScpiInstrument(Instrument):
    """IEEE 488.2 / SCPI basics: ``*RST``, ``*CLS``, ``*OPC?`` and the ``:SYST:ERR?`` queue."""

    max_errors: ClassVar[int] = 64

    def errors(self) -> list[str]:
        found = []
        for _ in range(self.max_errors):
            entry = self.query(":SYST:ERR?")
            if entry.startswith(("0,", "+0,")):
                break
            found.append(entry)
        return found

    def reset(self) -> None:
        """``*RST``: the instrument's default settings; the cache is forgotten."""
        self.write("*RST")
        self.invalidate_cache()

    def clear_status(self) -> None:
        """``*CLS``: clear the error queue and status registers."""
        self.write("*CLS")

    def wait(self) -> None:
        """``*OPC?``: return when every pending operation has completed."""
        reply = self.query("*OPC?")
        if reply.strip() != "1":
            raise InstrumentError(self.resource, "*OPC?", f"unexpected reply {reply!r}")

    def raise_reply_error(self, command: str, reply: str) -> None:
        """``reply`` is one ``:SYST:ERR?`` entry: raise with it (and the rest) unless 0."""
        if reply.startswith(("0,", "+0,")):
            return
        found = [reply, *self.errors()]
        raise InstrumentError(self.resource, command, "; ".join(found))
