"""A tiny interpreter for the TSP (Lua) subset that instrument drivers send.

Supported: statements separated by ``;`` or new lines; assignments ``a.b.c = expr``;
calls ``f(args)``; expressions that are numbers, strings, ``true``/``false``/``nil``,
tables ``{1, 2, 3}``, dotted names with ``[n]`` indices, unary minus on numbers, and calls
(all their results when last in an argument list, as in Lua; else the first). Names
resolve in a :class:`Namespace`: constants, attributes (getter, setter) and functions,
all keyed by their dotted path, and global variables that a chunk assigns. A syntax error
aborts the whole chunk before anything runs (-285); a runtime error aborts the rest of it
(-286), as on the instrument.
"""

from __future__ import annotations

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


class _Parser:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def error(self, what: str) -> TspError:
        return TspError(
            -285, f"Program syntax (line 1): {what} near {self.s[self.i : self.i + 12]!r}"
        )

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r":
            self.i += 1

    def peek(self) -> str:
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def eat(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"'{char}' expected")
        self.i += 1

    def statements(self) -> list:
        found = []
        while True:
            while self.peek() in (";", "\n"):
                self.i += 1
            if not self.peek():
                return found
            found.append(self.statement())
            if self.peek() not in ("", ";", "\n"):
                raise self.error("';' or end of line expected")

    def statement(self) -> Assign | Call:
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

    def expression(self) -> Any:
        char = self.peek()
        m = _NUMBER.match(self.s, self.i)
        if m and (char.isdigit() or char in ".+-"):
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
    for stmt in parse_chunk(text):
        if isinstance(stmt, Assign):
            names.assign(stmt)
        else:
            names.call(stmt)
