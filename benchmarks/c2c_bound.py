"""How well can any estimator know the c2c noise from these traces? (Cramér-Rao bound)

A sweep of L single-pulse reads of a device with constant steps is a random walk (per-pulse
variance q = (dw_min_std·Δ)²) seen in white read noise (variance r). With the sweep's offset
and mean slope fitted (REML: both projected out), the Fisher information about q is
½·tr((P·D)²), P the REML projector of Σ = q·D + r·I and D_ij = min(i, j). Summed over the
sweeps of a chip it bounds the standard error of σ_c; ``fitting.noise``'s estimate is judged
against it in benchmarks/RESULTS.md ("Eleventh session").

Usage (units of the step Δ; sweeps as LENGTHxCOUNT)::

    .venv/bin/python benchmarks/c2c_bound.py --read-steps 12.5 --c2c 0.3 --sweeps 625x84 1000x96
"""

from __future__ import annotations

import argparse

import numpy as np


def information(length: int, q: float, r: float) -> float:
    """Fisher information about q of one sweep of ``length`` pulses (``length`` + 1 reads)."""
    i = np.arange(length + 1)
    d = np.minimum.outer(i, i).astype(float)
    sigma_inv = np.linalg.inv(q * d + r * np.eye(i.size))
    x = np.stack([np.ones(i.size), i], axis=1)  # offset and slope of the sweep
    proj = sigma_inv - sigma_inv @ x @ np.linalg.inv(x.T @ sigma_inv @ x) @ x.T @ sigma_inv
    a = proj @ d
    return 0.5 * float(np.trace(a @ a))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read-steps", type=float, required=True, help="read noise SD / step")
    parser.add_argument("--c2c", type=float, default=0.3, help="dw_min_std")
    parser.add_argument("--sweeps", nargs="+", required=True, help="LENGTHxCOUNT ...")
    args = parser.parse_args(argv)
    q, r = args.c2c**2, args.read_steps**2
    total = 0.0
    for spec in args.sweeps:
        length, count = spec.lower().split("x")
        total += float(count) * information(int(length), q, r)
    se_q = 1.0 / np.sqrt(total)
    print(
        f"SE(q) {se_q:.4g} for q {q:.4g}: SE(dw_min_std) ≈ {se_q / (2 * args.c2c):.3g} "
        f"({se_q / q / 2:.1%} of it)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
