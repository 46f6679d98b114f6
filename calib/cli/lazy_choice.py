"""Command-line pieces that load their heavy modules only when used.

``calib --help``, ``calib --version`` and ``calib export`` must not import torch, pandas or
h5py (seconds on a loaded machine); options whose choices come from those layers use
:class:`LazyChoice`, which asks for its choices when a value is checked or help is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

__all__ = ["LazyChoice"]


class LazyChoice(click.Choice):
    """A :class:`click.Choice` whose choices come from ``load()`` on first use."""

    def __init__(self, load: Callable[[], Sequence[str]], case_sensitive: bool = True) -> None:
        self._load = load
        self._choices: tuple[str, ...] | None = None
        super().__init__((), case_sensitive=case_sensitive)

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices

    @choices.setter
    def choices(self, value: Any) -> None:  # click.Choice.__init__ assigns; keep the loader
        pass
