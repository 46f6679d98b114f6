"""``calib formats``: where the file-format and command-set references are installed."""

from __future__ import annotations

from importlib import resources

import click

__all__ = ["REFERENCES", "formats_command", "reference_path"]

#: name -> (package, path inside it, what it documents)
REFERENCES = {
    "dataset": ("calib", "docs/FORMAT.md", "dataset files: HDF5 layout, CSV import columns"),
    "preset": ("calib", "docs/PRESET.md", "preset JSON: device, pcm, uncertainty, provenance"),
    "bench": ("calib", "docs/BENCH.md", "bench file (instruments, routing, limits), custom chips"),
    "commands": (
        "instruments",
        "emulator/COMMANDS.md",
        "chip command set (SCPI) of the emulator and of chips that speak it",
    ),
}


def reference_path(name: str) -> str:
    """Installed location of reference ``name`` (a key of :data:`REFERENCES`)."""
    package, path, _ = REFERENCES[name]
    return str(resources.files(package).joinpath(path))


@click.command("formats")
@click.argument("name", required=False, type=click.Choice(sorted(REFERENCES)))
def formats_command(name: str | None) -> None:
    """List the format and command references shipped with the package, or print one.

    NAME: dataset (datasets/FORMAT.md), preset (datasets/PRESET.md), bench
    (datasets/BENCH.md) or commands (instruments/emulator/COMMANDS.md).
    """
    if name is not None:
        package, path, _ = REFERENCES[name]
        click.echo(resources.files(package).joinpath(path).read_text(encoding="utf-8"), nl=False)
        return
    for key, (_, _, what) in REFERENCES.items():
        click.echo(f"{key:9s} {reference_path(key)}")
        click.echo(f"{'':9s} {what}")
    click.echo("print one with 'calib formats NAME'")
