"""Bad dataset files are refused with a message that names the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from calib.errors import CalibError
from calib.io import read_campaign

EXAMPLE = Path(__file__).resolve().parents[3] / "datasets" / "examples" / "reram_pulse_response.h5"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    path = tmp_path / "d.h5"
    shutil.copy(EXAMPLE, path)
    return path


def _edit(path: Path, func) -> None:
    with h5py.File(path, "a") as f:
        func(f["pulse_response"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: g.__delitem__("pulses"), "pulses is missing"),
        (lambda g: g.__delitem__("conductance"), "conductance is missing"),
        (lambda g: g["conductance"].attrs.__setitem__("units", "uS"), "units 'uS'"),
        (lambda g: g["conductance"].attrs.__delitem__("units"), "units None"),
        (
            lambda g: (g.__delitem__("pulses"), g.create_dataset("pulses", data=np.ones(5))),
            "pulses shape",
        ),
        (
            lambda g: (g.__delitem__("row"), g.create_dataset("row", data=np.zeros(3))),
            "row has 3 rows",
        ),
    ],
)
def test_structural_problems_are_named(copy: Path, edit, message: str) -> None:
    _edit(copy, edit)
    with pytest.raises(CalibError, match=message):
        read_campaign(copy, "pulse_response")


def test_nan_inside_a_trace_is_refused_but_trailing_padding_is_not(copy: Path) -> None:
    def poke(g):
        data = g["conductance"][()]
        data[5, 10] = np.nan
        g["conductance"][...] = data

    _edit(copy, poke)
    with pytest.raises(CalibError, match=r"NaN reads? inside"):
        read_campaign(copy, "pulse_response")


def test_truncated_file_is_refused(copy: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.h5"
    cut.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
    with pytest.raises(CalibError, match=r"cut\.h5"):
        read_campaign(cut, "pulse_response")


def test_foreign_hdf5_and_missing_group_and_newer_version(copy: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CalibError, match="not an aimc-calib-dataset"):
        read_campaign(foreign, "pulse_response")
    with pytest.raises(CalibError, match="no 'drift' group"):
        read_campaign(copy, "drift")
    with h5py.File(copy, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CalibError, match="newer"):
        read_campaign(copy, "pulse_response")
