"""``calib fit ...``: fit measured traces into presets."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def fit() -> None:
    """Fit measured traces into device models (write preset JSON)."""


@fit.command("pulse-response")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=click.Choice(["soft-bounds"]),
    default="soft-bounds",
    show_default=True,
    help="Device family to fit.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def fit_pulse_response_cmd(input_path: Path, model: str, output: Path) -> None:
    """Fit the pulse-response campaign of INPUT (an HDF5 dataset) into a preset."""
    from calib.fit_commands import fit_pulse_response_file

    path, result = fit_pulse_response_file(input_path, output, model=model)
    click.echo(
        f"fitted {result.n_devices - sum(result.excluded.values())} of {result.n_devices} devices "
        f"(excluded: {result.excluded}); preset written to {path}"
    )
