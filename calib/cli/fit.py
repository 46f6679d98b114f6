"""``calib fit ...``: the fit group (pulse-response here; pcm and many in their modules)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from calib.cli.fit_many import fit_many_command
from calib.cli.fit_pcm import fit_pcm_command
from calib.cli.option_types import SEED, number
from calib.cli.scheduler_options import scheduler_options
from calib.reports.figures import figure_format_option
from simulator.devices.response import FAMILIES

MODEL_CHOICES = ["auto", *FAMILIES]


@click.group()
def fit() -> None:
    """Fit measured traces into device models (write preset JSON)."""


@fit.command("pulse-response")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=click.Choice(MODEL_CHOICES),
    default="soft-bounds",
    show_default=True,
    help="Device family to fit, or 'auto' to fit all and select by information criterion.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT (and a non-empty report folder).")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write plots (PNG) and summary.md/summary.json to this folder.",
)
@click.option(
    "--units",
    type=click.Choice(["S", "mS", "uS", "nS", "normalized"]),
    default="S",
    show_default=True,
    help="Conductance unit of a CSV input (HDF5 files carry their own).",
)
@click.option(
    "--read-noise",
    "read_noise_s",
    type=number(0),
    default=None,
    help="Known read-noise std (data units); separates write noise from read noise.",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the bootstrap.")
@scheduler_options
@click.option(
    "--chunk-devices",
    type=click.IntRange(min=64),
    default=2048,
    show_default=True,
    help="Devices per per-device fit task (and per in-process chunk).",
)
@figure_format_option
def fit_pulse_response_cmd(
    input_path: Path,
    model: str,
    output: Path,
    report_dir: Path | None,
    units: str,
    read_noise_s: float | None,
    seed: int,
    scheduler: str | None,
    workers: int | None,
    chunk_devices: int,
    overwrite: bool,
) -> None:
    """Fit the pulse-response traces of INPUT (HDF5 dataset or CSV) into a preset.

    A CSV needs the columns device,pulse,conductance (optional time,row,col), one row per
    read in time order; pulse is the signed number of pulses before the read.
    """
    from calib.fit.pulse_response import fit_pulse_response_file
    from calib.presets.sidecar import sidecar_path
    from calib.runtime.distributed import cluster_client, parse_scheduler
    from calib.runtime.outputs import FIT_REPORT_FILES, check_output_dir, check_output_file

    spec = parse_scheduler(scheduler, workers)
    check_output_file(output, [input_path], overwrite)
    # a large chip's per-device arrays go to NAME.devices.h5 next to it: never the input
    check_output_file(sidecar_path(output), [input_path], True, "the sidecar of -o")
    if report_dir is not None:
        inputs = [input_path, output]
        check_output_dir(report_dir, inputs, overwrite, "--report", FIT_REPORT_FILES)
    with cluster_client(spec) as client:
        path, result = fit_pulse_response_file(
            input_path,
            output,
            model=model,
            units=units,
            report_dir=report_dir,
            read_noise_s=read_noise_s,
            seed=seed,
            client=client,
            chunk_devices=chunk_devices,
            progress_label=None if client is None else "fitting devices",
            show_stages=client is None,
        )
    excluded = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in result.excluded.items())
    click.echo(
        f"fitted {result.n_fitted} of {result.n_devices} devices with {result.model}"
        f" (excluded: {excluded or 'none'}); preset written to {path}"
    )
    if model == "auto" and result.model_selection:
        best = result.model_selection[0]
        others = ", ".join(
            f"{r['family']} ΔBIC {r['delta_bic']:.0f}"
            if r["delta_bic"] is not None and math.isfinite(r["delta_bic"])
            else f"{r['family']} not scored ({r.get('note') or 'no finite J'})"
            for r in result.model_selection[1:]
        )
        click.echo(f"model selection: {best['family']} (best BIC); {others}")
    for note in result.notes:
        click.echo(f"note: {note}")
    if report_dir is not None:
        click.echo(f"report written to {report_dir}")


# --------------------------------------------------------------------------- the fit group
# Every fit command lives under `calib fit`, assembled here (modules named like the commands).
fit.add_command(fit_pcm_command, "pcm")
fit.add_command(fit_many_command, "many")

#: ``calib fit-many``: the old top-level name of ``calib fit many``, kept working (hidden)
fit_many_alias = click.Command(
    "fit-many",
    callback=fit_many_command.callback,
    params=list(fit_many_command.params),
    help=fit_many_command.help,
    hidden=True,
)
