"""Bench files and custom-chip files a lab writes (datasets/BENCH.md), and `calib bench`."""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pyvisa

from calib.cli import main
from instruments.bench_chip import TOP_KEYS, SafeOperatingArea, load_bench_description
from instruments.emulator.physics import load_truth_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "datasets" / "examples"
BENCH_MD = ROOT / "datasets" / "BENCH.md"
GOOD = EXAMPLES / "bench_b2902a_33522b_e5250a.json"


def test_the_example_files_are_valid() -> None:
    benches = sorted(EXAMPLES.glob("bench_*.json"))
    chips = sorted(EXAMPLES.glob("custom_chip_*.json"))
    assert len(benches) >= 2 and len(chips) >= 2
    for path in benches:
        doc = load_bench_description(path)
        assert doc["_routing"].shape[0] >= 1
        assert (doc.get("pulser") is None) == (doc["_limiter"] is None)
    kinds = {type(load_truth_file(path)).__name__ for path in chips}
    assert kinds == {"PulsedTruth", "PcmTruth"}


def test_bench_md_documents_every_key_and_its_example_is_valid() -> None:
    text = BENCH_MD.read_text()
    for key in TOP_KEYS:
        assert f"`{key}`" in text, key
    for field in dataclasses.fields(SafeOperatingArea):
        assert f"`{field.name}` | {field.default}" in text, field.name
    block = re.search(r"```json\n(.*?)```", text, re.S).group(1)
    assert load_bench_description(json.loads(block))["_limiter"].kind == "resistor"


def _variant(tmp_path: Path, change) -> Path:
    doc = json.loads(GOOD.read_text())
    change(doc)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc))
    return path


BAD = [
    (lambda d: d.pop("series_limiter"), "series_limiter is missing"),
    (lambda d: d.update(series_limiter={"kind": "fuse"}), "series_limiter: kind must be"),
    (lambda d: d.update(series_limiter={"kind": "resistor"}), "needs resistance_ohm > 0"),
    (
        lambda d: d.update(series_limiter={"kind": "resistor", "resistance_ohm": 100.0}),
        "series_limiter: the resistor lets",
    ),
    (lambda d: d["routing"].update(rows=[[1, 13]]), "output 13"),
    (lambda d: d["routing"].update(wires=1), "routing has unknown key"),
    (lambda d: d.update(safe_operating_area={"max_volts": 1}), "safe_operating_area has unknown"),
    (lambda d: d["safe_operating_area"].update(max_duty_cycle=2), "max_duty_cycle must be <= 1"),
    (lambda d: d.update(smu={"driver": "hp4156", "resource": "x"}), "smu.driver 'hp4156'"),
    (lambda d: d.update(train_mode="fast"), "train_mode must be"),
    (lambda d: d.update(read_aperture_s=-1), "read_aperture_s must be"),
    (lambda d: d.update(speed=2), "unknown key"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_bench_files_give_one_line_errors_naming_file_and_key(
    tmp_path, change, message
) -> None:
    path = _variant(tmp_path, change)
    with pytest.raises(ValueError) as info:
        load_bench_description(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_calib_bench_check_reports_ok_or_one_line(tmp_path, capsys) -> None:
    assert main(["bench", "check", str(GOOD)]) == 0
    assert "ok (4x4 crossbar" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["bench", "check", str(tmp_path / "bad.json")]) != 0
    err = capsys.readouterr().err.strip()
    assert "bad.json: not valid JSON" in err and "\n" not in err


def test_calib_bench_serve_writes_a_bench_file_any_pyvisa_client_can_use(tmp_path) -> None:
    bench_file = tmp_path / "bench.json"
    command = [sys.executable, "-m", "calib", "bench", "serve", "--bench-file", str(bench_file)]
    proc = subprocess.Popen(
        [*command, "--rows", "4", "--cols", "4", "--smu", "keithley_2600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == f"READY {bench_file}", proc.stderr.read()
        doc = load_bench_description(bench_file)
        assert doc["virtual"] is True and doc["smu"]["driver"] == "keithley_2600"
        rm = pyvisa.ResourceManager("@py")
        idns = []
        for role in ("smu", "pulser", "switch"):
            inst = rm.open_resource(doc[role]["resource"], read_termination="\n")
            inst.write_termination = "\n"
            inst.timeout = 5000
            idns.append(inst.query("*IDN?"))
            inst.close()
        assert "Model 2601B" in idns[0] and "33521B" in idns[1] and "E5250A" in idns[2]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
