"""What every virtual bench instrument shares: bench lock, fault injection, SCPI helpers.

A virtual instrument is served by :class:`~instruments.emulator.server.EmulatorServer`
through ``handle(message) -> replies``. All instruments of one bench act on one device
array and one clock under one lock, so a trigger on the pulse generator and a read on
the SMU see the same devices in the order their messages arrive.

SCPI instruments register headers written like ``:SOURce{c}:VOLTage[:LEVel]?``: ``[...]``
nodes are optional and ``{c}`` is the channel suffix (absent or ``1``), expanded into the
plain patterns that :class:`~instruments.emulator.scpi.CommandTable` matches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from instruments.emulator.scpi import (
    BlockReply,
    CommandTable,
    ErrorQueue,
    ScpiError,
    StatusModel,
    block_reply,
    expand_optional,
    parse_choice,
    parse_float,
    parse_int,
    register_common,
    special_value,
)

if TYPE_CHECKING:
    from instruments.emulator.bench.bench import VirtualBench

__all__ = [
    "Fault",
    "ScpiDevice",
    "VirtualDevice",
    "expand_pattern",
    "parse_chanlist",
    "short_choice",
]

FAULT_KINDS = ("drop", "error")


class Fault:
    """A fault armed on an instrument: after ``after`` more messages, ``kind`` happens."""

    def __init__(self, kind: str, after: int) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        self.kind, self.after = kind, int(after)


class VirtualDevice:
    """Base of the virtual instruments: the shared bench, message counting, faults."""

    def __init__(self, bench: VirtualBench) -> None:
        self.bench = bench
        self.messages = 0
        self.fault: Fault | None = None
        self.dead = False

    def handle(self, message: bytes) -> list[str | bytes | BlockReply]:
        """Execute one program message under the bench lock; returns its replies."""
        with self.bench.lock:
            if self.dead:
                raise ConnectionAbortedError("virtual instrument is disconnected")
            self.messages += 1
            if self.fault is not None:
                self.fault.after -= 1
                if self.fault.after <= 0:
                    kind, self.fault = self.fault.kind, None
                    if kind == "drop":
                        self.dead = True  # the server closes this client; later ones too
                        raise ConnectionAbortedError("virtual instrument dropped the connection")
                    self.inject_error()
            return self.execute(message)

    def inject_fault(self, kind: str, after: int = 1) -> None:
        """Arm a fault: ``"drop"`` the connection or queue an ``"error"`` after N messages."""
        self.fault = Fault(kind, after)

    def revive(self) -> None:
        self.dead = False
        self.fault = None

    def execute(self, message: bytes) -> list[str | bytes | BlockReply]:
        raise NotImplementedError

    def inject_error(self) -> None:
        raise NotImplementedError


def expand_pattern(pattern: str, suffixes: tuple[str, ...] = ("", "1")) -> list[str]:
    """Every plain header a pattern with ``[:OPTional]`` nodes and ``{c}`` suffixes allows."""
    return [
        header.replace("{c}", suffix)
        for header in expand_optional(pattern)
        for suffix in (suffixes if "{c}" in header else ("",))
    ]


def short_choice(arg: object, name: str, choices: tuple[str, ...]) -> str:
    """The short form (upper-case part) of the choice ``arg`` names, as queries answer."""
    long_form = parse_choice(arg, name, choices)
    original = next(c for c in choices if c.upper() == long_form)
    return "".join(ch for ch in original if ch.isupper() or ch.isdigit()) or long_form


def parse_chanlist(args: list, allowed: tuple[int, ...] = (1,)) -> list[int]:
    """A SCPI channel list argument ``(@1)`` / ``(@10101,10205)`` (split on commas)."""
    if not args:
        if allowed:
            return [allowed[0]]
        raise ScpiError(-109, "missing channel list")
    text = ",".join(a.decode() if isinstance(a, bytes) else a for a in args).strip()
    if not (text.startswith("(@") and text.endswith(")")):
        raise ScpiError(-224, f"expected a channel list (@...), got {text!r}")
    values = []
    for part in filter(None, (p.strip() for p in text[2:-1].split(","))):
        if ":" in part:
            first, last = (parse_int(x, "channel") for x in part.split(":"))
            values.extend(range(first, last + 1))
        else:
            values.append(parse_int(part, "channel"))
    if not values:
        raise ScpiError(-224, "empty channel list")
    return values


class ScpiDevice(VirtualDevice):
    """A virtual SCPI instrument: command table, error queue, IEEE 488.2 and ``EMU:`` commands."""

    idn = "EMU,VIRTUAL,0,0"
    options = "0"  # *OPT?: no options installed

    def __init__(self, bench: VirtualBench) -> None:
        super().__init__(bench)
        self.errors = ErrorQueue()
        self.status = StatusModel(self.errors)
        self.table = CommandTable()
        self._settings: list[str] = []
        self._register_common()
        self.register()
        self.reset()
        self.defaults = {attr: getattr(self, attr) for attr in self._settings}  # *RST values

    def execute(self, message: bytes) -> list[str | bytes | BlockReply]:
        return self.table.execute(message, self.errors)

    def inject_error(self) -> None:
        self.errors.push(-310, '"System error; virtual fault injected"')

    # ------------------------------------------------------------------ registration
    def add(self, pattern: str, handler: Callable, nargs: int | None = None) -> None:
        for header in expand_pattern(pattern):
            self.table.add(header, handler, nargs)

    def setting(
        self,
        pattern: str,
        attr: str,
        parse: Callable[[object], object],
        show: Callable[[object], str] | None = None,
    ) -> None:
        """A settable value with its query: ``parse(arg)`` validates, ``show`` formats.

        ``DEFault`` sets the ``*RST`` value; the query takes ``MINimum``/``MAXimum``/
        ``DEFault`` and answers that value (SCPI-99 vol. 1, numeric parameters) where ``parse``
        defines it.
        """
        self._settings.append(attr)
        fmt = show or nr3

        def setter(args: list) -> None:
            if special_value(args[0]) == "DEF":
                setattr(self, attr, self.defaults[attr])
            else:
                setattr(self, attr, parse(args[0]))

        def getter(args: list) -> str:
            if not args:
                return fmt(getattr(self, attr))
            if len(args) > 1:
                raise ScpiError(-108, "a setting query takes at most MIN, MAX or DEF")
            special = special_value(args[0])
            if special == "DEF":
                return fmt(self.defaults[attr])
            if special is None:
                raise ScpiError(-224, "a setting query takes MIN, MAX or DEF")
            return fmt(parse(args[0]))

        self.add(pattern, setter, 1)
        self.add(pattern + "?", getter)

    def _register_common(self) -> None:
        register_common(self.table, self.status, lambda: self.idn, self.reset)
        self.table.add("*OPT?", lambda a: self.options, 0)  # 488.2 §10.20: installed options
        # emulator-only: the bench's clock, noise stream and hidden truth
        self.add("EMU:CLOCk:TIME?", lambda a: repr(self.bench.clock.now()), 0)
        self.add("EMU:CLOCk:ADVance", self._advance, 1)
        self.add("EMU:NOISe:SEED", lambda a: self.bench.reseed_noise(parse_int(a[0], "seed")), 1)
        self.add("EMU:TRUTh?", lambda a: json.dumps(self.bench.truth_preset(), allow_nan=False), 0)
        self.add("EMU:GTRUth?", self._ground_truth, 1)

    def _advance(self, args: list) -> None:
        self.bench.clock.advance(parse_float(args[0], "time", 0.0, 1e10))

    def _ground_truth(self, args: list) -> BlockReply:
        name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        values = self.bench.array.per_device_truth().get(name.strip().strip('"'))
        if values is None:
            raise ScpiError(-224, f"no per-device truth named {name!r}")
        return block_reply(np.asarray(values, dtype=float), "<f8")

    def register(self) -> None:
        """Register the instrument's own commands."""

    def reset(self) -> None:
        """Default settings (``*RST``)."""


def nr3(value: object) -> str:
    """SCPI NR3 reply: ``+1.000000E-03``; integers and booleans as NR1."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f"{value:+d}"
    if isinstance(value, str):
        return value
    return f"{float(value):+.6E}"
