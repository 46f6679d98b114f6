"""Issue-8 accuracy targets on every emulated chip kind (slow: ~2 min on the 2-core VM).

Measure 1,024 devices, fit, and validate an MLP on digits at 4 times with 25 repeats: the
fitted preset must predict the truth within 1 percentage point and the chip in the loop
within 2 at every time. (``benchmarks/bench_validate.py`` runs the same chain on 4,096
devices and records the numbers.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
from calib.fit_commands import fit_pulse_response_file
from calib.fit_pcm import fit_pcm_files
from calib.presets import save_preset
from calib.truth import truth_preset
from calib.validate import ValidationOptions, run_validation
from instruments.emulated_chip import EmulatedChip
from instruments.emulator.server import running_emulator

N_DEVICES = 1024


def _campaigns(kind: str, chip: EmulatedChip, out: Path) -> Path:
    if kind == "pcm":
        common = dict(
            n_devices=N_DEVICES,
            levels_s=default_levels("pcm", 16),
            tolerance_s=0.25e-6,
            pulse_amplitude_v=1.0,
            pulse_width_s=100e-9,
        )
        files = [
            measure_programming(chip, ProgrammingParams(**common, seed=1), out / "p.h5"),
            measure_drift(chip, DriftParams(**common, seed=2), out / "d.h5"),
            measure_read_noise(chip, ReadNoiseParams(**common, seed=3, n_reads=100), out / "r.h5"),
        ]
        return fit_pcm_files(files, out / "preset.json")[0]
    if kind == "ecram":
        params = PulseResponseParams(
            n_devices=N_DEVICES,
            seed=1,
            n_up=400,
            n_down=400,
            cycles=2,
            amplitude_up_v=3.0,
            amplitude_down_v=-3.0,
            width_s=10e-3,
        )
    else:
        params = PulseResponseParams(n_devices=N_DEVICES, seed=1)
    data = measure_pulse_response(chip, params, out / "pulse_response.h5")
    return fit_pulse_response_file(data, out / "preset.json", model="auto")[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pcm", "reram", "ecram"])
def test_fitted_preset_predicts_truth_and_chip(kind: str, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with running_emulator(kind, seed=21, shape=(128, 128)) as resource:
            with EmulatedChip(resource) as chip:
                preset = _campaigns(kind, chip, tmp_path)
                truth = save_preset(truth_preset(chip), tmp_path / "truth.json")
            result = run_validation(
                ValidationOptions(
                    preset, tmp_path / "report", truth=truth, chip=resource, repeats=25
                )
            )
    finally:
        torch.set_num_threads(threads)
    targets = result.report["targets"]
    # the targets, over 25 repeats per source and time (gap SE: 0.05-0.2 pp paired
    # for the truth, 0.2-0.3 pp for the chip in benchmarks/RESULTS.md)
    assert targets["fitted - truth"]["met"], targets
    assert targets["fitted - chip"]["met"], targets
