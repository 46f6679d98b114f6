"""Pulsed tile against a slow per-device, per-pulse reference loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.devices.config import PulsedDeviceConfig
from simulator.tile import PulsedTile


def test_vectorized_pulses_match_reference_loop_without_noise() -> None:
    cfg = PulsedDeviceConfig(
        family="soft-bounds", dw_min=0.02, up_down=0.1, dw_min_std=0.0, dw_min_dtod=0.2
    )
    tile = PulsedTile(6, 5, cfg, seed=3)
    w0 = tile.w.clone().numpy().astype(np.float64)
    counts = torch.randint(-20, 21, (6, 5), generator=torch.Generator().manual_seed(0))
    tile.apply_pulses(counts.to(torch.int32))
    p = {k: v.numpy().astype(np.float64) for k, v in tile.population.params.items()}
    ref = w0.copy()
    for i in range(6):  # obviously-correct loop: device by device, pulse by pulse
        for j in range(5):
            n = int(counts[i, j])
            for _ in range(abs(n)):
                if n > 0:
                    ref[i, j] += p["delta_up"][i, j] * (1 - ref[i, j] / p["b_max"][i, j])
                else:
                    ref[i, j] -= p["delta_down"][i, j] * (1 - ref[i, j] / p["b_min"][i, j])
                ref[i, j] = min(max(ref[i, j], p["b_min"][i, j]), p["b_max"][i, j])
    np.testing.assert_allclose(tile.w.numpy(), ref, rtol=1e-4, atol=1e-6)


def test_cycle_to_cycle_noise_has_configured_relative_std() -> None:
    cfg = PulsedDeviceConfig(
        family="constant-step", dw_min=0.001, dw_min_std=0.3, dw_min_dtod=0.0, up_down_dtod=0.0
    )
    tile = PulsedTile(200, 200, cfg, seed=1)
    before = tile.w.clone()
    tile.apply_pulses(torch.ones(200, 200, dtype=torch.int32))
    rel = ((tile.w - before) / 0.001).flatten()
    # 40,000 samples: the std of the relative step estimates 0.3 to within ~0.4 %
    assert float(rel.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(rel.std()) == pytest.approx(0.3, rel=0.03)


def test_shape_mismatch_and_nan_inputs_are_refused() -> None:
    from simulator.layers import AnalogLinear

    tile = PulsedTile(3, 4, PulsedDeviceConfig(), seed=0)
    with pytest.raises(ValueError, match="shape"):
        tile.apply_pulses(torch.zeros(4, 3, dtype=torch.int32))
    layer = AnalogLinear(4, 3, PulsedDeviceConfig(), seed=0)
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.full((2, 4), float("nan")))
