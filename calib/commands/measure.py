"""``calib measure ...``: measurement campaigns."""

from __future__ import annotations

from pathlib import Path

import click

from calib.commands.common import CHIP_KINDS, open_chip, progress_bar
from calib.errors import CalibError


@click.group()
def measure() -> None:
    """Measurement campaigns (write HDF5 datasets)."""


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
    with open_chip(resource, seed, chip) as c, progress_bar() as progress:
        click.echo(f"instrument: {c.identity()}", err=True)
        task = progress.add_task("pulse response", total=n_devices)
        path = measure_pulse_response(
            c, params, output, lambda done, total: progress.update(task, completed=done)
        )
    click.echo(f"dataset written to {path}")
