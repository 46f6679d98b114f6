"""Benchmark of distributed fitting on Dask: fit-many speedup and the per-device cost split.

Usage (prints markdown tables for ``benchmarks/RESULTS.md``)::

    .venv/bin/python benchmarks/bench_fit_many.py speedup --chips 8 --devices 20000
    .venv/bin/python benchmarks/bench_fit_many.py split --devices 100000 --workers 2

``speedup``: ``fit_many`` of N emulator chips (ReRAM, 2 cycles x 100 up + 100 down pulses,
401 reads per device, soft-bounds) in this process, on a LocalCluster of 1 worker process
and of 2; cluster start-up is timed separately; presets are checked to be identical.
``split``: one large chip fitted with its per-device chunks as tasks (the mode fit-many
uses for chips above ``--split-devices``); the time inside the per-device tasks and the
time of the stages that run once on the client (screening classification, model/shape on
the subsample, population, noise, predictive check) are measured in-process, then the
wall time on the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def _chips(folder: Path, n_chips: int, n_devices: int) -> list[Path]:
    from chip_files import measure_chip_file

    side = 1 << max(5, (n_devices - 1).bit_length() // 2 + 1)
    return [
        measure_chip_file(folder / f"die{k:02d}.h5", 100 + k, n_devices, shape=(side, side))
        for k in range(n_chips)
    ]


def speedup(n_chips: int, n_devices: int, model: str) -> None:
    from calib.fit.many import fit_many
    from calib.runtime.distributed import cluster_client

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _chips(folder, n_chips, n_devices)
        pattern = str(folder / "die*.h5")
        rows = []
        t0, c0 = time.perf_counter(), time.process_time()
        fit_many(pattern, folder / "inproc", model)
        t_in = time.perf_counter() - t0
        cores = (time.process_time() - c0) / t_in
        rows.append(("in-process (no Dask)", "-", t_in, cores, _load()))
        ref = _presets(folder / "inproc")
        for workers in (1, 2):
            t0 = time.perf_counter()
            with cluster_client("local", workers) as client:
                t_start = time.perf_counter() - t0
                c0 = sum(client.run(time.process_time).values())
                t0 = time.perf_counter()
                fit_many(pattern, folder / f"w{workers}", model, client=client)
                dt = time.perf_counter() - t0
                # CPU seconds the workers obtained per second of wall time: the cores they had
                cores = (sum(client.run(time.process_time).values()) - c0) / dt
            assert _presets(folder / f"w{workers}") == ref, "distributed presets differ"
            name = f"LocalCluster, {workers} worker(s)"
            rows.append((name, f"{t_start:.1f}", dt, cores, _load()))
    total = n_chips * n_devices
    print(f"{n_chips} chips x {n_devices} devices ({total} devices), model {model}\n")
    print(
        "| run | cluster start (s) | fit-many wall (s) | speedup vs 1 worker "
        "| CPU cores obtained | load |"
    )
    print("|---|---|---|---|---|---|")
    one = rows[1][2]
    for name, start, dt, cores, load in rows:
        print(f"| {name} | {start} | {dt:.1f} | {one / dt:.2f} | {cores:.2f} | {load} |")
    print(f"\nper-device cost in-process: {1e6 * t_in / total:.0f} µs (all stages, 1 core)")


def _presets(folder: Path) -> dict:
    """What must agree between runs: each preset's device model and its per-device arrays.

    Large chips keep the arrays in a sidecar referenced by ``per_device_file``: its file is
    checked against the recorded sha256 (``open_sidecar``) and the reference, sha256
    included, is compared (the sidecar is written byte-reproducibly, ``track_times`` off).
    """
    from calib.presets.sidecar import open_sidecar

    out = {}
    for p in sorted((folder / "presets").glob("*.json")):
        doc = json.loads(p.read_text())
        ref = doc.get("per_device_file")
        if ref is not None:
            open_sidecar(p, ref)  # one-line CalibError if the file does not match its hash
        out[p.name] = (doc["device"], doc.get("per_device"), ref)
    return out


def split(n_devices: int, workers: int, model: str, chunk_devices: int) -> None:
    from calib.io.pulse_source import HDF5PulseSource
    from calib.runtime.distributed import cluster_client, task_mapper
    from fitting.chunked import serial_map
    from fitting.pulse_response import fit_pulse_response_source

    with tempfile.TemporaryDirectory() as tmp:
        (path,) = _chips(Path(tmp), 1, n_devices)
        source = HDF5PulseSource(path)
        inside = {"t": 0.0}

        def timed_map(func, tasks):
            t0 = time.perf_counter()
            out = serial_map(func, tasks)
            inside["t"] += time.perf_counter() - t0
            return out

        t0 = time.perf_counter()
        ref = fit_pulse_response_source(
            source, model, chunk_devices=chunk_devices, map_tasks=timed_map, screen_pieces_of=8
        )
        total = time.perf_counter() - t0
        load_in = _load()
        t0 = time.perf_counter()
        with cluster_client("local", workers) as client:
            t_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            dist = fit_pulse_response_source(
                source,
                model,
                chunk_devices=chunk_devices,
                map_tasks=task_mapper(client),
                screen_pieces_of=8,
            )
            t_dist = time.perf_counter() - t0
        same = ref.device_section() == dist.device_section()
    per_dev = 1e6 * inside["t"] / n_devices
    once = total - inside["t"]
    print(f"one chip of {n_devices} devices x 401 reads, model {model}, chunks {chunk_devices}\n")
    print("| quantity | value |")
    print("|---|---|")
    print(f"| in-process total (s) | {total:.1f} (load {load_in}) |")
    print(f"| per-device tasks (screening + fits, incl. HDF5 reads) | {per_dev:.0f} µs/device |")
    print(f"| stages once per chip on the client (s) | {once:.1f} |")
    print(f"| LocalCluster start, {workers} workers (s) | {t_start:.1f} |")
    print(f"| wall on {workers} workers (s) | {t_dist:.1f} (load {_load()}) |")
    print(f"| result identical to in-process | {same} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("speedup")
    p.add_argument("--chips", type=int, default=8)
    p.add_argument("--devices", type=int, default=20000)
    p.add_argument("--model", default="soft-bounds")
    p = sub.add_parser("split")
    p.add_argument("--devices", type=int, default=100000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", default="soft-bounds")
    p.add_argument("--chunk-devices", type=int, default=2048)
    args = parser.parse_args()
    if args.cmd == "speedup":
        speedup(args.chips, args.devices, args.model)
    else:
        split(args.devices, args.workers, args.model, args.chunk_devices)


if __name__ == "__main__":
    main()
