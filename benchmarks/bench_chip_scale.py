"""Whole-chip chain on the emulator: measure -> fit -> export -> validate (+ the fit on Dask).

Usage (prints a markdown table for ``benchmarks/RESULTS.md``, "## Chip scale")::

    .venv/bin/python benchmarks/bench_chip_scale.py --devices 100000
    .venv/bin/python benchmarks/bench_chip_scale.py --devices 4194304 --no-dask --folder /var/tmp/x
    .venv/bin/python benchmarks/bench_chip_scale.py --preset-io --devices 1048576
    .venv/bin/python benchmarks/bench_chip_scale.py --population-stage --devices 4194304
    .venv/bin/python benchmarks/bench_chip_scale.py --population-stage --devices 1000000 --trace

An emulated ReRAM chip (``calib emulator serve``, square, the smallest power-of-two side that
holds the devices) runs in its own process; each stage is one ``calib`` command in its own
process, as a user runs it:

* ``measure``: ``calib measure pulse-response --resource ... --devices N --selection block``
  (technology defaults: 3 cycles x 200 up + 200 down pulses, 1201 reads per device);
* ``fit``: ``calib fit pulse-response DATA --model soft-bounds -o chip.json`` (the HDF5 file
  is read a chunk of devices at a time; per-device arrays of more than 4,096 devices go to
  ``chip.devices.h5``);
* ``export``: ``calib export chip.json --to aihwkit`` (loads the preset, checks the sidecar);
* ``validate``: ``calib validate chip.json -o DIR --epochs E --repeats R`` (trains and
  evaluates a network on the preset's simulated tiles, and the predictive check against the
  campaign file, which it reads a chunk of devices at a time);
* ``fit (Dask)``: the fit again with ``--workers 2`` (a local Dask cluster); its preset must
  equal the in-process one (device section and sidecar sha256), else the run fails.

Peak resident memory of each process is its ``ru_maxrss`` from ``os.wait4`` (Linux: KiB; for
a command that starts worker processes, the largest of them); the emulator's is read when it
is stopped after the measure stage. Disk is the size of each stage's output files.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _calib_cmd() -> list[str]:
    """``python -m calib`` run in :data:`ROOT`: the code of this checkout (the ``calib``
    script of an editable install would import the checkout it was installed from)."""
    return [sys.executable, "-m", "calib"]


def _commit() -> str:
    """The checkout's commit, ``+`` when its tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + ("+" if dirty else "")


