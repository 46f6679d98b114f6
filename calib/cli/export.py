"""``calib export PRESET --to aihwkit|python``: hand a calibrated device to aihwkit."""

from __future__ import annotations

from pathlib import Path

import click

from calib.cli.option_types import number


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
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option(
    "--scale",
    "scale_s",
    type=number(0, min_open=True),
    default=None,
    help="Conductance per unit weight (default max(w_max, -w_min): bounds at most ±1).",
)
def export(
    preset_path: Path,
    target: str,
    output: Path | None,
    overwrite: bool,
    scale_s: float | None,
) -> None:
    """Export the device model and/or PCM inference-noise model of PRESET to aihwkit.

    A training preset exports its pulsed device (class + constructor fields); a preset with a
    ``pcm`` section also exports the inference noise model (``PCMLikeNoiseModel`` or its
    custom-drift variant, with constructor arguments in aihwkit's units).
    """
    from calib.errors import CalibError
    from calib.presets import json_text, load_preset
    from calib.presets.export import aihwkit_device, python_snippet
    from calib.presets.export_pcm import aihwkit_noise_model
    from calib.presets.export_pcm import python_snippet as pcm_snippet
    from calib.presets.sidecar import sidecar_path
    from calib.runtime.outputs import check_output_file

    if output is not None:  # the preset and its per-device sidecar are inputs
        check_output_file(output, [preset_path, sidecar_path(preset_path)], overwrite)
    preset = load_preset(preset_path)
    has_device = preset.kind in ("pulsed", "pulsed+pcm")
    if preset.kind == "none":
        raise CalibError(f"{preset_path}: has neither an exportable device nor a pcm section")
    exported: dict = aihwkit_device(preset, scale_s=scale_s) if has_device else {}
    if "pcm" in preset:
        exported["inference_noise_model"] = aihwkit_noise_model(preset["pcm"])
    parts = []
    if has_device:
        parts.append(
            f"{exported['device']['class']} ({len(exported['device']['parameters'])} fields)"
        )
    if "pcm" in preset:
        parts.append(exported["inference_noise_model"]["class"])
    if target == "aihwkit":
        if output is None:
            raise CalibError("calib export --to aihwkit needs -o/--output FILE")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json_text(exported, f"export of {preset_path}") + "\n")
        click.echo(f"{' and '.join(parts)} written to {output}")
        return
    json_text(exported, f"export of {preset_path}")  # refuses NaN/inf before any code
    code = python_snippet(exported) if has_device else ""
    if "pcm" in preset:
        code += ("\n" if code else "") + pcm_snippet(preset["pcm"])
    if output is None:
        click.echo(code, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(code)
        click.echo(f"aihwkit snippet ({' and '.join(parts)}) written to {output}")
