"""``calib emulator ...``: run the emulated chip, export its truth."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from calib.cli.option_types import CHIP_KINDS, SEED
from calib.errors import CalibError

EMULATOR_KINDS = (*CHIP_KINDS, "custom")

_chip_option = click.option(
    "--chip",
    type=click.Choice(EMULATOR_KINDS),
    default="reram",
    show_default=True,
    help="Chip kind; 'custom' reads its physics from --params.",
)
_params_option = click.option(
    "--params",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON parameter file of a custom chip: {base, response, parameters}.",
)


def _truth(chip: str, params: Path | None):
    """The hidden physics to emulate: the kind's defaults, or a custom parameter file."""
    from instruments.emulator.physics import load_truth_file

    if chip == "custom":
        if params is None:
            raise CalibError("--chip custom needs --params FILE (a JSON parameter file)")
        try:
            return load_truth_file(params)
        except ValueError as exc:
            raise CalibError(str(exc)) from None
    if params is not None:
        raise CalibError("--params is only used with --chip custom")
    return None


@click.group()
def emulator() -> None:
    """Run the emulated AIMC chip (a SCPI instrument on a loopback socket)."""


@emulator.command("serve")
@_chip_option
@_params_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=5025, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Hidden chip seed.")
@click.option("--rows", type=click.IntRange(1, 4096), default=256, show_default=True)
@click.option("--cols", type=click.IntRange(1, 4096), default=256, show_default=True)
@click.option(
    "--real-time", is_flag=True, help="Tie the chip clock to wall time (demos); default virtual."
)
def emulator_serve(
    chip: str,
    params: Path | None,
    host: str,
    port: int,
    seed: int,
    rows: int,
    cols: int,
    real_time: bool,
) -> None:
    """Serve an emulated chip until Ctrl-C; prints 'READY <port>' when listening."""
    from instruments.emulator.crossbar import EmulatedCrossbar
    from instruments.emulator.server import EmulatorServer

    instrument = EmulatedCrossbar(chip, (rows, cols), seed, truth=_truth(chip, params))
    if real_time:
        instrument.clock.set_real(True)
    try:
        server = EmulatorServer(instrument, host, port)
    except OSError as exc:
        raise CalibError(f"emulator: {exc}") from None
    click.echo(f"READY {server.port}")
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
@_chip_option
@_params_option
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def emulator_truth(
    chip: str, params: Path | None, seed: int, output: Path, overwrite: bool
) -> None:
    """Write the emulated chip's hidden ground truth as a preset."""
    from calib.presets import save_preset
    from calib.presets.truth import truth_preset
    from calib.runtime.chips import open_chip
    from calib.runtime.outputs import check_output_file

    check_output_file(output, [params], overwrite)
    truth = _truth(chip, params)
    with open_chip(None, kind=chip, seed=seed, shape=(8, 8), truth=truth) as c:
        preset = truth_preset(c)
    click.echo(f"truth preset written to {save_preset(preset, output)}")
