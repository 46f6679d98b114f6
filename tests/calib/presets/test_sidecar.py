"""Per-device arrays of large presets live in an HDF5 sidecar referenced by name and sha256."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from preset_samples import SOFT_BOUNDS_DEVICE

from calib.cli import main
from calib.errors import CalibError
from calib.presets import load_preset, make_preset, provenance, save_preset
from calib.presets.sidecar import INLINE_MAX_DEVICES, SidecarArrays, sidecar_path
from simulator import analog_config
from simulator.tile import AnalogTile

DEVICE = SOFT_BOUNDS_DEVICE


def _arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {
        "device_id": np.arange(n, dtype=float),
        "delta_up": rng.lognormal(np.log(8e-7), 0.2, n),
        "delta_down": rng.lognormal(np.log(7e-7), 0.2, n),
        "w_max": rng.normal(4e-5, 3e-6, n),
        "w_min": rng.normal(-4e-5, 3e-6, n),
    }
    out["delta_up_se"] = 0.05 * out["delta_up"]
    out["delta_up_se"][3] = np.inf  # an unidentified estimate: null inline, NaN in the sidecar
    return out


def _preset(n: int) -> dict:
    return make_preset(DEVICE, provenance(None), per_device=_arrays(n))


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("large") / "chip.json"
    save_preset(_preset(10_000), path)
    return path


def test_large_chip_arrays_go_to_a_sidecar_bit_identical_and_the_json_stays_small(
    large: Path,
) -> None:
    side = sidecar_path(large)
    assert side.name == "chip.devices.h5" and side.is_file()
    doc = json.loads(large.read_text())
    assert "per_device" not in doc
    ref = doc["per_device_file"]
    assert ref["file"] == "chip.devices.h5" and ref["n_devices"] == 10_000
    assert ref["sha256"] == hashlib.sha256(side.read_bytes()).hexdigest()
    # inline, 10,000 devices x 6 arrays is ~1.1 MB of JSON; the population model is ~2 kB
    assert large.stat().st_size < 10_000
    loaded = load_preset(large)
    per_device = loaded["per_device"]
    assert isinstance(per_device, SidecarArrays) and not per_device.loaded  # lazy
    expected = _arrays(10_000)
    expected["delta_up_se"][3] = np.nan
    for name, values in expected.items():
        got = per_device[name]
        assert got.dtype == np.float64
        assert np.array_equal(got, values, equal_nan=True), name  # bit-identical
    with h5py.File(side, "r") as fh:  # plain h5py reads it, SI units recorded
        assert fh["delta_up"].attrs["units"] == "S" and fh["delta_up"].compression == "gzip"


def test_a_sidecar_preset_stays_unread_through_export_and_population_tiles(large: Path) -> None:
    from calib.presets.export import aihwkit_device
    from simulator.preset_document import Preset

    loaded = load_preset(large)
    assert isinstance(loaded, Preset) and loaded.per_device is loaded["per_device"]
    aihwkit_device(loaded)
    AnalogTile(4, 4, analog_config(loaded), seed=0)  # population draws: no per-device arrays
    assert not loaded.per_device.loaded
    analog_config(loaded, use_per_device=True)  # the measured devices: read now
    assert loaded.per_device.loaded


def test_small_chips_keep_inline_arrays(tmp_path: Path) -> None:
    path = tmp_path / "small.json"
    save_preset(_preset(INLINE_MAX_DEVICES), path)
    doc = json.loads(path.read_text())
    assert "per_device_file" not in doc and not sidecar_path(path).exists()
    assert len(doc["per_device"]["delta_up"]) == INLINE_MAX_DEVICES
    assert doc["per_device"]["delta_up_se"][3] is None


def test_saving_the_same_arrays_gives_the_same_sidecar_hash(tmp_path: Path, large: Path) -> None:
    again = tmp_path / "again.json"
    save_preset(_preset(10_000), again)
    a = json.loads(large.read_text())["per_device_file"]["sha256"]
    assert json.loads(again.read_text())["per_device_file"]["sha256"] == a


def test_simulator_with_per_device_draws_the_same_tile_from_sidecar_and_inline(
    large: Path,
) -> None:
    inline = _preset(10_000)
    for k in ("delta_up_se",):  # the simulator ignores *_se; NaN/null there is fine
        inline["per_device"].pop(k)
    loaded = load_preset(large)
    tiles = [
        AnalogTile(16, 24, analog_config(p, use_per_device=True), seed=5).arrays[0].population
        for p in (inline, loaded)
    ]
    for name in ("delta_up", "delta_down", "b_max", "b_min"):
        assert torch.equal(tiles[0].params[name], tiles[1].params[name]), name
    assert loaded["per_device"].loaded


def _corrupt(path: Path, how: str) -> str:
    side = sidecar_path(path)
    if how == "missing":
        side.unlink()
        return "not found"
    if how == "altered":
        with h5py.File(side, "a") as fh:
            fh["delta_up"][0] = 1.0
        return "sha256"
    if how == "truncated":
        data = side.read_bytes()
        side.write_bytes(data[: len(data) // 2])
        return "sha256"
    # wrong shape, with the hash updated so that only the shape is wrong
    with h5py.File(side, "a") as fh:
        del fh["w_max"]
        fh["w_max"] = np.zeros(7)
    doc = json.loads(path.read_text())
    doc["per_device_file"]["sha256"] = hashlib.sha256(side.read_bytes()).hexdigest()
    path.write_text(json.dumps(doc))
    return "shape"


@pytest.mark.parametrize("how", ["missing", "altered", "truncated", "shape"])
@pytest.mark.parametrize("command", ["export", "validate"])
def test_a_bad_sidecar_is_a_one_line_cli_error_naming_it(
    tmp_path: Path, capsys, how: str, command: str
) -> None:
    path = tmp_path / "chip.json"
    save_preset(_preset(5_000), path)
    message = _corrupt(path, how)
    out = tmp_path / ("out.json" if command == "export" else "report")
    args = (
        ["export", str(path), "--to", "aihwkit"] if command == "export" else ["validate", str(path)]
    )
    code = main([*args, "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err, err
    assert "chip.devices.h5" in err and message in err, err
    assert not out.exists()


def test_export_of_a_large_chip_preset_works(large: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "aihwkit.json"
    assert main(["export", str(large), "--to", "aihwkit", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["device"]["class"] == "SoftBoundsDevice"


def test_the_sidecar_never_replaces_the_input_or_a_foreign_file(tmp_path: Path) -> None:
    measured = tmp_path / "chip.devices.h5"
    with h5py.File(measured, "w") as fh:
        fh["conductance_s"] = np.ones(3)
    before = measured.read_bytes()
    preset = make_preset(DEVICE, provenance(measured), per_device=_arrays(5_000))
    with pytest.raises(CalibError, match="input file") as info:
        save_preset(preset, tmp_path / "chip.json")
    assert "\n" not in str(info.value)
    preset = make_preset(DEVICE, provenance(None), per_device=_arrays(5_000))
    with pytest.raises(CalibError, match="not a per-device sidecar"):
        save_preset(preset, tmp_path / "chip.json")
    assert measured.read_bytes() == before and not (tmp_path / "chip.json").exists()


def test_a_loaded_sidecar_preset_saves_elsewhere_with_its_own_sidecar(
    large: Path, tmp_path: Path
) -> None:
    copy_path = tmp_path / "copy.json"
    save_preset(copy.copy(load_preset(large)), copy_path)
    a, b = load_preset(large)["per_device"], load_preset(copy_path)["per_device"]
    assert b.path.name == "copy.devices.h5"
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def test_reference_must_be_a_plain_file_name(large: Path, tmp_path: Path) -> None:
    doc = json.loads(large.read_text())
    doc["per_device_file"]["file"] = "../elsewhere.h5"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(CalibError, match="must be a file name"):
        load_preset(bad)


def test_loaded_sidecar_arrays_compare_equal_to_the_arrays_written(large: Path) -> None:
    loaded = load_preset(large)["per_device"]
    assert loaded == load_preset(large)["per_device"]
    assert loaded == _preset(10_000)["per_device"]  # numpy arrays with NaN
    other = dict(_preset(10_000)["per_device"])
    other["w_max"] = np.array(other["w_max"])  # the preset's own arrays are read-only
    other["w_max"][9] += 1e-9
    assert loaded != other


def test_calib_fit_of_a_large_chip_writes_a_sidecar_and_never_over_its_input(
    tmp_path: Path, capsys
) -> None:
    measured = tmp_path / "chip.h5"
    measure = ["measure", "pulse-response", "--devices", "4400", "--cycles", "1"]
    measure += ["--n-up", "50", "--n-down", "50", "--selection", "block", "-o", str(measured)]
    assert main(measure) == 0
    fit = ["fit", "pulse-response", "--model", "soft-bounds"]
    assert main([*fit, str(measured), "-o", str(tmp_path / "chip.json")]) == 0
    preset = load_preset(tmp_path / "chip.json")
    n = preset["per_device_file"]["n_devices"]  # the fitted devices (4,279 of 4,400)
    assert n > INLINE_MAX_DEVICES and isinstance(preset["per_device"], SidecarArrays)
    assert preset["per_device"]["delta_up"].shape == (n,)
    # a measurement named like the sidecar of the output: refused, the input untouched
    named = measured.rename(tmp_path / "run.devices.h5")
    before = named.read_bytes()
    capsys.readouterr()
    assert main([*fit, str(named), "-o", str(tmp_path / "run.json")]) != 0
    err = capsys.readouterr().err.strip()  # refused before fitting: no stage bars
    assert "\n" not in err and "input file" in err and "run.devices.h5" in err, err
    assert named.read_bytes() == before and not (tmp_path / "run.json").exists()


def test_a_sidecar_changed_after_loading_is_refused_when_the_simulator_reads_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chip.json"
    save_preset(_preset(5_000), path)
    loaded = load_preset(path)
    with h5py.File(sidecar_path(path), "a") as fh:
        fh["w_max"][0] = 1.0
    with pytest.raises(CalibError, match="changed since its preset was loaded") as info:
        analog_config(loaded, use_per_device=True)
    assert "\n" not in str(info.value)


def test_export_never_writes_over_the_sidecar(large: Path, capsys) -> None:
    side = sidecar_path(large)
    before = side.read_bytes()
    code = main(["export", str(large), "--to", "python", "-o", str(side), "--overwrite"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "input file" in err, err
    assert side.read_bytes() == before


def test_the_plain_h5py_recipe_of_preset_md_reads_the_arrays(large: Path, monkeypatch) -> None:
    """The documented way to read a sidecar without this toolkit (hashlib + h5py only)."""
    text = (Path(__file__).resolve().parents[3] / "datasets" / "PRESET.md").read_text()
    recipe = text.split("- Plain h5py, without this toolkit:")[1].split("```python")[1]
    recipe = recipe.split("```")[0]
    monkeypatch.chdir(large.parent)
    scope: dict = {}
    exec(compile(recipe, "PRESET.md", "exec"), scope)
    expected = load_preset(large)["per_device"]
    assert scope["per_device"].keys() == set(expected)
    assert all(
        np.array_equal(scope["per_device"][k], expected[k], equal_nan=True) for k in expected
    )
