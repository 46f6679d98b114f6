"""CSV import: the contracts, conversion to HDF5, and refusal of bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.io import campaign_from_csv, load, read_campaign, read_pulse_response_any


def _csv(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pulse_response_csv_with_equal_sequences_gives_shared_pulses(tmp_path: Path) -> None:
    rows = ["device,pulse,conductance,time"]
    for dev in (7, 3):
        for k, p in enumerate([0, 1, 1, -1]):
            rows.append(f"{dev},{p},{50 + dev + k}e-6,{k * 1e-3}")
    data = read_pulse_response_any(_csv(tmp_path, "\n".join(rows) + "\n"))
    assert data.pulses.tolist() == [0, 1, 1, -1]
    np.testing.assert_array_equal(data.device_index, [7, 3])  # file order is kept
    np.testing.assert_allclose(data.conductance_s[1], [53e-6, 54e-6, 55e-6, 56e-6])


def test_unequal_sequences_are_padded_and_round_trip_through_hdf5(tmp_path: Path) -> None:
    text = "device,pulse,conductance\na,1,5e-5\na,1,5.1e-5\na,-1,5e-5\nb,-1,6e-5\n"
    csv = _csv(tmp_path, text)
    out = tmp_path / "out.h5"
    assert main(["import", "csv", str(csv), "--kind", "pulse-response", "-o", str(out)]) == 0
    data = read_campaign(out, "pulse_response")
    assert data.pulses.shape == (2, 3)
    assert np.isnan(data.conductance_s[1, 1:]).all() and data.pulses[1].tolist() == [-1, 0, 0]
    assert data.attrs["device_labels"] == ["a", "b"]
    assert len(load(out)["pulse_response"]) == 4  # every imported row, no padding


def test_units_are_converted_and_implausible_siemens_refused(tmp_path: Path) -> None:
    text = "device,pulse,conductance\n0,1,50\n0,-1,51\n"
    with pytest.raises(CalibError, match="not plausible"):
        campaign_from_csv(_csv(tmp_path, text), "pulse_response")
    data = campaign_from_csv(_csv(tmp_path, text), "pulse_response", units="uS")
    np.testing.assert_allclose(data.conductance_s, [[50e-6, 51e-6]])
    norm = campaign_from_csv(_csv(tmp_path, text), "pulse_response", units="normalized")
    assert norm.units["conductance"] == "normalized"


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("pulse_response", "device,pulse\n0,1\n", "missing column"),
        ("pulse_response", "device,pulse,conductance\n0,1,5e-5\n0,-1,\n", "line 3"),
        ("pulse_response", "device,pulse,conductance\n0,1,5e-5\n0,-1,abc\n", "line 3"),
        ("pulse_response", "device,pulse,conductance\n0,1.5,5e-5\n", "integer"),
        ("pulse_response", "device,pulse,conductance\n0,1,-5e-5\n", "negative"),
        ("drift", "device,time,conductance\n0,20,5e-5\n", "target"),
        ("drift", "device,time,conductance,target\n0,-1,5e-5,5e-5\n", "negative time"),
        ("programming", "device,target,conductance\n0,5e-5,5e-5\n0,5e-5,5e-5\n", "one"),
        ("pulse_response", "device,pulse,conductance\n", "no data rows"),
    ],
)
def test_bad_rows_are_refused_with_their_line(tmp_path, kind, text, message) -> None:
    with pytest.raises(CalibError, match=message):
        campaign_from_csv(_csv(tmp_path, text), kind)


def test_drift_programming_and_read_noise_contracts(tmp_path: Path) -> None:
    drift = "device,time,conductance,target\n" + "".join(
        f"{d},{t},{10 - 0.1 * t}e-6,10e-6\n" for d in range(3) for t in (20, 40, 80)
    )
    data = campaign_from_csv(_csv(tmp_path, drift, "d.csv"), "drift")
    assert data.conductance_s.shape == (3, 3) and data.time_s.tolist() == [20.0, 40.0, 80.0]
    prog = "device,target,conductance,iterations\n0,5e-6,5.1e-6,3\n1,9e-6,8.8e-6,7\n"
    p = campaign_from_csv(_csv(tmp_path, prog, "p.csv"), "programming")
    np.testing.assert_allclose(p["conductance"] - p["target"], [0.1e-6, -0.2e-6])
    noise = "device,time,conductance\n0,100,5e-6\n0,101,5.1e-6\n"
    assert campaign_from_csv(_csv(tmp_path, noise, "r.csv"), "read_noise").conductance_s.shape == (
        1,
        2,
    )


def test_measured_datasets_load(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "datasets" / "measured"
    gong = read_campaign(root / "gong_et_al.h5", "pulse_response")
    assert gong.conductance_s.shape == (1, 2000) and gong.units["conductance"] == "normalized"
    ramps = read_campaign(root / "crosssim_ramps.h5", "pulse_response")
    assert ramps.n_devices == 79 and ramps.pulses.shape == ramps.conductance_s.shape
    # every ramp is monotone on average: SET rows rise, RESET rows fall
    first = np.array([row[np.isfinite(row)][0] for row in ramps.conductance_s])
    last = np.array([row[np.isfinite(row)][-1] for row in ramps.conductance_s])
    assert np.all((last - first)[:39] > 0) and np.all((last - first)[39:] < 0)
    assert (root / "LICENSE-aihwkit-MIT.txt").is_file()
    assert (root / "LICENSE-crosssim-BSD3.md").is_file()
