"""A small SCPI engine: message framing with IEEE 488.2 blocks, header matching, error queue.

Instrument-agnostic: an emulated instrument registers its commands on a
:class:`CommandTable` and the server feeds it complete program messages. Every malformed,
unknown or out-of-range command pushes a standard SCPI error and changes nothing.
"""

from __future__ import annotations

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
    "ScpiError",
    "block_reply",
    "encode_block",
    "parse_bool",
    "parse_float",
    "parse_int",
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


class ScpiError(Exception):
    """A command failed; ``code`` is the SCPI error number, ``detail`` says why."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code},{self.text}")

    @property
    def text(self) -> str:
        base = ERROR_MESSAGES.get(self.code, "Device-specific error")
        return f'"{base}; {self.detail}"' if self.detail else f'"{base}"'


class ErrorQueue:
    """SCPI error FIFO with the standard overflow rule (last entry becomes -350)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._q: deque[tuple[int, str]] = deque()

    def push(self, code: int, text: str) -> None:
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


# --------------------------------------------------------------------------- framing
def split_messages(buffer: bytearray) -> tuple[list[bytes], int]:
    """Cut complete program messages (ending in LF outside any block) off ``buffer``.

    Returns the messages and the number of bytes consumed. An incomplete trailing message
    (including a half-received ``#<d><len>`` block) stays in the buffer.
    """
    messages: list[bytes] = []
    start = 0
    i = 0
    n = len(buffer)
    while i < n:
        c = buffer[i]
        if c == 0x0A:  # LF ends a message
            messages.append(bytes(buffer[start:i]))
            i += 1
            start = i
        elif c == 0x23 and i + 1 < n and 0x31 <= buffer[i + 1] <= 0x39:  # '#1'..'#9'
            nd = buffer[i + 1] - 0x30
            if i + 2 + nd > n:
                break  # header incomplete
            digits = bytes(buffer[i + 2 : i + 2 + nd])
            if not digits.isdigit():
                i += 2  # not a valid block header; the parser will report it
                continue
            length = int(digits)
            end = i + 2 + nd + length
            if length > MAX_BLOCK_BYTES:
                i += 2 + nd  # the parser rejects it; skip over the header only
                continue
            if end > n:
                break  # payload incomplete
            i = end
        else:
            i += 1
    return messages, start


@dataclass
class Command:
    """One parsed command: upper-case header path, query flag, raw argument tokens."""

    header: tuple[str, ...]
    query: bool
    args: list[bytes | str]


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
    while i < n:
        c = text[i]
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
            while i < n and text[i] in b" \t":
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
    """Parse one command of a program message; ``None`` for an empty unit."""
    if not unit.strip():
        return None
    m = _HEADER_RE.match(unit)
    if not m:
        raise ScpiError(-102, f"cannot parse header of {unit[:40]!r}")
    header = m.group(1).decode("ascii").upper().lstrip(":")
    if "::" in header or header.endswith(":"):
        raise ScpiError(-102, f"bad header {header!r}")
    rest = unit[m.end() :]
    if rest and rest[:1] not in (b" ", b"\t"):
        raise ScpiError(-102, f"expected a space after header {header!r}")
    args = _split_args(rest.strip(b" \t\r")) if rest.strip(b" \t\r") else []
    return Command(tuple(header.split(":")), m.group(2) is not None, args)


# --------------------------------------------------------------------------- values
def parse_float(arg: bytes | str, name: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite number within [lo, hi]; -104/-222 otherwise."""
    if isinstance(arg, bytes):
        raise ScpiError(-104, f"{name} must be a number, not a block")
    try:
        value = float(arg)
    except ValueError:
        raise ScpiError(-104, f"{name} must be a number, got {arg!r}") from None
    if not math.isfinite(value):
        raise ScpiError(-222, f"{name} must be finite")
    if not lo <= value <= hi:
        raise ScpiError(-222, f"{name}={value:g} outside [{lo:g}, {hi:g}]")
    return value


def parse_int(arg: bytes | str, name: str, lo: int = -(2**62), hi: int = 2**62) -> int:
    """An integer within [lo, hi]; -104/-222 otherwise."""
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
    raise ScpiError(-224, f"{name} must be ON/OFF/1/0, got {text!r}")


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


class CommandTable:
    """Maps SCPI headers (written in mixed case: ``ROUTe:SELect:BLOCk``) to handlers.

    Handlers receive the argument list and return ``None`` (command), ``str`` (ASCII reply)
    or ``bytes`` (a binary block reply, already framed).
    """

    def __init__(self) -> None:
        self._entries: list[tuple[tuple[str, ...], bool, Handler, int | None]] = []

    def add(self, pattern: str, handler: Handler, nargs: int | None = None) -> None:
        """Register ``pattern`` (ending in '?' for a query); ``nargs`` checks the count."""
        query = pattern.endswith("?")
        keywords = tuple(pattern.rstrip("?").lstrip(":").split(":"))
        self._entries.append((keywords, query, handler, nargs))

    def resolve(self, cmd: Command) -> tuple[Handler, int | None]:
        for keywords, query, handler, nargs in self._entries:
            if query != cmd.query or len(keywords) != len(cmd.header):
                continue
            if all(_keyword_matches(k, t) for k, t in zip(keywords, cmd.header, strict=True)):
                return handler, nargs
        raise ScpiError(-113, ":".join(cmd.header) + ("?" if cmd.query else ""))

    def execute(self, message: bytes, errors: ErrorQueue) -> list[str | bytes | BlockReply]:
        """Run every command of a program message; returns the replies of its queries."""
        replies: list[str | bytes | BlockReply] = []
        try:
            units = _split_units(message)
        except ScpiError as exc:
            errors.push(exc.code, exc.text)
            return replies
        for unit in units:
            try:
                cmd = parse_unit(unit)
                if cmd is None:
                    continue
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
                if _looks_like_query(unit):
                    # A failed query still answers so that the client never hangs; SCPI
                    # instruments vary here, ours answers an empty line and queues the error.
                    replies.append("")
        return replies
