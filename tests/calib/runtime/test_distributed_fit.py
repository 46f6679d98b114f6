"""Distributed fitting on a LocalCluster of 2 worker processes: same results as in-process.

One cluster serves the module (starting one takes seconds). Data come from the emulator
(independent physics) through the real campaign code, so the files are what a lab gets.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from chip_files import measure_chip_file

from calib.fit.many import fit_many
from calib.fit.pulse_response import fit_pulse_response_file
from calib.io.pulse_source import HDF5PulseSource
from calib.runtime.distributed import cluster_client
from fitting.pulse_response import fit_pulse_response, fit_pulse_response_source

CHIP_SEEDS = (21, 22, 23, 24)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    folder = str(tmp_path_factory.mktemp("dask"))
    with cluster_client("local", 2, local_directory=folder) as c:
        yield c


@pytest.fixture(scope="module")
def wafer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """4 emulated chips (manifest with die coordinates) and their sequential fits."""
    folder = tmp_path_factory.mktemp("wafer")
    rows = []
    reference = {}
    for k, seed in enumerate(CHIP_SEEDS):
        path = measure_chip_file(folder / f"die{k}.h5", seed, 600)
        rows.append({"path": path.name, "chip": f"die{k}", "die_x": k % 2, "die_y": k // 2})
        fit_pulse_response_file(path, folder / f"ref{k}.json", seed=3)
        reference[f"die{k}"] = json.loads((folder / f"ref{k}.json").read_text())
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "chip", "die_x", "die_y"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest, reference


def _same_preset(a: dict, b: dict) -> None:
    """Identical fit results (provenance, which records time and command, aside)."""
    assert a["device"] == b["device"]
    assert a.get("per_device") == b.get("per_device")


def test_fit_many_on_two_workers_equals_sequential_fits(client, wafer, tmp_path: Path) -> None:
    manifest, reference = wafer
    result = fit_many(manifest, tmp_path / "out", seed=3, client=client)
    assert [r["chip"] for r in result["chips"]] == list(reference)
    for name, ref in reference.items():
        _same_preset(json.loads((tmp_path / "out" / "presets" / f"{name}.json").read_text()), ref)
    with open(tmp_path / "out" / "wafer_chips.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and all(r["error"] == "" for r in table)
    for r in table:  # the per-chip row carries the chip's own population values
        ref = reference[r["chip"]]["device"]["parameters"]["dw_min"]
        assert float(r["dw_min"]) == pytest.approx(ref, rel=1e-5)  # CSV keeps 6 digits
    assert (tmp_path / "out" / "wafer_map_dw_min.png").stat().st_size > 0
    assert (tmp_path / "out" / "wafer_parameters.png").stat().st_size > 0
    summary = json.loads((tmp_path / "out" / "wafer_summary.json").read_text())
    assert summary["chips"] == 4 and summary["failed"] == []


def test_chunked_fit_of_10k_devices_equals_unchunked(client, tmp_path: Path) -> None:
    path = measure_chip_file(tmp_path / "big.h5", 31, 10_000, shape=(128, 128), n_pulses=60)
    source = HDF5PulseSource(path)
    whole = fit_pulse_response(source.read(slice(0, source.n_devices)), chunk_devices=20_000)
    from calib.runtime.distributed import task_mapper

    chunked = fit_pulse_response_source(
        source, chunk_devices=1500, map_tasks=task_mapper(client), screen_pieces_of=2
    )
    assert chunked.n_fitted == whole.n_fitted > 9000
    assert chunked.excluded == whole.excluded
    for name, value in whole.parameters.items():
        other = chunked.parameters[name]
        if isinstance(value, float):
            # the population stage sees the same per-device values: equal up to rounding
            assert other == pytest.approx(value, rel=1e-9, abs=1e-15), name
        else:
            assert other == value, name
    for name, col in whole.per_device.items():
        np.testing.assert_allclose(chunked.per_device[name], col, rtol=1e-9, atol=0, err_msg=name)


def test_killed_worker_still_yields_the_complete_identical_result(
    client, wafer, tmp_path: Path
) -> None:
    manifest, reference = wafer
    pids_before = set(client.run(os.getpid).values())
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        result = fit_many(manifest, tmp_path / "out", seed=3, client=client)
    finally:
        killer.join()
    assert killed, "no worker was busy: the test did not kill anything"
    assert killed[0] in pids_before
    assert all(not r.get("error") for r in result["chips"])
    for name, ref in reference.items():
        _same_preset(json.loads((tmp_path / "out" / "presets" / f"{name}.json").read_text()), ref)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
    assert killed[0] not in set(client.run(os.getpid).values())


def test_large_chips_are_split_into_device_chunks_with_the_same_result(
    client, wafer, tmp_path: Path
) -> None:
    manifest, reference = wafer
    # every chip "large": fitted one at a time, per-device chunks of 256 on the workers
    fit_many(
        manifest, tmp_path / "out", seed=3, client=client, split_devices=100, chunk_devices=256
    )
    for name, ref in reference.items():
        _same_preset(json.loads((tmp_path / "out" / "presets" / f"{name}.json").read_text()), ref)


def test_cli_fit_with_workers_equals_in_process(wafer, tmp_path: Path) -> None:
    from calib.cli import main

    manifest, reference = wafer
    die = manifest.parent / "die0.h5"
    out = tmp_path / "die0.json"
    argv = ["fit", "pulse-response", str(die), "-o", str(out), "--seed", "3", "--workers", "2"]
    assert main(argv) == 0
    _same_preset(json.loads(out.read_text()), reference["die0"])


def test_cli_fit_many_on_an_existing_scheduler(client, wafer, tmp_path: Path) -> None:
    from calib.cli import main

    manifest, reference = wafer
    address = client.scheduler.address  # what `dask scheduler` prints: tcp://HOST:PORT
    argv = ["fit-many", str(manifest), "-o", str(tmp_path), "--seed", "3", "--scheduler", address]
    assert main(argv) == 0
    for name, ref in reference.items():
        _same_preset(json.loads((tmp_path / "presets" / f"{name}.json").read_text()), ref)
