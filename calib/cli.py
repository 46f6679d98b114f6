"""The ``calib`` command line: characterize, fit, and validate AIMC devices.

Every command that talks to a chip takes ``--resource`` (any VISA resource string); without
it the embedded emulated chip is started on a free loopback port. Errors the user can fix
are printed as one line on stderr with a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from calib._version import __version__
from calib.errors import CalibError

log = logging.getLogger("calib")

CHIP_KINDS = ("reram", "ecram")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="calib")
@click.option("-v", "--verbose", is_flag=True, help="Log instrument traffic and progress details.")
def cli(verbose: bool) -> None:
    """Hardware-in-the-loop calibration of analog in-memory computing devices.

    Characterize a chip (measure), fit device models (fit), and check the fits by
    simulated training (demo). Without --resource, commands use the embedded emulated chip.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


# --------------------------------------------------------------------------- demo
@cli.command()
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of chip and training.")
@click.option(
    "--devices",
    "n_devices",
    type=click.IntRange(64, 16384),
    default=256,
    show_default=True,
    help="Number of devices to characterize.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the dataset, preset and truth files.",
)
@click.option(
    "--chip", type=click.Choice(CHIP_KINDS), default="reram", show_default=True, help="Chip kind."
)
@click.option(
    "--epochs", type=click.IntRange(1, 200), default=10, show_default=True, help="Training epochs."
)
def demo(seed: int, n_devices: int, output: Path, chip: str, epochs: int) -> None:
    """Run the whole path on the emulated chip: measure, fit, preset, train, compare.

    Starts the emulated chip on a free loopback port, measures pulse-response traces through
    PyVISA, writes them to OUTPUT/pulse_response.h5, fits a soft-bounds model into
    OUTPUT/preset.json, and trains an MLP on digits with the fitted and the true device.
    """
    from calib.demo import run_demo

    run_demo(output, seed=seed, n_devices=n_devices, chip_kind=chip, epochs=epochs)


# --------------------------------------------------------------------------- emulator
@cli.group()
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


# --------------------------------------------------------------------------- measure
@cli.group()
def measure() -> None:
    """Measurement campaigns (write HDF5 datasets)."""


@contextlib.contextmanager
def _open_chip(resource: str | None, seed: int, chip_kind: str) -> Iterator:
    from instruments.emulated_chip import EmulatedChip
    from instruments.emulator.server import running_emulator

    if resource is None:
        with running_emulator(chip_kind, seed=seed) as res, EmulatedChip(res) as chip:
            yield chip
    else:
        with EmulatedChip(resource) as chip:
            yield chip


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


@measure.command("pulse-response")
@click.option("--resource", default=None, help="VISA resource; default: embedded emulator.")
@click.option(
    "--chip",
    type=click.Choice(CHIP_KINDS),
    default="reram",
    show_default=True,
    help="Emulated chip kind when no --resource is given.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--devices", "n_devices", type=click.IntRange(1), default=256, show_default=True)
@click.option(
    "--selection", type=click.Choice(["block", "random"]), default="random", show_default=True
)
@click.option("--n-up", type=click.IntRange(0), default=200, show_default=True)
@click.option("--n-down", type=click.IntRange(0), default=200, show_default=True)
@click.option("--cycles", type=click.IntRange(1), default=3, show_default=True)
@click.option("--read-every", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--amplitude",
    type=float,
    default=1.2,
    show_default=True,
    help="Pulse amplitude (V); up pulses +A, down pulses -A.",
)
@click.option("--width", type=float, default=1e-6, show_default=True, help="Pulse width (s).")
@click.option(
    "--read-voltage", type=float, default=0.2, show_default=True, help="Read voltage (V)."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def measure_pulse_response_cmd(
    resource,
    chip,
    seed,
    n_devices,
    selection,
    n_up,
    n_down,
    cycles,
    read_every,
    amplitude,
    width,
    read_voltage,
    output,
) -> None:
    """N up then N down pulses with a read after each, for C cycles."""
    from calib.campaigns.pulse_response import PulseResponseParams, measure_pulse_response

    params = PulseResponseParams(
        n_devices=n_devices,
        selection=selection,
        n_up=n_up,
        n_down=n_down,
        cycles=cycles,
        read_every=read_every,
        amplitude_up_v=abs(amplitude),
        amplitude_down_v=-abs(amplitude),
        width_s=width,
        read_voltage_v=read_voltage,
        seed=seed,
    )
    try:
        spec_ok = params.train()
    except ValueError as exc:
        raise CalibError(f"measure pulse-response: {exc}") from None
    del spec_ok
    with _open_chip(resource, seed, chip) as c, _progress() as progress:
        click.echo(f"instrument: {c.identity()}", err=True)
        task = progress.add_task("pulse response", total=n_devices)
        path = measure_pulse_response(
            c, params, output, lambda done, total: progress.update(task, completed=done)
        )
    click.echo(f"dataset written to {path}")


# --------------------------------------------------------------------------- fit
@cli.group()
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


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, non-zero exit codes."""
    from fitting.traces import FitInputError
    from instruments.visa_transport import InstrumentError

    try:
        cli.main(args=argv, prog_name="calib", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        click.echo("calib: aborted", err=True)
        return 130
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx is not None else "calib"
        click.echo(f"{cmd}: {exc.format_message()} (see '{cmd} --help')", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"calib: {exc.format_message()}", err=True)
        return exc.exit_code
    except (CalibError, InstrumentError, FitInputError) as exc:
        click.echo(f"calib: error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("calib: interrupted", err=True)
        return 130
    except OSError as exc:
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(f"calib: error:{name} {exc.strerror or exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
