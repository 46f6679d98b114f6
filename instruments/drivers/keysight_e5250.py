"""Keysight (Agilent) E5250A low-leakage switch mainframe with E5252A matrix cards, SCPI.

A channel is ``card·10000 + input·100 + output`` (E5252A: inputs 1-10, outputs 1-12 per
card in normal configuration mode), written as a channel list ``(@10103,10205)``. The bench
uses the single-route rule with break-before-make sequencing, and :meth:`connect`
additionally opens every relay before it closes the new route, in one program message,
so no two routes are ever closed together; it ends with ``:SYST:ERR?``, which both waits
for the relays and checks the command.

Commands and where they were checked (E5250A User's Guide, Editions 9 and 11; B2200
User's Guide, Edition 4, which shares the ROUTe syntax; 4155C/4156C User's Guide,
which drives the E5250A; [unverified]: family syntax, page not read):

==============================================  ===========================================
channel list ``(@cIIOO)``, card 0-4             verified (E5250A Guide 5-6)
E5252A: 10 inputs x 12 outputs                  verified (E5250A Guide 5-9, card diagram)
``:ROUT:CONN:RULE`` single route / free         verified (E5250A Guide 5-9; 4155C: SROU, FREE)
``:ROUT:CONN:SEQ`` BBM / MBBR / NSEQ            verified (E5250A Guide 5-10; 4155C guide)
``:ROUT:OPEN:CARD ALL``, ``:ROUT:CLOS (@..)``,  verified (B2200 Guide 5-39 example)
``:ROUT:OPEN (@..)``, ``:ROUT:OPEN? (@..)``
``:ROUT:CLOS? (@..)`` -> ``1,0,...``            [unverified] (mirror of ``:ROUT:OPEN?``)
``:ROUT:CONN:RULE ALL,SROU`` argument form      [unverified]
``:ROUT:FUNC NCON|ACON``                        [unverified]
``:ROUT:CLOS:CARD? <card>``                     [unverified]
``*RST``: relays open, bias mode off            verified (B2200 Guide Ed. 2, 5-33: "At *RST,
                                                the Bias Mode is OFF")
``:ROUT:BIAS:STAT ALL,OFF`` (bias mode)         verified (E5250A Guide Ed. 9, 5-11; B2200
                                                Guide 5-33 syntax ``card,state``)
``:ROUT:COUP:STAT ALL,OFF`` (couple mode)       [unverified] E5250A page; B2200 syntax
==============================================  ===========================================

Bias mode (E5250A Guide Ed. 9, 5-11): while it is on, the bias input port is connected to
every bias-enabled output that no other input is connected to, so every unrouted line of
the crossbar would sit on the bias input. The mainframe keeps its modes across
connections, so :meth:`KeysightE5250A.prepare` resets it (``*RST``) and turns bias and
couple mode off explicitly instead of trusting the previous session's state. The
manuals are listed in ``instruments/MANUALS.md``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from instruments.drivers.base import Choice, Flag, Parameter, ScpiInstrument, SettingError
from instruments.visa_transport import InstrumentError

__all__ = ["KeysightE5250A", "format_channels", "matrix_channel", "parse_channels"]

N_CARDS = 4
N_INPUTS = 10
N_OUTPUTS = 12


def matrix_channel(card: int, input_port: int, output_port: int) -> int:
    """Channel number ``card·10000 + input·100 + output`` (no range check)."""
    return int(card) * 10000 + int(input_port) * 100 + int(output_port)


def format_channels(channels: Sequence[int]) -> str:
    """``(@10101,10205)``."""
    return "(@" + ",".join(str(int(c)) for c in channels) + ")"


def parse_channels(text: str) -> list[int]:
    """Channels of a list like ``(@10101,10205)`` (ranges ``a:b`` are expanded)."""
    body = text.strip().strip('"')
    if not (body.startswith("(@") and body.endswith(")")):
        raise ValueError(f"not a channel list: {text!r}")
    found: list[int] = []
    for part in filter(None, (p.strip() for p in body[2:-1].split(","))):
        if ":" in part:
            first, last = (int(x) for x in part.split(":"))
            found.extend(range(first, last + 1))
        else:
            found.append(int(part))
    return found


class KeysightE5250A(ScpiInstrument):
    """The switch mainframe: relay routes from inputs (instruments) to outputs (device lines)."""

    models = ("E5250A",)
    family = "Keysight E5250A switch mainframe"

    #: relay settling assumed by the bench (s) [unverified]
    settle_s: ClassVar[float] = 3e-3

    configuration_mode = Parameter(
        ":ROUT:FUNC?",
        ":ROUT:FUNC {value}",
        Choice({"normal": "NCON", "auto": "ACON"}),
        doc="Channel configuration: per card (normal) or cards joined (auto) [unverified].",
    )
    connection_rule = Parameter(
        ":ROUT:CONN:RULE? {card}",
        ":ROUT:CONN:RULE ALL,{value}",
        Choice({"single": "SROU", "free": "FREE"}),
        doc="Single route (one input per output and vice versa) or free [argument form "
        "unverified].",
    )
    connection_sequence = Parameter(
        ":ROUT:CONN:SEQ? {card}",
        ":ROUT:CONN:SEQ ALL,{value}",
        Choice({"break_before_make": "BBM", "make_before_break": "MBBR", "none": "NSEQ"}),
        doc="Relay order when a route replaces another (single route rule).",
    )

    bias_mode = Parameter(
        ":ROUT:BIAS:STAT? {card}",
        ":ROUT:BIAS:STAT ALL,{value}",
        Flag(),
        doc="Bias mode: the bias input on every unrouted bias-enabled output (off for the "
        "bench; E5250A Guide 5-11).",
    )
    couple_mode = Parameter(
        ":ROUT:COUP:STAT? {card}",
        ":ROUT:COUP:STAT ALL,{value}",
        Flag(),
        doc="Couple mode: paired inputs switched together (off for the bench) [unverified].",
    )

    def __init__(self, transport, *, card: int = 1, **kwargs) -> None:
        super().__init__(transport, **kwargs)
        if not 1 <= card <= N_CARDS:
            raise ValueError(f"card must be 1..{N_CARDS}, got {card}")
        self.card = card
        self._route: tuple[int, ...] | None = None  # last route closed by connect()

    def fields(self) -> dict:
        return {"ch": self.channel, "card": self.card}

    # ------------------------------------------------------------------ channels
    def channel_number(self, card: int, input_port: int, output_port: int) -> int:
        """The channel connecting ``input_port`` to ``output_port`` on ``card``."""
        if not (1 <= card <= N_CARDS and 1 <= input_port <= N_INPUTS):
            raise SettingError(
                self.resource, "channel", f"card {card} / input {input_port} does not exist"
            )
        if not 1 <= output_port <= N_OUTPUTS:
            raise SettingError(self.resource, "channel", f"output {output_port} does not exist")
        return matrix_channel(card, input_port, output_port)

    def _checked(self, channels: Sequence[int]) -> list[int]:
        out = []
        for ch in channels:
            ch = int(ch)
            self.channel_number(ch // 10000, (ch // 100) % 100, ch % 100)
            out.append(ch)
        if not out:
            raise SettingError(self.resource, "channel list", "is empty")
        return out

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Bench defaults from a known state: ``*RST``, bias and couple mode off, normal
        configuration, single route, break-before-make, every relay open."""
        self.reset()
        self.clear_status()
        self.configure(
            bias_mode=False,
            couple_mode=False,
            configuration_mode="normal",
            connection_rule="single",
            connection_sequence="break_before_make",
        )
        self.open_all()

    # ------------------------------------------------------------------ relays
    def open_all(self) -> None:
        """Open every relay of every card (error-checked)."""
        self._route = None
        self.raise_reply_error(":ROUT:OPEN:CARD ALL", self.query(":ROUT:OPEN:CARD ALL;:SYST:ERR?"))

    def close_channels(self, channels: Sequence[int]) -> None:
        """Close ``channels`` (leaves other routes as they are; error-checked)."""
        chans = self._checked(channels)
        self._route = None
        command = ":ROUT:CLOS " + format_channels(chans)
        self.raise_reply_error(command, self.query(command + ";:SYST:ERR?"))

    def open_channels(self, channels: Sequence[int]) -> None:
        """Open ``channels`` (error-checked)."""
        chans = self._checked(channels)
        self._route = None
        command = ":ROUT:OPEN " + format_channels(chans)
        self.raise_reply_error(command, self.query(command + ";:SYST:ERR?"))

    def connect(self, channels: Sequence[int]) -> None:
        """Make ``channels`` the only closed route: open all, then close, one round trip.

        Skipped when the same route is already closed by the previous ``connect``.
        """
        chans = tuple(self._checked(channels))
        if chans == self._route:
            return
        self._route = None
        command = ":ROUT:OPEN:CARD ALL;:ROUT:CLOS " + format_channels(chans)
        self.raise_reply_error(command, self.query(command + ";:SYST:ERR?"))
        self._route = chans

    def is_closed(self, channels: Sequence[int]) -> list[bool]:
        """Relay state of each channel (``:ROUT:CLOS?``)."""
        chans = self._checked(channels)
        command = ":ROUT:CLOS? " + format_channels(chans)
        reply = self.query(command)
        try:
            states = [bool(int(x)) for x in reply.split(",")]
        except ValueError:
            raise InstrumentError(self.resource, command, f"unexpected reply {reply!r}") from None
        if len(states) != len(chans):
            raise InstrumentError(self.resource, command, f"{len(states)} states for {len(chans)}")
        return states

    def closed_channels(self, card: int | None = None) -> list[int]:
        """Every closed channel of ``card`` (``:ROUT:CLOS:CARD?``)."""
        card = self.card if card is None else card
        command = f":ROUT:CLOS:CARD? {int(card)}"
        reply = self.query(command)
        if re.fullmatch(r"\s*\(@\s*\)\s*", reply):
            return []
        try:
            return parse_channels(reply)
        except ValueError:
            raise InstrumentError(self.resource, command, f"unexpected reply {reply!r}") from None

    def forget_route(self) -> None:
        """Forget the cached route (after anything else may have touched the relays)."""
        self._route = None

    def reset(self) -> None:
        super().reset()
        self._route = None
