"""Orchestration of ``calib validate``: train once, evaluate every task, write the report.

:func:`run_validation` checks the inputs, connects to the chip (if any) before anything
slow, trains the network once (:mod:`calib.validate.training`), writes it to
``<output>/network.pt``, builds one :class:`~calib.validate.tasks.EvalTask` per source,
time and repeat, and evaluates them: the simulated ones through ``map_fn`` (the builtin
``map`` by default; any map that preserves order, e.g. a process pool's or dask's, may be
passed), the chip ones one at a time on the single instrument. It then runs the predictive
check of the preset's campaign and writes ``report.json``, ``report.md`` and the figures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from calib._version import __version__
from calib.errors import CalibError
from calib.presets import file_sha256, load_preset
from calib.reports.figures import figure_path
from calib.runtime.chips import chip_resource
from calib.runtime.invocation import current_command
from calib.validate.chip_inference import chip_mapping, chip_programming
from calib.validate.chip_network import chip_tiles, place_tiles
from calib.validate.datasets import dataset_info, load_dataset
from calib.validate.networks import NetworkSpec, build_network, matrix_layers, save_network
from calib.validate.plots import plot_accuracy, plot_predictive
from calib.validate.predictive import (
    PredictiveCheck,
    campaign_file,
    drift_check,
    fit_status_warning,
    pulse_response_check,
)
from calib.validate.report import (
    SCHEMA,
    SCHEMA_VERSION,
    TARGETS_PP,
    gap_statistics,
    source_statistics,
    training_verdict,
    write_report,
)
from calib.validate.sources import (
    check_compatible,
    preset_kind,
    simulatable_preset,
    technology,
    weight_scale,
)
from calib.validate.tasks import (
    EvalOutcome,
    EvalSettings,
    EvalTask,
    cached_chip,
    close_chip_connections,
    evaluate_task,
)
from calib.validate.training import TrainingOptions, train_float_reference, train_network

__all__ = [
    "DEFAULT_TIMES_S",
    "EMBEDDED",
    "ValidationOptions",
    "ValidationResult",
    "make_tasks",
    "run_validation",
]

DEFAULT_TIMES_S = (1.0, 3600.0, 86400.0, 31536000.0)
EMBEDDED = "embedded"
EMBEDDED_SHAPE = (256, 256)

Progress = Callable[[str, int, int], None]
MapFn = Callable[[Callable[[EvalTask], EvalOutcome], Iterable[EvalTask]], Iterable[EvalOutcome]]


@dataclass
class ValidationOptions:
    """Everything ``calib validate`` needs (SI units; times in seconds after programming).

    ``chip`` is a VISA resource, ``bench:FILE.json``, or ``"embedded"`` (start the embedded
    emulator of the preset's technology, seed ``chip_seed``).
    """

    preset: Path
    output: Path
    truth: Path | None = None
    chip: str | None = None
    network: str = "mlp"
    dataset: str = "digits"
    times_s: tuple[float, ...] = DEFAULT_TIMES_S
    repeats: int = 25
    seed: int = 0
    training: TrainingOptions = field(default_factory=TrainingOptions)
    settings: EvalSettings = field(default_factory=EvalSettings)
    campaign: Path | None = None
    chip_seed: int = 0

    def __post_init__(self) -> None:
        times = tuple(float(t) for t in self.times_s)
        if not times or not all(math.isfinite(t) and t >= 0 for t in times):
            raise CalibError(f"times must be finite and >= 0 s, got {self.times_s}")
        self.times_s = tuple(sorted(set(times)))
        if self.repeats < 1:
            raise CalibError(f"repeats must be >= 1, got {self.repeats}")
        self.preset, self.output = Path(self.preset), Path(self.output)
        self.truth = Path(self.truth) if self.truth is not None else None
        self.campaign = Path(self.campaign) if self.campaign is not None else None


@dataclass
class ValidationResult:
    """What :func:`run_validation` produced: the report document and the files."""

    report: dict[str, Any]
    files: dict[str, Path]

    def accuracy_table(self) -> dict[str, list[float]]:
        """Mean accuracy (%) per source, one value per time."""
        return {n: [100 * m for m in s["mean"]] for n, s in self.report["sources"].items()}


def make_tasks(
    network_file: Path,
    sources: dict[str, Path],
    options: ValidationOptions,
    chip_resource: str | None,
) -> list[EvalTask]:
    """One task per source, time and repeat (sources in the order given).

    File paths are made absolute, so that workers started elsewhere find the same files.
    """
    tasks = []
    network = str(Path(network_file).resolve())
    for source, preset_path in sources.items():
        preset = str(Path(preset_path).resolve())
        for t in options.times_s:
            for r in range(options.repeats):
                tasks.append(
                    EvalTask(
                        network,
                        preset,
                        source,
                        t,
                        r,
                        options.seed,
                        chip_resource if source == "chip" else None,
                        options.settings,
                    )
                )
    return tasks


def _load(path: Path, label: str) -> dict:
    if not path.is_file():
        raise CalibError(f"{path}: no such {label} file")
    return load_preset(path)


def _chip_resource(
    options: ValidationOptions, tech: str | None
) -> contextlib.AbstractContextManager[str | None]:
    """The chip resource to use (starting the embedded emulator when asked), or ``None``."""
    if options.chip is None:
        return contextlib.nullcontext(None)
    if options.chip != EMBEDDED:
        return chip_resource(options.chip)
    if tech is None:
        raise CalibError(
            f"{options.preset}: cannot tell which emulated chip to start (no technology in "
            "its provenance); pass a VISA resource to --chip"
        )
    return chip_resource(None, tech, options.chip_seed, EMBEDDED_SHAPE)


def _check_chip(resource: str, kind: str, tech: str | None, spec: NetworkSpec, mapping) -> dict:
    """Connect (one-line error if it does not answer), check technology and capacity."""
    chip = cached_chip(resource)
    chip_tech = chip.technology
    if tech and chip_tech and str(chip_tech).lower() != tech:
        raise CalibError(
            f"the chip at {resource} is a {chip_tech} chip but the preset describes {tech} devices"
        )
    tiles = chip_tiles(build_network(spec), mapping)
    place_tiles(tiles, chip.shape, mapping)
    return {
        "resource": resource,
        "idn": chip.identity(),
        "technology": chip_tech,
        "shape": list(chip.shape),
        "devices_used": sum(t.n_in * t.n_out * mapping.columns_per_output for t in tiles),
    }


def _predictive(
    preset: dict, kind: str, options: ValidationOptions
) -> tuple[PredictiveCheck | None, str]:
    path = options.campaign or campaign_file(preset, options.preset, kind)
    if path is None:
        return None, (
            "predictive check skipped: the preset's campaign file was not found (pass "
            "--campaign FILE)"
        )
    if kind == "pcm":
        return drift_check(preset, path, seed=options.seed), ""
    return pulse_response_check(preset, path, seed=options.seed), ""


def _mapping_text(kind: str) -> str:
    if kind == "pcm":
        return (
            "differential pair per weight, G+ = clip(s·W, 0, g_max), G- = clip(-s·W, 0, g_max), "
            "s = g_max/max|W| per tile"
        )
    return (
        "one device per weight, G = g_offset + scale·W, written by program-and-verify, "
        "reference current subtracted digitally"
    )


def _time_convention(kind: str, preset: dict) -> str:
    if kind == "pcm":
        t0 = float(preset["pcm"]["t0_s"])
        return (
            "times are t_inference, seconds after programming as in aihwkit; the PCM model "
            f"is evaluated at t = t_inference + t0 (t0 = {t0:g} s, datasets/PRESET.md), and the "
            f"chip, whose clock counts from each device's last programming pulse, is read "
            f"t_inference + {t0:g} s after programming, so both see the same drift"
        )
    return (
        "times are seconds after programming; pulsed-device presets have no drift model, so "
        "time changes only the noise draws (the chip is read t_inference after programming)"
    )


def run_validation(
    options: ValidationOptions,
    map_fn: MapFn | None = None,
    progress: Progress | None = None,
) -> ValidationResult:
    """Validate ``options.preset`` by inference; see the module docstring."""
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    report_progress = progress or (lambda stage, done, total: None)
    preset = _load(options.preset, "preset")
    kind = preset_kind(preset, str(options.preset))
    truth = None
    if options.truth is not None:
        truth = _load(options.truth, "truth preset")
        check_compatible(preset, truth, str(options.preset), str(options.truth))
    spec = NetworkSpec(options.network, options.dataset)
    tech = technology(preset) or (technology(truth) if truth else None)
    output = options.output
    output.mkdir(parents=True, exist_ok=True)
    network_file = output / "network.pt"
    if kind != "pcm" and options.settings.verify_band_s is None:
        # one verify band, from the fitted preset, for the chip and the simulated sources
        band = chip_programming(kind, tech or "reram", preset).tolerance_s
        options = replace(options, settings=replace(options.settings, verify_band_s=band))
    settings = options.settings
    try:
        with _chip_resource(options, tech) as resource:
            chip_info = None
            if resource is not None:
                mapping = chip_mapping(
                    kind,
                    _placeholder_mapping(preset, kind),
                    preset,
                    settings.read_voltage_v,
                    settings.tile_inputs,
                    settings.tile_outputs,
                )
                chip_info = _check_chip(resource, kind, tech, spec, mapping)
                chip_info["mapping"] = _mapping_text(kind)
                if options.chip == EMBEDDED:
                    chip_info["embedded_emulator"] = {"kind": tech, "seed": options.chip_seed}
            split = load_dataset(options.dataset, options.seed)
            t0 = time.perf_counter()
            trained = train_network(
                spec,
                preset,
                kind,
                split,
                options.seed,
                options.training,
                settings.mapping(),
                seed=options.seed,
                on_epoch=lambda e, a: report_progress("training", e + 1, options.training.epochs),
            )
            save_network(trained, network_file)
            seconds["training"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            trained.training["float_reference_accuracy"] = train_float_reference(
                spec, split, options.training, options.seed
            )
            seconds["float_reference"] = time.perf_counter() - t0
            sources = {"fitted": options.preset}
            if options.truth is not None:
                sources["truth"] = options.truth
            simulated = make_tasks(network_file, sources, options, None)
            t0 = time.perf_counter()
            outcomes = _run(simulated, map_fn or map, report_progress, "simulated inference")
            seconds["simulated_inference"] = time.perf_counter() - t0
            if resource is not None:
                chip_tasks = make_tasks(network_file, {"chip": options.preset}, options, resource)
                t0 = time.perf_counter()
                outcomes += _run(chip_tasks, map, report_progress, "chip-in-the-loop inference")
                seconds["chip_inference"] = time.perf_counter() - t0
                simulated += chip_tasks
    finally:
        close_chip_connections()
    t0 = time.perf_counter()
    check, note = _predictive(preset, kind, options)
    seconds["predictive_check"] = time.perf_counter() - t0
    report = _build_report(
        options, preset, kind, tech, truth, trained, chip_info, simulated, outcomes, check, note
    )
    files = {"network": network_file}
    report["plots"] = {"accuracy vs time": figure_path("accuracy_vs_time.png").name}
    if check is not None:
        report["plots"]["predictive check"] = figure_path("predictive_check.png").name
    seconds["total"] = time.perf_counter() - t_start
    report["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    files["accuracy_plot"] = plot_accuracy(report, output / "accuracy_vs_time.png")
    if check is not None:
        files["predictive_plot"] = plot_predictive(check, output / "predictive_check.png")
    files["report_json"], files["report_md"] = write_report(report, output)
    return ValidationResult(report, files)


def _placeholder_mapping(preset: dict, kind: str) -> dict:
    """The network mapping record before training (what training will record)."""
    if kind == "pcm":
        return {"kind": "pcm-pair"}
    device = simulatable_preset(preset)["device"]
    return {
        "g_offset_s": device["g_offset_s"],
        "scale_s": weight_scale({"device": device}),
        "w_min_s": device["parameters"]["w_min"],
        "w_max_s": device["parameters"]["w_max"],
    }


def _run(tasks: list[EvalTask], map_fn: MapFn, progress: Progress, stage: str) -> list[EvalOutcome]:
    out = []
    progress(stage, 0, len(tasks))
    for k, outcome in enumerate(map_fn(evaluate_task, tasks)):
        out.append(outcome)
        progress(stage, k + 1, len(tasks))
    return out


def _build_report(
    options: ValidationOptions,
    preset: dict,
    kind: str,
    tech: str | None,
    truth: dict | None,
    trained: Any,
    chip_info: dict | None,
    tasks: list[EvalTask],
    outcomes: list[EvalOutcome],
    check: PredictiveCheck | None,
    note: str,
) -> dict[str, Any]:
    times = list(options.times_s)
    acc: dict[str, np.ndarray] = {}
    programming = []
    for task, outcome in zip(tasks, outcomes, strict=True):
        table = acc.setdefault(task.source, np.full((len(times), options.repeats), np.nan))
        table[times.index(task.t_inference_s), task.repeat] = outcome.accuracy
        if outcome.programming:
            programming.append(outcome.programming)
    sources = {name: source_statistics(a) for name, a in acc.items()}
    gaps, targets = {}, {}
    for other, paired in (("truth", True), ("chip", False)):
        if other in acc:
            name = f"fitted - {other}"
            gaps[name] = gap_statistics(acc["fitted"], acc[other], paired)
            targets[name] = {
                "limit_pp": TARGETS_PP[name],
                "max_abs_gap_pp": gaps[name]["max_abs"],
                "met": bool(gaps[name]["max_abs"] <= TARGETS_PP[name]),
            }
    model = trained.model
    layers = matrix_layers(model)
    settings = options.settings
    mapping = chip_mapping(
        kind,
        trained.mapping,
        preset,
        settings.read_voltage_v,
        settings.tile_inputs,
        settings.tile_outputs,
    )
    n_tiles = len(chip_tiles(model, mapping))
    inputs: dict[str, Any] = {
        "preset": {
            "path": str(options.preset),
            "sha256": file_sha256(options.preset),
            "kind": kind,
            "technology": tech,
        },
        "truth": None,
        "chip": chip_info,
    }
    if truth is not None and options.truth is not None:
        inputs["truth"] = {"path": str(options.truth), "sha256": file_sha256(options.truth)}
    if check is not None:
        inputs["campaign"] = {"path": check.source, "sha256": file_sha256(check.source)}
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "provenance": {
            "software_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": current_command(),
        },
        "inputs": inputs,
        "options": {
            "network": options.network,
            "dataset": options.dataset,
            "repeats": options.repeats,
            "seed": options.seed,
            "chip_seed": options.chip_seed,
            "tile_inputs": settings.tile_inputs,
            "tile_outputs": settings.tile_outputs,
            "read_voltage_v": settings.read_voltage_v,
            "drift_compensation": settings.drift_compensation,
            "prune_defects": settings.prune_defects,
            "verify_band_s": settings.verify_band_s,
            "forward_periphery": asdict(settings.forward),
        },
        "time_convention": _time_convention(kind, preset),
        "times_s": times,
        "network": {
            "kind": options.network,
            "dataset": options.dataset,
            "architecture": str(model),
            "n_parameters": int(sum(m.weight.numel() for _, m in layers)),
            "n_tiles": n_tiles,
            "float_test_accuracy": trained.training["float_test_accuracy"],
            "training": trained.training,
            "mapping": trained.mapping,
            "file": "network.pt",
        },
        "sources": sources,
        "gaps_pp": gaps,
        "targets": targets,
        "predictive_check": check.summary() if check is not None else None,
        "notes": [],
    }
    report["verdict"] = training_verdict(
        sources["fitted"]["mean"][0],
        trained.training["float_reference_accuracy"],
        dataset_info(options.dataset).n_classes,
        times[0],
    )
    if note:
        report["predictive_note"] = note
    if programming:
        report["chip_programming"] = {
            "n_devices": programming[0]["n_devices"],
            "mean_not_converged": float(np.mean([p["n_not_converged"] for p in programming])),
            "mean_pruned": float(np.mean([p["n_pruned"] for p in programming])),
            "mean_iterations": float(np.mean([p["mean_iterations"] for p in programming])),
            "tolerance_s": programming[0]["tolerance_s"],
            "error_mean_s": float(np.mean([p["error_mean_s"] for p in programming])),
            "error_std_s": float(np.mean([p["error_std_s"] for p in programming])),
        }
    if check is not None:
        report["notes"].extend(check.notes)
    warning = fit_status_warning(preset)
    if warning:
        report["fit_status"] = dict(preset["device"]["fit_status"])
        report["notes"].insert(0, warning)
    return report
