"""Monte-Carlo validation on a LocalCluster of 2 worker processes: the same report.

``calib validate --workers 2`` maps the simulated (source, time, repeat) tasks with
:func:`calib.runtime.distributed.map_like` (``run_validation``'s ``map_fn``); every accuracy and gap
must equal the in-process run's (seeds come from (seed, repeat, time) alone).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calib.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "examples"
PCM_TRUTH = EXAMPLES / "pcm_truth.json"


@pytest.mark.slow  # 15-22 s (make test stays under 10 minutes on 2 cores)
def test_validate_with_workers_gives_the_in_process_report(tmp_path: Path) -> None:
    def run(out: str, *extra: str) -> dict:
        argv = ["validate", str(PCM_TRUTH), "--truth", str(PCM_TRUTH), "--repeats", "3"]
        argv += ["--times", "1,1d", "--epochs", "2", "-o", str(tmp_path / out), *extra]
        assert main(argv) == 0
        return json.loads((tmp_path / out / "report.json").read_text())

    here = run("here")
    there = run("there", "--workers", "2")
    # every accuracy of every source, time and repeat, and the gaps between sources
    assert here["sources"] == there["sources"]
    assert here["gaps_pp"] == there["gaps_pp"]
    assert all(len(s["accuracy"][0]) == 3 for s in here["sources"].values())
    assert main(["validate", str(PCM_TRUTH), "-o", str(tmp_path / "x"), "--scheduler", "k8s"]) == 1
