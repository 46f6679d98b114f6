"""Regenerate the small example datasets (and their ground truth) from the emulated chip.

Run from the repository root:  .venv/bin/python datasets/examples/make_examples.py
Every file is produced through PyVISA from the embedded emulator with a fixed seed, so the
examples are reproducible; the emulator's hidden truth is written next to them as a preset.
"""

from __future__ import annotations

import sys
from pathlib import Path

from calib.campaigns import (
    DriftParams,
    ProgrammingParams,
    PulseResponseParams,
    ReadNoiseParams,
    default_levels,
    measure_drift,
    measure_programming,
    measure_pulse_response,
    measure_read_noise,
)
from calib.campaigns.programming import PROGRAM_DEFAULTS
from calib.commands.common import CHIP_KINDS
from calib.presets import save_preset
from calib.truth import truth_preset
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator

HERE = Path(__file__).resolve().parent
SEED = 2026


def make_pulse_response(kind: str) -> None:
    _, amplitude, width = PROGRAM_DEFAULTS[kind]  # the technology's nominal pulse
    params = PulseResponseParams(
        n_devices=64,
        seed=SEED,
        n_up=100,
        n_down=100,
        cycles=3,
        amplitude_up_v=amplitude,
        amplitude_down_v=-amplitude,
        width_s=width,
    )
    with running_emulator(kind, seed=SEED, shape=(64, 64)) as res, ScpiCrossbarChip(res) as chip:
        print(
            measure_pulse_response(chip, params, HERE / f"{kind}_pulse_response.h5", overwrite=True)
        )
        print(save_preset(truth_preset(chip), HERE / f"{kind}_truth.json"))


def make_pcm() -> None:
    levels = default_levels("pcm", 8)
    common = {"n_devices": 64, "seed": SEED, "levels_s": levels}
    with running_emulator("pcm", seed=SEED, shape=(64, 64)) as res, ScpiCrossbarChip(res) as chip:
        print(
            measure_programming(
                chip, ProgrammingParams(**common), HERE / "pcm_programming.h5", overwrite=True
            )
        )
        print(
            measure_drift(
                chip, DriftParams(**common, n_times=20), HERE / "pcm_drift.h5", overwrite=True
            )
        )
        print(
            measure_read_noise(
                chip,
                ReadNoiseParams(**common, n_reads=100),
                HERE / "pcm_read_noise.h5",
                overwrite=True,
            )
        )
        print(save_preset(truth_preset(chip), HERE / "pcm_truth.json"))


def main() -> int:
    for kind in ("reram", "ecram"):
        make_pulse_response(kind)
    if "pcm" in CHIP_KINDS:
        make_pcm()
    return 0


if __name__ == "__main__":
    sys.exit(main())
