"""Fit many chips (dies) in parallel and summarize the wafer: a population of populations.

``calib fit-many PATTERN_OR_MANIFEST -o OUTDIR`` fits the pulse-response campaign of every
dataset file (one per chip or die) and writes

* ``OUTDIR/presets/<chip>.json``: one preset per chip (the same as ``calib fit
  pulse-response`` of that file with the same options and seed);
* ``OUTDIR/wafer_chips.csv``: per chip, its population parameters, their standard errors,
  devices fitted and excluded, the robust z-score of every parameter against the other
  chips, and an ``outlier`` flag (or the error that stopped its fit: never dropped);
* ``OUTDIR/wafer_summary.csv`` / ``.json``: per parameter, the spread across chips (mean,
  std, median, robust std from the MAD, coefficient of variation, mean within-chip standard
  error) and the number of outlier chips;
* ``OUTDIR/wafer_parameters.png`` and, when the manifest gives die coordinates,
  ``OUTDIR/wafer_map_<param>.png``.

Input: a glob pattern of ``.h5`` files, or a manifest CSV with a column ``path`` (relative
to the manifest's folder), and optional ``chip`` (a name), ``die_x``, ``die_y``.

Execution: each chip is one task (:func:`fit_chip`: it reads its own file and writes its
own preset, returning a few numbers) mapped with :func:`calib.runtime.distributed.map_tasks`;
chips larger than ``split_devices`` have their per-device chunks spread over the workers
instead (no worker then holds a whole large chip), up to ``concurrent_large`` chips at a
time so that the stages that run once per chip on the client overlap.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calib.errors import CalibError
from calib.runtime.json_values import plain_json

__all__ = [
    "SUMMARY_PARAMETERS",
    "ChipInput",
    "chip_file_stem",
    "fit_chip",
    "fit_many",
    "read_chip_inputs",
    "wafer_summary",
]

#: population parameters compared across chips (when the family has them)
SUMMARY_PARAMETERS = (
    "dw_min",
    "up_down",
    "w_max",
    "w_min",
    "dw_min_dtod",
    "up_down_dtod",
    "w_max_dtod",
    "w_min_dtod",
    "dw_min_std",
    "write_noise_std",
    "corrupt_devices_prob",
    "gamma_up",
    "gamma_down",
    "pow_gamma",
)
#: units of the summary parameters (aihwkit names; the rest are relative, unit 1)
PARAMETER_UNITS = {"dw_min": "S", "w_max": "S", "w_min": "S"}
OUTLIER_Z = 3.5  # robust z (MAD-based) beyond which a chip is flagged (Iglewicz & Hoaglin)
MIN_CHIPS_FOR_OUTLIERS = 5  # fewer fitted chips: no outlier is called (a MAD of 4 is noise)
SPLIT_DEVICES = 50_000
CONCURRENT_LARGE = 4  # large chips whose client-side stages overlap (threads of the client)


@dataclass(frozen=True)
class ChipInput:
    """One chip's dataset, its name and (optionally) its die coordinates on the wafer."""

    name: str
    path: str
    die_x: float | None = None
    die_y: float | None = None


def read_chip_inputs(spec: str | Path) -> list[ChipInput]:
    """Chips of a manifest CSV, or of the files matching a glob pattern (sorted)."""
    spec = str(spec)
    if spec.lower().endswith(".csv") and Path(spec).is_file():
        return _read_manifest(Path(spec))
    paths = sorted(glob.glob(spec))
    if not paths:
        raise CalibError(f"{spec}: no dataset file matches (give a glob pattern or a manifest CSV)")
    chips = [ChipInput(Path(p).stem, str(Path(p))) for p in paths]
    _check_unique(chips, spec)
    return chips


def _read_manifest(path: Path) -> list[ChipInput]:
    try:
        return _parse_manifest(path)
    except UnicodeDecodeError as exc:
        raise CalibError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r}: "
            f"{exc.reason}); save the manifest as UTF-8"
        ) from None
    except csv.Error as exc:
        raise CalibError(f"{path}: not a readable CSV manifest ({exc})") from None


def _parse_manifest(path: Path) -> list[ChipInput]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if "path" not in cols:
            raise CalibError(f"{path}: manifest needs a 'path' column (has {sorted(cols)})")
        chips = []
        for line, row in enumerate(reader, start=2):
            rel = (row.get("path") or "").strip()
            if not rel:
                raise CalibError(f"{path}:{line}: empty path")
            file = Path(rel) if Path(rel).is_absolute() else path.parent / rel
            coords = []
            for key in ("die_x", "die_y"):
                text = (row.get(key) or "").strip()
                try:
                    coords.append(float(text) if text else None)
                except ValueError:
                    raise CalibError(f"{path}:{line}: {key} {text!r} is not a number") from None
            name = (row.get("chip") or "").strip() or file.stem
            chips.append(ChipInput(name, str(file), *coords))
    if not chips:
        raise CalibError(f"{path}: manifest lists no chips")
    _check_unique(chips, str(path))
    return chips


