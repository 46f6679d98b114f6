"""Whole-chip chain on the emulator: measure -> fit -> export, wall time, peak memory, disk.

Usage (prints a markdown table for ``benchmarks/RESULTS.md``, "## Chip scale")::

    .venv/bin/python benchmarks/bench_chip_scale.py --devices 100000
    .venv/bin/python benchmarks/bench_chip_scale.py --preset-io --devices 1048576

An emulated ReRAM chip (``calib emulator serve``, square, the smallest power-of-two side that
holds the devices) runs in its own process; each stage is one ``calib`` command in its own
process, as a user runs it:

* ``measure``: ``calib measure pulse-response --resource ... --devices N --selection block``
  (technology defaults: 3 cycles x 200 up + 200 down pulses, 1201 reads per device);
* ``fit``: ``calib fit pulse-response DATA --model soft-bounds -o chip.json`` (per-device
  arrays of more than 4,096 devices go to ``chip.devices.h5``);
* ``export``: ``calib export chip.json --to aihwkit`` (loads the preset, checks the sidecar).

Peak resident memory of each process is its ``ru_maxrss`` from ``os.wait4`` (Linux: KiB);
the emulator's is read when it is stopped after the measure stage. Disk is the size of each
stage's output files. Not yet covered (issue 19): 10^6 and 4.2·10^6 devices, the
bounded-memory streaming fit (item 1), ``calib validate`` and the Dask variant.
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
CALIB = [sys.executable, "-m", "calib.cli"]


def _calib_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("calib")
    return [str(exe)] if exe.is_file() else CALIB


def _run(args: list[str]) -> dict:
    """One stage in its own process: wall time (s) and peak RSS (MB) of that process."""
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
    return {"wall_s": wall, "rss_mb": usage.ru_maxrss / 1024, "out": out}


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


def _mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 1e6


def _inline_json_mb(preset: Path) -> float:
    """Size the same preset would have with its per-device arrays inline (JSON numbers)."""
    sys.path.insert(0, str(ROOT))
    from calib.presets import _clean, json_text, load_preset

    doc = load_preset(preset).to_dict()  # an editable copy of the read-only Preset
    doc.pop("per_device_file", None)
    doc["per_device"] = {k: _clean(v.tolist()) for k, v in doc["per_device"].items()}
    return len(json_text(doc, str(preset)).encode()) / 1e6


def chain(n_devices: int, folder: Path, seed: int) -> dict[str, dict]:
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
    stages["fit"] = _run(
        ["fit", "pulse-response", str(data), "--model", "soft-bounds", "--seed", str(seed),
         "-o", str(preset)]
    )  # fmt: skip
    stages["fit"]["disk_mb"] = _mb(preset, sidecar)
    stages["fit"]["json_mb"] = _mb(preset)
    stages["fit"]["inline_mb"] = _inline_json_mb(preset)
    stages["export"] = _run(["export", str(preset), "--to", "aihwkit", "-o", str(exported)])
    stages["export"]["disk_mb"] = _mb(exported)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preset-io", action="store_true", help="only save/load a synthetic preset"
    )
    args = parser.parse_args()
    if args.preset_io:
        preset_io(args.devices, args.seed)
        return
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        stages = chain(args.devices, Path(tmp), args.seed)
    print(
        f"{args.devices} devices, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} {os.cpu_count()} CPUs, load {load:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end\n"
    )
    print("| stage | wall (s) | peak RSS client (MB) | peak RSS emulator (MB) | disk (MB) |")
    print("|---|---:|---:|---:|---:|")
    total = 0.0
    for name, s in stages.items():
        total += s["wall_s"]
        emu = f"{s['emulator_rss_mb']:.0f}" if "emulator_rss_mb" in s else "-"
        disk = f"{s['disk_mb']:.1f}"
        if "json_mb" in s:
            disk += f" (JSON {s['json_mb'] * 1e3:.0f} kB; inline would be {s['inline_mb']:.1f})"
        print(f"| {name} | {s['wall_s']:.1f} | {s['rss_mb']:.0f} | {emu} | {disk} |")
    print(f"| total | {total:.1f} | | | |")


if __name__ == "__main__":
    main()
