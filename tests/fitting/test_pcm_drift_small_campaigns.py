"""Regression: the drift fit on small campaigns (few devices per level) never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from calib.campaigns import DriftParams, default_levels, measure_drift
from calib.cli import main
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator


@pytest.mark.parametrize(("seed", "n_levels"), [(1, 5), (4, 4), (7, 4)])
def test_small_drift_campaign_fits_or_says_why(tmp_path: Path, seed: int, n_levels: int, capsys):
    # These seeds once left a level's sigma_nu standard error undefined (flat likelihood at
    # 8 devices), which crashed the clipped-log fit with NaN starting values.
    data = tmp_path / "drift.h5"
    with running_emulator("pcm", seed=seed, shape=(32, 32)) as res, ScpiCrossbarChip(res) as chip:
        params = DriftParams(
            n_devices=8 * n_levels,
            levels_s=default_levels("pcm", n_levels),
            tolerance_s=0.25e-6,
            pulse_amplitude_v=1.0,
            pulse_width_s=100e-9,
            n_times=10,
            seed=seed,
        )
        measure_drift(chip, params, data)
    rc = main(["fit", "pcm", str(data), "-o", str(tmp_path / "p.json")])
    assert rc == 0, capsys.readouterr().err
