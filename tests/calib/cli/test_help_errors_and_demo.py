"""The calib command line: help, one-line errors, and the demo end to end."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from calib.cli import main


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "calib", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_subcommands_and_demo_options() -> None:
    out = _run(["--help"]).stdout
    for name in ("demo", "emulator", "measure", "fit"):
        assert name in out
    demo_help = _run(["demo", "--help"]).stdout
    for option in ("--seed", "--devices", "--output"):
        assert option in demo_help


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["fit", "pulse-response", "/nonexistent/file.h5", "-o", "/tmp/x.json"],
        ["demo", "--devices", "3"],
    ],
)
def test_bad_input_gives_one_line_error_and_nonzero_exit(args: list[str]) -> None:
    result = _run(args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        result = _run(["emulator", "serve", "--port", str(port)])
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot listen" in result.stderr


def test_measure_then_fit_through_the_cli(tmp_path: Path, capsys) -> None:
    data = tmp_path / "pr.h5"
    assert main(["measure", "pulse-response", "--devices", "64", "-o", str(data)]) == 0
    preset = tmp_path / "preset.json"
    assert main(["fit", "pulse-response", str(data), "-o", str(preset)]) == 0
    doc = json.loads(preset.read_text())
    assert doc["device"]["model"] == "soft-bounds"
    assert doc["provenance"]["input_sha256"]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    from calib.demo import run_demo

    result = run_demo(tmp_path, seed=1, n_devices=64, epochs=3)
    assert result.dataset.is_file() and result.preset.is_file() and result.truth.is_file()
    # 3 epochs on digits: far above chance (10 %) for both devices
    assert result.accuracy_fitted > 0.6 and result.accuracy_truth > 0.6
