"""Program-and-verify of pulsed devices for chip-in-the-loop inference leaves no weight bias.

An on-chip verify loop stops at the first read inside its acceptance band, so every device
ends on the side it approached from: a band wider than the device's step shifts every
weight by most of the band. On the emulated ECRAM chip (steps of 0.02 µS) the technology's
0.05 µS default left all weights 0.042 µS low, which cost 2.9 pp of accuracy on digits
against the simulated sources (which write weights exactly).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from calib.truth import truth_preset
from calib.validate.chip_inference import chip_mapping, chip_programming, program_tiles
from calib.validate.chip_network import chip_tiles, place_tiles
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator


@pytest.mark.parametrize("kind", ["ecram", "reram"])
def test_programmed_weights_are_unbiased_to_within_one_device_step(kind: str) -> None:
    with (
        running_emulator(kind, seed=3, shape=(64, 64)) as resource,
        ScpiCrossbarChip(resource) as chip,
    ):
        preset = truth_preset(chip)
        params = preset["device"]["parameters"]
        g_offset = float(preset["device"]["g_offset_s"])
        w_max = min(float(params["w_max"]), -float(params["w_min"]))
        network_mapping = {
            "g_offset_s": g_offset,
            "scale_s": w_max,
            "w_min_s": -w_max,
            "w_max_s": w_max,
        }
        layer = nn.Linear(32, 16, bias=False)
        with torch.no_grad():  # weights inside 80 % of every device's window
            layer.weight.uniform_(-0.8, 0.8, generator=torch.Generator().manual_seed(0))
        model = nn.Sequential(layer)
        mapping = chip_mapping("pulsed", network_mapping, preset, 0.2, 32, 16)
        settings = chip_programming("pulsed", kind, preset)
        tiles = chip_tiles(model, mapping)
        place_tiles(tiles, chip.shape, mapping, offset_seed=1)
        summary = program_tiles(chip, tiles, mapping, settings)
    dw_min = float(params["dw_min"])
    # The verify read of a converged device lies inside the band, so the mean error is
    # bounded by the band; a band of one device step bounds it by one step (the resolution
    # of pulse programming). The old 0.05 µS band on ECRAM gave -0.042 µS = -2.1 steps.
    assert summary.n_not_converged <= 0.05 * summary.n_devices  # stuck devices (1-2 %)
    assert abs(summary.error_mean_s) <= dw_min, (summary.error_mean_s, dw_min)
    assert np.isfinite(summary.error_std_s)
