"""``calib validate PRESET``: check a fitted preset by inference (simulated and on the chip)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from calib.cli.option_types import SEED, number
from calib.cli.scheduler_options import scheduler_options
from calib.reports.figures import figure_format_option

__all__ = ["parse_times", "validate_command"]

_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "y": 365 * 86400.0}
_TIME = re.compile(r"^\s*([0-9.eE+-]+)\s*(s|min|h|d|y)?\s*$")


def parse_times(text: str) -> tuple[float, ...]:
    """``"1,3600,1d,1y"`` -> seconds (units s, min, h, d, y; plain numbers are seconds)."""
    out = []
    for item in text.split(","):
        match = _TIME.match(item)
        try:
            value = float(match.group(1)) * _UNITS[match.group(2) or "s"] if match else None
        except ValueError:
            value = None
        if value is None or not value >= 0 or value == float("inf"):
            raise click.BadParameter(f"{item.strip()!r} is not a time >= 0 (e.g. 3600, 1h, 1y)")
        out.append(value)
    return tuple(out)


def _tile(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise click.BadParameter(f"{text!r} is not ROWSxOUTPUTS, e.g. 128x64")
    return int(match.group(1)), int(match.group(2))


@click.command("validate")
@click.argument("preset", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The true device as a preset (e.g. from 'calib emulator truth').",
)
@click.option(
    "--chip",
    metavar="RESOURCE",
    help="Run inference on this chip too: a VISA resource (e.g. "
    "TCPIP::192.0.2.10::5025::SOCKET), bench:FILE.json, or 'embedded' (start "
    "the emulator of the preset's technology).",
)
@click.option("--network", type=click.Choice(["mlp", "cnn"]), default="mlp", show_default=True)
@click.option("--dataset", default="digits", show_default=True, help="digits or mnist1d.")
@click.option(
    "--times",
    default="1,3600,86400,31536000",
    show_default=True,
    help="Times after programming (s; or with units min, h, d, y).",
)
@click.option(
    "--repeats",
    type=click.IntRange(1),
    default=25,
    show_default=True,
    help="Monte-Carlo repeats (programming draws) per source and time.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Report folder (report.json, report.md, figures, network.pt).",
)
@click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seed of the data split, training and every repeat.",
)
@click.option("--epochs", type=click.IntRange(1, 1000), default=15, show_default=True)
@click.option(
    "--lr",
    type=number(0, min_open=True),
    help="Learning rate [0.1; 0.05 for a CNN on pulsed devices].",
)
@click.option(
    "--algorithm",
    type=click.Choice(["sgd", "tiki-taka", "ttv2", "c-ttv2"]),
    default="sgd",
    show_default=True,
    help="Training algorithm (pulsed presets).",
)
@click.option(
    "--hwa-noise",
    type=number(0),
    default=1.0,
    show_default=True,
    help="Programming-noise scale injected in hardware-aware training (PCM).",
)
@click.option(
    "--tile-size",
    default="128x64",
    show_default=True,
    help="Largest tile, inputs x outputs (a PCM tile uses 2 chip columns per output).",
)
@click.option(
    "--read-voltage",
    type=number(0, min_open=True),
    default=0.2,
    show_default=True,
    help="Largest MVM input voltage on the chip (V).",
)
@click.option(
    "--campaign",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Campaign file for the predictive check [the preset's input file].",
)
@click.option(
    "--chip-seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seed of the embedded emulator (--chip embedded).",
)
@click.option(
    "--keep-defects",
    is_flag=True,
    help="Do not cancel devices that fail programming (stuck devices).",
)
@click.option("--no-drift-compensation", is_flag=True, help="Turn global drift compensation off.")
@click.option(
    "--strict",
    is_flag=True,
    help="Exit with status 4 when a target (|fitted - truth| <= 1 pp, |fitted - chip| <= 2 pp) "
    "is missed; a network that did not learn always exits 4.",
)
@click.option("--overwrite", is_flag=True, help="Write into OUTPUT although it holds files.")
@scheduler_options
@figure_format_option
def validate_command(**kw: Any) -> None:
    """Validate PRESET by inference: simulated with the preset, with the true device
    (--truth) and on the chip (--chip), at several times after programming.

    Trains the network once (hardware-aware for PCM presets, on the preset's device for
    pulsed presets), evaluates it --repeats times per source and time, and writes
    OUTPUT/report.json, report.md, accuracy_vs_time.png and predictive_check.png.
    With --scheduler/--workers the simulated repeats and times run on Dask (same results);
    chip tasks always run here, one at a time.

    Exit status 4 (one line why) when training did not learn: the fitted accuracy keeps less
    than half of a float-trained reference's margin over chance. With --strict also when a
    target is missed.
    """
    import torch
    from rich.console import Console

    from calib.cli.option_types import progress_bar
    from calib.runtime.distributed import cluster_client, map_like, parse_scheduler
    from calib.runtime.outputs import VALIDATE_FILES, check_output_dir
    from calib.validate import EvalSettings, TrainingOptions, ValidationOptions, run_validation
    from calib.validate.console import print_summary
    from calib.validate.datasets import dataset_info

    dataset_info(kw["dataset"])  # one-line error for an unknown name, before anything slow
    bench = kw["chip"][len("bench:") :] if (kw["chip"] or "").startswith("bench:") else None
    inputs = [kw["preset"], kw["truth"], kw["campaign"], bench]
    cluster = parse_scheduler(kw["scheduler"], kw["workers"])  # simulated repeats x times
    tile_in, tile_out = _tile(kw["tile_size"])
    check_output_dir(kw["output"], inputs, kw["overwrite"], writes=VALIDATE_FILES)
    options = ValidationOptions(
        preset=kw["preset"],
        output=kw["output"],
        truth=kw["truth"],
        chip=kw["chip"],
        network=kw["network"],
        dataset=kw["dataset"],
        times_s=parse_times(kw["times"]),
        repeats=kw["repeats"],
        seed=kw["seed"],
        training=TrainingOptions(
            epochs=kw["epochs"], lr=kw["lr"], algorithm=kw["algorithm"], hwa_noise=kw["hwa_noise"]
        ),
        settings=EvalSettings(
            tile_inputs=tile_in,
            tile_outputs=tile_out,
            read_voltage_v=kw["read_voltage"],
            drift_compensation=not kw["no_drift_compensation"],
            prune_defects=not kw["keep_defects"],
        ),
        campaign=kw["campaign"],
        chip_seed=kw["chip_seed"],
    )
    console = Console()
    bar = progress_bar()  # started at the first progress report (errors before stay one line)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if not bars:
            bar.start()
        if stage not in bars:
            bars[stage] = bar.add_task(stage, total=total)
        bar.update(bars[stage], completed=done, total=total)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tiles: one thread is fastest
    try:
        with cluster_client(cluster) as client:
            result = run_validation(options, map_fn=map_like(client), progress=progress)
    finally:
        torch.set_num_threads(threads)
        if bars:
            bar.stop()
    print_summary(console, result)
    _exit_on_verdict(result.report, kw["strict"])


class ValidationFailed(click.ClickException):
    """The validation ran but its verdict is a failure (exit status 4)."""

    exit_code = 4


def _exit_on_verdict(report: dict[str, Any], strict: bool) -> None:
    """Exit 4 with one line when training did not learn, or (``strict``) a target is missed."""
    verdict = report.get("verdict") or {}
    if not verdict.get("learned", True):
        raise ValidationFailed(f"validation failed: {'; '.join(verdict['reasons'])}")
    missed = [
        f"|{name}| <= {t['limit_pp']:g} pp (largest {t['max_abs_gap_pp']:.2f} pp)"
        for name, t in report.get("targets", {}).items()
        if not t["met"]
    ]
    if strict and missed:
        raise ValidationFailed(f"validation failed (--strict): target not met: {'; '.join(missed)}")
