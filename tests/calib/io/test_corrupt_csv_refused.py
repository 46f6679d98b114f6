"""Corrupt CSV files are refused with the line number, never fitted (issue 18.7).

Each case starts from a clean, noisy measurement (a soft-bounds-like ramp with read noise,
as a real instrument gives) and applies one corruption an outside tester found accepted:
rows duplicated, the file pasted twice, shuffled rows, ``01`` and ``1`` as two devices,
data in µS declared as siemens' smaller cousins, negative times, a pulse count beyond
int64, a drift target that changes within a device.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.io import campaign_from_csv

RNG = np.random.default_rng(7)


def pulse_frame(n_dev: int = 4, n: int = 20, time: bool = True) -> pd.DataFrame:
    """Tidy pulse-response rows: n up then n down pulses, a read after each, noisy (S)."""
    rows = []
    for dev in range(n_dev):
        g, t = 20e-6, 0.0
        pulses = [0] + [1] * n + [-1] * n
        for p in pulses:
            g += p * 0.5e-6 * (1 - (g - 20e-6) / 30e-6 if p > 0 else 1)
            t += 1e-3
            row = {"device": dev, "pulse": p, "conductance": g + RNG.normal(0, 5e-8)}
            if time:
                row["time"] = round(t, 6)
            rows.append(row)
    return pd.DataFrame(rows)


def drift_frame(n_dev: int = 4) -> pd.DataFrame:
    times = np.geomspace(20, 1e4, 12)
    rows = []
    for dev in range(n_dev):
        target = 5e-6 * (1 + dev)
        for t in times:
            g = target * (t / 20) ** -0.05 + RNG.normal(0, 2e-8)
            rows.append({"device": dev, "time": t, "conductance": g, "target": target})
    return pd.DataFrame(rows)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _refused(path: Path, campaign: str, match: str, units: str = "S") -> str:
    with pytest.raises(CalibError) as info:
        campaign_from_csv(path, campaign, units)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert re.search(match, message), message
    return message


def test_clean_files_are_accepted(tmp_path: Path) -> None:
    data = campaign_from_csv(_write(pulse_frame(), tmp_path / "p.csv"), "pulse_response")
    assert data.conductance_s.shape == (4, 41)
    data = campaign_from_csv(_write(pulse_frame(time=False), tmp_path / "q.csv"), "pulse_response")
    assert data.pulses.tolist()[:3] == [0, 1, 1]
    campaign_from_csv(_write(drift_frame(), tmp_path / "d.csv"), "drift")


def test_every_row_duplicated_is_refused(tmp_path: Path) -> None:
    frame = pulse_frame(time=False)
    doubled = frame.loc[frame.index.repeat(2)].reset_index(drop=True)
    _refused(_write(doubled, tmp_path / "x.csv"), "pulse_response", r"line 3: .*duplicated")
    with_time = pulse_frame()
    doubled = with_time.loc[with_time.index.repeat(2)].reset_index(drop=True)
    _refused(_write(doubled, tmp_path / "y.csv"), "pulse_response", r"line 3: time .*repeats")


def test_a_file_pasted_twice_is_refused(tmp_path: Path) -> None:
    frame = pulse_frame(time=False)
    twice = pd.concat([frame, frame], ignore_index=True)
    # device 0's 42nd read (line 43 of the first copy + ... ) starts the repeat
    _refused(_write(twice, tmp_path / "x.csv"), "pulse_response", r"line \d+: .*pasted twice")
    frame = pulse_frame()
    twice = pd.concat([frame, frame], ignore_index=True)
    _refused(_write(twice, tmp_path / "y.csv"), "pulse_response", r"line \d+: time .*order")


def test_shuffled_rows_with_a_time_column_are_refused(tmp_path: Path) -> None:
    frame = pulse_frame().sample(frac=1.0, random_state=3).reset_index(drop=True)
    _refused(_write(frame, tmp_path / "x.csv"), "pulse_response", r"line \d+: time .*order")
    drift = drift_frame().sample(frac=1.0, random_state=3).reset_index(drop=True)
    _refused(_write(drift, tmp_path / "d.csv"), "drift", r"line \d+: time .*order")


def test_device_ids_01_and_1_are_refused(tmp_path: Path) -> None:
    text = "device,pulse,conductance\n1,0,2e-5\n1,1,2.1e-5\n01,0,3e-5\n01,1,3.2e-5\n"
    path = tmp_path / "x.csv"
    path.write_text(text)
    _refused(path, "pulse_response", r"line 4: device id '01' is the same number as '1' \(line 2\)")


def test_wrong_units_below_the_plausible_range_are_refused(tmp_path: Path) -> None:
    frame = pulse_frame()  # siemens, read as µS: 2e-11 S
    _refused(_write(frame, tmp_path / "x.csv"), "pulse_response", r"not plausible", units="uS")
    _refused(_write(drift_frame(), tmp_path / "d.csv"), "drift", r"not plausible", units="nS")


def test_negative_times_in_pulse_response_are_refused(tmp_path: Path) -> None:
    frame = pulse_frame()
    frame.loc[5, "time"] = -0.5
    _refused(_write(frame, tmp_path / "x.csv"), "pulse_response", r"line 7: time -0.5 s")


def test_a_pulse_count_beyond_int64_is_refused(tmp_path: Path) -> None:
    frame = pulse_frame().astype({"pulse": object})
    frame.loc[3, "pulse"] = "1e20"
    _refused(_write(frame, tmp_path / "x.csv"), "pulse_response", r"line 5: pulse count 1e\+20")


def test_a_drift_target_that_changes_within_a_device_is_refused(tmp_path: Path) -> None:
    frame = drift_frame()
    frame.loc[15, "target"] = 7e-6
    _refused(_write(frame, tmp_path / "d.csv"), "drift", r"line 17: target 7e-06 differs")


def test_read_noise_reads_may_share_a_time_stamp_but_not_go_back(tmp_path: Path) -> None:
    rows = ["device,time,conductance"]
    for dev in range(3):
        for k in range(8):  # 1 ms stamps, two reads per stamp
            rows.append(f"{dev},{100 + 0.001 * (k // 2)},{5e-6 + RNG.normal(0, 2e-8)}")
    path = tmp_path / "r.csv"
    path.write_text("\n".join(rows) + "\n")
    assert campaign_from_csv(path, "read_noise").conductance_s.shape == (3, 8)
    rows[4] = "0,99.0,5e-6"  # device 0's 4th read (line 5) goes back in time
    path.write_text("\n".join(rows) + "\n")
    _refused(path, "read_noise", r"line 5: time 99 s does not come after")


def test_import_command_reports_the_line_in_one_line(tmp_path: Path, capsys) -> None:
    frame = pulse_frame()
    frame.loc[5, "time"] = -0.5
    path = _write(frame, tmp_path / "x.csv")
    out = tmp_path / "x.h5"
    code = main(["import", "csv", str(path), "--kind", "pulse-response", "-o", str(out)])
    err = _error_line(capsys.readouterr().err)
    assert code == 1 and "line 7" in err and "\n" not in err
    assert not out.exists()


def _error_line(stderr: str) -> str:
    """The command's one error line (a progress bar drawn before it is not part of it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("calib")]
    assert len(lines) == 1, stderr
    return lines[0]
