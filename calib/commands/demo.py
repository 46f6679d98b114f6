"""``calib demo``."""

from __future__ import annotations

from pathlib import Path

import click

from calib.commands.common import CHIP_KINDS, SEED


@click.command()
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of chip and training.")
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
