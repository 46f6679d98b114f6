"""Hand-edited garbage presets through every reader: refused with one line naming the file.

An outside tester's probes of the read-only Preset document (simulator/preset_document.py)
and its readers: ``load_preset``, ``calib export`` and the simulator's ``analog_config``.
What a probe found wrong is pinned by a regression test (the fix is in the same commit);
what every reader already refused is pinned too, so that it stays refused. The inline
corpus of tests/calib/presets/test_malformed_presets_refused.py (NaN, ranges, schema
versions) is not repeated.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.presets import file_sha256, load_preset, make_preset, provenance, save_preset
from calib.presets.sidecar import INLINE_MAX_DEVICES
from simulator import analog_config
from simulator.preset_document import PresetError

sys.path.insert(0, str(Path(__file__).parent))  # test_malformed_presets_refused, beside it
from test_malformed_presets_refused import DEVICE, device_preset


def _with_params(**values) -> dict:
    doc = device_preset()
    doc["device"]["parameters"].update(values)
    return doc


def _with_per_device(per_device: dict) -> dict:
    doc = device_preset()
    doc["per_device"] = per_device
    return doc


def _refused_everywhere(path: Path, capsys, tmp_path: Path) -> str:
    """load_preset and calib export refuse ``path`` with one line naming the file at fault
    (the preset or its sidecar, both in ``path``'s folder); the message."""
    with pytest.raises(CalibError) as info:
        load_preset(path)
    message = str(info.value)
    assert "\n" not in message and str(path.parent) in message
    out = tmp_path / "exported.json"
    capsys.readouterr()
    assert main(["export", str(path), "--to", "aihwkit", "-o", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("calib: error:") and str(path.parent) in err[0]
    assert not out.exists()
    return message


# -- found wrong by the probes (regressions: each loaded, and simulated, before the fix)
WRONG_TYPES: dict[str, Callable[[], str]] = {
    # JSON true is a number to Python: dw_min true simulated a step of 1 S
    "dw_min true": lambda: json.dumps(_with_params(dw_min=True)),
    "dw_min_dtod true": lambda: json.dumps(_with_params(dw_min_dtod=True)),
    "w_max true, w_min false": lambda: json.dumps(_with_params(w_max=True, w_min=False)),
    # a list where aihwkit has one number (only piecewise_* fields are node lists)
    "up_down as a list": lambda: json.dumps(_with_params(up_down=[0.1])),
    # a string inside a per-device array was converted to a number silently
    "per-device strings": lambda: json.dumps(_with_per_device({"w_max": ["1e-5", "2e-5"]})),
    "per-device string among numbers": lambda: json.dumps(
        _with_per_device({"w_max": [1e-5, "2e-5"]})
    ),
    # an integer of 400 digits is not a float (OverflowError traceback in the simulator)
    "400-digit w_max": lambda: json.dumps(_with_params()).replace(
        '"w_max": 4e-05', '"w_max": ' + "9" * 400
    ),
    "400-digit per-device value": lambda: json.dumps(
        _with_per_device({"w_max": [1e-5, 2e-5]})
    ).replace("2e-05", "9" * 400),
    # JSON nested past Python's recursion limit: RecursionError traceback
    "deeply nested object": lambda: '{"a":' * 100_000 + "1" + "}" * 100_000,
    "deeply nested list": lambda: "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
def test_a_value_of_the_wrong_type_is_refused_by_every_reader(
    tmp_path: Path, capsys, name: str
) -> None:
    path = tmp_path / "hand_edited.json"
    path.write_text(WRONG_TYPES[name]())
    _refused_everywhere(path, capsys, tmp_path)


def test_a_flag_for_a_number_is_refused_by_the_simulator_api_too() -> None:
    with pytest.raises(PresetError, match=r"dw_min.*not a number"):
        analog_config(_with_params(dw_min=True))


def test_flags_and_piecewise_nodes_of_the_right_type_still_load(tmp_path: Path) -> None:
    doc = _with_params(enforce_consistency=False, dw_min_dtod_log_normal=True)
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(doc))
    assert load_preset(path)["device"]["parameters"]["enforce_consistency"] is False


def test_use_per_device_with_no_array_the_simulator_uses_is_refused() -> None:
    """Before: per_device holding only unknown names (a typo) silently drew the population
    instead of the measured devices asked for."""
    preset = make_preset(DEVICE, provenance(None), per_device={"w_mx": [1e-5, 2e-5]})
    analog_config(preset)  # without use_per_device the arrays are not needed
    with pytest.raises(PresetError, match=r"use_per_device.*w_mx"):
        analog_config(preset, use_per_device=True)


def test_a_sidecar_reference_naming_one_array_twice_is_refused(tmp_path: Path, capsys) -> None:
    path, _ = _sidecar_preset(tmp_path)
    doc = json.loads(path.read_text())
    doc["per_device_file"]["arrays"] = ["w_max", "w_max"]
    path.write_text(json.dumps(doc))
    assert "non-unique" in _refused_everywhere(path, capsys, tmp_path)


# -- refused already (pinned): inline documents
REFUSED: dict[str, Callable[[], str]] = {
    "per-device arrays of different lengths": lambda: json.dumps(
        _with_per_device({"w_max": [1e-5, 2e-5], "w_min": [-1e-5]})
    ),
    "per-device booleans": lambda: json.dumps(_with_per_device({"w_max": [True, False]})),
    "per-device nested lists": lambda: json.dumps(_with_per_device({"w_max": [[1e-5], [2e-5]]})),
    "per-device objects": lambda: json.dumps(_with_per_device({"w_max": [{}, {}]})),
    "per-device not an array": lambda: json.dumps(_with_per_device({"w_max": 1e-5})),
    "empty file": lambda: "",
    "null document": lambda: "null",
    "1e999 (overflows to inf)": lambda: json.dumps(_with_params()).replace(
        '"up_down": 0.1', '"up_down": 1e999'
    ),
    "provenance a string": lambda: json.dumps({**device_preset(), "provenance": "x"}),
    "no device section": lambda: json.dumps(
        {k: v for k, v in device_preset().items() if k != "device"}
    ),
    "w_min above w_max": lambda: json.dumps(_with_params(w_min=5e-5)),
    "dw_min null": lambda: json.dumps(_with_params(dw_min=None)),
    "negative spread": lambda: json.dumps(_with_params(w_max_dtod=-0.1)),
    "negative g_offset in siemens": lambda: json.dumps(
        {**device_preset(), "device": {**device_preset()["device"], "g_offset_s": -1e-5}}
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_garbage_inline_preset_is_refused_by_every_reader(
    tmp_path: Path, capsys, name: str
) -> None:
    path = tmp_path / "hand_edited.json"
    path.write_text(REFUSED[name]())
    _refused_everywhere(path, capsys, tmp_path)


def test_a_preset_path_that_is_a_directory_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "preset.json"
    folder.mkdir()
    _refused_everywhere(folder, capsys, tmp_path)


# -- refused already (pinned): the per-device sidecar
def _sidecar_preset(tmp_path: Path) -> tuple[Path, Path]:
    n = INLINE_MAX_DEVICES + 10
    rng = np.random.default_rng(0)
    per_device = {
        "w_max": 4e-5 + 1e-6 * rng.random(n),
        "w_min": -4e-5 - 1e-6 * rng.random(n),
    }
    path = save_preset(
        make_preset(DEVICE, provenance(None), per_device=per_device), tmp_path / "big.json"
    )
    side = tmp_path / "big.devices.h5"
    assert side.is_file()
    return path, side


def _rehash(path: Path, side: Path, **reference) -> None:
    """Record the sidecar's current sha256 (and other reference fields) in the preset: a
    tampered sidecar that the hash check alone would not catch."""
    doc = json.loads(path.read_text())
    doc["per_device_file"]["sha256"] = file_sha256(side)
    doc["per_device_file"].update(reference)
    path.write_text(json.dumps(doc))


def _edit_sidecar(edit: Callable[[h5py.File], None]) -> Callable[[Path, Path], None]:
    def tamper(path: Path, side: Path) -> None:
        with h5py.File(side, "a") as fh:
            edit(fh)
        _rehash(path, side)

    return tamper


def _replace(name: str, data: np.ndarray) -> Callable[[h5py.File], None]:
    def edit(fh: h5py.File) -> None:
        del fh[name]
        fh[name] = data

    return edit


def _flip_one_bit(path: Path, side: Path) -> None:
    data = bytearray(side.read_bytes())
    data[-100] ^= 1
    side.write_bytes(bytes(data))


def _garbage_with_its_hash(path: Path, side: Path) -> None:
    side.write_bytes(b"\x00" * 1000)
    _rehash(path, side)


def _truncated_with_its_hash(path: Path, side: Path) -> None:
    side.write_bytes(side.read_bytes()[:2000])
    _rehash(path, side)


def _directory(path: Path, side: Path) -> None:
    side.unlink()
    side.mkdir()


def _symlink_to_preset(path: Path, side: Path) -> None:
    side.unlink()
    os.symlink(path, side)


def _both(path: Path, side: Path) -> None:
    doc = json.loads(path.read_text())
    doc["per_device"] = {"w_max": [1e-5]}
    path.write_text(json.dumps(doc))


def _reference(**fields) -> Callable[[Path, Path], None]:
    return lambda path, side: _rehash(path, side, **fields)


SIDECARS: dict[str, Callable[[Path, Path], None]] = {
    "missing": lambda path, side: side.unlink(),
    "a directory": _directory,
    "a symlink to the preset itself": _symlink_to_preset,
    "one bit flipped": _flip_one_bit,
    "garbage bytes with their hash recorded": _garbage_with_its_hash,
    "truncated with its hash recorded": _truncated_with_its_hash,
    "an array of the wrong length": _edit_sidecar(_replace("w_max", np.zeros(10))),
    "a 2-D array": _edit_sidecar(_replace("w_max", np.zeros((INLINE_MAX_DEVICES + 10, 1)))),
    "an array of strings": _edit_sidecar(
        _replace("w_max", np.array([b"x"] * (INLINE_MAX_DEVICES + 10)))
    ),
    "no schema attribute": _edit_sidecar(lambda fh: fh.attrs.__delitem__("schema")),
    "reference n_devices wrong": _reference(n_devices=10),
    "reference names an absent array": _reference(arrays=["w_mx"]),
    "reference file an absolute path": _reference(file="/etc/passwd"),
    "reference file in the parent folder": _reference(file="../big.devices.h5"),
    "reference file is the preset": _reference(file="big.json"),
    "per_device and per_device_file both": _both,
}


@pytest.mark.parametrize("name", sorted(SIDECARS))
def test_a_tampered_sidecar_is_refused_by_every_reader(tmp_path: Path, capsys, name: str) -> None:
    path, side = _sidecar_preset(tmp_path)
    SIDECARS[name](path, side)
    _refused_everywhere(path, capsys, tmp_path)


def test_an_infinite_sidecar_value_is_refused_when_the_simulator_reads_it(tmp_path: Path) -> None:
    """The arrays are read lazily (export never reads them); the simulator's read refuses."""
    path, side = _sidecar_preset(tmp_path)

    def edit(fh: h5py.File) -> None:
        fh["w_max"][3] = np.inf

    _edit_sidecar(edit)(path, side)
    preset = load_preset(path)
    with pytest.raises(CalibError, match=r"'w_max'\[3\] is inf"):
        analog_config(preset, use_per_device=True)


# -- calib validate and calib export: refused before any work, nothing written
def test_calib_validate_refuses_a_garbage_preset_or_truth_before_training(
    tmp_path: Path, capsys
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(device_preset()))
    bad = tmp_path / "bad.json"
    bad.write_text(WRONG_TYPES["dw_min true"]())
    deep = tmp_path / "deep.json"
    deep.write_text(WRONG_TYPES["deeply nested list"]())
    for args, named in (
        ([str(bad)], bad),
        ([str(deep)], deep),
        ([str(good), "--truth", str(deep)], deep),
    ):
        out = tmp_path / "report"
        capsys.readouterr()
        assert main(["validate", *args, "-o", str(out)]) == 1
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("calib: error:") and str(named) in err[0]
        assert not out.exists()


@pytest.mark.parametrize("target", ["big.json", "big.devices.h5"])
def test_calib_export_never_writes_over_the_preset_or_its_sidecar(
    tmp_path: Path, capsys, target: str
) -> None:
    path, side = _sidecar_preset(tmp_path)
    before = {p: p.read_bytes() for p in (path, side)}
    out = tmp_path / target
    assert main(["export", str(path), "--to", "aihwkit", "-o", str(out), "--overwrite"]) == 1
    assert "input" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (path, side)} == before


# -- PCM sections: flags and nested lists where numbers belong (refused by the schema)
def _pcm_with(path: str, value) -> dict:
    from test_malformed_presets_refused import pcm_preset

    doc = pcm_preset()
    node = doc["pcm"]
    *parents, last = path.split("/")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return doc


PCM_GARBAGE = {
    "t0_s true": ("t0_s", True),
    "g_max_s true": ("g_max_s", True),
    "read-noise a true": ("read_noise/a", True),
    "programming coefficient true": ("prog_noise/coefficients_s/0", True),
    "drift mu_nu a true": ("drift/mu_nu/a", True),
    "negative white read noise": ("read_noise/white_s", -1.0),
    "read-noise conductance unknown": ("read_noise/conductance", "g_x"),
    "drift form unknown": ("drift/form", "power"),
}


@pytest.mark.parametrize("name", sorted(PCM_GARBAGE))
def test_a_garbage_pcm_value_is_refused_by_every_reader(tmp_path: Path, capsys, name: str) -> None:
    path = tmp_path / "pcm.json"
    path.write_text(json.dumps(_pcm_with(*PCM_GARBAGE[name])))
    _refused_everywhere(path, capsys, tmp_path)


def test_a_steep_read_noise_law_exports_without_a_numpy_warning(tmp_path: Path) -> None:
    import warnings

    path = tmp_path / "pcm.json"
    path.write_text(json.dumps(_pcm_with("read_noise/b", 1e6)))
    out = tmp_path / "exported.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["export", str(path), "--to", "aihwkit", "-o", str(out)]) == 0


# -- a Preset edited in place (its sections read as plain dicts) is not used unchecked
@pytest.mark.parametrize(
    "edit",
    [
        lambda p: p["device"]["parameters"].__setitem__("dw_min_dtod", -5.0),
        lambda p: p["device"]["parameters"].__setitem__("w_min", 1.0),
        lambda p: p["device"].__setitem__("model", "none"),
        lambda p: p["provenance"].pop("software_version"),
    ],
    ids=["negative spread", "w_min above w_max", "model none", "provenance field removed"],
)
def test_a_preset_edited_in_place_is_refused_by_export_save_and_simulator(
    tmp_path: Path, edit
) -> None:
    """Before: export wrote dw_min_dtod -5 and save_preset wrote a file load_preset refuses
    (both take a Preset as validated)."""
    from calib.presets.export import aihwkit_device

    preset = make_preset(DEVICE, provenance(None))
    edit(preset)
    with pytest.raises(CalibError, match="edited in place"):
        aihwkit_device(preset)
    with pytest.raises(CalibError, match="edited in place"):
        save_preset(preset, tmp_path / "edited.json")
    assert not (tmp_path / "edited.json").exists()
    with pytest.raises(PresetError, match="edited in place"):
        analog_config(preset)


def test_an_unedited_preset_and_its_edited_copy_are_used() -> None:
    preset = make_preset(DEVICE, provenance(None))
    analog_config(preset)
    copy_ = preset.to_dict()
    copy_["device"]["parameters"]["dw_min_dtod"] = 0.5
    assert analog_config(copy_).device.dw_min_dtod == 0.5
    analog_config(preset)  # the copy's edit did not reach the original


def test_a_sidecar_replaced_after_its_preset_was_loaded_is_refused_when_read(
    tmp_path: Path,
) -> None:
    """The arrays are read lazily: a sidecar swapped for another (valid) one meanwhile is
    refused by the hash check of the read, not simulated as the loaded preset's devices."""
    path, side = _sidecar_preset(tmp_path)
    preset = load_preset(path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    n = INLINE_MAX_DEVICES + 10
    other = make_preset(
        DEVICE, provenance(None), per_device={"w_max": np.full(n, 3e-5), "w_min": np.full(n, -3e-5)}
    )
    save_preset(other, other_dir / "big.json")
    os.replace(other_dir / "big.devices.h5", side)
    with pytest.raises(CalibError, match="changed since its preset was loaded"):
        analog_config(preset, use_per_device=True)
