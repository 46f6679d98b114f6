"""``calib import csv``: convert measurements taken elsewhere into the dataset format."""

from __future__ import annotations

from pathlib import Path

import click

from calib.cli.lazy_choice import LazyChoice

__all__ = ["import_group"]


def _kinds() -> dict[str, str]:
    """CLI kind name -> campaign name (calib.io loads pandas/h5py: only when used)."""
    from calib.io.csv_import import CSV_COLUMNS

    return {name.replace("_", "-"): name for name in CSV_COLUMNS}


def _units() -> list[str]:
    from calib.io.csv_import import UNIT_SCALE

    return sorted(UNIT_SCALE)


@click.group("import")
def import_group() -> None:
    """Import measurements from other tools (tidy CSV, one row per read)."""


@import_group.command("csv")
@click.argument("input_path", metavar="INPUT.csv", type=click.Path(path_type=Path))
@click.option(
    "--kind",
    type=LazyChoice(lambda: sorted(_kinds())),
    required=True,
    help="Which campaign the CSV holds (columns: 'calib formats dataset').",
)
@click.option(
    "--units",
    type=LazyChoice(_units),
    default="S",
    show_default=True,
    help="Units of the conductance (and target) columns.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option(
    "--drop-invalid",
    is_flag=True,
    help="Drop rows that would be refused (non-numeric, missing, negative conductance) and "
    "report how many per reason (default: refuse the file with the line number).",
)
@click.option(
    "--round-pulses",
    is_flag=True,
    help="Round non-integer pulse counts (digitized curves) to the nearest integer; the "
    "number of rounded rows is reported.",
)
@click.option(
    "--down",
    "down_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Pulse-response CSV with the depression (down) pulses when INPUT holds only the "
    "potentiation: each device's up reads are followed by its down reads.",
)
@click.option(
    "--reverse-down",
    is_flag=True,
    help="With --down: the depression reads are listed in reverse order (low to high).",
)
def import_csv(
    input_path: Path,
    kind: str,
    units: str,
    output: Path,
    overwrite: bool,
    drop_invalid: bool,
    round_pulses: bool,
    down_path: Path | None,
    reverse_down: bool,
) -> None:
    """Convert INPUT.csv into an HDF5 dataset in the documented format.

    Columns: pulse-response `device,pulse,conductance[,time,row,col]`; drift and read-noise
    `device,time,conductance[,target]` (drift needs target); programming
    `device,target,conductance[,iterations]`. Invalid rows are refused with their line number.
    """
    from calib.io import campaign_from_csv, write_campaign
    from calib.runtime.outputs import check_output_file

    check_output_file(output, [input_path], overwrite)
    if down_path is not None or reverse_down:
        from calib.errors import CalibError
        from calib.io.csv_import import pulse_response_from_two_files

        if _kinds()[kind] != "pulse_response" or down_path is None:
            raise CalibError("--down FILE (and --reverse-down) need --kind pulse-response")
        check_output_file(output, [input_path, down_path], overwrite)
        data = pulse_response_from_two_files(
            input_path, down_path, units, reverse_down, drop_invalid, round_pulses
        )
    else:
        data = campaign_from_csv(input_path, _kinds()[kind], units, drop_invalid, round_pulses)
    path = write_campaign(output, data, overwrite=overwrite)
    click.echo(
        f"imported {data.attrs['rows_imported']} rows of {data.n_devices} devices "
        f"({kind}) into {path}"
    )
    for reason, count in data.attrs.get("dropped_rows", {}).items():
        click.echo(f"dropped {count} row(s): {reason}", err=True)
    if data.attrs.get("pulses_rounded"):
        r = data.attrs["pulses_rounded"]
        change = r["largest_change"]
        click.echo(
            f"rounded the pulse count of {r['rows']} row(s) (largest change {change:.3g})",
            err=True,
        )
    if data.attrs.get("ignored_columns"):
        click.echo(f"ignored columns: {', '.join(data.attrs['ignored_columns'])}", err=True)
