"""Benchmark the emulated chip end to end through PyVISA (issue 3 performance targets).

1. Pulse response: 65,536 devices x 3 cycles x (200 up + 200 down) pulses, a read after
   every pulse, one ``SEQ:INIT`` plus chunked ``FETC:COND?`` into one numpy array.
   Reports device-pulse-read events per second and the split physics / transfer / parsing.
2. Block transfer: a 4 MB float32 block (``FETC:COND?`` of 16 rows x 65,536) through the
   driver's fast block reader, MB/s.
3. PCM drift campaign core: program-and-verify 65,536 PCM devices to 16 levels, then 40
   log-spaced reads from 20 s to 10^5 s after programming (virtual clock), wall time.

The emulator runs either in a separate process (``calib emulator serve``, the lab setup:
server and client do not share a GIL) or in a thread of this process (``--server thread``,
what the tests do).

Run: ``.venv/bin/python benchmarks/bench_emulator.py [--server process|thread] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from instruments.chip import BlockSelection, PulseSpec, PulseTrainSpec
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator

SHAPE = (256, 256)
SPEC = PulseTrainSpec(200, PulseSpec(1.2, 1e-6), 200, PulseSpec(-1.2, 1e-6), cycles=3)


@contextlib.contextmanager
def emulator(mode: str, seed: int, kind: str = "reram") -> Iterator[str]:
    """Resource string of an emulated chip in a subprocess or a thread."""
    if mode == "thread":
        with running_emulator(kind, seed=seed, shape=SHAPE) as resource:
            yield resource
        return
    root = Path(__file__).resolve().parents[1]
    cmd = [
        sys.executable,
        "-m",
        "calib",
        "emulator",
        "serve",
        "--chip",
        kind,
        "--port",
        "0",
        "--seed",
        str(seed),
        "--rows",
        str(SHAPE[0]),
        "--cols",
        str(SHAPE[1]),
    ]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            raise RuntimeError(f"emulator did not start: {line}")
        yield f"TCPIP::127.0.0.1::{line[1]}::SOCKET"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bench_pulse_response(chip: ScpiCrossbarChip) -> dict:
    sel = BlockSelection(0, 0, *SHAPE)
    t0 = time.perf_counter()
    g = chip.pulse_train_with_reads(sel, SPEC, 0.2)
    total = time.perf_counter() - t0
    assert g.shape == (SPEC.n_reads, SHAPE[0] * SHAPE[1]) and np.isfinite(g).all()
    physics = chip.profile()["physics_s"]
    events = SHAPE[0] * SHAPE[1] * SPEC.cycles * (SPEC.n_up + SPEC.n_down)
    return {
        "total_s": total,
        "events_per_s": events / total,
        "physics_s": physics,
        "sequence_round_trip_s": chip.timing["run_s"],
        "transfer_s": chip.timing["transfer_s"],
        "parse_s": chip.timing["parse_s"],
        # setup commands, the SEQ:INIT round trip beyond the physics, FETC round trips
        "other_s": total - physics - chip.timing["transfer_s"] - chip.timing["parse_s"],
        "result_mb": g.nbytes / 1e6,
    }


def bench_block(chip: ScpiCrossbarChip, repeat: int = 50) -> dict:
    """4 MB blocks: 16 rows of the last pulse-train result (16 x 65536 float32)."""
    rows = (4 * 1024 * 1024) // (4 * SHAPE[0] * SHAPE[1])
    command = f"FETC:COND? 0,{rows}"
    chip.transport.query_block(command)  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = chip.transport.query_block(command)
        times.append(time.perf_counter() - t0)
    mb = data.nbytes / 1e6
    return {
        "block_mb": mb,
        "median_s": statistics.median(times),
        "mb_per_s_median": mb / statistics.median(times),
        "mb_per_s_best": mb / min(times),
    }


def bench_pcm_drift(chip: ScpiCrossbarChip) -> dict:
    """Program 65,536 PCM devices to 16 levels, then read them at 40 times up to 1e5 s."""
    sel = BlockSelection(0, 0, *SHAPE)
    n = SHAPE[0] * SHAPE[1]
    targets = np.repeat(np.linspace(1.5e-6, 25e-6, 16), n // 16)
    t0 = time.perf_counter()
    res = chip.program_verify(sel, targets, 0.25e-6, 100, 0.2, PulseSpec(1.0, 100e-9))
    t1 = time.perf_counter()
    g = chip.read_at_times(sel, np.logspace(np.log10(20.0), 5.0, 40), 0.2, n_avg=4)
    t2 = time.perf_counter()
    assert g.shape == (40, n)
    return {
        "devices": n,
        "program_verify_s": t1 - t0,
        "converged_fraction": float(res.converged.mean()),
        "median_iterations": float(np.median(res.iterations)),
        "drift_reads_40_times_s": t2 - t1,
        "chip_time_s": chip.clock.now(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = []
    with emulator(args.server, args.seed) as resource, ScpiCrossbarChip(resource) as chip:
        for _ in range(args.repeat):
            runs.append(bench_pulse_response(chip))
        block = bench_block(chip)
    with emulator(args.server, args.seed, "pcm") as resource, ScpiCrossbarChip(resource) as chip:
        pcm = bench_pcm_drift(chip)
    best = max(runs, key=lambda r: r["events_per_s"])
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_avg": os.getloadavg(),
        "server": args.server,
        "pulse_response_runs": runs,
        "pulse_response_best": best,
        "pulse_response_median_events_per_s": statistics.median(r["events_per_s"] for r in runs),
        "block_transfer": block,
        "pcm_drift": pcm,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\npulse response: {best['events_per_s'] / 1e6:.1f} M device-pulse-reads/s "
        f"(median {report['pulse_response_median_events_per_s'] / 1e6:.1f} M/s); split of the "
        f"best run: physics {best['physics_s']:.2f} s, transfer {best['transfer_s']:.2f} s, "
        f"parse {best['parse_s']:.2f} s, other {best['other_s']:.2f} s "
        f"of {best['total_s']:.2f} s\n4 MB block: {block['mb_per_s_median']:.0f} MB/s median "
        f"({block['mb_per_s_best']:.0f} best)\nPCM: program-and-verify of {pcm['devices']} "
        f"devices {pcm['program_verify_s']:.2f} s ({pcm['converged_fraction']:.1%} converged, "
        f"median {pcm['median_iterations']:.0f} iterations), 40 drift reads to 1e5 s "
        f"{pcm['drift_reads_40_times_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
