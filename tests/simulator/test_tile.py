"""Pulsed tile against a slow per-device, per-pulse reference loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.devices.config import PulsedDeviceConfig
from simulator.devices.response import FAMILIES
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


def test_write_noise_is_redrawn_for_pulsed_devices_only() -> None:
    cfg = PulsedDeviceConfig(family="soft-bounds", dw_min=0.01, write_noise_std=2.0, dw_min_std=0.0)
    tile = PulsedTile(100, 100, cfg, seed=2)
    seen = tile.weights().clone()
    # apparent = persistent + write_noise_std·dw_min·ξ: 10,000 devices estimate 0.02 to ~1 %
    assert float((seen - tile.w).std()) == pytest.approx(2.0 * 0.01, rel=0.05)
    counts = torch.zeros(100, 100, dtype=torch.int32)
    counts[:50] = 1
    tile.apply_pulses(counts)
    after = tile.weights()
    assert torch.equal(after[50:], seen[50:])  # untouched devices keep their offset
    assert not torch.allclose(after[:50] - tile.w[:50], seen[:50] - tile.w[:50])


def test_reset_sets_devices_to_their_reset_bias() -> None:
    cfg = PulsedDeviceConfig(reset=0.1, reset_std=0.01, reset_dtod=0.0)
    tile = PulsedTile(50, 40, cfg, seed=0)
    tile.set_weights(torch.full((50, 40), 0.3))
    mask = torch.zeros(50, 40, dtype=torch.bool)
    mask[:, :20] = True
    tile.reset(mask)
    assert float(tile.w[:, :20].mean()) == pytest.approx(0.1, abs=0.002)  # 1000 draws
    assert float(tile.w[:, :20].std()) == pytest.approx(0.01, rel=0.1)
    assert torch.all(
        tile.w[:, 20:] == torch.clamp(torch.full((50, 20), 0.3), max=tile.b_max[:, 20:])
    )


def test_pair_cell_potentiates_one_device_per_sign_and_refreshes() -> None:
    from simulator.config import AnalogConfig
    from simulator.tile import AnalogTile

    dev = PulsedDeviceConfig(family="soft-bounds", dw_min=0.02, dw_min_std=0.0, dw_min_dtod=0.0,
                             up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)  # fmt: skip
    tile = AnalogTile(1, 2, AnalogConfig(device=dev, cell="pair"), seed=0)
    plus, minus = tile.arrays
    tile.apply_counts(torch.tensor([[5.0, 0.0]]), torch.tensor([[0.0, 5.0]]))
    assert plus.w[0, 0] > plus.b_min[0, 0] and minus.w[0, 0] == minus.b_min[0, 0]
    assert minus.w[0, 1] > minus.b_min[0, 1] and plus.w[0, 1] == plus.b_min[0, 1]
    w_before = tile.get_weights()
    assert w_before[0, 0] > 0 > w_before[0, 1]
    # drive both devices of column 0 high: the refresh resets them and rewrites w⁺ − w⁻
    tile.apply_counts(torch.tensor([[200.0, 0.0]]), torch.tensor([[150.0, 0.0]]))
    p_pos = (plus.w[0, 0] - plus.b_min[0, 0]) / (plus.b_max[0, 0] - plus.b_min[0, 0])
    m_pos = (minus.w[0, 0] - minus.b_min[0, 0]) / (minus.b_max[0, 0] - minus.b_min[0, 0])
    assert min(float(p_pos), float(m_pos)) < 0.25  # refreshed: one device back at the bottom
    assert abs(float(tile.get_weights()[0, 0])) < 0.5


def test_symmetry_point_reference_centres_weights_on_the_devices_symmetry_point() -> None:
    from simulator.config import AnalogConfig
    from simulator.tile import AnalogTile

    dev = PulsedDeviceConfig(family="soft-bounds", dw_min=0.01, up_down=0.3, dw_min_std=0.0)
    zero = AnalogTile(20, 20, AnalogConfig(device=dev), seed=1)
    sp = AnalogTile(20, 20, AnalogConfig(device=dev, reference="symmetry-point"), seed=1)
    for tile in (zero, sp):
        for _ in range(100):  # up/down pairs drive every device to its symmetry point
            tile.apply_counts(torch.ones(20, 20), torch.ones(20, 20))
    assert float(zero.get_weights().mean()) > 0.05  # up_down 0.3: SP well above 0
    assert float(sp.get_weights().abs().max()) < 0.01  # weights read relative to the SP


def test_device_to_device_draws_follow_the_population_parameters() -> None:
    cfg = PulsedDeviceConfig(family="soft-bounds", dw_min=0.01, up_down=0.1, dw_min_dtod=0.2,
                             up_down_dtod=0.05, w_max=0.8, w_max_dtod=0.1, w_min=-0.6,
                             w_min_dtod=0.1, corrupt_devices_prob=0.05)  # fmt: skip
    tile = PulsedTile(200, 200, cfg, seed=4)
    p, alive = tile.population.params, ~tile.population.stuck
    up, down = p["delta_up"][alive] / 0.01, p["delta_down"][alive] / 0.01
    # aihwkit §1.3: Δ⁺ = dw_min(g + r), Δ⁻ = dw_min(g − r − β); g ~ 1 ± 0.2, r ~ ±0.05.
    # 38,000 devices: means to ~0.1 %, spreads to ~0.4 %; tolerances 1 % and 3 %
    assert float(up.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(down.mean()) == pytest.approx(0.9, abs=0.01)
    assert float(up.std()) == pytest.approx((0.2**2 + 0.05**2) ** 0.5, rel=0.03)
    assert float((up - down).std()) == pytest.approx(2 * 0.05, rel=0.03)
    assert float(p["b_max"][alive].mean()) == pytest.approx(0.8, rel=0.01)
    assert float(p["b_max"][alive].std()) == pytest.approx(0.08, rel=0.03)
    assert float(p["b_min"][alive].std()) == pytest.approx(0.06, rel=0.03)
    # 5 % stuck devices (40,000 draws: ±0.3 %): no step, pinned inside the bounds
    assert float(tile.population.stuck.float().mean()) == pytest.approx(0.05, abs=0.005)
    assert float(p["delta_up"][~alive].abs().max()) == 0.0
    before = tile.w.clone()
    tile.apply_pulses(torch.full((200, 200), 10, dtype=torch.int32))
    assert torch.equal(tile.w[~alive], before[~alive].clamp(p["b_min"][~alive], p["b_max"][~alive]))


@pytest.mark.parametrize("family", FAMILIES)
def test_stuck_devices_stay_put_in_every_family(family: str) -> None:
    cfg = PulsedDeviceConfig(family=family, corrupt_devices_prob=0.2,
                             piecewise_up=[1.0, 0.5], piecewise_down=[0.5, 1.0])  # fmt: skip
    tile = PulsedTile(20, 20, cfg, seed=0)
    before = tile.w.clone()
    tile.apply_pulses(torch.full((20, 20), 5, dtype=torch.int32))
    tile.apply_pulse_counts(torch.ones(20, 3), torch.ones(20, 3), cols=torch.tensor([1, 4, 7]))
    stuck = tile.population.stuck
    assert 40 < int(stuck.sum()) < 120  # 20 % of 400
    assert torch.isfinite(tile.w).all()
    assert torch.equal(tile.w[stuck], before[stuck])
    assert (tile.w[~stuck] != before[~stuck]).float().mean() > 0.9
