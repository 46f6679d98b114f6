"""Export presets to aihwkit: JSON with class + constructor fields, and a Python snippet."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.presets import make_preset, provenance, save_preset
from calib.presets.export import AIHWKIT_CLASSES, AIHWKIT_FIELDS, aihwkit_device, python_snippet

BASE = {
    "dw_min": 8e-7,
    "up_down": 0.1,
    "w_max": 4e-5,
    "w_min": -3.2e-5,
    "dw_min_dtod": 0.2,
    "up_down_dtod": 0.03,
    "w_max_dtod": 0.08,
    "w_min_dtod": 0.08,
    "dw_min_std": 0.3,
    "write_noise_std": 0.1,
    "corrupt_devices_prob": 0.02,
}
EXTRA = {
    "constant-step": {},
    "soft-bounds": {},
    "linear-step": {"gamma_up": 0.5, "gamma_down": 0.4, "gamma_up_dtod": 0.05},
    "exp-step": {
        "A_up": 0.00081,
        "A_down": 0.36833,
        "gamma_up": 12.4,
        "gamma_down": 12.8,
        "a": 0.244,
        "b": 0.2425,
    },
    "pow-step": {"pow_gamma": 1.8, "pow_gamma_dtod": 0.1, "pow_up_down": 0.1},
    "piecewise-step": {"piecewise_up": [1.2, 1.0, 0.5], "piecewise_down": [0.5, 1.0, 1.2]},
}


def preset(model: str) -> dict:
    device = {
        "model": model,
        "parameters": {**BASE, **EXTRA[model]},
        "g_offset_s": 6e-5,
        "read_noise_s": 2.5e-7,
    }
    return make_preset(device, provenance(None))


@pytest.mark.parametrize("model", list(AIHWKIT_CLASSES))
def test_export_converts_units_and_uses_only_aihwkit_fields(model: str) -> None:
    out = aihwkit_device(preset(model))
    cls = out["device"]["class"]
    params = out["device"]["parameters"]
    assert cls == AIHWKIT_CLASSES[model]
    assert set(params) <= set(AIHWKIT_FIELDS[cls])
    # conductances in weight units: scale = max(w_max, -w_min) = 40 µS
    assert params["dw_min"] == pytest.approx(8e-7 / 4e-5)
    assert params["w_max"] == pytest.approx(1.0) and params["w_min"] == pytest.approx(-0.8)
    assert params["dw_min_dtod"] == 0.2 and params["up_down"] == 0.1
    assert out["not_exported"]["read_noise_s"] == 2.5e-7
    if model == "constant-step":  # aihwkit's ConstantStep refuses write noise
        assert "write_noise_std" not in params
        assert out["not_exported"]["write_noise_std"] == 0.1
    else:
        assert params["write_noise_std"] == 0.1
    for name, value in EXTRA[model].items():
        assert params[name] == value


def test_export_refuses_non_family_models() -> None:
    doc = make_preset({"model": "none", "parameters": BASE, "g_offset_s": 6e-5}, provenance(None))
    with pytest.raises(CalibError, match="no aihwkit counterpart"):
        aihwkit_device(doc)


def _fake_aihwkit(monkeypatch) -> dict:
    """A stand-in ``aihwkit.simulator.configs.devices`` that records constructor calls."""
    made: dict = {}
    devices = types.ModuleType("aihwkit.simulator.configs.devices")
    for cls, fields in AIHWKIT_FIELDS.items():

        def build(_cls=cls, _fields=fields, **kwargs):
            unknown = set(kwargs) - set(_fields)
            if unknown:
                raise TypeError(f"{_cls} got unexpected fields {unknown}")
            made[_cls] = kwargs
            return (_cls, kwargs)

        setattr(devices, cls, build)
    for name in ("aihwkit", "aihwkit.simulator", "aihwkit.simulator.configs"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "aihwkit.simulator.configs.devices", devices)
    return made


def test_cli_export_json_and_python_snippet(tmp_path: Path, monkeypatch, capsys) -> None:
    path = save_preset(preset("linear-step"), tmp_path / "p.json")
    out = tmp_path / "out.json"
    assert main(["export", str(path), "--to", "aihwkit", "-o", str(out)]) == 0
    exported = json.loads(out.read_text())
    assert exported["device"]["class"] == "LinearStepDevice"
    capsys.readouterr()
    assert main(["export", str(path), "--to", "python"]) == 0
    code = capsys.readouterr().out
    assert code == python_snippet(exported)
    made = _fake_aihwkit(monkeypatch)
    namespace: dict = {}
    exec(compile(code, "snippet", "exec"), namespace)  # the snippet runs as printed
    assert made["LinearStepDevice"]["gamma_up"] == 0.5
    assert made["LinearStepDevice"]["dw_min"] == pytest.approx(0.02)


def test_cli_export_needs_output_for_json(tmp_path: Path, capsys) -> None:
    path = save_preset(preset("soft-bounds"), tmp_path / "p.json")
    assert main(["export", str(path), "--to", "aihwkit"]) == 1
    assert "needs -o" in capsys.readouterr().err


@pytest.mark.parametrize("model", list(AIHWKIT_CLASSES))
def test_export_rebuilds_the_device_in_aihwkit(model: str) -> None:
    # (not find_spec("aihwkit"): tests/fitting/aihwkit/ is a namespace package of that name
    # once tests/fitting is on sys.path, i.e. when it is collected first)
    devices = pytest.importorskip("aihwkit.simulator.configs.devices")

    out = aihwkit_device(preset(model))
    device = getattr(devices, out["device"]["class"])(**out["device"]["parameters"])
    assert device.dw_min == pytest.approx(out["device"]["parameters"]["dw_min"])
