"""``calib demo``: the whole path once, end to end, against the embedded emulated chip.

What a chip is characterized for depends on its technology:

* ReRAM and ECRAM (pulsed devices, training presets): measure pulse-response traces through
  PyVISA with the technology's pulses and train length, fit a device model (soft bounds on
  ReRAM, the family picked by BIC on ECRAM), write the preset and the emulator's ground
  truth, and train an MLP on digits in memory with the fitted and with the true device;
* PCM (inference presets): measure programming, drift and read noise, fit the PCM noise
  model (programming noise, drift, 1/f read noise), write the preset and the truth, train
  an MLP hardware-aware once, and compare its accuracy over time after programming (1 s to
  1 year) simulated with the fitted and with the true noise model (``calib validate``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from calib.campaigns.parameters import PulseResponseParams
from calib.presets import load_preset, save_preset
from calib.presets.truth import truth_preset
from calib.recipes import Campaign, characterize, fit_files, plan
from calib.runtime.chips import chip_resource, connect
from calib.runtime.progress import progress_bar
from instruments.chip import ChipInterface

__all__ = ["DEMO_FIT_MODEL", "DemoResult", "run_demo"]

#: Device family the demo fits per pulsed technology (ECRAM is no exact family: pick by BIC)
DEMO_FIT_MODEL = {"reram": "soft-bounds", "ecram": "auto"}
PCM_DEMO_TIMES_S = (1.0, 3600.0, 86400.0, 31536000.0)
DEMO_SHAPE = (128, 128)  # the embedded chip (rows, columns)
DEMO_CHUNK_DEVICES = 64
PCM_DEMO_REPEATS = 5


@dataclass
class DemoResult:
    """Artifacts and accuracies (fractions) of a demo run.

    Pulsed chips: ``accuracy_*`` after in-memory training with the fitted / true device and
    in floating point. PCM: ``accuracy_*`` at the first time after programming (fitted /
    true noise model; float: the trained weights read exactly), ``accuracy_over_time``
    holds every time's means.
    """

    dataset: Path
    preset: Path
    truth: Path
    accuracy_fitted: float
    accuracy_truth: float
    accuracy_float: float
    seconds: float
    chip_kind: str = "reram"
    datasets: list[Path] = field(default_factory=list)
    accuracy_over_time: dict[str, list[float]] = field(default_factory=dict)
    times_s: tuple[float, ...] = ()
    validation: Path | None = None


def run_demo(
    output_dir: str | Path = "demo-output",
    seed: int = 0,
    n_devices: int = 256,
    chip_kind: str = "reram",
    epochs: int = 10,
    console: Console | None = None,
) -> DemoResult:
    """Run the demo on an emulated ``chip_kind`` chip (``reram``, ``ecram``, ``pcm``)."""
    console = console or Console()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    truth_path = out / "truth.json"
    with chip_resource(None, chip_kind, seed, DEMO_SHAPE) as resource:
        console.print(f"[green]emulated {chip_kind} chip[/] listening at {resource}")
        with connect(resource) as chip:
            console.print(f"connected through PyVISA: {chip.identity()}")
            files = _measure(chip_kind, chip, n_devices, seed, out, console)
            truth = truth_preset(chip)
    save_preset(truth, truth_path)
    if chip_kind == "pcm":
        result = _pcm_inference(files, truth_path, out, seed, epochs, console)
    else:
        result = _pulsed_training(chip_kind, files[0], truth, out, seed, epochs, console)
    result.truth = truth_path
    result.seconds = time.perf_counter() - t_start
    console.print("artifacts:")
    labels = [("dataset", f) for f in result.datasets] + [
        ("preset", result.preset),
        ("truth", truth_path),
    ]
    if result.validation is not None:
        labels.append(("report", result.validation / "report.md"))
    for label, path in labels:
        console.print(f"  {label:8s} {path.resolve()}")
    console.print(f"done in {result.seconds:.1f} s")
    return result


# --------------------------------------------------------------------------- measuring
def _measure(
    kind: str, chip: ChipInterface, n_devices: int, seed: int, out: Path, console: Console
) -> list[Path]:
    """The recipe's campaigns (:mod:`calib.recipes`) with a progress bar each."""
    campaigns = plan(kind, n_devices, seed=seed, chunk_devices=DEMO_CHUNK_DEVICES)
    with progress_bar(console) as progress:

        def stage(name: str):
            task = progress.add_task(f"measuring {name}", total=n_devices)
            return lambda done, total: progress.update(task, completed=done)

        files = characterize(
            kind,
            chip,
            n_devices,
            out,
            seed=seed,
            chunk_devices=DEMO_CHUNK_DEVICES,
            progress=stage,
            overwrite=True,
        )
    console.print(_measured(campaigns, n_devices))
    return files


