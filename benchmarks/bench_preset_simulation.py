"""Time the simulation of a preset's pulse-response campaign (the predictive checks' cost).

``fitting.synthetic.simulate_preset`` (the simulator's device model, torch on the CPU) on the
example ReRAM preset's family fitted to ``datasets/examples/reram_pulse_response.h5``-like
sizes: ``--devices`` devices, 600 single-pulse reads (300 up, 300 down). ``--compare
FILE.py`` also times another module's ``simulate_preset`` (e.g. the numpy per-pulse
implementation of an older commit: ``git show d2fc276~1:fitting/synthetic.py > /tmp/old.py``),
interleaved round by round so that load changes hit both sides. Each cell is the best wall
time and the best CPU time of the process (``time.process_time``: on a shared, busy machine
the wall time mostly measures the wait for a core). To time an older simulator, run the same
command in an export of that commit (``git archive C | tar -x -C DIR``), alternating.

    .venv/bin/python benchmarks/bench_preset_simulation.py --devices 64 512 4096 --threads 1
    .venv/bin/python benchmarks/bench_preset_simulation.py --model exp-step --devices 512
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time

import numpy as np
import torch

from fitting.synthetic import simulate_preset

PRESET = {  # soft-bounds, siemens around 50 µS (the shape of a fitted preset's device section)
    "model": "soft-bounds",
    "g_offset_s": 50e-6,
    "read_noise_s": 0.3e-6,
    "parameters": {
        "dw_min": 0.2e-6,
        "up_down": 0.05,
        "w_max": 20e-6,
        "w_min": -18e-6,
        "dw_min_dtod": 0.2,
        "up_down_dtod": 0.02,
        "w_max_dtod": 0.1,
        "w_min_dtod": 0.1,
        "dw_min_std": 0.3,
        "write_noise_std": 0.5,
        "corrupt_devices_prob": 0.0,
    },
}
PULSES = np.r_[0, np.ones(300, int), -np.ones(300, int)]


def _load(path: str):
    spec = importlib.util.spec_from_file_location("compared_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.simulate_preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[64, 512, 4096])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--compare", default=None, help="a file defining simulate_preset")
    ap.add_argument(
        "--model",
        default="soft-bounds",
        help="the preset's family (fields it lacks take aihwkit's defaults)",
    )
    args = ap.parse_args()
    preset = {**PRESET, "model": args.model}
    if args.threads:
        torch.set_num_threads(args.threads)
    sides = {"simulator (torch)": simulate_preset}
    if args.compare:
        sides["compared"] = _load(args.compare)
    for f in sides.values():  # warm-up (first torch call)
        f(preset, PULSES, np.full(8, 45e-6), seed=0)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"{args.model}, torch threads {torch.get_num_threads()}, {PULSES.size} reads, "
        f"best of {args.rounds} "
        f"(wall / CPU), load {os.getloadavg()[0]:.1f}, {stamp}"
    )
    for n in args.devices:
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
        for r in range(args.rounds):
            for name, f in sides.items():
                t, c = time.perf_counter(), time.process_time()
                f(preset, PULSES, np.full(n, 45e-6), seed=r)
                times[name].append((time.perf_counter() - t, time.process_time() - c))
        cells = ", ".join(
            f"{k} {min(w for w, _ in v) * 1e3:.0f} / {min(c for _, c in v) * 1e3:.0f} ms"
            for k, v in times.items()
        )
        print(f"{n:6d} devices: {cells}")


if __name__ == "__main__":
    main()