def _check_unique(chips: list[ChipInput], spec: str) -> None:
    names = [c.name for c in chips]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CalibError(f"{spec}: chip names are not unique ({', '.join(dup[:5])})")
    seen: dict[str, str] = {}
    for name in names:
        key = chip_file_stem(name).lower()  # case-insensitive file systems too
        if key in seen:
            raise CalibError(
                f"{spec}: chips {seen[key]!r} and {name!r} would write the same preset file "
                f"({chip_file_stem(name)}.json); rename one"
            )
        seen[key] = name


def chip_file_stem(name: str) -> str:
    """A chip name as a file name: letters, digits, ``._+-`` kept, anything else (path
    separators, spaces, control characters) as ``_``; no leading dot, so never ``..``."""
    stem = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".")
    return stem[:120] or "chip"


# ---------------------------------------------------------------------------------- one chip
def fit_chip(
    chip: ChipInput, preset_path: str, model: str, seed: int, options: dict[str, Any]
) -> dict[str, Any]:
    """Fit one chip's file, write its preset, return a compact summary (runs on a worker).

    A chip whose data cannot be fitted returns its error instead of raising, so that one
    bad die does not stop the wafer (it is listed as failed in the summary).
    """
    from calib.fit.pulse_response import fit_pulse_response_file
    from fitting.traces import FitInputError

    try:
        _, fit = fit_pulse_response_file(chip.path, preset_path, model=model, seed=seed, **options)
    except (CalibError, FitInputError) as exc:
        return {"chip": chip.name, "error": str(exc)}
    return _chip_row(chip, preset_path, fit)


def _chip_row(chip: ChipInput, preset_path: str, fit: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "chip": chip.name,
        "error": "",
        "model": fit.model,
        "n_devices": fit.n_devices,
        "n_fitted": fit.n_fitted,
        "n_excluded": int(sum(fit.excluded.values())),
        "read_noise_s": fit.read_noise_s,
        "preset": preset_path,
    }
    for name in SUMMARY_PARAMETERS:
        est = fit.estimates.get(name)
        value = None if est is None else est.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            row[name] = float(value)
            se = est.stderr
            row[f"{name}_se"] = float(se) if isinstance(se, int | float) else math.nan
    return row


