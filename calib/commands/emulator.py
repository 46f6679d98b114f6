"""``calib emulator ...``: run the emulated chip, export its truth."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from calib.commands.common import CHIP_KINDS
from calib.errors import CalibError


@click.group()
def emulator() -> None:
    """Run the emulated AIMC chip (a SCPI instrument on a loopback socket)."""


@emulator.command("serve")
@click.option("--chip", type=click.Choice(CHIP_KINDS), default="reram", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=5025, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Hidden chip seed.")
@click.option("--rows", type=click.IntRange(1, 4096), default=256, show_default=True)
@click.option("--cols", type=click.IntRange(1, 4096), default=256, show_default=True)
def emulator_serve(chip: str, host: str, port: int, seed: int, rows: int, cols: int) -> None:
    """Serve an emulated chip until Ctrl-C; prints 'READY <port>' when listening."""
    from instruments.emulator.crossbar import EmulatedCrossbar
    from instruments.emulator.server import EmulatorServer

    try:
        server = EmulatorServer(EmulatedCrossbar(chip, (rows, cols), seed), host, port)
    except OSError as exc:
        raise CalibError(f"emulator: {exc}") from None
    click.echo(f"READY {server.port}", err=False)
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        click.echo("emulator stopped", err=True)


@emulator.command("truth")
@click.option("--chip", type=click.Choice(CHIP_KINDS), default="reram", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def emulator_truth(chip: str, seed: int, output: Path) -> None:
    """Write the emulated chip's hidden ground truth as a preset."""
    from calib.presets import save_preset
    from calib.truth import truth_preset
    from instruments.emulated_chip import EmulatedChip
    from instruments.emulator.server import running_emulator

    with running_emulator(chip, seed=seed, shape=(8, 8)) as resource, EmulatedChip(resource) as c:
        preset = truth_preset(c)
    click.echo(f"truth preset written to {save_preset(preset, output)}")
