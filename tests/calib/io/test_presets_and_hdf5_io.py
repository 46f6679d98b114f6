"""Preset validation and the HDF5 dataset writer/reader."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from calib.errors import CalibError
from calib.io import CampaignWriter, RowSpec, load, read_pulse_response
from calib.presets import SCHEMA_VERSION, load_preset, make_preset, provenance, save_preset

DEVICE = {
    "model": "soft-bounds",
    "parameters": {"dw_min": 8e-7, "up_down": 0.1, "w_max": 4e-5, "w_min": -4e-5},
    "g_offset_s": 6e-5,
}


def test_preset_roundtrip_with_provenance(tmp_path: Path) -> None:
    preset = make_preset(DEVICE, provenance(None), per_device={"w_max": np.ones(3)})
    path = save_preset(preset, tmp_path / "p.json")
    loaded = load_preset(path)
    assert loaded["schema_version"] == SCHEMA_VERSION
    assert loaded["per_device"]["w_max"] == [1.0, 1.0, 1.0]
    assert loaded["provenance"]["software_version"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.update(schema_version=SCHEMA_VERSION + 1), "newer"),
        (lambda p: p["device"].pop("model"), "model"),
        (lambda p: p["device"]["parameters"].update(dw_min="big"), "dw_min"),
        (lambda p: p.update(schema="other"), "schema"),
        (lambda p: p["device"].update(model="magic-step"), "model"),
        (lambda p: p["device"].update(model="pow-step"), "pow_gamma"),
        (lambda p: p["device"]["parameters"].update(dw_min=-1e-7), "dw_min must be positive"),
        (lambda p: p["device"]["parameters"].update(w_min=5e-5), "w_min < w_max"),
        (lambda p: p["device"].update(g_offset_s=-1e-6), "g_offset_s"),
    ],
)
def test_invalid_presets_are_refused_with_a_clear_message(tmp_path, mutate, message) -> None:
    preset = make_preset(DEVICE, provenance(None)).to_dict()
    mutate(preset)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(preset))
    with pytest.raises(CalibError, match=message):
        load_preset(path)


def test_normalized_presets_may_center_anywhere_and_carry_lists() -> None:
    device = {
        **DEVICE,
        "model": "piecewise-step",
        "conductance_unit": "normalized",
        "g_offset_s": -0.07,
        "parameters": {
            **DEVICE["parameters"],
            "piecewise_up": [1.0, 0.5],
            "piecewise_down": [0.5, 1.0],
        },
        "uncertainty": {"piecewise_up": [0.01, 0.02], "w_max": None},
    }
    preset = make_preset(device, provenance(None))
    assert preset["device"]["parameters"]["piecewise_up"] == [1.0, 0.5]


def _write(path: Path, chunks: int, fail: bool = False) -> None:
    pulses = np.array([0, 1, 1, -1, -1], dtype=np.int32)
    rows = {"conductance": RowSpec((5,), "f4", "S")}
    writer = CampaignWriter(path, "pulse_response", rows, {"pulses": pulses}, {"seed": 3})
    with writer:
        for c in range(chunks):
            g = np.full((2, 5), 1e-5 * (c + 1))
            writer.append(np.array([2 * c, 2 * c + 1]), (4, 4), conductance=g)
            if fail and c == 1:
                raise RuntimeError("instrument timeout")


def test_writer_roundtrip_and_tidy_loader(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    _write(path, 3)
    data = read_pulse_response(path)
    assert data.conductance_s.shape == (6, 5)
    assert data.attrs["status"] == "complete" and data.attrs["seed"] == 3
    frame = load(path)["pulse_response"]
    assert len(frame) == 30
    assert set(frame.columns) >= {"device", "pulse", "conductance", "row", "col"}


def test_interrupted_campaign_keeps_measured_chunks_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    with pytest.raises(RuntimeError):
        _write(path, 5, fail=True)
    data = read_pulse_response(path)
    assert data.attrs["status"] == "interrupted"
    assert data.conductance_s.shape == (4, 5)  # both chunks measured before the failure


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CalibError, match="not found"):
        read_pulse_response(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(CalibError, match="HDF5"):
        read_pulse_response(junk)
    path = tmp_path / "d.h5"
    _write(path, 1)
    with h5py.File(path, "a") as f:
        f["pulse_response/conductance"].attrs["units"] = "uS"
    with pytest.raises(CalibError, match="units"):
        read_pulse_response(path)