# ---------------------------------------------------------------------------------- wafer
def fit_many(
    spec: str | Path,
    outdir: str | Path,
    model: str = "soft-bounds",
    *,
    seed: int = 0,
    client: Any | None = None,
    map_parameter: str = "dw_min",
    chunk_devices: int = 2048,
    split_devices: int = SPLIT_DEVICES,
    concurrent_large: int = CONCURRENT_LARGE,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit every chip of ``spec`` into ``outdir`` and write the wafer summary.

    Returns ``{"chips": rows, "summary": per-parameter spread, "files": written paths,
    "notes": [...]}``.
    Every chip is fitted with the same ``model`` and ``seed`` as a single ``calib fit
    pulse-response`` would, so its preset does not depend on how the wafer was run.
    """
    from calib.runtime.distributed import map_tasks

    chips = read_chip_inputs(spec)
    outdir = Path(outdir)
    (outdir / "presets").mkdir(parents=True, exist_ok=True)
    small, large = [], []
    for chip in chips:
        if not Path(chip.path).is_file():
            raise CalibError(f"{chip.path}: file not found (chip {chip.name})")
        (large if client is not None and _n_devices(chip) > split_devices else small).append(chip)
    preset = {c.name: str(outdir / "presets" / f"{chip_file_stem(c.name)}.json") for c in chips}
    options = {"chunk_devices": chunk_devices}
    tasks = [(c, preset[c.name], model, seed, options) for c in small]
    label = "fitting chips" if progress else None
    rows = dict(
        zip(
            (c.name for c in small),
            map_tasks(fit_chip, tasks, client, label),
            strict=True,
        )
    )
    rows.update(_fit_large(large, preset, model, seed, options, client, concurrent_large))
    table = [dict(rows[c.name], die_x=c.die_x, die_y=c.die_y) for c in chips]
    summary = wafer_summary(table)
    files = _write_outputs(outdir, table, summary, map_parameter, model, seed, spec)
    notes = []
    placed = any(c.die_x is not None and c.die_y is not None for c in chips)
    if placed and map_parameter not in summary:
        notes.append(f"no wafer map: no chip has a fitted {map_parameter} ({model} fits)")
    return {"chips": table, "summary": summary, "files": files, "notes": notes}


def _fit_large(chips, preset, model, seed, options, client, concurrent) -> dict[str, dict]:
    """Large chips: per-device chunks on the workers; the once-per-chip stages of up to
    ``concurrent`` chips overlap in threads here (numpy releases the GIL in its loops), so
    the workers are not idle while one chip's population stage runs."""
    from concurrent.futures import ThreadPoolExecutor

    if not chips:
        return {}
    opts = dict(options, client=client)
    with ThreadPoolExecutor(max_workers=max(1, min(concurrent, len(chips)))) as pool:
        jobs = {c.name: pool.submit(fit_chip, c, preset[c.name], model, seed, opts) for c in chips}
        return {name: job.result() for name, job in jobs.items()}


def _n_devices(chip: ChipInput) -> int:
    """Devices of a chip's file (0 when it cannot be read: its own task reports why)."""
    from calib.io.pulse_source import HDF5PulseSource

    try:
        return HDF5PulseSource(chip.path).n_devices
    except CalibError:
        return 0


def wafer_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Spread of every parameter across the fitted chips; marks outlier chips in ``rows``.

    A chip is an outlier when any parameter lies more than :data:`OUTLIER_Z` standard
    deviations from the median of the *other* chips, where the standard deviation combines
    the chip-to-chip spread τ (robust: τ² = (1.4826 MAD)² minus the median squared standard
    error, floored at 0), the chip's own standard error, and the uncertainty of the others'
    median (π/2 · (τ² + their median SE²) / (n - 1)). So a chip that differs from the
    others by what its own fit cannot resolve is not flagged. ``z_<param>`` is stored in its
    row. With fewer than :data:`MIN_CHIPS_FOR_OUTLIERS` fitted chips no chip is flagged.
    """
    ok = [r for r in rows if not r.get("error")]
    for r in rows:
        r["outlier"] = False
        r["outlier_parameters"] = ""
    summary: dict[str, dict[str, float]] = {}
    for name in SUMMARY_PARAMETERS:
        vals = np.array([r.get(name, np.nan) for r in ok], dtype=float)
        finite = np.isfinite(vals)
        if not finite.any():
            continue
        x = vals[finite]
        ses = np.array([r.get(f"{name}_se", np.nan) for r in ok], dtype=float)[finite]
        med = float(np.median(x))
        robust_sd = 1.4826 * float(np.median(np.abs(x - med)))
        mean = float(np.mean(x))
        std = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
        z_all = _outlier_z(x, np.nan_to_num(ses, nan=0.0), robust_sd)
        n_out = 0
        rows_ok = [r for r, v in zip(ok, vals, strict=True) if np.isfinite(v)]
        for r, z in zip(rows_ok, z_all, strict=True):
            r[f"z_{name}"] = float(z)
            if x.size >= MIN_CHIPS_FOR_OUTLIERS and abs(z) > OUTLIER_Z:
                r["outlier"] = True
                r["outlier_parameters"] = " ".join(filter(None, [r["outlier_parameters"], name]))
                n_out += 1
        summary[name] = {
            "chips": int(x.size),
            "mean": mean,
            "std": std,
            "median": med,
            "robust_std": robust_sd,
            "cv": std / abs(mean) if mean != 0 and np.isfinite(std) else math.nan,
            "mean_within_chip_se": float(np.nanmean(ses)) if np.isfinite(ses).any() else math.nan,
            "outlier_chips": n_out,
        }
    return summary


def _outlier_z(x: np.ndarray, se: np.ndarray, robust_sd: float) -> np.ndarray:
    """z of each chip against the median of the others (see :func:`wafer_summary`)."""
    n = x.size
    tau2 = max(robust_sd**2 - float(np.median(se**2)), 0.0)
    z = np.zeros(n)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        if others.size == 0:
            continue
        m = float(np.median(x[others]))
        var = tau2 + se[i] ** 2
        var += 0.5 * math.pi * (tau2 + float(np.median(se[others] ** 2))) / others.size
        diff = x[i] - m
        if var > 0:
            z[i] = diff / math.sqrt(var)
        elif diff != 0:  # all other chips equal and no uncertainty: an outlier if it differs
            z[i] = math.copysign(math.inf, diff)
    return z


def _write_outputs(outdir, table, summary, map_parameter, model, seed, spec) -> list[Path]:
    from calib.presets import provenance

    files = []
    cols: list[str] = []
    for r in table:
        cols += [k for k in r if k not in cols]
    path = outdir / "wafer_chips.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        for r in table:
            writer.writerow({k: _fmt(r.get(k)) for k in cols})
    files.append(path)
    path = outdir / "wafer_summary.csv"
    stats = ["chips", "mean", "std", "median", "robust_std", "cv", "mean_within_chip_se"]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["parameter", *stats, "outlier_chips"])
        for name, s in summary.items():
            writer.writerow([name, *(_fmt(s[k]) for k in stats), s["outlier_chips"]])
    files.append(path)
    doc = {
        "provenance": provenance(
            None, fit_options={"model": model, "seed": seed, "inputs": str(spec)}
        ),
        "outlier_rule": f"|z| > {OUTLIER_Z} in any parameter, z = (value - median of the "
        "other chips) / sqrt(tau^2 + SE^2 + var(median)), tau from the chips' MAD less their "
        f"SEs; no outliers with fewer than {MIN_CHIPS_FOR_OUTLIERS} chips",
        "chips": len(table),
        "failed": [r["chip"] for r in table if r.get("error")],
        "outliers": [r["chip"] for r in table if r.get("outlier")],
        "parameters": summary,
    }
    path = outdir / "wafer_summary.json"
    path.write_text(json.dumps(plain_json(doc), indent=2, allow_nan=False) + "\n")
    files.append(path)
    files += _plots(outdir, table, summary, map_parameter)
    return files


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return "" if v is None else v


def _plot_unit(name: str) -> tuple[str, float]:
    """Axis unit and scale of a summary parameter: conductances in µS."""
    return ("µS", 1e6) if PARAMETER_UNITS.get(name) == "S" else ("1, relative", 1.0)


def _plots(outdir: Path, table, summary, map_parameter: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from calib.reports.figures import save_figure

    ok = [r for r in table if not r.get("error")]
    names = [n for n in summary if n in ("dw_min", "up_down", "w_max", "dw_min_dtod", "dw_min_std")]
    files = []
    if ok and names:
        labels = [str(r["chip"]) for r in ok]
        width = max(3.0, 0.22 * len(ok) + 1.2)
        fig, axes = plt.subplots(1, len(names), figsize=(width * len(names), 3.8), squeeze=False)
        for ax, name in zip(axes[0], names, strict=True):
            unit, scale = _plot_unit(name)
            y = np.array([r.get(name, np.nan) for r in ok], dtype=float) * scale
            se = np.array([r.get(f"{name}_se", np.nan) for r in ok], dtype=float) * scale
            out = np.array([name in r["outlier_parameters"].split() for r in ok])
            x = np.arange(y.size)
            ax.errorbar(x[~out], y[~out], yerr=np.nan_to_num(se[~out]), fmt="o", ms=3)
            if out.any():
                ax.errorbar(
                    x[out],
                    y[out],
                    yerr=np.nan_to_num(se[out]),
                    fmt="x",
                    color="r",
                    ms=8,
                    label="outlier chip",
                )
                ax.legend(fontsize=7)
            ax.axhline(summary[name]["median"] * scale, color="k", lw=0.8)
            ax.set_title(name, fontsize=9)
            ax.set_ylabel(f"{name} ({unit})", fontsize=8)
            ax.set_xticks(x, labels, rotation=90 if len(ok) > 4 else 0, fontsize=7)
            ax.set_xlabel("chip")
        fig.suptitle("per-chip population parameters (±1 SE; line: wafer median)", fontsize=9)
        fig.tight_layout()
        files.append(save_figure(fig, outdir / "wafer_parameters.png", dpi=110))
        plt.close(fig)
    placed = [r for r in ok if r.get("die_x") is not None and r.get("die_y") is not None]
    if placed and map_parameter in summary:
        fig, ax = plt.subplots(figsize=(4.5, 4.0))
        xs = [r["die_x"] for r in placed]
        ys = [r["die_y"] for r in placed]
        unit, scale = _plot_unit(map_parameter)
        vals = [r.get(map_parameter, np.nan) * scale for r in placed]
        sc = ax.scatter(xs, ys, c=vals, s=400, marker="s", cmap="viridis")
        for r in placed:
            if r.get("outlier"):
                ax.plot(r["die_x"], r["die_y"], "rx", ms=12)
        failed = [r for r in table if r.get("error") and r.get("die_x") is not None]
        for r in failed:
            ax.plot(r["die_x"], r["die_y"], "k*", ms=10)
        fig.colorbar(sc, ax=ax, label=f"{map_parameter} ({unit})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("die x")
        ax.set_ylabel("die y")
        ax.set_title(f"wafer map of {map_parameter} (x: outlier chip)", fontsize=9)
        ax.set_aspect("equal")
        fig.tight_layout()
        files.append(save_figure(fig, outdir / f"wafer_map_{map_parameter}.png", dpi=110))
        plt.close(fig)
    return files
