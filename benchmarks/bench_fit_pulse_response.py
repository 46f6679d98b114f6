"""Benchmark of the pulse-response fitter: speed, a per-device lmfit baseline, accuracy, real data.

Usage (prints markdown tables for ``benchmarks/RESULTS.md``)::

    .venv/bin/python benchmarks/bench_fit_pulse_response.py speed --devices 10000 100000
    .venv/bin/python benchmarks/bench_fit_pulse_response.py baseline --devices 10000 --sample 200
    .venv/bin/python benchmarks/bench_fit_pulse_response.py accuracy --seeds 1 2 3
    .venv/bin/python benchmarks/bench_fit_pulse_response.py measured --out benchmarks/reports

Speed data come from the emulator's physics (soft-bounds ReRAM, 3 cycles x 200 up + 200
down pulses, 1201 reads per device). The baseline is what a lab script would do: one
``lmfit.minimize`` per device (least squares of the one-pulse soft-bounds map on the pairs
of reads), timed on a sample of devices and scaled to all devices. Accuracy runs every
family on 256 devices (emulator physics; piecewise-step from the independent generator in
the tests) and ``--model auto`` on each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PULSES = np.array([0] + ([1] * 200 + [-1] * 200) * 3)


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def _emulated(n: int, seed: int = 1):
    from instruments.emulator.physics import PulsedDeviceArray, chip_truth

    cols = 100 if n % 100 == 0 else n
    array = PulsedDeviceArray(chip_truth("reram"), (n // cols, cols), seed)
    g = array.pulse_train(np.arange(n), 200, 200, 3, 1, (1.2, 1e-6), (-1.2, 1e-6))
    return np.ascontiguousarray(g.T), array


def speed(devices: list[int], model: str) -> None:
    from fitting import PulseTraces, fit_pulse_response

    print("| devices | reads | model | fit time (s) | devices/s | excluded | load |")
    print("|---|---|---|---|---|---|---|")
    for n in devices:
        g, _ = _emulated(n)
        traces = PulseTraces(g, PULSES)
        t0 = time.perf_counter()
        fit = fit_pulse_response(traces, model=model)
        dt = time.perf_counter() - t0
        excl = ", ".join(f"{v} {k}" for k, v in fit.excluded.items())
        print(
            f"| {n} | {g.shape[1]} | {fit.model} | {dt:.1f} | {n / dt:.0f} | {excl} | {_load()} |"
        )
        del g, traces, fit


def _lmfit_one(g: np.ndarray) -> None:
    """A straightforward per-device fit: lmfit least squares of the one-pulse map."""
    import lmfit

    up = PULSES[1:] > 0
    y0, y1 = g[:-1], g[1:]

    def residual(params):
        p = params.valuesdict()
        pred_up = y0 + p["d_up"] * (1 - (y0 - p["g0"]) / p["b_max"])
        pred_dn = y0 - p["d_down"] * (1 - (y0 - p["g0"]) / p["b_min"])
        return np.where(up, y1 - pred_up, y1 - pred_dn)

    params = lmfit.Parameters()
    mid = 0.5 * (g.max() + g.min())
    span = g.max() - g.min()
    params.add("g0", value=mid, vary=False)
    params.add("d_up", value=span / 100, min=0)
    params.add("d_down", value=span / 100, min=0)
    params.add("b_max", value=span / 2, min=span * 0.05)
    params.add("b_min", value=-span / 2, max=-span * 0.05)
    lmfit.minimize(residual, params, method="leastsq")


def _lmfit_trajectory(g: np.ndarray) -> None:
    """The aihwkit-style per-device fit: simulate the noise-free trace, fit it with lmfit.

    Like aihwkit's ``fit_measurements``, the model trace starts at the first measured read
    and replays the pulse sequence one pulse at a time (a Python loop); lmfit's
    Levenberg-Marquardt fits it to the measured trace.
    """
    import lmfit

    signs = PULSES.tolist()

    def residual(params):
        p = params.valuesdict()
        g0, up, down = p["g0"], p["d_up"], p["d_down"]
        b_max, b_min = p["b_max"], p["b_min"]
        w = g[0] - g0
        out = np.empty(g.size)
        for k, s in enumerate(signs):
            if s > 0:
                w += up * (1 - w / b_max)
            elif s < 0:
                w -= down * (1 - w / b_min)
            out[k] = w
        return out + g0 - g

    params = lmfit.Parameters()
    mid = 0.5 * (g.max() + g.min())
    span = g.max() - g.min()
    params.add("g0", value=mid, vary=False)
    params.add("d_up", value=span / 100, min=0)
    params.add("d_down", value=span / 100, min=0)
    params.add("b_max", value=span / 2, min=span * 0.05)
    params.add("b_min", value=-span / 2, max=-span * 0.05)
    lmfit.minimize(residual, params, method="leastsq")


def baseline(devices: int, sample: int) -> None:
    from fitting import PulseTraces, fit_pulse_response

    g, _ = _emulated(devices)
    t0 = time.perf_counter()
    fit_pulse_response(PulseTraces(g, PULSES))
    ours = time.perf_counter() - t0
    rows = np.linspace(0, devices - 1, sample).astype(int)
    t0 = time.perf_counter()
    for r in rows:
        _lmfit_one(g[r].astype(float))
    per = (time.perf_counter() - t0) / sample
    few = rows[:: max(1, sample // 20)]
    t0 = time.perf_counter()
    for r in few:
        _lmfit_trajectory(g[r].astype(float))
    per_traj = (time.perf_counter() - t0) / few.size
    print("| method | devices | time (s) | ours faster by | load |")
    print("|---|---|---|---|---|")
    rows_md = [
        (f"per-device lmfit, trajectory model (aihwkit-style; {few.size} timed)", per_traj),
        (f"per-device lmfit, one-pulse map on read pairs ({sample} timed)", per),
    ]
    for name, t in rows_md:
        print(f"| {name} | {devices} | {t * devices:.0f} | {t * devices / ours:.0f}x | {_load()} |")
    ours_name = "`fit_pulse_response` (population + per device + noise + checks)"
    print(f"| {ours_name} | {devices} | {ours:.1f} | 1 | {_load()} |")
    print(
        f"\nper device: trajectory lmfit {per_traj * 1e3:.0f} ms, one-pulse-map lmfit "
        f"{per * 1e3:.1f} ms, ours {ours / devices * 1e3:.2f} ms"
    )


def accuracy(seeds: list[int]) -> None:
    from test_fit_pulse_response import EMULATED, PIECEWISE, emulated, piecewise_traces

    from fitting import fit_pulse_response

    def emulated_case(fam: str, seed: int):
        traces, array = emulated(fam, seed)
        return traces, array.truth.family_parameters()

    def piecewise_case(fam: str, seed: int):
        traces, _ = piecewise_traces(seed)
        return traces, dict(PIECEWISE)

    # where each family's traces come from: the emulator's physics, and for the family the
    # emulator does not model (piecewise-step) the independent generator of the tests
    sources = {**{fam: emulated_case for fam in EMULATED}, "piecewise-step": piecewise_case}
    families = list(sources)
    cols = ["dw_min", "up_down", "w_max", "w_min", "dw_min_dtod", "dw_min_std"]
    print(
        "| family | seed | "
        + " | ".join(cols)
        + " | mean err/span | spread ratio | auto picks | time fit/auto (s) |"
    )
    print("|---|---|" + "---|" * len(cols) + "---|---|---|---|")
    for fam in families:
        for seed in seeds:
            traces, truth = sources[fam](fam, seed)
            t0 = time.perf_counter()
            fit = fit_pulse_response(traces, model=fam)
            t_fit = time.perf_counter() - t0
            t0 = time.perf_counter()
            auto = fit_pulse_response(traces, model="auto", predictive_check=False)
            t_auto = time.perf_counter() - t0
            cells = []
            for c in cols:
                v, t = fit.parameters[c], truth[c]
                err = (
                    f"{(v - t) / t:+.1%}"
                    if c not in ("up_down", "dw_min_dtod")
                    else f"{v - t:+.3f}"
                )
                cells.append(f"{v:.3g} ({err})")
            pr = fit.predictive
            tail = f"{pr['mean_error_of_span']:.1%} | {pr['spread_ratio']:.2f} | {auto.model}"
            print(
                f"| {fam} | {seed} | "
                + " | ".join(cells)
                + f" | {tail} | {t_fit:.1f}/{t_auto:.1f} |"
            )
    print(f"\nload {_load()}; cells: fitted (error vs truth; absolute for up_down, dw_min_dtod)")


def measured(out: Path) -> None:
    from calib.fit.pulse_response import fit_pulse_response_file

    for name, model in (("gong_et_al", "auto"), ("crosssim_ramps", "auto")):
        src = ROOT / "datasets" / "measured" / f"{name}.h5"
        rep = out / name
        t0 = time.perf_counter()
        _, fit = fit_pulse_response_file(src, rep / "preset.json", model=model, report_dir=rep)
        dt = time.perf_counter() - t0
        print(f"### {name}: {fit.model} ({dt:.1f} s, {fit.n_fitted} of {fit.n_devices} fitted)")
        for k, v in fit.parameters.items():
            print(f"- {k} = {v} ± {fit.uncertainty.get(k)} [{fit.uncertainty_method.get(k)}]")
        for r in fit.model_selection:
            print(f"  - {r['family']}: ΔBIC {r['delta_bic']:.1f} J {r['j_statistic']:.1f}")
        for note in fit.notes:
            print(f"  - note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--devices", type=int, nargs="+", default=[10_000])
    s.add_argument("--model", default="soft-bounds")
    b = sub.add_parser("baseline")
    b.add_argument("--devices", type=int, default=10_000)
    b.add_argument("--sample", type=int, default=200)
    a = sub.add_parser("accuracy")
    a.add_argument("--seeds", type=int, nargs="+", default=[1])
    m = sub.add_parser("measured")
    m.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "reports")
    args = parser.parse_args()
    print(f"<!-- {time.strftime('%Y-%m-%d %H:%M')} load {_load()} -->")
    if args.what == "speed":
        speed(args.devices, args.model)
    elif args.what == "baseline":
        baseline(args.devices, args.sample)
    elif args.what == "accuracy":
        accuracy(args.seeds)
    else:
        measured(args.out)


if __name__ == "__main__":
    main()
