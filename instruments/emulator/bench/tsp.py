"""A tiny interpreter for the TSP (Lua) subset that instrument drivers send.

Supported: statements separated by ``;`` or new lines; assignments ``a.b.c = expr``;
calls ``f(args)``; numeric ``for v = a, b[, step] do ... end`` loops; ``--`` comments;
expressions that are numbers, strings, ``true``/``false``/``nil``, tables ``{1, 2, 3}``,
dotted names with ``[n]`` indices, ``+ - * /`` with parentheses and unary minus, and calls
(all their results when last in an argument list, as in Lua; else the first). Names
resolve in a :class:`Namespace`: constants, attributes (getter, setter) and functions,
all keyed by their dotted path, and global variables that a chunk assigns. A syntax error
aborts the whole chunk before anything runs (-285); a runtime error aborts the rest of it
(-286), as on the instrument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Namespace", "TspError", "parse_chunk", "run_chunk"]

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TspError(Exception):
    """An error the instrument queues: ``code`` and message."""

    def __init__(self, code: int, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.parts).replace(".[", "[")


@dataclass(frozen=True)
class Call:
    path: Path
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Table:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Assign:
    path: Path
    value: Any


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Neg:
    value: Any


@dataclass(frozen=True)
class For:
    """``for var = start, stop[, step] do body end`` (a numeric for loop)."""

    var: str
    start: Any
    stop: Any
    step: Any
    body: tuple


MAX_LOOP = 100_000  # iterations of one loop the virtual instrument runs


class _Parser:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def error(self, what: str) -> TspError:
        return TspError(
            -285, f"Program syntax (line 1): {what} near {self.s[self.i : self.i + 12]!r}"
        )

    def ws(self) -> None:
        while self.i < len(self.s):
            if self.s[self.i] in " \t\r":
                self.i += 1
            elif self.s.startswith("--", self.i):  # a comment runs to the end of the line
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def word(self) -> str:
        """The name that starts here (without consuming it), or ''."""
        self.ws()
        m = _NAME.match(self.s, self.i)
        return m.group() if m else ""

    def peek(self) -> str:
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def eat(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"'{char}' expected")
        self.i += 1

    def statements(self, block: bool = False) -> list:
        """Statements up to the end of the text, or (``block``) up to a matching ``end``."""
        found = []
        while True:
            while self.peek() in (";", "\n"):
                self.i += 1
            if block and self.word() == "end":
                self.i += 3
                return found
            if not self.peek():
                if block:
                    raise self.error("'end' expected")
                return found
            found.append(self.statement())
            if self.peek() not in ("", ";", "\n") and self.word() != "end":
                raise self.error("';' or end of line expected")

    def statement(self) -> Assign | Call | For:
        if self.word() == "for":
            return self.for_loop()
        path = self.path()
        char = self.peek()
        if char == "=":
            self.i += 1
            return Assign(path, self.expression())
        if char == "(":
            return Call(path, self.arguments())
        raise self.error("'=' or '(' expected")

    def path(self) -> Path:
        self.ws()
        m = _NAME.match(self.s, self.i)
        if not m:
            raise self.error("name expected")
        parts = [m.group()]
        self.i = m.end()
        while True:
            if self.s.startswith(".", self.i):
                m = _NAME.match(self.s, self.i + 1)
                if not m:
                    raise self.error("name expected after '.'")
                parts.append(m.group())
                self.i = m.end()
            elif self.s.startswith("[", self.i):
                self.i += 1
                index = self.expression()
                self.eat("]")
                parts.append(f"[{index:g}]" if isinstance(index, float) else f"[{index}]")
            else:
                return Path(tuple(parts))

    def arguments(self) -> tuple:
        self.eat("(")
        args = []
        if self.peek() != ")":
            args.append(self.expression())
            while self.peek() == ",":
                self.i += 1
                args.append(self.expression())
        self.eat(")")
        return tuple(args)

    def for_loop(self) -> For:
        self.i += 3  # "for"
        var = self.word()
        if not var:
            raise self.error("loop variable expected")
        self.i += len(var)
        self.eat("=")
        bounds = [self.expression()]
        while self.peek() == "," and len(bounds) < 3:
            self.i += 1
            bounds.append(self.expression())
        if len(bounds) < 2 or self.word() != "do":
            raise self.error("'for name = start, stop[, step] do' expected")
        self.i += 2
        body = tuple(self.statements(block=True))
        step = bounds[2] if len(bounds) == 3 else 1.0
        return For(var, bounds[0], bounds[1], step, body)

    def expression(self) -> Any:
        """Sums and differences of products (Lua precedence for + - * /)."""
        left = self.term()
        while self.peek() in ("+", "-") and not self.s.startswith("--", self.i):
            op = self.s[self.i]
            self.i += 1
            left = BinOp(op, left, self.term())
        return left

    def term(self) -> Any:
        left = self.unary()
        while self.peek() in ("*", "/"):
            op = self.s[self.i]
            self.i += 1
            left = BinOp(op, left, self.unary())
        return left

    def unary(self) -> Any:
        if self.peek() == "-":
            self.i += 1
            value = self.unary()
            return -value if isinstance(value, float) else Neg(value)
        return self.primary()

    def primary(self) -> Any:
        char = self.peek()
        if char == "(":
            self.i += 1
            value = self.expression()
            self.eat(")")
            return value
        m = _NUMBER.match(self.s, self.i)
        if m and (char.isdigit() or char == "."):
            self.i = m.end()
            return float(m.group())
        if char in "\"'":
            end = self.s.find(char, self.i + 1)
            if end < 0:
                raise self.error("unfinished string")
            text = self.s[self.i + 1 : end]
            self.i = end + 1
            return text
        if char == "{":
            self.i += 1
            items = []
            if self.peek() != "}":
                items.append(self.expression())
                while self.peek() == ",":
                    self.i += 1
                    items.append(self.expression())
            self.eat("}")
            return Table(tuple(items))
        path = self.path()
        literal = {"true": True, "false": False, "nil": None}
        if len(path.parts) == 1 and path.parts[0] in literal:
            return literal[path.parts[0]]
        if self.peek() == "(":
            return Call(path, self.arguments())
        return path


def parse_chunk(text: str) -> list:
    """The statements of one chunk; :class:`TspError` (-285) on a syntax error."""
    return _Parser(text).statements()


@dataclass
class Namespace:
    """What names mean: constants, attributes (getter, setter) and functions by path."""

    constants: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, tuple[Callable[[], Any], Callable[[Any], None] | None]] = field(
        default_factory=dict
    )
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: global variables a chunk assigns (``oldint = smua.measure.interval``), as in Lua
    variables: dict[str, Any] = field(default_factory=dict)

    def value(self, expr: Any) -> Any:
        if isinstance(expr, BinOp):
            return _arithmetic(expr.op, self.value(expr.left), self.value(expr.right))
        if isinstance(expr, Neg):
            return _arithmetic("-", 0.0, self.value(expr.value))
        if isinstance(expr, Table):
            return [self.value(item) for item in expr.items]
        if isinstance(expr, Call):
            result = self.call(expr)
            return result[0] if isinstance(result, tuple) else result
        if isinstance(expr, Path):
            key = str(expr)
            if key in self.constants:
                return self.constants[key]
            if key in self.attributes:
                return self.attributes[key][0]()
            if key in self.variables:
                return self.variables[key]
            raise TspError(-286, f"TSP Runtime error at line 1: {key} is nil")
        return expr

    def call(self, call: Call) -> Any:
        key = str(call.path)
        func = self.functions.get(key)
        if func is None:
            raise TspError(
                -286, f"TSP Runtime error at line 1: attempt to call {key} (a nil value)"
            )
        args = [self.value(a) for a in call.args[:-1]]
        if call.args:  # as in Lua, a call in the last place passes all its results
            last = call.args[-1]
            result = self.call(last) if isinstance(last, Call) else self.value(last)
            args.extend(
                result if isinstance(last, Call) and isinstance(result, tuple) else [result]
            )
        return func(*args)

    def assign(self, stmt: Assign) -> None:
        key = str(stmt.path)
        entry = self.attributes.get(key)
        if entry is None and len(stmt.path.parts) == 1 and key not in self.constants:
            self.variables[key] = self.value(stmt.value)  # a new global variable
            return
        if entry is None:
            raise TspError(-286, f"TSP Runtime error at line 1: cannot assign {key}")
        if entry[1] is None:
            raise TspError(-286, f"TSP Runtime error at line 1: {key} is read-only")
        entry[1](self.value(stmt.value))


def run_chunk(text: str, names: Namespace) -> None:
    """Parse then run every statement; the first error stops the rest."""
    _run(parse_chunk(text), names)


def _run(statements: list | tuple, names: Namespace) -> None:
    for stmt in statements:
        if isinstance(stmt, Assign):
            names.assign(stmt)
        elif isinstance(stmt, For):
            _loop(stmt, names)
        else:
            names.call(stmt)


def _loop(stmt: For, names: Namespace) -> None:
    """A numeric for loop as Lua runs it (the variable steps while it has not passed
    ``stop``); the variable is local to the loop."""
    start, stop, step = (
        _number(names.value(e), "'for' bounds must be numbers")
        for e in (stmt.start, stmt.stop, stmt.step)
    )
    if step == 0:
        raise TspError(-286, "TSP Runtime error at line 1: 'for' step is zero")
    saved = names.variables.get(stmt.var, _UNSET)
    try:
        value, count = start, 0
        while (value <= stop) if step > 0 else (value >= stop):
            count += 1
            if count > MAX_LOOP:
                raise TspError(-286, f"TSP Runtime error: more than {MAX_LOOP} loop iterations")
            names.variables[stmt.var] = value
            _run(stmt.body, names)
            value += step
    finally:
        if saved is _UNSET:
            names.variables.pop(stmt.var, None)
        else:
            names.variables[stmt.var] = saved


_UNSET = object()


def _number(value: Any, message: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TspError(-286, f"TSP Runtime error at line 1: {message}")
    return float(value)


def _arithmetic(op: str, left: Any, right: Any) -> float:
    what = "attempt to perform arithmetic on a non-number value"
    a, b = _number(left, what), _number(right, what)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:  # Lua numbers are IEEE doubles
        return math.nan if a == 0 else math.copysign(math.inf, a)
    return a / b
