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

from calib.presets import save_preset
from calib.presets.truth import truth_preset
from calib.recipes import characterize, fit_characterized
from calib.validate import ValidationOptions, run_validation
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator

N_DEVICES = 1024


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pcm", "reram", "ecram"])
def test_fitted_preset_predicts_truth_and_chip(kind: str, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with running_emulator(kind, seed=21, shape=(128, 128)) as resource:
            with ScpiCrossbarChip(resource) as chip:
                preset = fit_characterized(
                    kind, characterize(kind, chip, N_DEVICES, tmp_path), tmp_path
                )
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
