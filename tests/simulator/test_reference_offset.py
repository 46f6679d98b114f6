"""The per-device reference offset of a preset (``reference_std``, datasets/PRESET.md).

One sampler (simulator.devices.families.sample_population) draws it for the simulator and
the fitter; simulate_reads and PulsedTile read the physical state plus it, as aihwkit's
SoftBoundsReferenceDevice reads w − r (rpu_softbounds_reference_device.cpp: the reference is
added before the step and clipping, taken off after). Presets without the field keep their
meaning: the same draws, the same reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fitting.synthetic import simulate_preset
from simulator.devices.config import PulsedDeviceConfig
from simulator.devices.families import NumpyDraws, sample_population
from simulator.preset_document import Preset, PresetError
from simulator.tile import PulsedTile
from tests.preset_samples import soft_bounds_device

OLD_FITTED = (
    Path(__file__).resolve().parents[1] / "fixtures" / "presets" / "fitted_soft_bounds_v1.json"
)
PULSES = np.r_[0, np.full(150, 1), np.full(300, -1)].astype(int)


def _draw(params: dict, seed: int = 4, n: int = 4000) -> dict:
    return sample_population("soft-bounds", params, NumpyDraws(np.random.default_rng(seed), n))


def test_an_old_preset_without_the_field_draws_and_simulates_as_before() -> None:
    device = json.loads(OLD_FITTED.read_text())["device"]
    assert "reference_std" not in device["parameters"]
    before = simulate_preset(device, PULSES, np.full(300, device["g_offset_s"]), seed=3)
    device["parameters"]["reference_std"] = 0.0
    explicit = simulate_preset(device, PULSES, np.full(300, device["g_offset_s"]), seed=3)
    assert np.array_equal(before, explicit)
    assert "reference" not in _draw(device["parameters"])


def test_an_offset_is_drawn_last_and_leaves_the_other_draws_alone() -> None:
    params = dict(soft_bounds_device()["parameters"])
    plain = _draw(params)
    shifted = _draw({**params, "reference_std": 5e-6})
    for key, value in plain.items():
        assert np.array_equal(np.asarray(value), np.asarray(shifted[key])), key
    # 4000 draws: the sample std is within 3·σ/√(2n) = 3.4 % of the field
    assert np.std(shifted["reference"]) == pytest.approx(5e-6, rel=0.034)
    # measured windows are apparent already: no offset drawn on top of them
    measured = {"b_max": np.full(4000, 4e-5), "b_min": np.full(4000, -4e-5)}
    shifted_measured = sample_population(
        "soft-bounds",
        {**params, "reference_std": 5e-6},
        NumpyDraws(np.random.default_rng(4), 4000),
        measured,
    )
    assert "reference" not in shifted_measured


def test_reads_and_tile_weights_are_the_physical_state_plus_the_offset() -> None:
    # no bound spread: every window is [w_min, w_max] shifted by the device's offset, so the
    # plateaus spread exactly by the offsets (read noise 0)
    section = soft_bounds_device(
        {
            "dw_min": 4e-6,  # 150 pulses reach e^-15 of the soft bound
            "w_max_dtod": 0.0,
            "w_min_dtod": 0.0,
            "dw_min_dtod": 0.0,
            "up_down_dtod": 0.0,
            "dw_min_std": 0.0,
            "reference_std": 1e-5,
        },
        read_noise_s=0.0,
    )
    g = simulate_preset(section, PULSES, np.full(2000, 6e-5), seed=1, with_stuck=False)
    top, bottom = g[:, 150], g[:, -1]
    assert np.std(top) == pytest.approx(1e-5, rel=0.1)
    assert np.allclose(top - bottom, 8e-5, rtol=1e-3)  # widths do not spread
    scale = 4e-5
    config = PulsedDeviceConfig.from_preset(section, scale)
    assert config.reference_std == pytest.approx(0.25)
    tile = PulsedTile(64, 64, config, seed=2)
    ref = tile.population.params["reference"]
    tile.set_weights(torch.full((64, 64), 5.0))  # beyond every window: clipped to its top
    assert torch.allclose(tile.weights(), tile.b_max + ref)
    tile.set_weights(ref + 0.5)  # inside: kept as given
    assert torch.allclose(tile.weights(), ref + 0.5, atol=1e-6)
    plain = PulsedTile(64, 64, PulsedDeviceConfig.from_preset(soft_bounds_device(), scale), seed=2)
    assert plain.weights() is plain.w  # no offset: the live state, as before


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1e-6, "reference_std: a spread must be >= 0"), ("1e-6", "reference_std")],
)
def test_a_bad_reference_std_is_refused_in_one_line(value: object, message: str) -> None:
    doc = {"device": soft_bounds_device({"reference_std": value})}
    with pytest.raises(PresetError, match=message) as err:
        Preset.from_dict(doc, envelope=False)
    assert "\n" not in str(err.value)


def test_a_symmetry_point_reference_is_measured_with_the_devices_offset() -> None:
    # reference="symmetry-point" sets each device's reference where its up and down steps
    # balance, as measured on the device: at its physical symmetry point plus its offset, so
    # the offset cancels; reference="zero" (a common reference conductance) keeps it
    from simulator.config import AnalogConfig
    from simulator.devices.response import symmetry_point
    from simulator.tile import AnalogTile

    section = soft_bounds_device({"reference_std": 1e-5})
    device = PulsedDeviceConfig.from_preset(section, 4e-5)
    tile = AnalogTile(32, 32, AnalogConfig(device=device, reference="symmetry-point"), seed=1)
    params = tile.arrays[0].population.params
    sp = symmetry_point("soft-bounds", params)
    assert torch.allclose(tile.reference, sp + params["reference"])
    at_sp = AnalogTile(32, 32, AnalogConfig(device=device), seed=1)
    at_sp.arrays[0].set_weights(sp + params["reference"])  # each device at its balance point
    assert torch.allclose(at_sp.effective_weights(), sp + params["reference"], atol=1e-6)
