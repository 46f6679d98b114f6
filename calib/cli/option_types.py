"""Helpers shared by the CLI commands: option types, chip kinds, progress display."""

from __future__ import annotations

import math

import click

from calib.runtime.progress import progress_bar

__all__ = ["CHIP_KINDS", "SEED", "FiniteFloat", "number", "progress_bar"]

CHIP_KINDS = ("reram", "ecram", "pcm")


class FiniteFloat(click.FloatRange):
    """A float option that is finite (no ``nan``/``inf``) and within an optional range.

    ``click.FloatRange`` alone lets ``nan`` through (every comparison with NaN is false)
    and ``inf`` through any open-ended range; this type refuses both first.
    """

    name = "number"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(rv, param, ctx)

    def _describe_range(self) -> str:
        """Help's range note; none for an unbounded number (click would print ``x<=None``)."""
        return "" if self.min is None and self.max is None else super()._describe_range()


def number(
    min: float | None = None,
    max: float | None = None,
    *,
    min_open: bool = False,
    max_open: bool = False,
) -> FiniteFloat:
    """The type of every float option: finite, in [min, max] (open ends as asked)."""
    return FiniteFloat(min, max, min_open=min_open, max_open=max_open)


#: The type of every seed option: numpy's generators take integers >= 0.
SEED = click.IntRange(0)
