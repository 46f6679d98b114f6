"""A small SCPI engine: message framing with IEEE 488.2 blocks, header matching, error queue.

Instrument-agnostic: an emulated instrument registers its commands on a
:class:`CommandTable` and the server feeds it complete program messages. Every malformed,
unknown or out-of-range command pushes a standard SCPI error and changes nothing.

Generic behaviour (references in ``instruments/emulator/COMMANDS.md``, "Generic SCPI
behaviour"): LF ends a program message and CR before it is white space; ``;`` separates
commands and a command without a leading ``:`` continues the previous command's path;
``[:NODE]`` keywords are optional; numeric parameters take ``MINimum``/``MAXimum``/``DEFault``;
a query that fails produces no response at all (its error is queued); the IEEE 488.2
status model (``*ESR?`` latched, ``*ESE``, ``*SRE``, ``*STB?``) is in :class:`StatusModel`.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BlockReply",
    "CommandTable",
    "ErrorQueue",
    "LineTooLongError",
    "MessageFramer",
    "ScpiError",
    "StatusModel",
    "block_reply",
    "encode_block",
    "expand_optional",
    "parse_bool",
    "parse_float",
    "parse_int",
    "register_common",
    "special_value",
    "split_messages",
]

#: Standard SCPI error codes used by the emulators (IEEE 488.2 / SCPI-99 volume 2, ch. 21).
ERROR_MESSAGES = {
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -160: "Block data error",
    -161: "Invalid block data",
    -221: "Settings conflict",
    -222: "Data out of range",
    -223: "Too much data",
    -224: "Illegal parameter value",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -410: "Query INTERRUPTED",
}

log = logging.getLogger(__name__)

MAX_BLOCK_BYTES = 1 << 30  # refuse single blocks above 1 GiB (-223)
#: text outside blocks in one program message; the longest legitimate ASCII message (a
#: 2,500-point list) is under 64 kB, so 4 MiB is generous
MAX_TEXT_BYTES = 4 << 20
#: one program message: the largest legitimate block plus its text
MAX_MESSAGE_BYTES = MAX_BLOCK_BYTES + MAX_TEXT_BYTES
#: SCPI-99 vol. 2 §21.8: description and device-dependent info together, at most 255
MAX_ERROR_TEXT = 255


class ScpiError(Exception):
    """A command failed; ``code`` is the SCPI error number, ``detail`` says why."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code},{self.text}")

    @property
    def text(self) -> str:
        base = ERROR_MESSAGES.get(self.code, "Device-specific error")
        return quoted_error_text(f"{base}; {self.detail}" if self.detail else base)


def quoted_error_text(text: str) -> str:
    """``"text"`` cut to :data:`MAX_ERROR_TEXT` characters, inner quotes doubled (488.2 strings)."""
    text = _printable(text)
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    return '"' + text.replace('"', "'") + '"'


def _printable(text: str) -> str:
    """``text`` in printable ASCII (IEEE 488.2 strings are 7-bit): others escaped."""
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text)


class ErrorQueue:
    """SCPI error FIFO with the standard overflow rule (last entry becomes -350).

    Texts are cut to :data:`MAX_ERROR_TEXT` characters (SCPI-99 vol. 2 §21.8), so
    ``SYST:ERR:ALL?`` is bounded. ``listener(code)`` is told of every error pushed (the
    status model sets the event bits from it).
    """

    def __init__(self, size: int = 32, listener: Callable[[int], None] | None = None) -> None:
        self.size = size
        self.listener = listener
        self._q: deque[tuple[int, str]] = deque()

    def push(self, code: int, text: str) -> None:
        text = _printable(text)
        if len(text) > MAX_ERROR_TEXT + 2:
            text = text[: MAX_ERROR_TEXT - 3] + ('..."' if text.startswith('"') else "...")
        if self.listener is not None:
            self.listener(code)
        if len(self._q) >= self.size:
            self._q[-1] = (-350, '"Queue overflow"')
            return
        self._q.append((code, text))

    def pop(self) -> str:
        if not self._q:
            return '0,"No error"'
        code, text = self._q.popleft()
        return f"{code},{text}"

    def pop_all(self) -> str:
        if not self._q:
            return '0,"No error"'
        items = [f"{c},{t}" for c, t in self._q]
        self._q.clear()
        return ",".join(items)

    def __len__(self) -> int:
        return len(self._q)

    def clear(self) -> None:
        self._q.clear()


