"""The standard characterize-then-fit recipe of each emulated chip kind.

One place for what the validation benchmark and the validation target tests both run:
PCM gets programming, drift and read-noise campaigns (16 levels) and a PCM noise-model fit;
pulsed kinds get a pulse-response campaign and a ``--model auto`` device fit. Pulses and
program-and-verify settings are the technology's defaults (``PROGRAM_DEFAULTS``); ECRAM's
small steps need longer trains (2 cycles of 400 up + 400 down pulses) to cross its range.
"""

from __future__ import annotations

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
from calib.fit_commands import fit_pulse_response_file
from calib.fit_pcm import fit_pcm_files
from instruments.chip import ChipInterface

__all__ = ["characterize", "fit_characterized"]


def characterize(kind: str, chip: ChipInterface, n_devices: int, out: Path) -> list[Path]:
    """Run ``kind``'s standard campaigns on ``n_devices`` devices; returns the dataset files."""
    tolerance_s, amplitude_v, width_s = PROGRAM_DEFAULTS[kind]
    if kind == "pcm":
        common = dict(
            n_devices=n_devices,
            levels_s=default_levels("pcm", 16),
            tolerance_s=tolerance_s,
            pulse_amplitude_v=amplitude_v,
            pulse_width_s=width_s,
        )
        return [
            measure_programming(chip, ProgrammingParams(**common, seed=1), out / "prog.h5"),
            measure_drift(chip, DriftParams(**common, seed=2), out / "drift.h5"),
            measure_read_noise(
                chip, ReadNoiseParams(**common, seed=3, n_reads=100), out / "read_noise.h5"
            ),
        ]
    train = {"n_up": 400, "n_down": 400, "cycles": 2} if kind == "ecram" else {}
    params = PulseResponseParams(
        n_devices=n_devices,
        seed=1,
        amplitude_up_v=amplitude_v,
        amplitude_down_v=-amplitude_v,
        width_s=width_s,
        **train,
    )
    return [measure_pulse_response(chip, params, out / "pulse_response.h5")]


def fit_characterized(kind: str, files: list[Path], out: Path) -> Path:
    """Fit the files of :func:`characterize` into ``out/preset.json``."""
    if kind == "pcm":
        return fit_pcm_files(files, out / "preset.json")[0]
    return fit_pulse_response_file(files[0], out / "preset.json", model="auto")[0]
