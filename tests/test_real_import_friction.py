"""Real files that used to be refused or lost information (issue 14, item 9).

A drift CSV straight from a write-verify setup carries the verify read at t = 0: it is the
programming read, and `calib fit pcm` must use it for the programming noise instead of
refusing the file (510 real RRAM cells, MIT, tests/fixtures/real/rram_relax_C_verify).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calib.fit_pcm import fit_pcm_files, split_verify_reads

VERIFY = Path(__file__).parent / "fixtures" / "real" / "rram_relax_C_verify" / "data.csv"


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


def test_drift_csv_with_verify_reads_feeds_the_programming_noise(tmp_path) -> None:
    _, fit, preset = fit_pcm_files([VERIFY], tmp_path / "p.json", kinds=["drift"])
    assert "programming" in fit.prog.sources  # the verify reads, next to the drift fit at t0
    assert any("verify reads" in n for n in fit.notes)
    assert fit.drift is not None and fit.drift.t0_s == 0.01  # the first read after t = 0
    prog = preset["pcm"]["prog_noise"]
    assert prog["fitted_from"] and "published" not in str(prog["fitted_from"])
