"""Benchmark of the PCM noise-model fit (issue 6 target: 10^5 devices x 40 times <= 30 s).

Run from the repository root:

    .venv/bin/python benchmarks/bench_fit_pcm.py [--devices 100000] [--times 40] [--repeat 3]

Cases (synthetic data from :mod:`fitting.pcm_synthetic`, published constants, 16 levels):

- ``drift only``: :func:`fitting.pcm.fit_pcm` on one drift campaign (devices x times):
  per-device fits, level populations, both curve forms with leave-one-level-out, read noise
  from the residuals and programming noise from the fitted conductance at t0;
- ``all campaigns``: plus a programming campaign (devices) and a read-noise campaign
  (devices x ``times`` reads);
- ``file``: the drift campaign written as an HDF5 dataset, then ``calib.fit.pcm.fit_pcm_files``
  (HDF5 read, fit, preset validation and write).

Prints wall times (best and median of ``--repeat``), peak resident memory, and the worst
per-level error against the synthetic truth.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from calib.fit.pcm import fit_pcm_files
from calib.io.hdf5 import CampaignData, write_campaign
from fitting.pcm import fit_pcm
from fitting.pcm_model import evaluate_section
from fitting.pcm_synthetic import SyntheticPcm, synthetic_campaigns

N_LEVELS = 16


def _timed(fn, repeat: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def _errors(section: dict, model: SyntheticPcm, levels: np.ndarray) -> str:
    ev = evaluate_section(section, levels)
    x = levels / model.g_max_s
    sp = np.max(np.abs(ev["sigma_prog_s"] / model.sigma_prog(x) - 1))
    mu = np.max(np.abs(ev["mu_nu"] - model.mu_nu(x)))
    sg = np.max(np.abs(ev["sigma_nu"] / model.sigma_nu(x) - 1))
    q = np.max(np.abs(ev["q_s"] / model.q_s(x) - 1))
    return (
        f"worst level: σ_prog {100 * sp:.1f} %, μ_ν {mu:.4f}, σ_ν {100 * sg:.1f} %, "
        f"Q_s {100 * q:.1f} %"
    )


def _write_drift(path: Path, drift) -> None:
    n = drift.n_devices
    arrays = {
        "device_index": np.arange(n),
        "row": np.arange(n) // 512,
        "col": np.arange(n) % 512,
        "target": drift.target_s,
        "converged": drift.converged,
        "time": drift.time_s[0],
        "conductance": drift.conductance_s.astype(np.float32),
    }
    units = {"target": "S", "time": "s", "conductance": "S"}
    data = CampaignData("drift", arrays, {"campaign": "drift", "n_avg": drift.n_avg}, units)
    write_campaign(path, data, overwrite=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--times", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    model = SyntheticPcm()
    levels = np.linspace(1e-6, 24e-6, N_LEVELS)
    per_level = args.devices // N_LEVELS
    t = time.perf_counter()
    prog, drift, reads = synthetic_campaigns(
        model,
        levels,
        per_level,
        seed=2026,
        times_s=np.geomspace(20.0, 1e5, args.times),
        n_reads=args.times,
    )
    print(
        f"data: {drift.n_devices} devices x {args.times} times (generated in "
        f"{time.perf_counter() - t:.1f} s); python {platform.python_version()}, "
        f"numpy {np.__version__}"
    )
    cases = {
        "drift only": lambda: fit_pcm(drift=drift),
        "all campaigns": lambda: fit_pcm(prog, drift, reads),
    }
    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(tmp) / "drift.h5"
        _write_drift(h5, drift)
        cases["file (HDF5 drift -> preset)"] = lambda: fit_pcm_files([h5], Path(tmp) / "p.json")[1]
        for name, fn in cases.items():
            times, fit = _timed(fn, args.repeat)
            print(
                f"{name:30s} best {min(times):6.2f} s  median {statistics.median(times):6.2f} s  "
                f"({_errors(fit.section(), model, levels)})"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
