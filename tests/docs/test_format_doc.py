"""The plain-h5py example in datasets/FORMAT.md writes a file our reader accepts."""

from __future__ import annotations

import os
import re
from pathlib import Path

from calib.io import load, read_pulse_response

FORMAT_MD = Path(__file__).resolve().parents[2] / "datasets" / "FORMAT.md"


def test_format_example_writes_a_valid_dataset(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", FORMAT_MD.read_text(), re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, str(FORMAT_MD), "exec"), {})
    finally:
        os.chdir(cwd)
    data = read_pulse_response(tmp_path / "my_device.h5")
    assert data.conductance_s.shape == (4, 7)
    assert len(load(tmp_path / "my_device.h5")["pulse_response"]) == 28
