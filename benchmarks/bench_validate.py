"""Benchmark of validation by inference: the whole chain per emulated chip kind (issue 8).

Run from the repository root:

    .venv/bin/python benchmarks/bench_validate.py [--kinds pcm reram ecram] [--devices 4096]
        [--repeats 25] [--network mlp] [--dataset digits] [--out DIR]

For each chip kind, against one emulated chip (256 x 256, seed 11) reached through PyVISA:

1. characterize ``--devices`` devices: PCM programming + drift (40 reads, 20 s .. 1e5 s) +
   read-noise (100 reads) campaigns at 16 levels; ReRAM and ECRAM a pulse-response
   campaign (ReRAM 3 x 200 up/200 down pulses; ECRAM 2 x 400/400 at 3 V, 10 ms);
2. fit (``calib fit pcm`` / ``calib fit pulse-response --model auto``);
3. validate: train once, then 4 times (1 s, 1 h, 1 day, 1 year) x ``--repeats`` repeats for
   the fitted preset, the emulator's truth and the chip itself (the same chip, in the loop).

Prints the wall time of every stage and of the whole chain, and the accuracy table (mean ±
std per source and time, gaps with 95 % half-widths) with the target verdicts. torch runs
on 2 threads for fitting and 1 for the many small inference evaluations.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from calib.errors import CalibError
from calib.presets import save_preset
from calib.presets.truth import truth_preset
from calib.recipes import characterize, fit_characterized
from calib.validate import TrainingOptions, ValidationOptions, run_validation
from calib.validate.report import accuracy_table, target_lines
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator

SHAPE = (256, 256)
CHIP_SEED = 11


def run_chain(kind: str, args: argparse.Namespace, root: Path) -> dict:
    out = root / kind
    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    t_chain = time.perf_counter()
    with running_emulator(kind, seed=CHIP_SEED, shape=SHAPE) as resource:
        with ScpiCrossbarChip(resource) as chip:
            t = time.perf_counter()
            files = characterize(kind, chip, args.devices, out)
            stages["characterize"] = time.perf_counter() - t
            truth = save_preset(truth_preset(chip), out / "truth.json")
        torch.set_num_threads(2)
        t = time.perf_counter()
        preset = fit_characterized(kind, files, out)
        stages["fit"] = time.perf_counter() - t
        torch.set_num_threads(1)
        t = time.perf_counter()
        result = run_validation(
            ValidationOptions(
                preset, out / "report", truth=truth, chip=resource, network=args.network,
                dataset=args.dataset, repeats=args.repeats, training=TrainingOptions(),
            )
        )  # fmt: skip
        stages["validate"] = time.perf_counter() - t
    stages["chain"] = time.perf_counter() - t_chain
    return {"stages": stages, "report": result.report, "dir": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["pcm", "reram", "ecram"])
    parser.add_argument("--devices", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--network", default="mlp")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--out", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_validate_"))
    load = os.getloadavg()
    print(
        f"# {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}; load before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"# {args.devices} devices, {args.network} on {args.dataset}, {args.repeats} repeats, "
          f"files in {root}")  # fmt: skip
    for kind in args.kinds:
        try:
            res = run_chain(kind, args, root)
        except CalibError as exc:  # e.g. a fit that fails: report it, go on with the others
            print(f"\n### {kind}\n\nFAILED: {exc}")
            continue
        s, report = res["stages"], res["report"]
        load = os.getloadavg()[0]
        print(f"\n### {kind}\n")
        print(f"chain {s['chain']:.1f} s = characterize {s['characterize']:.1f} s + fit "
              f"{s['fit']:.1f} s + validate {s['validate']:.1f} s "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in report['seconds'].items())}); "
              f"load after {load:.2f}")  # fmt: skip
        net = report["network"]
        print(f"trained: {net['training']['method']}, float test accuracy "
              f"{100 * net['float_test_accuracy']:.2f} %")  # fmt: skip
        prog = report.get("chip_programming", {})
        if prog:
            print(f"chip: {prog['n_devices']} devices per repeat, {prog['mean_not_converged']:.1f}"
                  f" not converged, {prog['mean_pruned']:.1f} cancelled")  # fmt: skip
        check = report.get("predictive_check") or {}
        if check:
            print(f"predictive check ({check['campaign']}): {100 * check['score']:.2f} % of the "
                  f"span, floor {100 * check['sampling_floor']:.2f} %")  # fmt: skip
        header, rows = accuracy_table(report)
        print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
        for line in target_lines(report):
            print(f"- {line}")


if __name__ == "__main__":
    main()
