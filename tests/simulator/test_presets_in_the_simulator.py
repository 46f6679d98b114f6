"""Presets into the simulator: a fitted preset trains; invalid presets give one-line errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from simulator import AnalogSGD, analog_config, convert_to_analog, device_config
from simulator.presets import PresetError
from simulator.tile import AnalogTile

PRESET = {
    "schema": "aimc-calib-preset",
    "schema_version": 1,
    "device": {
        "model": "soft-bounds",
        "parameters": {"dw_min": 8e-7, "up_down": 0.1, "w_max": 4e-5, "w_min": -4e-5,
                       "dw_min_dtod": 0.2, "up_down_dtod": 0.03, "w_max_dtod": 0.08,
                       "w_min_dtod": 0.08, "dw_min_std": 0.3, "write_noise_std": 0.0,
                       "corrupt_devices_prob": 0.02},
        "g_offset_s": 6e-5,
    },
    "per_device": {"device_id": [0, 1, 2], "delta_up": [8e-7, 9e-7, 7e-7],
                   "delta_down": [7e-7, 8e-7, 6e-7], "w_max": [4e-5, 3.8e-5, 4.2e-5],
                   "w_min": [-4e-5, -4.1e-5, -3.9e-5]},
    "provenance": {"software_version": "0.1.0", "created": "2026-11-22T08:00:00+00:00"},
}  # fmt: skip


def test_fitted_preset_from_the_cli_loads_and_trains(tmp_path: Path) -> None:
    from calib.cli import main

    data, preset_path = tmp_path / "pr.h5", tmp_path / "preset.json"
    measure = ["measure", "pulse-response", "--devices", "32", "--cycles", "1", "-o", str(data)]
    assert main(measure) == 0
    assert main(["fit", "pulse-response", str(data), "-o", str(preset_path)]) == 0
    preset = json.loads(preset_path.read_text())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
    for use_per_device in (False, True):
        analog = convert_to_analog(model, preset, seed=1, use_per_device=use_per_device)
        opt = AnalogSGD(analog, lr=0.1)
        gen = torch.Generator().manual_seed(2)
        x = torch.randn(256, 8, generator=gen)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()  # a linearly separable task
        losses = []
        for _ in range(60):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(analog(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        # the fitted device learns: the loss falls well below its start (0.69 = chance)
        assert losses[-1] < 0.6 * losses[0], (use_per_device, losses[0], losses[-1])


def test_conductances_become_weight_units_by_the_scale() -> None:
    cfg = device_config(PRESET)
    assert cfg.family == "soft-bounds"
    assert cfg.dw_min == pytest.approx(0.02) and cfg.w_max == pytest.approx(1.0)
    assert device_config(PRESET, scale_s=8e-5).w_max == pytest.approx(0.5)


def test_per_device_arrays_are_resampled_onto_tiles() -> None:
    cfg = analog_config(PRESET, use_per_device=True)
    tile = AnalogTile(20, 30, cfg, seed=0)
    pop = tile.arrays[0].population
    measured = torch.tensor([8e-7, 9e-7, 7e-7]) / 4e-5
    alive = ~pop.stuck
    values = pop.params["delta_up"][alive]
    assert torch.isclose(values[:, None], measured[None, :], rtol=1e-5).any(dim=1).all()
    assert len(torch.unique(values)) == 3  # every measured device shows up in 600 draws


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # the document checks are Preset.from_dict's, the same lines calib's load_preset gives
        (lambda p: p.pop("device"), "'device' is a required property"),
        (lambda p: p["device"].update(model="none"), "not a simulator family"),
        (lambda p: p["device"]["parameters"].pop("dw_min"), "'dw_min' is a required property"),
        (lambda p: p["device"]["parameters"].update(dw_min=float("nan")), "dw_min"),
        (lambda p: p["device"]["parameters"].update(w_min=1e-5), "w_min < 0 < w_max"),
        (lambda p: p["device"]["parameters"].update(dw_min_std=-1.0), "dw_min_std"),
        (lambda p: p["per_device"]["w_max"].append(1e-5), "differ in length"),
    ],
)
def test_invalid_presets_give_one_line_errors(edit, message: str) -> None:
    preset = copy.deepcopy(PRESET)
    edit(preset)
    with pytest.raises(PresetError, match=message) as info:
        device_config(preset, use_per_device=True)
    assert "\n" not in str(info.value)


def test_calib_validation_turns_preset_errors_into_calib_errors() -> None:
    from calib.errors import CalibError
    from calib.validate.in_memory_training import device_config as calib_device_config

    with pytest.raises(CalibError, match="not a simulator family"):
        calib_device_config({**PRESET, "device": {**PRESET["device"], "model": "none"}})
    with pytest.raises(CalibError, match="'g_offset_s' is a required property"):
        calib_device_config({"device": {"model": "none", "parameters": {}}})
    with pytest.raises(PresetError, match="JSON object"):
        device_config([1, 2])
