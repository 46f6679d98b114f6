"""The standard characterize-then-fit recipe of each emulated chip kind.

One place for what the validation benchmark and the validation target tests both run:
PCM gets programming, drift and read-noise campaigns (16 levels) and a PCM noise-model fit;
pulsed kinds get a pulse-response campaign and a ``--model auto`` device fit. Pulses and
program-and-verify settings are the technology's defaults (``PROGRAM_DEFAULTS``,
``PULSE_RESPONSE_DEFAULTS``); ECRAM's small steps need longer trains (2 cycles of 400 up +
400 down pulses) to cross its range, which is its technology default.
"""

from __future__ import annotations

from collections.abc import Callable
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
from calib.campaigns.base import ProgressCallback
from calib.campaigns.programming import PROGRAM_DEFAULTS
from calib.fit_commands import fit_pulse_response_file
from calib.fit_pcm import fit_pcm_files
from instruments.chip import ChipInterface

__all__ = ["PCM_LEVELS", "characterize", "fit_characterized"]

PCM_LEVELS = 16  # target levels of the PCM campaigns

#: ``stage name -> progress callback`` (or None) for each campaign of :func:`characterize`
ProgressFactory = Callable[[str], ProgressCallback | None]


def characterize(
    kind: str,
    chip: ChipInterface,
    n_devices: int,
    out: Path,
    *,
    seed: int = 1,
    chunk_devices: int = 4096,
    progress: ProgressFactory | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Run ``kind``'s standard campaigns on ``n_devices`` devices; returns the dataset files.

    PCM campaigns use seeds ``seed``, ``seed + 1``, ``seed + 2`` (programming, drift, read
    noise); ``progress(stage)`` gives each campaign's progress callback; ``overwrite``
    replaces existing files.
    """
    report = progress or (lambda stage: None)
    common = dict(n_devices=n_devices, chunk_devices=chunk_devices)
    if kind == "pcm":
        tolerance_s, amplitude_v, width_s = PROGRAM_DEFAULTS[kind]
        common.update(
            levels_s=default_levels("pcm", PCM_LEVELS),
            tolerance_s=tolerance_s,
            pulse_amplitude_v=amplitude_v,
            pulse_width_s=width_s,
        )
        return [
            measure_programming(
                chip,
                ProgrammingParams(**common, seed=seed),
                out / "prog.h5",
                report("programming"),
                overwrite=overwrite,
            ),
            measure_drift(
                chip,
                DriftParams(**common, seed=seed + 1),
                out / "drift.h5",
                report("drift"),
                overwrite=overwrite,
            ),
            measure_read_noise(
                chip,
                ReadNoiseParams(**common, seed=seed + 2, n_reads=100),
                out / "read_noise.h5",
                report("read noise"),
                overwrite=overwrite,
            ),
        ]
    params = PulseResponseParams.for_technology(kind, **common, seed=seed)
    return [
        measure_pulse_response(
            chip,
            params,
            out / "pulse_response.h5",
            report("pulse response"),
            overwrite=overwrite,
        )
    ]


def fit_characterized(kind: str, files: list[Path], out: Path) -> Path:
    """Fit the files of :func:`characterize` into ``out/preset.json``."""
    if kind == "pcm":
        return fit_pcm_files(files, out / "preset.json")[0]
    return fit_pulse_response_file(files[0], out / "preset.json", model="auto")[0]