# --------------------------------------------------------------------------- status
class StatusModel:
    """IEEE 488.2 status reporting (§11): event status register, enables, status byte.

    Event bits (§11.5.1): 0 OPC, 2 QYE, 3 DDE, 4 EXE, 5 CME, 7 PON. They latch until
    ``*ESR?`` reads them or ``*CLS``. Status byte (§11.2): bit 2 error/event queue not
    empty (SCPI-99 vol. 1, status reporting), bit 5 ESB = ESR AND ESE, bit 6 MSS = summary of the
    bits enabled by ``*SRE``. ``*RST`` leaves all of them alone (§10.32).
    """

    OPC, QYE, DDE, EXE, CME, PON = 1, 4, 8, 16, 32, 128

    def __init__(self, errors: ErrorQueue | None = None) -> None:
        self.errors = errors if errors is not None else ErrorQueue()
        self.errors.listener = self.error_event
        self.esr = self.PON  # power-on event
        self.ese = 0
        self.sre = 0

    def error_event(self, code: int) -> None:
        """Set the event bit of an error's class (SCPI-99 vol. 2 §21.8)."""
        if -199 <= code <= -100:
            self.esr |= self.CME
        elif -299 <= code <= -200:
            self.esr |= self.EXE
        elif -499 <= code <= -400:
            self.esr |= self.QYE
        elif code != 0:
            self.esr |= self.DDE

    def read_esr(self) -> int:
        value, self.esr = self.esr, 0
        return value

    def stb(self) -> int:
        value = 4 if len(self.errors) else 0
        if self.esr & self.ese:
            value |= 32
        if value & self.sre & ~64:
            value |= 64
        return value

    def clear(self) -> None:
        """``*CLS``: event register and error queue (the enables stay)."""
        self.esr = 0
        self.errors.clear()


def register_common(
    table: CommandTable,
    status: StatusModel,
    identity: Callable[[], str],
    reset: Callable[[], None],
) -> None:
    """Register the IEEE 488.2 mandatory common commands (§10) and SCPI ``SYST:ERR``.

    ``*OPC?``/``*OPC``/``*WAI``: every command here completes before the next one is read
    (sequential commands), so ``*OPC?`` answers 1 at once and ``*OPC`` sets the OPC
    event bit at once. ``*TST?`` answers 0 (self-test passed).
    """
    t = table
    t.add("*IDN?", lambda a: identity(), 0)
    t.add("*RST", lambda a: reset(), 0)
    t.add("*CLS", lambda a: status.clear(), 0)
    t.add("*OPC?", lambda a: "1", 0)
    t.add("*OPC", lambda a: _set_opc(status), 0)
    t.add("*WAI", lambda a: None, 0)
    t.add("*TST?", lambda a: "0", 0)
    t.add("*ESR?", lambda a: str(status.read_esr()), 0)
    t.add("*ESE", lambda a: setattr(status, "ese", parse_int(a[0], "*ESE mask", 0, 255)), 1)
    t.add("*ESE?", lambda a: str(status.ese), 0)
    t.add("*SRE", lambda a: setattr(status, "sre", parse_int(a[0], "*SRE mask", 0, 255) & ~64), 1)
    t.add("*SRE?", lambda a: str(status.sre), 0)
    t.add("*STB?", lambda a: str(status.stb()), 0)
    errors = status.errors
    t.add("SYSTem:ERRor[:NEXT]?", lambda a: errors.pop(), 0)
    t.add("SYSTem:ERRor:ALL?", lambda a: errors.pop_all(), 0)
    t.add("SYSTem:ERRor:COUNt?", lambda a: str(len(errors)), 0)


def _set_opc(status: StatusModel) -> None:
    status.esr |= StatusModel.OPC


# --------------------------------------------------------------------------- framing
class LineTooLongError(Exception):
    """A client sent more than the engine accepts as one program message."""


_SCAN = re.compile(rb"[\n#]")


