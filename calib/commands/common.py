"""Helpers shared by the CLI commands: chip connection and progress display."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from calib.progress import progress_bar
from instruments.chip import ChipInterface

__all__ = ["CHIP_KINDS", "open_chip", "progress_bar"]

CHIP_KINDS = ("reram", "ecram", "pcm")


@contextlib.contextmanager
def open_chip(resource: str | None, seed: int, chip_kind: str) -> Iterator[ChipInterface]:
    """Connect to ``resource``, or start the embedded emulator when it is ``None``."""
    from instruments.emulated_chip import EmulatedChip
    from instruments.emulator.server import running_emulator

    if resource is None:
        with running_emulator(chip_kind, seed=seed) as res, EmulatedChip(res) as chip:
            yield chip
    else:
        with EmulatedChip(resource) as chip:
            yield chip
