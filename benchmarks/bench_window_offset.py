"""Window spread of nine shifted-window devices kept by fit + preset simulation (issue 14, item 3).

For each seed: nine soft-bounds devices whose 20 µS windows are shifted by N(0, offset²)
(each bound by N(0, (1 µS)²) more; 0.5 µS read noise; tests/fitting/real_data/
test_window_offset.py::_shifted_windows), fitted with ``fit_pulse_response`` (the code of
``calib fit pulse-response``) and simulated with the preset simulator (200 devices per fitted
device, from its first read). Printed: simulated / measured spread of the window midpoints,
of the window widths and of the reads (std across devices, averaged over reads), and the
mean-trace error (fraction of the measured span), with the per-device reference offset
(``reference_std``) and without it (``--without-offset``: the window decision switched off,
i.e. the population of the code before it).

    .venv/bin/python benchmarks/bench_window_offset.py --offset 6e-6 --seeds 0 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fitting" / "real_data"))

from test_window_offset import _shifted_windows, _simulated_over_measured  # noqa: E402

import fitting.pulse_response as pr  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--offset", type=float, default=6e-6, help="std of the window shifts (S)")
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 8))
    args = ap.parse_args()
    decide = pr._window_spread
    rows = {"with offset": [], "without offset": []}
    for seed in range(*args.seeds):
        traces, _ = _shifted_windows(args.offset, seed=seed)
        for label, rule in (("without offset", lambda *a: None), ("with offset", decide)):
            pr._window_spread = rule
            fit = pr.fit_pulse_response(traces, "soft-bounds")
            r = _simulated_over_measured(traces, fit)
            err = fit.predictive["mean_error_of_span"]
            n = fit.per_device["device_id"].size
            rows[label].append((r["midpoint"], r["width"], r["reads"], err))
            print(
                f"seed {seed} {label:15s} fitted {n}/9 midpoint {r['midpoint']:.2f} "
                f"width {r['width']:.2f} reads {r['reads']:.2f} mean-trace error {err:.3f} "
                f"reference_std {fit.parameters.get('reference_std', 0.0):.3g}",
                flush=True,
            )
    for label, values in rows.items():
        a = np.array(values)
        print(
            f"{label}: median midpoint {np.median(a[:, 0]):.2f} (range {a[:, 0].min():.2f}-"
            f"{a[:, 0].max():.2f}), width {np.median(a[:, 1]):.2f} ({a[:, 1].min():.2f}-"
            f"{a[:, 1].max():.2f}), reads {np.median(a[:, 2]):.2f} ({a[:, 2].min():.2f}-"
            f"{a[:, 2].max():.2f}), mean-trace error {np.median(a[:, 3]):.3f}"
        )


if __name__ == "__main__":
    main()