class MessageFramer:
    """Cut program messages (LF outside any IEEE 488.2 block) off a byte stream.

    Each byte is scanned once: the scan resumes where the previous :meth:`feed` stopped
    and block payloads are skipped by their declared length, so a long message that
    arrives in many pieces costs time linear in its length. A message whose text outside
    blocks exceeds ``max_text`` bytes, or whose total exceeds ``max_message`` bytes,
    raises :class:`LineTooLongError` (the server then drops the client).
    """

    def __init__(
        self, max_text: int = MAX_TEXT_BYTES, max_message: int = MAX_MESSAGE_BYTES
    ) -> None:
        self.buffer = bytearray()
        self.max_text = max_text
        self.max_message = max_message
        self._pos = 0  # next byte to scan
        self._text = 0  # text bytes (outside blocks) of the pending message so far

    @property
    def pending(self) -> int:
        """Bytes of the unterminated message held."""
        return len(self.buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; returns the messages it completed (without the LF)."""
        buf = self.buffer
        buf += data
        messages: list[bytes] = []
        start = 0
        pos = self._pos
        n = len(buf)
        while pos < n:
            m = _SCAN.search(buf, pos)
            if m is None:
                self._text += n - pos
                pos = n
                break
            i = m.start()
            self._text += i - pos
            if buf[i] == 0x0A:
                messages.append(bytes(buf[start:i]))
                pos = start = i + 1
                self._text = 0
                continue
            # '#': a definite-length block if followed by a digit 1-9 and its length digits
            if i + 1 >= n:
                pos = i
                break  # wait for the next byte
            nd = buf[i + 1] - 0x30
            if not 1 <= nd <= 9:
                self._text += 1
                pos = i + 1
                continue
            if i + 2 + nd > n:
                pos = i
                break  # header incomplete
            digits = bytes(buf[i + 2 : i + 2 + nd])
            if not digits.isdigit() or int(digits) > MAX_BLOCK_BYTES:
                self._text += 2
                pos = i + 2  # not a usable block header; the parser reports it
                continue
            end = i + 2 + nd + int(digits)
            if end > n:
                pos = i
                break  # payload incomplete: rescan from the header when more arrives
            self._text += 2 + nd
            pos = end
        if start:
            del buf[:start]
            pos -= start
        self._pos = pos
        if self._text > self.max_text:
            raise LineTooLongError(
                f"program message text exceeds {self.max_text} bytes without a terminator"
            )
        if len(buf) > self.max_message:
            raise LineTooLongError(f"program message exceeds {self.max_message} bytes")
        return messages


def split_messages(buffer: bytearray) -> tuple[list[bytes], int]:
    """Cut complete program messages (ending in LF outside any block) off ``buffer``.

    Returns the messages and the number of bytes consumed. An incomplete trailing message
    (including a half-received ``#<d><len>`` block) stays in the buffer. (A one-shot form
    of :class:`MessageFramer`.)
    """
    framer = MessageFramer(max_text=1 << 62, max_message=1 << 62)
    messages = framer.feed(bytes(buffer))
    return messages, len(buffer) - framer.pending


@dataclass
class Command:
    """One parsed command: upper-case header path, query flag, raw argument tokens."""

    header: tuple[str, ...]
    query: bool
    args: list[bytes | str]


#: IEEE 488.2 §7.4.1.2 <white space>: bytes 0-9 and 11-32 (so a CR before the LF is white space)
_WS = bytes(range(0, 10)) + bytes(range(11, 33))

_HEADER_RE = re.compile(rb"^\s*(\*?[A-Za-z][A-Za-z0-9:]*|:[A-Za-z][A-Za-z0-9:]*)(\?)?")


def _split_units(message: bytes) -> list[bytes]:
    """Split a program message on ';' outside quotes and blocks."""
    units: list[bytes] = []
    start = 0
    i = 0
    n = len(message)
    quote = 0
    while i < n:
        c = message[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x23 and i + 1 < n and 0x31 <= message[i + 1] <= 0x39:
            nd = message[i + 1] - 0x30
            digits = message[i + 2 : i + 2 + nd]
            if len(digits) == nd and digits.isdigit():
                i = i + 2 + nd + int(digits)
                continue
        elif c == 0x3B:  # ';'
            units.append(message[start:i])
            start = i + 1
        i += 1
    units.append(message[start:])
    return units


def _split_args(text: bytes) -> list[bytes | str]:
    """Split the argument part on commas; blocks come back as raw payload ``bytes``."""
    args: list[bytes | str] = []
    i = 0
    n = len(text)
    token = bytearray()
    quote = 0
    while i < n:
        c = text[i]
        if quote:  # a string parameter may hold commas (IEEE 488.2 §7.7.5)
            token.append(c)
            if c == quote:
                quote = 0
            i += 1
            continue
        if c in (0x22, 0x27):
            quote = c
            token.append(c)
            i += 1
            continue
        if c == 0x23:  # '#': a block must be a whole argument
            if token.strip():
                raise ScpiError(-161, "block inside another argument")
            if i + 1 >= n or not (0x31 <= text[i + 1] <= 0x39):
                raise ScpiError(-161, "block header must be #<1-9 digits><length>")
            nd = text[i + 1] - 0x30
            digits = text[i + 2 : i + 2 + nd]
            if len(digits) != nd or not digits.isdigit():
                raise ScpiError(-161, "block length field is not numeric")
            length = int(digits)
            if length > MAX_BLOCK_BYTES:
                raise ScpiError(-223, f"block of {length} bytes exceeds {MAX_BLOCK_BYTES}")
            payload = text[i + 2 + nd : i + 2 + nd + length]
            if len(payload) != length:
                raise ScpiError(-161, f"block declares {length} bytes, got {len(payload)}")
            args.append(bytes(payload))
            i = i + 2 + nd + length
            while i < n and text[i] in _WS:
                i += 1
            if i < n and text[i] != 0x2C:
                raise ScpiError(-161, "trailing bytes after block")
            i += 1
            token = bytearray()
            continue
        if c == 0x2C:  # ','
            args.append(token.decode("ascii", "replace").strip())
            token = bytearray()
        else:
            token.append(c)
        i += 1
    if token.strip() or (args and text.rstrip().endswith(b",")):
        args.append(token.decode("ascii", "replace").strip())
    return args


def _looks_like_query(unit: bytes) -> bool:
    """Whether the header part of ``unit`` (before any parameter) ends in '?'."""
    head = unit.lstrip().split(None, 1)[0] if unit.strip() else b""
    return head.endswith(b"?")


def parse_unit(unit: bytes) -> Command | None:
    """Parse one command of a program message; ``None`` for an empty unit.

    ``Command.header`` starts with ``""`` when the header began with ``:`` (root).
    """
    unit = unit.lstrip(_WS)  # (trailing bytes may belong to a block payload)
    if not unit.rstrip(_WS):
        return None
    m = _HEADER_RE.match(unit)
    if not m:
        raise ScpiError(-102, f"cannot parse header of {unit[:40]!r}")
    text = m.group(1).decode("ascii").upper()
    header = text.lstrip(":")
    if "::" in header or header.endswith(":"):
        raise ScpiError(-102, f"bad header {header[:40]!r}")
    rest = unit[m.end() :]
    if rest and rest[0] not in _WS:
        raise ScpiError(-102, f"expected a space after header {header[:40]!r}")
    rest = rest.lstrip(_WS)
    args = _split_args(rest) if rest.rstrip(_WS) else []
    parts = tuple(header.split(":"))
    return Command(("", *parts) if text.startswith(":") else parts, m.group(2) is not None, args)


# --------------------------------------------------------------------------- values
def special_value(arg: bytes | str) -> str | None:
    """``MIN``/``MAX``/``DEF`` if ``arg`` is one of those mnemonics (SCPI-99 vol. 1)."""
    if isinstance(arg, bytes):
        return None
    text = arg.strip().upper()
    for long_form in ("MINimum", "MAXimum", "DEFault"):
        if _keyword_matches(long_form, text):
            return long_form[:3].upper()
    return None


def parse_float(
    arg: bytes | str,
    name: str,
    lo: float = -math.inf,
    hi: float = math.inf,
    default: float | None = None,
) -> float:
    """A finite number within [lo, hi]; -104/-222 otherwise.

    ``MINimum``/``MAXimum`` stand for ``lo``/``hi`` and ``DEFault`` for ``default`` (the
    ``*RST`` value), as SCPI-99 vol. 1 defines for numeric parameters; refused (-224)
    where not defined.
    """
    if isinstance(arg, bytes):
        raise ScpiError(-104, f"{name} must be a number, not a block")
    special = special_value(arg)
    if special is not None:
        value = {"MIN": lo, "MAX": hi, "DEF": default}[special]
        if value is None or not math.isfinite(value):
            raise ScpiError(-224, f"{name} has no {special} value")
        return float(value)
    try:
        value = float(arg)
    except ValueError:
        raise ScpiError(-104, f"{name} must be a number, got {arg!r}") from None
    if not math.isfinite(value):
        raise ScpiError(-222, f"{name} must be finite")
    if not lo <= value <= hi:
        raise ScpiError(-222, f"{name}={value:g} outside [{lo:g}, {hi:g}]")
    return value


def parse_int(
    arg: bytes | str,
    name: str,
    lo: int = -(2**62),
    hi: int = 2**62,
    default: int | None = None,
) -> int:
    """An integer within [lo, hi] (or ``MIN``/``MAX``/``DEF``); -104/-222 otherwise."""
    special = special_value(arg)
    if special is not None:
        value = {"MIN": lo, "MAX": hi, "DEF": default}[special]
        if value is None:
            raise ScpiError(-224, f"{name} has no {special} value")
        return int(value)
    value = parse_float(arg, name)
    if value != int(value):
        raise ScpiError(-104, f"{name} must be an integer, got {arg!r}")
    if not lo <= value <= hi:
        raise ScpiError(-222, f"{name}={int(value)} outside [{lo}, {hi}]")
    return int(value)


def parse_bool(arg: bytes | str, name: str) -> bool:
    text = arg.decode() if isinstance(arg, bytes) else arg
    text = text.strip().upper()
    if text in ("1", "ON"):
        return True
    if text in ("0", "OFF"):
        return False
    try:  # SCPI-99 vol. 1 (Boolean parameters): a number is rounded, and anything but 0 means ON
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value):
        return round(value) != 0
    raise ScpiError(-224, f"{name} must be ON/OFF/1/0, got {text[:40]!r}")


def parse_choice(arg: bytes | str, name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (long forms, matched by short or long form, case-insensitive)."""
    text = (arg.decode() if isinstance(arg, bytes) else arg).strip().upper()
    for choice in choices:
        if _keyword_matches(choice, text):
            return choice.upper()
    raise ScpiError(-224, f"{name} must be one of {', '.join(choices)}, got {text!r}")


def decode_block(arg: bytes | str, dtype: str, name: str) -> np.ndarray:
    """Decode a binary block argument as little-endian ``dtype`` (numpy code, e.g. '<f4')."""
    if not isinstance(arg, bytes):
        raise ScpiError(-104, f"{name} must be a #-block of {dtype}")
    itemsize = np.dtype(dtype).itemsize
    if len(arg) % itemsize:
        raise ScpiError(-161, f"{name}: {len(arg)} bytes is not a multiple of {itemsize}")
    return np.frombuffer(arg, dtype=dtype).copy()


def encode_block(array: np.ndarray, dtype: str = "<f4") -> bytes:
    """IEEE 488.2 definite-length block of ``array`` as ``dtype`` (no terminator)."""
    payload = np.ascontiguousarray(array, dtype=dtype).tobytes()
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


class BlockReply:
    """A definite-length block reply kept as header + array, sent without joining copies."""

    __slots__ = ("header", "payload")

    def __init__(self, array: np.ndarray, dtype: str = "<f4") -> None:
        data = np.ascontiguousarray(array, dtype=dtype)
        self.payload = memoryview(data).cast("B")
        length = str(self.payload.nbytes).encode()
        self.header = b"#" + str(len(length)).encode() + length

    @property
    def nbytes(self) -> int:
        return len(self.header) + self.payload.nbytes

    def tobytes(self) -> bytes:
        return self.header + self.payload.tobytes()


def block_reply(array: np.ndarray, dtype: str = "<f4") -> BlockReply:
    """Reply ``array`` as an IEEE 488.2 definite-length block of ``dtype``."""
    return BlockReply(array, dtype)


# --------------------------------------------------------------------------- dispatch
Handler = Callable[[list], "str | bytes | BlockReply | None"]


def _keyword_short(long_form: str) -> str:
    short = "".join(ch for ch in long_form if ch.isupper() or ch.isdigit() or ch == "*")
    return short or long_form.upper()


def _keyword_matches(long_form: str, token: str) -> bool:
    return token in (long_form.upper(), _keyword_short(long_form).upper())


def expand_optional(pattern: str) -> list[str]:
    """Every header a pattern with optional ``[:NODE]`` keywords allows (SCPI-99 vol. 1)."""
    query = pattern.endswith("?")
    nodes = pattern.rstrip("?").lstrip(":").replace("[:", ":[").split(":")
    choices = [
        ("", node[1:-1]) if node.startswith("[") and node.endswith("]") else (node,)
        for node in nodes
        if node
    ]
    return [
        ":".join(n for n in combo if n) + ("?" if query else "")
        for combo in itertools.product(*choices)
    ]


class CommandTable:
    """Maps SCPI headers (written in mixed case: ``ROUTe:SELect:BLOCk``) to handlers.

    Handlers receive the argument list and return ``None`` (command), ``str`` (ASCII reply)
    or ``bytes`` (a binary block reply, already framed). ``answer_failed_queries`` (off, as
    IEEE 488.2 §6.3 and the manuals have it) would answer a failed query with an empty line.
    """

    def __init__(self, answer_failed_queries: bool = False) -> None:
        self._entries: list[tuple[tuple[str, ...], bool, Handler, int | None]] = []
        self.answer_failed_queries = answer_failed_queries

    def add(self, pattern: str, handler: Handler, nargs: int | None = None) -> None:
        """Register ``pattern`` (ending in '?' for a query); ``nargs`` checks the count.

        ``[:NODE]`` keywords are optional: every form is registered.
        """
        for header in expand_optional(pattern):
            query = header.endswith("?")
            keywords = tuple(header.rstrip("?").split(":"))
            self._entries.append((keywords, query, handler, nargs))

    def _find(self, header: tuple[str, ...], query: bool) -> tuple[Handler, int | None] | None:
        for keywords, is_query, handler, nargs in self._entries:
            if is_query != query or len(keywords) != len(header):
                continue
            if all(_keyword_matches(k, t) for k, t in zip(keywords, header, strict=True)):
                return handler, nargs
        return None

    def resolve(self, cmd: Command) -> tuple[Handler, int | None]:
        header = cmd.header[1:] if cmd.header[:1] == ("",) else cmd.header
        found = self._find(header, cmd.query)
        if found is None:
            text = (":".join(header) + ("?" if cmd.query else ""))[:80]
            bare = tuple(k.rstrip("0123456789") or k for k in header)
            if bare != header and self._find(bare, cmd.query) is not None:
                raise ScpiError(-114, text)  # a channel this instrument does not have
            raise ScpiError(-113, text)
        return found

    def execute(self, message: bytes, errors: ErrorQueue) -> list[str | bytes | BlockReply]:
        """Run every command of a program message; returns the replies of its queries.

        A command without a leading ``:`` continues the path of the previous command of
        the message (all of its header but the last keyword; SCPI-99 vol. 1, compound headers); a
        common command (``*XXX``) leaves the path alone; a new message starts at the root.
        A query that fails queues its error and produces no response.
        """
        replies: list[str | bytes | BlockReply] = []
        try:
            units = _split_units(message)
        except ScpiError as exc:
            errors.push(exc.code, exc.text)
            return replies
        path: tuple[str, ...] = ()
        for unit in units:
            try:
                cmd = parse_unit(unit)
                if cmd is None:
                    continue
                common = cmd.header[0].startswith("*")
                if cmd.header[0] == "":
                    cmd.header = cmd.header[1:]
                elif not common and path:
                    cmd.header = path + cmd.header
                if not common:
                    path = cmd.header[:-1]
                handler, nargs = self.resolve(cmd)
                if nargs is not None and len(cmd.args) != nargs:
                    code = -109 if len(cmd.args) < nargs else -108
                    raise ScpiError(code, f"expected {nargs} parameter(s), got {len(cmd.args)}")
                reply = handler(cmd.args)
                if cmd.query:
                    replies.append(reply if reply is not None else "")
            except Exception as exc:
                if not isinstance(exc, ScpiError):
                    # a bug must not take the instrument down: report it like firmware would
                    log.exception("internal error while executing %r", unit[:80])
                    exc = ScpiError(-300, f"internal error {type(exc).__name__}: {exc}")
                errors.push(exc.code, exc.text)
                if self.answer_failed_queries and _looks_like_query(unit):
                    replies.append("")
        return replies
