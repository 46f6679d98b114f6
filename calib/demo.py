"""``calib demo``: the whole path once, end to end, against the embedded emulated chip.

1. start the emulated chip on a free loopback port (background thread, real SCPI socket);
2. connect through PyVISA (``@py``) and measure pulse-response traces;
3. write them to an HDF5 dataset;
4. fit a soft-bounds device model (lmfit population step);
5. write the preset JSON (and the emulator's ground truth as a preset);
6. train an MLP on digits with the fitted device and with the true device; print both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from calib.campaigns.pulse_response import PulseResponseParams, measure_pulse_response
from calib.fit_commands import fit_pulse_response_file
from calib.presets import save_preset
from calib.progress import progress_bar
from calib.truth import truth_preset
from calib.validation import load_digits_split, train_accuracy
from instruments.emulated_chip import EmulatedChip
from instruments.emulator.server import running_emulator

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    dataset: Path
    preset: Path
    truth: Path
    accuracy_fitted: float
    accuracy_truth: float
    accuracy_float: float
    seconds: float


def run_demo(
    output_dir: str | Path = "demo-output",
    seed: int = 0,
    n_devices: int = 256,
    chip_kind: str = "reram",
    epochs: int = 10,
    console: Console | None = None,
) -> DemoResult:
    """Run the demo; returns the artifact paths and the accuracies (fractions)."""
    console = console or Console()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    dataset = out / "pulse_response.h5"
    preset_path = out / "preset.json"
    truth_path = out / "truth.json"

    with running_emulator(chip_kind, seed=seed, shape=(128, 128)) as resource:
        console.print(f"[green]emulated {chip_kind} chip[/] listening at {resource}")
        with EmulatedChip(resource) as chip:
            console.print(f"connected through PyVISA: {chip.identity()}")
            params = PulseResponseParams(
                n_devices=n_devices, selection="random", seed=seed, chunk_devices=64
            )
            with progress_bar(console) as progress:
                task = progress.add_task("measuring pulse response", total=n_devices)
                measure_pulse_response(
                    chip,
                    params,
                    dataset,
                    lambda done, total: progress.update(task, completed=done),
                    overwrite=True,
                )
            truth = truth_preset(chip)
    save_preset(truth, truth_path)
    console.print(
        f"measured {n_devices} devices x {params.train().n_reads} reads "
        f"({params.cycles} cycles of {params.n_up} up + {params.n_down} down pulses)"
    )

    _, fit = fit_pulse_response_file(dataset, preset_path, model="soft-bounds")
    _print_fit(console, fit.parameters, fit.uncertainty, truth["device"]["parameters"], fit)

    split = load_digits_split(seed)
    accuracies = {}
    with progress_bar(console) as progress:
        for name, preset in (("float", None), ("fitted", _load(preset_path)), ("truth", truth)):
            task = progress.add_task(f"training MLP on digits ({name} device)", total=epochs)
            accuracies[name] = train_accuracy(
                preset,
                split,
                seed=seed,
                epochs=epochs,
                on_epoch=lambda e, a, t=task: progress.update(t, completed=e + 1),
            )
    seconds = time.perf_counter() - t_start
    console.print(
        f"[bold]test accuracy on digits[/]: fitted device {accuracies['fitted']:.2%}, "
        f"true device {accuracies['truth']:.2%} (floating point {accuracies['float']:.2%})"
    )
    console.print("artifacts:")
    for label, path in (("dataset", dataset), ("preset", preset_path), ("truth", truth_path)):
        console.print(f"  {label:8s} {path.resolve()}")
    console.print(f"done in {seconds:.1f} s")
    return DemoResult(
        dataset,
        preset_path,
        truth_path,
        accuracies["fitted"],
        accuracies["truth"],
        accuracies["float"],
        seconds,
    )


def _load(path: Path) -> dict:
    from calib.presets import load_preset

    return load_preset(path)


def _print_fit(console: Console, params: dict, unc: dict, truth: dict, fit: object) -> None:
    table = Table(title="fitted soft-bounds device (population)")
    for col in ("parameter", "fitted", "± std. error", "truth"):
        table.add_column(col, justify="right")
    for name, value in params.items():
        se = unc.get(name)
        table.add_row(
            name,
            f"{value:.4g}",
            "" if se is None else f"{se:.2g}",
            "" if name not in truth else f"{truth[name]:.4g}",
        )
    console.print(table)
    excluded = getattr(fit, "excluded", {})
    console.print(f"excluded devices: {excluded}")
