"""Virtual Keysight E5250A switch mainframe with four E5252A cards (10 inputs x 12 outputs).

Relays live in the bench (``bench.closed``), where the other instruments look up the
device they drive. Channel ``cIIOO`` connects input II to output OO of card c. With the
single-route rule a new connection replaces the one that used its input or output on the
same card: break-before-make opens the old relay first, make-before-break closes the new
one first, which momentarily joins two inputs (counted in ``overlaps``). With the free
rule, connecting a second input to an output is refused (-221): on the real instrument it
would short the two instruments together. Every command that changes a relay advances
the clock by the relay settling time.

Bias mode (E5250A User's Guide Ed. 9, 5-11; ``[:ROUTe]:BIAS[:STATe] card,ON|OFF``, B2200
Guide 5-33): with bias mode on for a card, its bias input port (``:ROUT:BIAS:PORT``,
input 10 by default) is connected to every bias-enabled output that no other input is
connected to; closing a route to an output takes it off the bias port, opening it puts
it back. All outputs are bias-enabled by default (``:ROUT:BIAS:CHAN:ENAB|DIS``). Couple
mode (``[:ROUTe]:COUPle[:STATe]``) is stored and reported; connections with it on are
refused (-221, not modelled). ``*RST`` opens every relay and turns bias and couple mode
off; nothing else does, so a previous session's modes survive a reconnection.
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
        self.bias = dict.fromkeys(CARDS, False)
        self.bias_port = dict.fromkeys(CARDS, 10)
        self.bias_disabled: set[tuple[int, int]] = set()  # (card, output)
        self.couple = dict.fromkeys(CARDS, False)
        if self.bench.closed:
            self.bench.release_all()
            self.bench.closed.clear()
            self.bench.relays_changed()

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
        self.add("[:ROUTe]:BIAS[:STATe]", self._per_card_flag("bias"), 2)
        self.add("[:ROUTe]:BIAS[:STATe]?", lambda a: "1" if self.bias[self._card(a[0])] else "0", 1)
        self.add("[:ROUTe]:BIAS:PORT", self._set_bias_port, 2)
        self.add("[:ROUTe]:BIAS:PORT?", lambda a: str(self.bias_port[self._card(a[0])]), 1)
        self.add("[:ROUTe]:BIAS:CHANnel:ENABle[:LIST]", lambda a: self._bias_enable(a, True))
        self.add("[:ROUTe]:BIAS:CHANnel:DISable[:LIST]", lambda a: self._bias_enable(a, False))
        self.add("[:ROUTe]:COUPle[:STATe]", self._per_card_flag("couple"), 2)
        self.add(
            "[:ROUTe]:COUPle[:STATe]?", lambda a: "1" if self.couple[self._card(a[0])] else "0", 1
        )

    # ------------------------------------------------------------------ connections
    def connections(self) -> set[tuple[int, int, int]]:
        """Closed relays plus, on cards in bias mode, the bias port on every free output."""
        links = set(self.bench.closed)
        for card in CARDS:
            if not self.bias[card]:
                continue
            used = {out for c, _, out in self.bench.closed if c == card}
            for out in OUTPUTS:
                if out not in used and (card, out) not in self.bias_disabled:
                    links.add((card, self.bias_port[card], out))
        return links

    def _relays(self, change) -> None:
        """Run ``change`` on the relays, settling idle levels before and after."""
        self.bench.release_all()
        if change():
            self.bench.relays_changed()
            self._changed()

    def _per_card_flag(self, attr: str):
        def setter(args: list) -> None:
            from instruments.emulator.scpi import parse_bool

            cards = self._cards(args[0])
            value = parse_bool(args[1], attr)

            def change() -> bool:
                before = {c: getattr(self, attr)[c] for c in cards}
                for card in cards:
                    getattr(self, attr)[card] = value
                return any(before[c] != value for c in cards) and attr == "bias"

            self._relays(change)

        return setter

    def _set_bias_port(self, args: list) -> None:
        cards = self._cards(args[0])
        port = parse_int(args[1], "bias port", 1, 10)

        def change() -> bool:
            for card in cards:
                self.bias_port[card] = port
            return any(self.bias[c] for c in cards)

        self._relays(change)

    def _bias_enable(self, args: list, enable: bool) -> None:
        outputs = {(c, o) for c, _, o in (_decode(ch) for ch in parse_chanlist(args, ()))}

        def change() -> bool:
            if enable:
                self.bias_disabled.difference_update(outputs)
            else:
                self.bias_disabled.update(outputs)
            return any(self.bias[c] for c, _ in outputs)

        self._relays(change)

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

        def change() -> bool:
            before = len(closed)
            closed.difference_update({relay for relay in closed if relay[0] in cards})
            return len(closed) != before

        self._relays(change)

    def _close(self, args: list) -> None:
        relays = [_decode(ch) for ch in parse_chanlist(args, ())]
        for card, _, _ in relays:
            if self.couple[card]:
                raise ScpiError(-221, f"couple mode is on for card {card} (not modelled)")
        self._relays(lambda: self._close_relays(relays))

    def _close_relays(self, relays: list[tuple[int, int, int]]) -> bool:
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
        return changed

    def _open(self, args: list) -> None:
        relays = {_decode(ch) for ch in parse_chanlist(args, ())}

        def change() -> bool:
            if relays & self.bench.closed:
                self.bench.closed.difference_update(relays)
                return True
            return False

        self._relays(change)

    def _states(self, args: list, closed: bool) -> str:
        relays = [_decode(ch) for ch in parse_chanlist(args, ())]
        return ",".join("1" if (r in self.bench.closed) == closed else "0" for r in relays)

    def _closed_on_card(self, args: list) -> str:
        card = self._card(args[0])
        chans = sorted(c * 10000 + i * 100 + o for c, i, o in self.bench.closed if c == card)
        return "(@" + ",".join(str(ch) for ch in chans) + ")"
