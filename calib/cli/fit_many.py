"""``calib fit many`` (old name ``calib fit-many``): one dataset per chip (die), in parallel."""

from __future__ import annotations

from pathlib import Path

import click

from calib.cli.option_types import SEED
from calib.cli.scheduler_options import scheduler_options
from calib.fit.many import MIN_CHIPS_FOR_OUTLIERS, SPLIT_DEVICES, SUMMARY_PARAMETERS
from calib.reports.figures import figure_format_option
from simulator.devices.response import FAMILIES

__all__ = ["fit_many_command"]


@click.command("many")
@click.argument("inputs", metavar="PATTERN_OR_MANIFEST")
@click.option(
    "-o", "--output", "outdir", type=click.Path(file_okay=False, path_type=Path), required=True
)
@click.option(
    "--model",
    type=click.Choice(["auto", *FAMILIES]),
    default="soft-bounds",
    show_default=True,
    help="Device family of every chip, or 'auto' (selected per chip).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of every chip's fit.")
@click.option(
    "--map-parameter",
    type=click.Choice(SUMMARY_PARAMETERS),
    default="dw_min",
    show_default=True,
    help="Parameter of the wafer map (when the manifest has die_x, die_y).",
)
@click.option(
    "--split-devices",
    type=click.IntRange(min=1),
    default=SPLIT_DEVICES,
    show_default=True,
    help="Chips with more devices are split: their device chunks become the tasks.",
)
@click.option("--overwrite", is_flag=True, help="Write into OUTDIR although it holds files.")
@scheduler_options
@figure_format_option
def fit_many_command(
    inputs: str,
    outdir: Path,
    model: str,
    seed: int,
    map_parameter: str,
    split_devices: int,
    scheduler: str | None,
    workers: int | None,
    overwrite: bool,
) -> None:
    """Fit every chip of PATTERN_OR_MANIFEST into OUTDIR and summarize the wafer.

    PATTERN is a glob of HDF5 datasets ('dies/*.h5'); a MANIFEST is a CSV with a column
    path (relative to the manifest) and optional chip, die_x, die_y. Writes one preset per
    chip (OUTDIR/presets/), wafer_chips.csv, wafer_summary.csv/.json and plots.
    """
    from calib.fit.many import fit_many
    from calib.runtime.distributed import cluster_client, parse_scheduler
    from calib.runtime.outputs import FIT_MANY_FILES, check_output_dir

    spec = parse_scheduler(scheduler, workers)
    check_output_dir(outdir, _input_files(inputs), overwrite, writes=FIT_MANY_FILES)
    with cluster_client(spec) as client:
        result = fit_many(
            inputs,
            outdir,
            model,
            seed=seed,
            client=client,
            map_parameter=map_parameter,
            split_devices=split_devices,
            progress=True,
        )
    chips = result["chips"]
    failed = [r for r in chips if r.get("error")]
    outliers = [r["chip"] for r in chips if r.get("outlier")]
    n_fitted = len(chips) - len(failed)
    called = (
        ", ".join(outliers) or "none"
        if n_fitted >= MIN_CHIPS_FOR_OUTLIERS
        else f"not called ({n_fitted} fitted chips, {MIN_CHIPS_FOR_OUTLIERS} needed)"
    )
    click.echo(
        f"fitted {n_fitted} of {len(chips)} chips on {spec.describe()}; "
        f"outlier chips: {called}; summary in {outdir}"
    )
    for r in failed:
        click.echo(f"failed: {r['chip']}: {r['error']}")
    for note in result["notes"]:
        click.echo(f"note: {note}")


def _input_files(inputs: str) -> list[Path]:
    """The manifest, or the files the pattern matches (for the output-folder guard)."""
    import glob

    if Path(inputs).is_file():
        return [Path(inputs)]
    return [Path(p) for p in glob.glob(inputs, recursive=True)]
