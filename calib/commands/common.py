"""Helpers shared by the CLI commands: chip connection and progress display."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from calib.errors import CalibError
from calib.progress import progress_bar
from instruments.chip import ChipInterface

__all__ = ["CHIP_KINDS", "open_chip", "progress_bar"]

CHIP_KINDS = ("reram", "ecram", "pcm")


BENCH_PREFIX = "bench:"


@contextlib.contextmanager
def open_chip(resource: str | None, seed: int, chip_kind: str) -> Iterator[ChipInterface]:
    """Connect to ``resource``, or start the embedded emulator when it is ``None``.

    ``bench:PATH.json`` opens a bench of instruments (SMU, pulse generator, switch matrix)
    described by that file (see ``instruments.bench_chip.open_bench``).
    """
    from instruments.emulated_chip import EmulatedChip
    from instruments.emulator.server import running_emulator

    if resource is None:
        with running_emulator(chip_kind, seed=seed) as res, EmulatedChip(res) as chip:
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
        with EmulatedChip(resource) as chip:
            yield chip
