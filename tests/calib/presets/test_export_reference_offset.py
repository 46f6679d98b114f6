"""Export of a preset's per-device reference offset (``reference_std``) to aihwkit.

aihwkit 1.2.0 carries a per-device reference only on SoftBoundsReferenceDevice and
PowStepReferenceDevice (``reference_mean``, ``reference_std``: r ~ N(mean, std²) subtracted from
each device's weight, rpu_softbounds_reference_device.cpp); other classes draw the two bounds
independently (w_max_dtod, w_min_dtod) and cannot shift a window as a whole.
"""

from __future__ import annotations

import numpy as np
import pytest

from calib.presets import make_preset, provenance
from calib.presets.export import aihwkit_device
from tests.preset_samples import soft_bounds_device


def _export(model: str = "soft-bounds", **parameters: float) -> dict:
    device = soft_bounds_device(parameters)
    device["model"] = model
    return aihwkit_device(make_preset(device, provenance(None)))


def test_soft_bounds_offset_goes_to_aihwkits_reference_device_in_weight_units() -> None:
    out = _export(reference_std=1e-5)  # scale max(w_max, -w_min) = 4e-5 S
    assert out["device"]["class"] == "SoftBoundsReferenceDevice"
    params = out["device"]["parameters"]
    assert params["reference_std"] == pytest.approx(0.25)
    assert params["reference_mean"] == 0.0  # the mean offset is in g_offset_s
    assert (
        params["mult_noise"] is True
    )  # SoftBoundsDevice's default; the reference class's is False
    assert "reference_std" not in out["not_exported"]
    assert any("SoftBoundsReferenceDevice.reference_std" in n for n in out["notes"])


def test_a_preset_without_an_offset_exports_as_before() -> None:
    for extra in ({}, {"reference_std": 0.0}):
        out = _export(**extra)
        assert out["device"]["class"] == "SoftBoundsDevice"
        assert "reference_std" not in out["device"]["parameters"] and "notes" not in out


def test_a_family_without_a_reference_class_says_the_offset_is_not_exported() -> None:
    out = _export("constant-step", reference_std=1e-5)
    assert out["device"]["class"] == "ConstantStepDevice"
    assert out["not_exported"]["reference_std"] == 1e-5
    assert any("not representable" in n for n in out["notes"])


def test_pow_step_offset_needs_a_preset_without_write_noise() -> None:
    out = _export("pow-step", pow_gamma=1.5, reference_std=1e-5)
    assert out["device"]["class"] == "PowStepReferenceDevice"
    assert out["device"]["parameters"]["reference_std"] == pytest.approx(0.25)
    noisy = _export("pow-step", pow_gamma=1.5, reference_std=1e-5, write_noise_std=0.5)
    assert noisy["device"]["class"] == "PowStepDevice"
    assert noisy["not_exported"]["reference_std"] == 1e-5
    assert any("no write_noise_std" in n for n in noisy["notes"])


def test_aihwkit_reference_device_shifts_its_windows_by_the_exported_spread() -> None:
    # the outside check: aihwkit's own tile, driven to both bounds, has plateaus b± − r with
    # r ~ N(0, reference_std²) (no bound spread here: the window widths do not spread)
    configs = pytest.importorskip("aihwkit.simulator.configs")
    devices = pytest.importorskip("aihwkit.simulator.configs.devices")
    tiles = pytest.importorskip("aihwkit.simulator.tiles")
    import torch

    out = _export(
        reference_std=1e-5,
        dw_min=4e-6,
        dw_min_dtod=0.0,
        up_down_dtod=0.0,
        dw_min_std=0.0,
        w_max_dtod=0.0,
        w_min_dtod=0.0,
        up_down=0.0,
    )
    device = getattr(devices, out["device"]["class"])(**out["device"]["parameters"])
    tile = tiles.AnalogTile(40, 40, configs.SingleRPUConfig(device=device))
    tile.set_learning_rate(0.1)
    x, d = torch.ones(1, 40), torch.ones(1, 40)
    for _ in range(300):
        tile.update(x, -d)
    top = tile.get_weights()[0].numpy().ravel()
    for _ in range(600):
        tile.update(x, d)
    bottom = tile.get_weights()[0].numpy().ravel()
    # 1600 devices: the sample std is within 3·σ/√(2n) = 5.3 % of reference_std
    assert np.std(top) == pytest.approx(0.25, rel=0.053)
    np.testing.assert_allclose(top - bottom, 2.0, atol=1e-4)
