"""How a campaign parameter appears on the command line, declared next to the parameter.

Each field of a campaign's parameter dataclass that ``calib measure ...`` exposes carries an
:class:`Option` in its ``dataclasses.field`` metadata (key :data:`OPTION_KEY`): the flag, a
help text with the unit, bounds, hidden old names and, for settings left to the chip, the
technology defaults the help lists. The field's type and default are the option's type and
default, so a default is declared once (``calib.cli.measure`` builds the click options).
This module imports no click.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OPTION_KEY", "Option", "cli_fields", "option", "with_prefix"]

#: ``dataclasses.field`` metadata key of a parameter's :class:`Option`
OPTION_KEY = "cli"

_PREFIXES = ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))


def with_prefix(value: float, unit: str | None) -> str:
    """``value`` with an SI prefix on ``unit`` (``1e-6, "s"`` -> ``1 µs``); bare if no unit."""
    if not unit or value == 0:
        return f"{value:g}" + (f" {unit}" if unit else "")
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale * 0.999:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:g} {unit}"


@dataclass(frozen=True)
class Option:
    """The command-line face of one campaign parameter.

    ``text`` is the help without unit or period; ``unit`` (SI) is shown in parentheses and
    formats ``per_technology`` (the defaults a ``None`` field takes from the chip's
    technology). ``minimum``/``maximum`` bound the value (``min_open``: excluded), ``choices``
    restrict a string, ``old_names`` are hidden aliases kept for old command lines, and
    ``mirror`` names a field that gets the negated magnitude (one ``--pulse-amplitude`` sets
    ``+|A|`` up and ``-|A|`` down).
    """

    flag: str
    text: str
    unit: str | None = None
    note: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    choices: tuple[str, ...] | None = None
    old_names: tuple[str, ...] = ()
    per_technology: Mapping[str, float] | None = None
    mirror: str | None = None

    def help(self) -> str:
        """The option's help text: text (unit); note; default per technology (...)."""
        parts = [self.text + (f" ({self.unit})" if self.unit else "")]
        if self.note:
            parts.append(self.note)
        if self.per_technology:
            values = ", ".join(
                f"{tech} {with_prefix(value, self.unit)}"
                for tech, value in self.per_technology.items()
            )
            parts.append(f"default per technology ({values})")
        return "; ".join(parts) + "."


def option(default: Any, flag: str, text: str, **spec: Any) -> Any:
    """A dataclass field with ``default`` that ``calib measure`` shows as ``flag``."""
    return field(default=default, metadata={OPTION_KEY: Option(flag, text, **spec)})


def cli_fields(params_class: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of ``params_class`` that are command-line options, in declaration order.

    A class leaves out inherited options that do not apply to it by naming them in its
    ``cli_omit`` class attribute.
    """
    omit = getattr(params_class, "cli_omit", frozenset())
    return [
        (f, f.metadata[OPTION_KEY])
        for f in dataclasses.fields(params_class)
        if OPTION_KEY in f.metadata and f.name not in omit
    ]
