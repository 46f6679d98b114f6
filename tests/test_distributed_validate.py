"""Monte-Carlo validation tasks on a LocalCluster of 2 worker processes: same accuracies.

The validation's orchestration (``calib.validate.run_validation``) takes a ``map_fn`` with
the builtin ``map``'s signature; :func:`calib.distributed.map_like` is that map on Dask.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from calib.distributed import cluster_client, map_like
from calib.validate import TrainingOptions, ValidationOptions, run_validation

EXAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "examples"
PCM_TRUTH = EXAMPLES / "pcm_truth.json"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers run torch on one thread too (Dask's default)
    yield
    torch.set_num_threads(threads)


def test_distributed_repeats_and_times_give_the_in_process_report(tmp_path: Path) -> None:
    def options(out: str) -> ValidationOptions:
        return ValidationOptions(
            PCM_TRUTH,
            tmp_path / out,
            truth=PCM_TRUTH,
            repeats=3,
            times_s=(1.0, 86400.0),
            training=TrainingOptions(epochs=2),
        )

    here = run_validation(options("here")).report
    with cluster_client("local", 2, local_directory=str(tmp_path / "dask")) as client:
        there = run_validation(options("there"), map_fn=map_like(client)).report
    # every accuracy of every source, time and repeat, and the gaps between sources
    assert here["sources"] == there["sources"]
    assert here["gaps_pp"] == there["gaps_pp"]
    # 2 sources x 2 times x 3 repeats, all evaluated
    assert all(len(s["accuracy"][0]) == 3 for s in here["sources"].values())
