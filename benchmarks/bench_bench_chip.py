"""Benchmark the bench chip on the virtual bench: per-device cost of each operation.

A bench sees one device at a time, so its cost is per device: round trips (each ~0.1-0.3
ms on loopback through PyVISA) plus the instruments' own time (on the virtual bench: the
device physics in Python). This measures, per device:

* a read (switch route + one SMU acquisition),
* a pulse train (100 up + 100 down, one cycle, a read after every pulse) as one SMU list
  sweep (100 µs pulses) and as pulse-generator bursts between SMU reads (1 µs pulses),
* program-and-verify on PCM (host-side loop),

and, for scale, the same pulse train for the same devices on the emulated chip (one
sequence for all devices).

    .venv/bin/python benchmarks/bench_bench_chip.py [--devices 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from instruments.chip import ListSelection, PulseSpec, PulseTrainSpec
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.bench import running_bench
from instruments.emulator.bench.client import open_virtual_bench as open_bench
from instruments.emulator.physics import chip_truth
from instruments.emulator.server import running_emulator

SHAPE = (16, 16)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _counted(bench, fn) -> tuple[float, int]:
    """Wall time of ``fn`` and the messages the four instruments handled meanwhile."""
    before = sum(inst.messages for inst in bench.instruments.values())
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    return elapsed, sum(inst.messages for inst in bench.instruments.values()) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.devices
    sel = ListSelection.of(np.arange(n))
    print(f"load average before: {os.getloadavg()}")
    rows = []

    train_list = PulseTrainSpec(100, PulseSpec(1.2, 1e-4), 100, PulseSpec(-1.2, 1e-4), 1)
    train_pulser = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), 1)
    truth = chip_truth("reram", pulse_width_s=1e-4)
    with running_bench(truth=truth, seed=1, shape=SHAPE) as res:
        with open_bench(res.description(), timeout_s=30) as chip:
            t = _best(lambda: chip.read_conductance(sel, 0.2), args.repeat)
            _, msgs = _counted(res.bench, lambda: chip.read_conductance(sel, 0.2))
            rows.append(("read (route + 1 acquisition)", t / n, msgs / n))
            t = _best(lambda: chip.pulse_train_with_reads(sel, train_list, 0.2), args.repeat)
            _, msgs = _counted(res.bench, lambda: chip.pulse_train_with_reads(sel, train_list, 0.2))
            rows.append(
                (
                    "pulse train, SMU list sweep (601 levels: 0 V gaps keep a 50 % duty cycle)",
                    t / n,
                    msgs / n,
                )
            )
        with open_bench({**res.description(), "train_mode": "pulser"}, timeout_s=30) as chip:
            t = _best(lambda: chip.pulse_train_with_reads(sel, train_pulser, 0.2), args.repeat)
            _, msgs = _counted(
                res.bench, lambda: chip.pulse_train_with_reads(sel, train_pulser, 0.2)
            )
            rows.append(("pulse train, generator bursts + SMU reads", t / n, msgs / n))
    with (
        running_emulator(truth=truth, seed=1, shape=SHAPE) as resource,
        ScpiCrossbarChip(resource) as c,
    ):
        t = _best(lambda: c.pulse_train_with_reads(sel, train_list, 0.2), args.repeat)
        rows.append(("pulse train, emulated chip (one sequence)", t / n, float("nan")))

    pcm_sel = ListSelection.of(np.arange(min(n, 16)))
    targets = np.linspace(4e-6, 20e-6, pcm_sel.indices(SHAPE).size)
    iterations = []
    with running_bench("pcm", seed=2, shape=SHAPE) as res, open_bench(res.description()) as chip:

        def program() -> None:
            chip.apply_pulses(pcm_sel, PulseSpec(-1.0, 100e-9), 1)
            result = chip.program_verify(pcm_sel, targets, 1e-6, 100, 0.2, PulseSpec(1.0, 100e-9))
            iterations.append(float(np.mean(result.iterations)))

        t, msgs = _counted(res.bench, program)
        m = targets.size
        name = f"PCM program-and-verify, 1 µS band ({iterations[-1]:.1f} iterations)"
        rows.append((name, t / m, msgs / m))

    print(f"{n} devices, best of {args.repeat}; load average after: {os.getloadavg()}")
    print("| operation | ms per device | messages per device |\n|---|---|---|")
    for name, seconds, msgs in rows:
        print(f"| {name} | {seconds * 1e3:.2f} | {msgs:.0f} |")


if __name__ == "__main__":
    main()