def _measured(campaigns: list[Campaign], n_devices: int) -> str:
    """What was measured, in one sentence."""
    first = campaigns[0].params
    if isinstance(first, PulseResponseParams):
        return (
            f"measured {n_devices} devices x {first.train().n_reads} reads "
            f"({first.cycles} cycles of {first.n_up} up + {first.n_down} down pulses of "
            f"{first.amplitude_up_v:g} V, {first.width_s:g} s)"
        )
    drift = campaigns[1].params
    noise = campaigns[2].params
    return (
        f"measured {n_devices} devices on {len(first.levels_s)} levels: programming "
        f"(program-and-verify), drift (reads {drift.t_min_s:g} s .. {drift.t_max_s:g} s after "
        f"programming) and read noise ({noise.n_reads} reads per device)"
    )


# --------------------------------------------------------------------------- pulsed chips
def _pulsed_training(
    kind: str, dataset: Path, truth: dict, out: Path, seed: int, epochs: int, console: Console
) -> DemoResult:
    from calib.validate.in_memory_training import load_digits_split, train_accuracy
    from calib.validate.sources import simulatable_preset

    preset_path = out / "preset.json"
    _, fit = fit_files(kind, [dataset], preset_path, model=DEMO_FIT_MODEL[kind])
    _print_fit(console, fit, truth["device"])
    split = load_digits_split(seed)
    accuracies = {}
    sources = (("float", None), ("fitted", load_preset(preset_path)), ("truth", truth))
    with progress_bar(console) as progress:
        for name, preset in sources:
            task = progress.add_task(f"training MLP on digits ({name} device)", total=epochs)
            accuracies[name] = train_accuracy(
                None if preset is None else simulatable_preset(preset),
                split,
                seed=seed,
                epochs=epochs,
                on_epoch=lambda e, a, t=task: progress.update(t, completed=e + 1),
            )
    console.print(
        f"[bold]test accuracy on digits[/] after in-memory training: fitted device "
        f"{accuracies['fitted']:.2%}, true device {accuracies['truth']:.2%} "
        f"(floating point {accuracies['float']:.2%})"
    )
    return DemoResult(
        dataset,
        preset_path,
        out / "truth.json",
        accuracies["fitted"],
        accuracies["truth"],
        accuracies["float"],
        0.0,
        chip_kind=kind,
        datasets=[dataset],
    )


def _print_fit(console: Console, fit: object, truth_device: dict) -> None:
    truth = truth_device["parameters"]
    model = getattr(fit, "model", "?")
    true_model = truth_device.get("emulator_response") or truth_device.get("model")
    table = Table(title=f"fitted {model} device (population) vs the emulator's {true_model}")
    for col in ("parameter", "fitted", "± std. error", "truth"):
        table.add_column(col, justify="right")
    for name, est in fit.estimates.items():
        value, se = est.value, est.stderr
        if not isinstance(value, int | float):
            continue  # piecewise node vectors: in the preset, not in the table
        table.add_row(
            name,
            f"{value:.4g}",
            "" if not isinstance(se, int | float) else f"{se:.2g}",
            "" if name not in truth else f"{truth[name]:.4g}",
        )
    console.print(table)
    excluded = getattr(fit, "excluded", {})
    console.print(f"excluded devices: {excluded}")


# --------------------------------------------------------------------------- PCM chips
def _pcm_inference(
    files: list[Path], truth_path: Path, out: Path, seed: int, epochs: int, console: Console
) -> DemoResult:
    from calib.validate import TrainingOptions, ValidationOptions, run_validation
    from calib.validate.console import print_summary

    preset_path = out / "preset.json"
    _, fit = fit_files("pcm", files, preset_path)
    console.print("[bold]PCM noise model[/] (fitted from the three campaigns):")
    for line in fit.summary():
        console.print(f"  {line}", markup=False, highlight=False)
    options = ValidationOptions(
        preset=preset_path,
        output=out / "validation",
        truth=truth_path,
        times_s=PCM_DEMO_TIMES_S,
        repeats=PCM_DEMO_REPEATS,
        seed=seed,
        training=TrainingOptions(epochs=epochs),
    )
    with progress_bar(console) as progress:
        tasks: dict[str, object] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        result = run_validation(options, progress=report)
    console.print(
        "[bold]MLP on digits, trained hardware-aware once, then inference over time after "
        "programming[/] (simulated with the fitted and with the true PCM model):"
    )
    print_summary(console, result, timing=False)
    means = {name: list(s["mean"]) for name, s in result.report["sources"].items()}
    return DemoResult(
        files[0],
        preset_path,
        truth_path,
        means["fitted"][0],
        means["truth"][0],
        float(result.report["network"]["float_test_accuracy"]),
        0.0,
        chip_kind="pcm",
        datasets=list(files),
        accuracy_over_time=means,
        times_s=tuple(result.report["times_s"]),
        validation=options.output,
    )
