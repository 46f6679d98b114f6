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
        self.couple_ports: dict[int, tuple[int, ...]] = dict.fromkeys(CARDS, ())
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
        self.add("[:ROUTe]:BIAS:CHANnel:ENABle:CARD", lambda a: self._bias_card(a, True), 1)
        self.add("[:ROUTe]:BIAS:CHANnel:DISable:CARD", lambda a: self._bias_card(a, False), 1)
        self.add("[:ROUTe]:COUPle:PORT", self._set_couple_ports, 2)
        self.add("[:ROUTe]:COUPle:PORT?", self._couple_ports_query, 1)
        self.add("[:ROUTe]:COUPle:PORT:DETect", self._detect_couple_ports, 0)
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
        outputs = {(c, o) for c, _, o in (self._channel(ch) for ch in parse_chanlist(args, ()))}

        def change() -> bool:
            if enable:
                self.bias_disabled.difference_update(outputs)
            else:
                self.bias_disabled.update(outputs)
            return any(self.bias[c] for c, _ in outputs)

        self._relays(change)

    def _bias_card(self, args: list, enable: bool) -> None:
        channels = [
            card * 10000 + 100 + out if self.mode != "ACON" else 100 + (card - 1) * 12 + out
            for card in self._cards(args[0])
            for out in OUTPUTS
        ]
        self._bias_enable([f"(@{','.join(f'{c:05d}' for c in channels)})"], enable)

    # ------------------------------------------------------------------ couple ports
    # Couple ports (E5250A User's Guide, [:ROUTe]:COUPle:PORT): odd inputs paired with the
    # next one for Kelvin connections; the virtual bench has none, so detection finds none.
    def _set_couple_ports(self, args: list) -> None:
        cards = self._cards(args[0])
        text = args[1].decode() if isinstance(args[1], bytes) else str(args[1])
        text = text.strip().strip("'\"")
        ports = tuple(parse_int(p, "couple port", 1, 9) for p in text.split(",") if p.strip())
        if any(p % 2 == 0 for p in ports):
            raise ScpiError(-224, "couple ports are odd inputs (1, 3, 5, 7, 9)")
        for card in cards:
            self.couple_ports[card] = ports

    def _couple_ports_query(self, args: list) -> str:
        return "'" + ",".join(str(p) for p in self.couple_ports[self._card(args[0])]) + "'"

    def _detect_couple_ports(self, args: list) -> None:
        for card in CARDS:
            self.couple_ports[card] = ()

    # ------------------------------------------------------------------ settings
    def _set_mode(self, args: list) -> None:
        self.mode = short_choice(args[0], "configuration mode", ("NCONnect", "ACONnect"))

    def _card(self, arg: object) -> int:
        """A card number: 1-4 in normal configuration mode, 0 (all cards as one) in auto."""
        if self.mode == "ACON":
            parse_int(arg, "card (0 in auto configuration mode)", 0, 0)
            return CARDS[0]  # the cards share their settings in auto mode
        card = parse_int(arg, "card", 0, len(CARDS))
        if card == 0:
            raise ScpiError(-224, "card 0 is for the auto configuration mode (ROUT:FUNC ACON)")
        return card

    def _cards(self, arg: object) -> tuple[int, ...]:
        text = (arg.decode() if isinstance(arg, bytes) else str(arg)).strip().upper()
        if text == "ALL" or (self.mode == "ACON" and self._card(text)):
            return CARDS
        return (self._card(text),)

    def _channel(self, channel: int) -> tuple[int, int, int]:
        """(card, input, output) of a channel; in auto configuration mode the cards are one
        card 0 whose outputs 1-48 run through cards 1-4 (E5250A User's Guide Ed. 9, 5-6
        and 5-15: channel list and configuration mode)."""
        if self.mode != "ACON":
            if channel // 10000 == 0:
                raise ScpiError(-224, f"channel {channel:05d}: card 0 needs ROUT:FUNC ACON")
            return _decode(channel)
        inp, out = (channel // 100) % 100, channel % 100
        if channel // 10000 != 0 or inp not in INPUTS or not 1 <= out <= 12 * len(CARDS):
            raise ScpiError(
                -224,
                f"channel {channel:05d} does not exist (auto mode: card 0, input 1-10, out 1-48)",
            )
        return (out - 1) // 12 + 1, inp, (out - 1) % 12 + 1

    def _name(self, card: int, inp: int, out: int) -> str:
        """A relay as the channel list names it in the present configuration mode."""
        if self.mode == "ACON":
            return f"0{inp:02d}{(card - 1) * 12 + out:02d}"
        return f"{card}{inp:02d}{out:02d}"

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
        relays = [self._channel(ch) for ch in parse_chanlist(args, ())]
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
            one = self.mode == "ACON"  # auto mode: the cards are one matrix
            clash = {
                r
                for r in closed
                if (r[0] == card and r[2] == out) or ((one or r[0] == card) and r[1] == inp)
            }
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
        relays = {self._channel(ch) for ch in parse_chanlist(args, ())}

        def change() -> bool:
            if relays & self.bench.closed:
                self.bench.closed.difference_update(relays)
                return True
            return False

        self._relays(change)

    def _states(self, args: list, closed: bool) -> str:
        relays = [self._channel(ch) for ch in parse_chanlist(args, ())]
        return ",".join("1" if (r in self.bench.closed) == closed else "0" for r in relays)

    def _closed_on_card(self, args: list) -> str:
        cards = self._cards(args[0])
        names = sorted(self._name(*r) for r in self.bench.closed if r[0] in cards)
        return "(@" + ",".join(names) + ")"