def _run(args: list[str]) -> dict:
    """One stage in its own process: wall time (s), CPU time (user + system, s) and peak
    RSS (MB) of that process (on a shared machine the CPU time is what load does not
    change)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*_calib_cmd(), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {err.strip()}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": wall, "cpu_s": cpu, "rss_mb": usage.ru_maxrss / 1024, "out": out}


@contextlib.contextmanager
def _emulator(side: int, seed: int, peak: dict) -> Iterator[str]:
    cmd = [*_calib_cmd(), "emulator", "serve", "--port", "0", "--seed", str(seed)]
    cmd += ["--rows", str(side), "--cols", str(side)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            raise RuntimeError(f"emulator did not start: {line}")
        yield f"TCPIP::127.0.0.1::{line[1]}::SOCKET"
    finally:
        proc.terminate()
        _, _, usage = os.wait4(proc.pid, 0)
        peak["rss_mb"] = usage.ru_maxrss / 1024


def _done(name: str, stage: dict) -> None:
    """One line per finished stage, as it finishes (a long chain's log shows its progress)."""
    print(
        f"# {dt.datetime.now(dt.timezone.utc):%H:%M:%S} UTC {name}: wall {stage['wall_s']:.1f} s, "
        f"CPU {stage['cpu_s']:.1f} s, peak RSS {stage['rss_mb']:.0f} MB, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def _mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 1e6


def _inline_json_mb(preset: Path) -> float:
    """Size the same preset would have with its per-device arrays inline (JSON numbers)."""
    import json
    import math

    import h5py

    doc = json.loads(preset.read_text())
    ref = doc.pop("per_device_file", None)
    if ref:
        with h5py.File(preset.with_name(ref["file"]), "r") as fh:
            doc["per_device"] = {
                k: [v if math.isfinite(v) else None for v in fh[k][()].tolist()]
                for k in ref["arrays"]
            }
    return len(json.dumps(doc, indent=2).encode()) / 1e6


def _same_preset(a: Path, b: Path) -> bool:
    """The same fit: device sections and per-device arrays (sidecar sha256, or inline)."""
    import json

    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    ref_a, ref_b = da.get("per_device_file") or {}, db.get("per_device_file") or {}
    return (
        da["device"] == db["device"]
        and da.get("per_device") == db.get("per_device")
        and ref_a.get("sha256") == ref_b.get("sha256")
    )


def chain(
    n_devices: int,
    folder: Path,
    seed: int,
    dask_workers: int = 2,
    validate: tuple[int, int] = (5, 5),
) -> dict[str, dict]:
    """Run the stages in ``folder``; ``dask_workers`` 0 skips the Dask fit, ``validate``
    is (epochs, repeats) of ``calib validate`` (0 epochs: skipped)."""
    side = 1 << max(4, (n_devices - 1).bit_length() + 1 >> 1)
    data, preset = folder / "chip.h5", folder / "chip.json"
    sidecar, exported = folder / "chip.devices.h5", folder / "aihwkit.json"
    emulator: dict = {}
    stages: dict[str, dict] = {}
    with _emulator(side, seed, emulator) as resource:
        stages["measure"] = _run(
            ["measure", "pulse-response", "--resource", resource, "--devices", str(n_devices),
             "--selection", "block", "--seed", str(seed), "-o", str(data)]
        )  # fmt: skip
    stages["measure"]["emulator_rss_mb"] = emulator["rss_mb"]
    stages["measure"]["disk_mb"] = _mb(data)
    _done("measure", stages["measure"])
    stages["fit"] = _run(
        ["fit", "pulse-response", str(data), "--model", "soft-bounds", "--seed", str(seed),
         "-o", str(preset)]
    )  # fmt: skip
    stages["fit"]["disk_mb"] = _mb(preset, sidecar)
    _done("fit", stages["fit"])
    stages["fit"]["json_mb"] = _mb(preset)
    stages["export"] = _run(["export", str(preset), "--to", "aihwkit", "-o", str(exported)])
    stages["export"]["disk_mb"] = _mb(exported)
    _done("export", stages["export"])
    epochs, repeats = validate
    if epochs:
        report = folder / "validate"
        stages["validate"] = _run(
            ["validate", str(preset), "-o", str(report), "--epochs", str(epochs),
             "--repeats", str(repeats), "--seed", str(seed)]
        )  # fmt: skip
        stages["validate"]["disk_mb"] = _mb(*[p for p in report.rglob("*") if p.is_file()])
        _done("validate", stages["validate"])
    if dask_workers:
        other = folder / "chip_dask.json"
        stages["fit (Dask)"] = _run(
            ["fit", "pulse-response", str(data), "--model", "soft-bounds", "--seed", str(seed),
             "--workers", str(dask_workers), "-o", str(other)]
        )  # fmt: skip
        stages["fit (Dask)"]["disk_mb"] = _mb(other, folder / "chip_dask.devices.h5")
        _done("fit (Dask)", stages["fit (Dask)"])
        if not _same_preset(preset, other):
            raise RuntimeError("the Dask fit gave another preset than the in-process fit")
        stages["fit (Dask)"]["same"] = True
    # after the last stage: building the JSON lists of a chip's arrays takes this process to
    # GBs, and a stage started after it would report that as its own peak (Linux keeps
    # ru_maxrss across execve)
    stages["fit"]["inline_mb"] = _inline_json_mb(preset)
    return stages


def preset_io(n_devices: int, seed: int) -> None:
    """Save and load a synthetic preset of ``n_devices`` (11 per-device arrays, as a
    linear-step fit writes): sidecar vs inline JSON (``json_text`` of the lists, as before)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from calib.presets import json_text, load_preset, make_preset, provenance, save_preset

    rng = np.random.default_rng(seed)
    names = ["delta_up", "delta_down", "w_max", "w_min"]
    arrays = {"device_id": np.arange(n_devices, dtype=float)}
    for name in names:
        arrays[name] = rng.lognormal(np.log(4e-5), 0.1, n_devices)
        arrays[name + "_se"] = 0.05 * arrays[name]
    arrays["gamma_up"], arrays["gamma_down"] = rng.random((2, n_devices))
    device = {
        "model": "soft-bounds",
        "parameters": {"dw_min": 8e-7, "up_down": 0.0, "w_max": 4e-5, "w_min": -4e-5},
        "g_offset_s": 6e-5,
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        preset = make_preset(device, provenance(None), per_device=arrays)
        t_make = time.perf_counter() - t0
        side, inline = Path(tmp) / "side.json", Path(tmp) / "inline.json"
        t0 = time.perf_counter()
        save_preset(preset, side)
        t_save = time.perf_counter() - t0
        t0 = time.perf_counter()
        inline.write_text(json_text(preset, str(inline)) + "\n")
        t_save_inline = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = load_preset(side)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        dict(loaded["per_device"].items())
        t_arrays = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_preset(inline)
        t_load_inline = time.perf_counter() - t0
        side_mb = _mb(side) + _mb(side.with_name("side.devices.h5"))
        rows.append(("sidecar", t_save, t_load, t_arrays, side_mb, _mb(side)))
        rows.append(("inline JSON", t_save_inline, t_load_inline, 0.0, _mb(inline), _mb(inline)))
    print(f"{n_devices} devices x {len(arrays)} arrays; make_preset {t_make:.1f} s; "
          f"load {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| layout | save (s) | load (s) | read arrays (s) | disk (MB) | JSON (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, save, load, read, disk, js in rows:
        print(f"| {name} | {save:.2f} | {load:.2f} | {read:.2f} | {disk:.1f} | {js:.3f} |")


def population_stage(n_devices: int, seed: int, sample: int = 5000, trace: bool = False) -> None:
    """Peak memory of the population stage for ``n_devices`` without fitting them all.

    A ``sample``-device chip is measured on the emulator and fitted (soft-bounds, streamed);
    its screening statistics and per-device estimates are tiled to ``n_devices`` (device
    ``r`` reads the traces of sample device ``r mod sample``, for the stuck devices' rates)
    and passed to ``combine_device_estimates``, the stage that holds every device's values
    at once. Prints the resident memory before the stage and the process's peak
    (``ru_maxrss``); with ``trace``, also tracemalloc's peak above the stage's inputs.
    """
    import dataclasses
    import resource
    import tracemalloc

    import numpy as np

    sys.path.insert(0, str(ROOT))
    import fitting.pulse_response as pr
    from calib.io.pulse_source import HDF5PulseSource
    from fitting.chunked import DeviceEstimates
    from fitting.screening import Screening
    from fitting.traces import PulseTraces

    captured: dict = {}
    combine = pr.combine_device_estimates

    def keep_inputs(ctx, plan, est, notes, predictive_check=True):
        rows = np.arange(est.n_dev)
        captured.update(ctx=ctx, plan=plan, notes=list(notes))
        captured["est"] = DeviceEstimates(
            est.names, est.theta.copy(), est.cov.copy(), est.shared_names, est.phi,
            est.sums.take(rows),
        )  # fmt: skip
        return combine(ctx, plan, est, notes, predictive_check)

    class Tiled:
        """``n_devices`` devices, device r the sample's device r mod its size."""

        def __init__(self, base: HDF5PulseSource) -> None:
            self.base, self.n_devices = base, n_devices
            self.source, self.units = "tiled", base.units
            self.device_ids = np.arange(n_devices)

        def read(self, rows):
            rows = np.arange(n_devices)[rows] if isinstance(rows, slice) else np.asarray(rows)
            own, back = np.unique(rows % self.base.n_devices, return_inverse=True)
            tr = self.base.read(own)
            pulses = tr.pulses if tr.pulses.ndim == 1 else tr.pulses[back]
            return PulseTraces(tr.conductance_s[back], pulses, rows, self.source, self.units)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sample.h5"
        side = 1 << max(4, (sample - 1).bit_length() + 1 >> 1)
        with _emulator(side, seed, {}) as resource_name:
            measure = ["measure", "pulse-response", "--resource", resource_name]
            _run([*measure, "--devices", str(sample), "--selection", "block", "-o", str(data)])
        source = HDF5PulseSource(data)
        pr.combine_device_estimates = keep_inputs
        try:
            pr.fit_pulse_response_source(
                source, "soft-bounds", screen_pieces_of=8, predictive_check=False
            )
        finally:
            pr.combine_device_estimates = combine
        if trace:
            tracemalloc.start()
        ctx, est = captured["ctx"], captured.pop("est")
        reps = -(-n_devices // ctx.source.n_devices)
        fields = {f.name: getattr(ctx.screen, f.name) for f in dataclasses.fields(Screening)}
        screen = Screening(
            **{k: np.tile(v, reps)[:n_devices] if isinstance(v, np.ndarray) else v
               for k, v in fields.items()}
        )  # fmt: skip
        fitted = np.nonzero(screen.fitted)[0]
        rows = np.arange(fitted.size) % est.n_dev
        big = DeviceEstimates(
            est.names, est.theta[rows], est.cov[rows], est.shared_names, est.phi,
            est.sums.take(rows),
        )  # fmt: skip
        del rows, est
        ctx = dataclasses.replace(ctx, source=Tiled(source), screen=screen, fitted=fitted)
        with open("/proc/self/statm") as fh:
            before = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
        traced = tracemalloc.get_traced_memory()[0] if trace else 0
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        combine(ctx, captured["plan"], big, captured["notes"], predictive_check=False)
        wall = time.perf_counter() - t0
        above = (tracemalloc.get_traced_memory()[1] - traced) / 1e6 if trace else None
        tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    print(
        f"{n_devices} devices ({fitted.size} fitted, estimates of a {sample}-device chip "
        f"tiled), load {os.getloadavg()[0]:.2f}: population stage {wall:.1f} s; resident "
        f"{before:.0f} MB before it, process peak {peak:.0f} MB"
        + ("" if above is None else f"; traced peak {above:.0f} MB above the stage's inputs")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preset-io", action="store_true", help="only save/load a synthetic preset"
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the fit on 2 Dask workers")
    parser.add_argument("--epochs", type=int, default=5, help="calib validate (0: skip)")
    parser.add_argument("--repeats", type=int, default=5, help="calib validate")
    parser.add_argument("--folder", type=Path, help="work folder (kept) [a temporary one]")
    parser.add_argument(
        "--population-stage",
        action="store_true",
        help="only the population stage's memory at --devices (tiled estimates)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="--population-stage: also tracemalloc's peak"
    )
    args = parser.parse_args()
    if args.preset_io:
        preset_io(args.devices, args.seed)
        return
    if args.population_stage:
        population_stage(args.devices, args.seed, trace=args.trace)
        return
    load = os.getloadavg()[0]
    start = dt.datetime.now(dt.timezone.utc)
    options = {"dask_workers": 0 if args.no_dask else 2, "validate": (args.epochs, args.repeats)}
    if args.folder is not None:
        args.folder.mkdir(parents=True, exist_ok=True)
        if any(args.folder.iterdir()):
            parser.error(f"--folder {args.folder}: not empty")
        stages = chain(args.devices, args.folder, args.seed, **options)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            stages = chain(args.devices, Path(tmp), args.seed, **options)
    print(
        f"{args.devices} devices, {start:%Y-%m-%d %H:%M} UTC, commit {_commit()}, "
        f"{platform.machine()} {os.cpu_count()} CPUs, load {load:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end\n"
    )
    print(
        "| stage | wall (s) | CPU (s) | peak RSS client (MB) | peak RSS emulator (MB) | disk (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    total = cpu = 0.0
    for name, s in stages.items():
        if name != "fit (Dask)":  # an alternative to the fit, not a stage of the chain
            total += s["wall_s"]
            cpu += s["cpu_s"]
        emu = f"{s['emulator_rss_mb']:.0f}" if "emulator_rss_mb" in s else "-"
        disk = f"{s['disk_mb']:.1f}"
        if "json_mb" in s:
            disk += f" (JSON {s['json_mb'] * 1e3:.0f} kB; inline would be {s['inline_mb']:.1f})"
        print(
            f"| {name} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | {s['rss_mb']:.0f} | {emu} "
            f"| {disk} |"
        )
    print(f"| total (without the Dask fit) | {total:.1f} | {cpu:.1f} | | | |")
    if "fit (Dask)" in stages:
        print("\nThe Dask fit's preset equals the in-process one (device section, sidecar sha256).")


if __name__ == "__main__":
    main()
