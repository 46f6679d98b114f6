"""Malformed presets are refused on load with one line; writers never emit NaN or Infinity.

The corpus below is what an outside tester fed the loader (issue 18.6): NaN and infinite
numbers, out-of-range spreads and probabilities, disordered PCM tables, non-integer schema
versions. Each must be refused by ``load_preset`` (and so by every command that reads a
preset) with a :class:`CalibError` of one line; valid presets must still load.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from preset_samples import soft_bounds_device

from calib.cli import main
from calib.errors import CalibError
from calib.presets import load_preset, make_preset, provenance
from fitting.pcm import published_section

DEVICE = soft_bounds_device(
    {"write_noise_std": 0.0, "corrupt_devices_prob": 0.02},
    uncertainty={"dw_min": 1e-8, "up_down": 0.01},
    read_noise_s=2.5e-7,
)


def device_preset() -> dict:
    preset = make_preset(DEVICE, provenance(None), per_device={"w_max": [1e-5, 2e-5]})
    return preset.to_dict()  # an editable plain document (a Preset is read-only)


def pcm_preset() -> dict:
    preset = make_preset(DEVICE, provenance(None), pcm=published_section()).to_dict()
    preset["pcm"]["valid_range"] = {"g_min_s": 0.0, "g_max_s": 2.5e-5, "t_min_s": 20.0}
    return preset


def table_preset() -> dict:
    preset = pcm_preset()
    preset["pcm"]["drift"] = {
        "form": "table",
        "x": [0.1, 0.5, 1.0],
        "mu_nu": [0.06, 0.05, 0.04],
        "sigma_nu": [0.02, 0.015, 0.01],
    }
    return preset


def _set(path: str, value, base: Callable[[], dict] = device_preset) -> Callable[[], str]:
    """JSON text of ``base`` with the value at ``a/b/c`` replaced (the raw token if str)."""

    def make() -> str:
        doc = base()
        *parents, last = path.split("/")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        sentinel = "__RAW__"
        if isinstance(value, str) and value.startswith("RAW:"):
            node[int(last) if isinstance(node, list) else last] = sentinel
            return json.dumps(doc).replace(f'"{sentinel}"', value[4:])
        node[int(last) if isinstance(node, list) else last] = value
        return json.dumps(doc)

    return make


def _text(text: str) -> Callable[[], str]:
    return lambda: text


P = "device/parameters"
MALFORMED: dict[str, Callable[[], str]] = {
    # -- non-finite numbers (Python's json accepts these tokens; JSON does not)
    "nan up_down": _set(f"{P}/up_down", "RAW:NaN"),
    "infinite dw_min": _set(f"{P}/dw_min", "RAW:Infinity"),
    "-infinite w_min": _set(f"{P}/w_min", "RAW:-Infinity"),
    "nan w_max": _set(f"{P}/w_max", "RAW:NaN"),
    "nan dw_min_dtod": _set(f"{P}/dw_min_dtod", "RAW:NaN"),
    "infinite write_noise_std": _set(f"{P}/write_noise_std", "RAW:Infinity"),
    "nan g_offset_s": _set("device/g_offset_s", "RAW:NaN"),
    "infinite read_noise_s": _set("device/read_noise_s", "RAW:Infinity"),
    "nan uncertainty": _set("device/uncertainty/dw_min", "RAW:NaN"),
    "nan per_device entry": _set("per_device/w_max/1", "RAW:NaN"),
    "infinite per_device entry": _set("per_device/w_max/0", "RAW:-Infinity"),
    "nan pcm g_max": _set("pcm/g_max_s", "RAW:NaN", pcm_preset),
    "infinite pcm t0": _set("pcm/t0_s", "RAW:Infinity", pcm_preset),
    "nan prog coefficient": _set("pcm/prog_noise/coefficients_s/1", "RAW:NaN", pcm_preset),
    "nan drift a": _set("pcm/drift/mu_nu/a", "RAW:NaN", pcm_preset),
    "infinite drift hi": _set("pcm/drift/sigma_nu/hi", "RAW:Infinity", pcm_preset),
    "nan read-noise c": _set("pcm/read_noise/c", "RAW:NaN", pcm_preset),
    "nan read-noise b": _set("pcm/read_noise/b", "RAW:NaN", pcm_preset),
    "nan drift table x": _set("pcm/drift/x/1", "RAW:NaN", table_preset),
    "nan drift table mu": _set("pcm/drift/mu_nu/0", "RAW:NaN", table_preset),
    "infinite valid range": _set("pcm/valid_range/g_max_s", "RAW:Infinity", pcm_preset),
    # -- out of range device values
    "corrupt_devices_prob 2": _set(f"{P}/corrupt_devices_prob", 2.0),
    "corrupt_devices_prob -0.1": _set(f"{P}/corrupt_devices_prob", -0.1),
    "negative dw_min_dtod": _set(f"{P}/dw_min_dtod", -0.2),
    "negative up_down_dtod": _set(f"{P}/up_down_dtod", -0.03),
    "negative w_max_dtod": _set(f"{P}/w_max_dtod", -0.08),
    "negative w_min_dtod": _set(f"{P}/w_min_dtod", -0.08),
    "negative dw_min_std": _set(f"{P}/dw_min_std", -0.3),
    "negative write_noise_std": _set(f"{P}/write_noise_std", -0.1),
    "up_down 1.5": _set(f"{P}/up_down", 1.5),
    "up_down -3": _set(f"{P}/up_down", -3.0),
    "negative standard error": _set("device/uncertainty/dw_min", -1e-8),
    "negative read noise": _set("device/read_noise_s", -1e-7),
    "zero dw_min": _set(f"{P}/dw_min", 0.0),
    "w_min above w_max": _set(f"{P}/w_min", 5e-5),
    "string dw_min": _set(f"{P}/dw_min", "8e-7"),
    # -- out of range / disordered PCM sections
    "drift mu lo > hi": _set("pcm/drift/mu_nu/lo", 0.2, pcm_preset),
    "drift sigma lo > hi": _set("pcm/drift/sigma_nu/lo", 0.5, pcm_preset),
    "negative sigma clip": _set("pcm/drift/sigma_nu/lo", -0.01, pcm_preset),
    "unsorted drift table": _set("pcm/drift/x", [0.5, 0.1, 1.0], table_preset),
    "repeated drift table x": _set("pcm/drift/x", [0.1, 0.1, 1.0], table_preset),
    "zero drift table x": _set("pcm/drift/x", [0.0, 0.5, 1.0], table_preset),
    "ragged drift table": _set("pcm/drift/mu_nu", [0.06, 0.05], table_preset),
    "ragged sigma table": _set("pcm/drift/sigma_nu", [0.02, 0.015, 0.01, 0.0], table_preset),
    "negative sigma table": _set("pcm/drift/sigma_nu/2", -0.01, table_preset),
    "valid range g_min > g_max": _set("pcm/valid_range/g_min_s", 3e-5, pcm_preset),
    "valid range t_min > t_max": _set("pcm/valid_range/t_max_s", 1.0, pcm_preset),
    "negative g_max": _set("pcm/g_max_s", -2.5e-5, pcm_preset),
    "zero t_read": _set("pcm/t_read_s", 0.0, pcm_preset),
    "negative read-noise a": _set("pcm/read_noise/a", -0.01, pcm_preset),
    "empty prog coefficients": _set("pcm/prog_noise/coefficients_s", [], pcm_preset),
    # -- document-level problems
    "schema_version 2.0": _set("schema_version", "RAW:2.0"),
    "schema_version 1.0": _set("schema_version", "RAW:1.0"),
    "schema_version 1.5": _set("schema_version", 1.5),
    "schema_version true": _set("schema_version", True),
    "schema_version '1'": _set("schema_version", "1"),
    "schema_version 0": _set("schema_version", 0),
    "missing schema_version": lambda: json.dumps(
        {k: v for k, v in device_preset().items() if k != "schema_version"}
    ),
    "repeated key": lambda: json.dumps(device_preset()).replace(
        '"up_down": 0.1', '"up_down": 0.1, "up_down": 0.9'
    ),
    "top-level list": _text("[1, 2, 3]"),
    "not utf-8": lambda: "\udcff",  # written as raw bytes below
    "truncated": lambda: json.dumps(device_preset())[:-7],
}


def _write(tmp_path: Path, name: str, make: Callable[[], str]) -> Path:
    path = tmp_path / "bad.json"
    text = make()
    if text == "\udcff":
        path.write_bytes(b'{"schema": "aimc-calib-preset", "x": "\xff\xfe"}')
    else:
        path.write_text(text)
    return path


def test_the_corpus_is_large_enough() -> None:
    assert len(MALFORMED) >= 50


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_preset_is_refused_with_one_line(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, MALFORMED[name])
    with pytest.raises(CalibError) as info:
        load_preset(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "name", ["nan up_down", "corrupt_devices_prob 2", "schema_version 2.0", "ragged drift table"]
)
def test_export_command_refuses_malformed_presets(tmp_path: Path, name: str, capsys) -> None:
    path = _write(tmp_path, name, MALFORMED[name])
    out = tmp_path / "out.json"
    assert main(["export", str(path), "--to", "aihwkit", "-o", str(out)]) == 1
    err = _error_line(capsys.readouterr().err)
    assert err.startswith("calib: error:") and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("make", [device_preset, pcm_preset, table_preset])
def test_valid_presets_still_load(tmp_path: Path, make) -> None:
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(make()))
    assert load_preset(path)["schema_version"] == 1


def test_json_writer_refuses_nan_naming_where() -> None:
    from calib.presets import json_text

    with pytest.raises(CalibError, match=r"device/parameters/up_down is nan"):
        json_text({"device": {"parameters": {"up_down": math.nan}}}, "x.json")


def test_export_with_a_scale_that_overflows_writes_no_infinity(tmp_path: Path, capsys) -> None:
    path = tmp_path / "p.json"
    doc = device_preset()
    doc["device"]["parameters"]["dw_min"] = 1e300  # valid, but / 1e-300 overflows
    doc["device"]["parameters"]["w_max"] = 1e301
    path.write_text(json.dumps(doc))
    for target, out in (("aihwkit", tmp_path / "o.json"), ("python", tmp_path / "o.py")):
        code = main(["export", str(path), "--to", target, "--scale", "1e-300", "-o", str(out)])
        assert code in (1, 2), capsys.readouterr()
        assert not out.exists()


def test_zero_read_noise_pcm_preset_exports_finite_python(tmp_path: Path, capsys) -> None:
    """A PCM section without read noise (a = 0) is valid; its export must not say nan."""
    doc = pcm_preset()
    doc["pcm"]["read_noise"]["a"] = 0.0
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "o.py"
    assert main(["export", str(path), "--to", "python", "-o", str(out)]) == 0, capsys.readouterr()
    code = out.read_text()
    assert not re.search(r"\b(nan|inf)\b", code.lower()), code
    js = tmp_path / "o.json"
    assert main(["export", str(path), "--to", "aihwkit", "-o", str(js)]) == 0
    json.loads(js.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in export"))


def _error_line(stderr: str) -> str:
    """The command's one error line (a progress bar drawn before it is not part of it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("calib")]
    assert len(lines) == 1, stderr
    return lines[0]
