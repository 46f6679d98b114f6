"""Helpers shared by the CLI commands: chip connection and progress display."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from calib.errors import CalibError
from calib.progress import progress_bar

if TYPE_CHECKING:  # instruments (pyvisa) load when a chip is opened
    from instruments.chip import ChipInterface

__all__ = ["CHIP_KINDS", "SEED", "FiniteFloat", "number", "open_chip", "progress_bar"]

CHIP_KINDS = ("reram", "ecram", "pcm")


BENCH_PREFIX = "bench:"


@contextlib.contextmanager
def open_chip(resource: str | None, seed: int, chip_kind: str) -> Iterator[ChipInterface]:
    """Connect to ``resource``, or start the embedded emulator when it is ``None``.

    ``bench:PATH.json`` opens a bench of instruments (SMU, pulse generator, switch matrix)
    described by that file (see ``instruments.bench_chip.open_bench``).
    """
    from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
    from instruments.emulator.server import running_emulator

    if resource is None:
        with running_emulator(chip_kind, seed=seed) as res, ScpiCrossbarChip(res) as chip:
            yield chip
    elif resource.startswith(BENCH_PREFIX):
        from instruments.emulator.bench.client import open_virtual_bench

        try:  # a real bench, or the virtual one (calib bench serve) on its virtual clock
            bench = open_virtual_bench(resource[len(BENCH_PREFIX) :])
        except ValueError as exc:
            raise CalibError(str(exc)) from None
        with bench:
            yield bench
    else:
        with ScpiCrossbarChip(resource) as chip:
            yield chip


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
