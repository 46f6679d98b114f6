"""Virtual Keysight E5250A switch mainframe with four E5252A cards (10 inputs x 12 outputs).

Relays live in the bench (``bench.closed``), where the other instruments look up the
device they drive. Channel ``cIIOO`` connects input II to output OO of card c. With the
single-route rule a new connection replaces the one that used its input or output on the
same card: break-before-make opens the old relay first, make-before-break closes the new
one first, which momentarily joins two inputs (counted in ``overlaps``). With the free
rule, connecting a second input to an output is refused (-221): on the real instrument it
would short the two instruments together. Every command that changes a relay advances
the clock by the relay settling time.
"""

from __future__ import annotations

from instruments.emulator.bench.device import ScpiDevice, parse_chanlist, short_choice
from instruments.emulator.scpi import ScpiError, parse_int

__all__ = ["VirtualE5250A"]

CARDS = (1, 2, 3, 4)
INPUTS = range(1, 11)
OUTPUTS = range(1, 13)


def _decode(channel: int) -> tuple[int, int, int]:
    card, inp, out = channel // 10000, (channel // 100) % 100, channel % 100
    if card not in CARDS or inp not in INPUTS or out not in OUTPUTS or channel >= 50000:
        raise ScpiError(-224, f"channel {channel} does not exist (card 1-4, input 1-10, out 1-12)")
    return card, inp, out


class VirtualE5250A(ScpiDevice):
    idn = "Agilent Technologies,E5250A,0,B.01.03"

    def reset(self) -> None:
        self.mode = "NCON"
        self.rule = dict.fromkeys(CARDS, "FREE")
        self.sequence = dict.fromkeys(CARDS, "NSEQ")
        self.overlaps = 0
        self.bench.closed.clear()

    def register(self) -> None:
        self.add("[:ROUTe]:FUNCtion", self._set_mode, 1)
        self.add("[:ROUTe]:FUNCtion?", lambda a: self.mode, 0)
        self.add("[:ROUTe]:CONNection:RULE", self._per_card("rule", ("FREE", "SROUte")), 2)
        self.add("[:ROUTe]:CONNection:RULE?", self._card_query("rule"), 1)
        self.add(
            "[:ROUTe]:CONNection:SEQuence", self._per_card("sequence", ("NSEQ", "BBM", "MBBR")), 2
        )
        self.add("[:ROUTe]:CONNection:SEQuence?", self._card_query("sequence"), 1)
        self.add("[:ROUTe]:OPEN:CARD", self._open_card, 1)
        self.add("[:ROUTe]:CLOSe[:LIST]", self._close)
        self.add("[:ROUTe]:OPEN[:LIST]", self._open)
        self.add("[:ROUTe]:CLOSe[:LIST]?", lambda a: self._states(a, closed=True))
        self.add("[:ROUTe]:OPEN[:LIST]?", lambda a: self._states(a, closed=False))
        self.add("[:ROUTe]:CLOSe:CARD?", self._closed_on_card, 1)
        self.add(":SYSTem:CTYPe?", lambda a: "E5252A" if self._card(a[0]) else "", 1)

    # ------------------------------------------------------------------ settings
    def _set_mode(self, args: list) -> None:
        self.mode = short_choice(args[0], "configuration mode", ("NCONnect", "ACONnect"))

    @staticmethod
    def _card(arg: object) -> int:
        return parse_int(arg, "card", 1, len(CARDS))

    def _cards(self, arg: object) -> tuple[int, ...]:
        text = (arg.decode() if isinstance(arg, bytes) else str(arg)).strip().upper()
        return CARDS if text == "ALL" else (self._card(text),)

    def _per_card(self, attr: str, choices: tuple[str, ...]):
        def setter(args: list) -> None:
            cards = self._cards(args[0])
            value = short_choice(args[1], attr, choices)
            for card in cards:
                getattr(self, attr)[card] = value

        return setter

    def _card_query(self, attr: str):
        return lambda args: getattr(self, attr)[self._card(args[0])]

    # ------------------------------------------------------------------ relays
    def _changed(self) -> None:
        self.bench.clock.advance(self.bench.relay_time_s)

    def _open_card(self, args: list) -> None:
        cards = self._cards(args[0])
        closed = self.bench.closed
        before = len(closed)
        closed.difference_update({relay for relay in closed if relay[0] in cards})
        if len(closed) != before:
            self._changed()

    def _close(self, args: list) -> None:
        relays = [_decode(ch) for ch in parse_chanlist(args, ())]
        closed = self.bench.closed
        changed = False
        for card, inp, out in relays:
            if (card, inp, out) in closed:
                continue
            clash = {r for r in closed if r[0] == card and (r[1] == inp or r[2] == out)}
            if self.rule[card] == "FREE":
                if any(r[2] == out and r[1] != inp for r in clash):
                    raise ScpiError(
                        -221, f"output {out} of card {card} already has an input (would short)"
                    )
                clash = set()
            elif self.sequence[card] == "MBBR" and any(r[2] == out for r in clash):
                self.overlaps += 1  # two inputs joined while the new relay closes first
            closed.difference_update(clash)
            closed.add((card, inp, out))
            changed = True
        if changed:
            self._changed()

    def _open(self, args: list) -> None:
        relays = {_decode(ch) for ch in parse_chanlist(args, ())}
        if relays & self.bench.closed:
            self.bench.closed.difference_update(relays)
            self._changed()

    def _states(self, args: list, closed: bool) -> str:
        relays = [_decode(ch) for ch in parse_chanlist(args, ())]
        return ",".join("1" if (r in self.bench.closed) == closed else "0" for r in relays)

    def _closed_on_card(self, args: list) -> str:
        card = self._card(args[0])
        chans = sorted(c * 10000 + i * 100 + o for c, i, o in self.bench.closed if c == card)
        return "(@" + ",".join(str(ch) for ch in chans) + ")"
