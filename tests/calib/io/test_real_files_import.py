"""Real files that used to be refused or lost information (issue 14, item 9).

A drift CSV straight from a write-verify setup carries the verify read at t = 0: it is the
programming read, and `calib fit pcm` must use it for the programming noise instead of
refusing the file (510 real RRAM cells, MIT, tests/fixtures/real/rram_relax_C_verify).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calib.fit.pcm import fit_pcm_files, split_verify_reads

VERIFY = Path(__file__).parents[2] / "fixtures" / "real" / "rram_relax_C_verify" / "data.csv"


def test_verify_reads_are_split_from_shared_and_per_device_times() -> None:
    g = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    t, g2, verify = split_verify_reads(np.array([0.0, 1.0, 2.0]), g)
    assert t.tolist() == [1.0, 2.0] and g2.tolist() == [[2.0, 3.0], [5.0, 6.0]]
    assert verify.tolist() == [1.0, 4.0]
    per_device = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, np.nan]])
    t, g2, verify = split_verify_reads(per_device, g)
    assert np.isnan(t[0, 0]) and np.isnan(g2[0, 0]) and g2[1, 0] == 4.0
    assert verify[0] == 1.0 and np.isnan(verify[1])
    t, g2, verify = split_verify_reads(np.array([1.0, 2.0, 3.0]), g)
    assert verify is None and g2.tolist() == g.tolist()


@pytest.mark.slow  # ~20 s: the drift fit's leave-one-level-out form comparison, 32 levels
def test_drift_csv_with_verify_reads_feeds_the_programming_noise(tmp_path) -> None:
    _, fit, preset = fit_pcm_files([VERIFY], tmp_path / "p.json", kinds=["drift"])
    assert "programming" in fit.prog.sources  # the verify reads, next to the drift fit at t0
    assert any("verify reads" in n for n in fit.notes)
    assert fit.drift is not None and fit.drift.t0_s == 0.01  # the first read after t = 0
    prog = preset["pcm"]["prog_noise"]
    assert prog["fitted_from"] and "published" not in str(prog["fitted_from"])


# cell 2348 of the same data set: its read at 4 s is -0.12 uS (an instrument glitch); the
# cell is one of 16,292, and strict import refuses the whole file because of it
NEGATIVE_CELL = [
    ("c2348", 0.1, 1.368523e-07, 6.25e-07),
    ("c2348", 1.0, 1.736736e-07, 6.25e-07),
    ("c2348", 4.0, -1.228809e-07, 6.25e-07),
    ("c2348", 100000.0, 2.438354e-07, 6.25e-07),
]


def _with_negative_cell(tmp_path) -> Path:
    path = tmp_path / "drift.csv"
    text = VERIFY.read_text().rstrip("\n") + "\n"
    text += "".join(f"{d},{t:.9e},{g:.9e},{x:.9e}\n" for d, t, g, x in NEGATIVE_CELL)
    path.write_text(text)
    return path


def test_one_negative_read_is_refused_by_default_and_dropped_and_counted_on_request(
    tmp_path, capsys
) -> None:
    from calib.cli import main
    from calib.errors import CalibError
    from calib.io import campaign_from_csv, read_campaign

    path = _with_negative_cell(tmp_path)
    line = len(VERIFY.read_text().splitlines()) + 3  # header counted: the 3rd appended row
    try:
        campaign_from_csv(path, "drift")
        raise AssertionError("strict import must refuse a negative conductance")
    except CalibError as exc:
        assert f"line {line}: negative conductance" in str(exc)
        assert "--drop-invalid" in str(exc)
    out = tmp_path / "drift.h5"
    args = ["import", "csv", str(path), "--kind", "drift", "-o", str(out), "--drop-invalid"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"dropped 1 row(s): negative conductance (first at line {line})" in err
    data = read_campaign(out, "drift")
    assert sum(data.attrs["dropped_rows"].values()) == 1
    labels = data.attrs["device_labels"]
    g = data["conductance"][labels.index("c2348")]
    assert np.isfinite(g).sum() == 3 and np.all(g[np.isfinite(g)] > 0)


def test_dropped_pulse_response_reads_keep_their_pulses_and_digitized_counts_round(
    tmp_path,
) -> None:
    from calib.errors import CalibError
    from calib.io import campaign_from_csv

    path = tmp_path / "pr.csv"
    rows = ["0,1.0e-5", "1,1.1e-5", "1,-3", "1,1.3e-5", "-1,1.2e-5", "-1,x", "-1,1.0e-5"]
    path.write_text("device,pulse,conductance\n" + "".join(f"d1,{r}\n" for r in rows))
    data = campaign_from_csv(path, "pulse_response", drop_invalid=True)
    # the pulses applied before a dropped read still happened: they move to the next read
    assert data["pulses"].tolist() == [0, 1, 2, -1, -2]
    assert sum(data.attrs["dropped_rows"].values()) == 2
    path.write_text("device,pulse,conductance\nd1,0,1e-5\nd1,0.98,1.1e-5\nd1,-1.03,1.0e-5\n")
    try:
        campaign_from_csv(path, "pulse_response")
        raise AssertionError("non-integer pulse counts are refused by default")
    except CalibError as exc:
        assert "line 3" in str(exc) and "--round-pulses" in str(exc)
    data = campaign_from_csv(path, "pulse_response", round_pulses=True)
    assert data["pulses"].tolist() == [0, 1, -1]
    assert data.attrs["pulses_rounded"]["rows"] == 2
    assert data.attrs["pulses_rounded"]["largest_change"] == pytest.approx(0.03)


def test_potentiation_and_depression_in_separate_files_make_one_trace(tmp_path) -> None:
    # The Gong et al. curve ships as two columns (aihwkit's gong_et_al.csv, MIT): 1000 reads
    # after up pulses, 1000 after down pulses. As two files (the down file also reversed,
    # as a table from low to high conductance would list it) they must import as the
    # same trace as datasets/measured/gong_et_al.h5.
    from calib.cli import main
    from calib.io import read_campaign

    gong = read_campaign(
        Path(__file__).resolve().parents[3] / "datasets" / "measured" / "gong_et_al.h5",
        "pulse_response",
    )
    g, p = gong["conductance"][0], np.broadcast_to(gong["pulses"], gong["conductance"].shape)[0]
    up, down = tmp_path / "up.csv", tmp_path / "down.csv"
    up.write_text("device,pulse,conductance\n" + "".join(f"0,1,{float(v)!r}\n" for v in g[p > 0]))
    rows = [f"0,-1,{float(v)!r}\n" for v in g[p < 0]]
    down.write_text("device,pulse,conductance\n" + "".join(reversed(rows)))
    out = tmp_path / "gong.h5"
    args = ["import", "csv", str(up), "--kind", "pulse-response", "--units", "normalized"]
    assert main([*args, "--down", str(down), "--reverse-down", "-o", str(out)]) == 0
    data = read_campaign(out, "pulse_response")
    assert np.array_equal(data["conductance"][0], g)
    assert np.array_equal(np.broadcast_to(data["pulses"], data["conductance"].shape)[0], p)
    assert data.attrs["unpaired_devices"] == []
    # a down pulse in the potentiation file is refused with the file named
    up.write_text("device,pulse,conductance\n0,1,0.1\n0,-1,0.2\n")
    assert main([*args, "--down", str(down), "-o", str(tmp_path / "x.h5")]) != 0
