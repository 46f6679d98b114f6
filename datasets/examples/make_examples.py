"""Regenerate the small example datasets (and their ground truth) from the emulated chip.

Run from the repository root:  .venv/bin/python datasets/examples/make_examples.py
Every file is produced through PyVISA from the embedded emulator with a fixed seed, so the
examples are reproducible; the emulator's hidden truth is written next to them as a preset.
"""

from __future__ import annotations

import sys
from pathlib import Path

from calib.cli.option_types import CHIP_KINDS
from calib.presets import save_preset
from calib.presets.truth import truth_preset
from calib.recipes import EXAMPLE_FILES, RecipeSizes, characterize
from calib.runtime.chips import open_chip

HERE = Path(__file__).resolve().parent
SEED = 2026
#: 64 devices of a 64 x 64 chip; pulsed: 3 cycles of 100 up + 100 down pulses; PCM: 8 levels,
#: 20 drift read times, 100 noise reads; every campaign with seed SEED
SIZES = RecipeSizes(
    levels=8,
    drift_times=20,
    noise_reads=100,
    pulse_train=(100, 100, 3),
    seed_step=0,
    file_names=EXAMPLE_FILES,
)


def make_examples(kind: str) -> None:
    """The example datasets of ``kind`` and its truth preset, in this folder."""
    with open_chip(None, kind=kind, seed=SEED, shape=(64, 64)) as chip:
        for path in characterize(kind, chip, 64, HERE, seed=SEED, sizes=SIZES, overwrite=True):
            print(path)
        print(save_preset(truth_preset(chip), HERE / f"{kind}_truth.json"))


def main() -> int:
    for kind in CHIP_KINDS:
        make_examples(kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
