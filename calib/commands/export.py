"""``calib export PRESET --to aihwkit|python``: hand a calibrated device to aihwkit."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("export")
@click.argument("preset_path", metavar="PRESET", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "target",
    type=click.Choice(["aihwkit", "python"]),
    required=True,
    help="aihwkit: JSON with the device class and constructor fields; python: a snippet.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file (required for --to aihwkit; --to python prints when omitted).",
)
@click.option(
    "--scale",
    "scale_s",
    type=float,
    default=None,
    help="Conductance per unit weight (default max(w_max, -w_min): bounds at most ±1).",
)
def export(preset_path: Path, target: str, output: Path | None, scale_s: float | None) -> None:
    """Export the device model of PRESET to aihwkit."""
    from calib.errors import CalibError
    from calib.export import aihwkit_device, python_snippet
    from calib.presets import load_preset

    exported = aihwkit_device(load_preset(preset_path), scale_s=scale_s)
    if target == "aihwkit":
        if output is None:
            raise CalibError("calib export --to aihwkit needs -o/--output FILE")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(exported, indent=2) + "\n")
        cls = exported["device"]["class"]
        click.echo(f"{cls} with {len(exported['device']['parameters'])} fields written to {output}")
        return
    code = python_snippet(exported)
    if output is None:
        click.echo(code, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(code)
        click.echo(f"aihwkit snippet written to {output}")
