"""Deprecated module: the chip driver is :mod:`instruments.drivers.scpi_crossbar`.

``EmulatedChip`` was named after our emulator, but it drives any instrument speaking the
AIMC crossbar command set (``instruments/emulator/COMMANDS.md``). It remains importable
from here as a deprecated alias of
:class:`~instruments.drivers.scpi_crossbar.ScpiCrossbarChip` so that notebooks and
external code keep working; new code imports ``ScpiCrossbarChip``.
"""

from __future__ import annotations

import warnings
from typing import Any

from instruments.drivers.scpi_crossbar import LONG_TIMEOUT_S, ScpiClock, ScpiCrossbarChip

__all__ = ["LONG_TIMEOUT_S", "EmulatedChip", "ScpiClock"]  # noqa: F822 - via __getattr__


def __getattr__(name: str) -> Any:
    if name == "EmulatedChip":
        warnings.warn(
            "instruments.emulated_chip.EmulatedChip is deprecated; use "
            "instruments.drivers.scpi_crossbar.ScpiCrossbarChip",
            DeprecationWarning,
            stacklevel=2,
        )
        return ScpiCrossbarChip
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
