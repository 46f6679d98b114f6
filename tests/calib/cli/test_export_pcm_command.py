"""`calib export` on presets with a pcm section (alone or beside a pulsed device)."""

from __future__ import annotations

import json
from pathlib import Path

from calib.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "examples"


def test_pcm_only_preset_exports_the_noise_model(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert (
        main(["export", str(EXAMPLES / "pcm_truth.json"), "--to", "aihwkit", "-o", str(out)]) == 0
    )
    doc = json.loads(out.read_text())
    assert "device" not in doc
    model = doc["inference_noise_model"]
    assert model["class"] == "PCMLikeNoiseModel"  # the truth uses the published drift curves
    assert model["arguments"]["t_0"] == 20.0
    assert model["g_converter"]["arguments"]["g_max"] == 25.0  # µS, aihwkit's unit


def test_device_and_pcm_presets_export_both(tmp_path: Path, capsys) -> None:
    preset = json.loads((EXAMPLES / "pcm_truth.json").read_text())
    preset["device"] = json.loads((EXAMPLES / "reram_truth.json").read_text())["device"]
    path = tmp_path / "both.json"
    path.write_text(json.dumps(preset))
    out = tmp_path / "out.json"
    assert main(["export", str(path), "--to", "aihwkit", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["device"]["class"] == "SoftBoundsDevice"
    assert "inference_noise_model" in doc
    capsys.readouterr()
    assert main(["export", str(path), "--to", "python"]) == 0
    code = capsys.readouterr().out
    assert "SoftBoundsDevice(" in code and "PCMLikeNoiseModel(" in code
    compile(code, "snippet", "exec")  # valid Python
