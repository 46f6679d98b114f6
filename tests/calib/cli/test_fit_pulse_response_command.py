"""``calib fit pulse-response``: HDF5 and CSV input, auto model, report files, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calib.cli import main
from calib.presets import load_preset

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "datasets" / "examples" / "reram_pulse_response.h5"


def test_fit_auto_with_report_writes_preset_plots_and_summaries(tmp_path: Path, capsys) -> None:
    preset_path = tmp_path / "preset.json"
    report = tmp_path / "report"
    code = main(
        [
            "fit",
            "pulse-response",
            str(EXAMPLE),
            "--model",
            "auto",
            "-o",
            str(preset_path),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "model selection: soft-bounds" in out
    preset = load_preset(preset_path)
    device = preset["device"]
    assert device["model"] == "soft-bounds"
    assert {"dw_min", "up_down", "w_max", "w_min", "dw_min_dtod", "dw_min_std"} <= set(
        device["parameters"]
    )
    assert set(device["uncertainty"]) >= {"dw_min", "dw_min_dtod", "dw_min_std"}
    assert preset["provenance"]["input_sha256"] and "fit" in preset["provenance"]["command"]
    assert len(preset["per_device"]["delta_up"]) == len(preset["per_device"]["device_id"])
    for name in (
        "mean_trace.png",
        "step_vs_conductance.png",
        "residuals.png",
        "parameters.png",
        "model_selection.png",
        "summary.md",
        "summary.json",
    ):
        assert (report / name).stat().st_size > 1000, name
    summary = json.loads((report / "summary.json").read_text())
    assert summary["model"] == "soft-bounds"
    assert summary["model_selection"][0]["family"] == "soft-bounds"
    assert "Population parameters" in (report / "summary.md").read_text()


def _csv_from_example(path: Path, drop: str | None = None, scale: float = 1.0) -> None:
    from calib.io import read_pulse_response

    data = read_pulse_response(EXAMPLE)
    g = data.conductance_s[:16]
    frame = pd.DataFrame(
        {
            "device": np.repeat(np.arange(16), g.shape[1]),
            "pulse": np.tile(data.pulses, 16),
            "conductance": g.ravel() * scale,
        }
    )
    if drop:
        frame = frame.drop(columns=[drop])
    frame.to_csv(path, index=False)


def test_fit_csv_input_in_microsiemens(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "traces.csv"
    _csv_from_example(csv, scale=1e6)
    preset_path = tmp_path / "p.json"
    assert main(["fit", "pulse-response", str(csv), "--units", "uS", "-o", str(preset_path)]) == 0
    device = load_preset(preset_path)["device"]
    assert 3e-7 < device["parameters"]["dw_min"] < 2e-6  # converted to siemens


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-column", "missing column"),
        ("missing-file", "not found"),
        ("single-direction", "both up"),
    ],
)
def test_fit_bad_input_gives_one_line_errors(tmp_path: Path, capsys, case, message) -> None:
    path = tmp_path / "bad.csv"
    if case == "missing-column":
        _csv_from_example(path, drop="pulse")
    elif case == "single-direction":
        pd.DataFrame(
            {"device": [0] * 5, "pulse": [0, 1, 1, 1, 1], "conductance": [1e-5] * 5}
        ).to_csv(path, index=False)
    code = main(["fit", "pulse-response", str(path), "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
