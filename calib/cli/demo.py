"""``calib demo``."""

from __future__ import annotations

from pathlib import Path

import click

from calib.cli.option_types import CHIP_KINDS, SEED


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
    """Run the whole path on an emulated chip: measure, fit, preset, then train or infer.

    ReRAM and ECRAM (training presets): pulse-response traces through PyVISA with the
    technology's pulses, a device fit (soft-bounds on ReRAM, picked by BIC on ECRAM), and an
    MLP trained on digits in memory with the fitted and with the true device. PCM (inference
    presets): programming, drift and read-noise campaigns, the PCM noise-model fit, and an
    MLP trained once and evaluated 1 s to 1 year after programming with the fitted and the
    true noise model. Files go to OUTPUT (datasets, preset.json, truth.json).
    """
    from calib.demo import run_demo

    run_demo(output, seed=seed, n_devices=n_devices, chip_kind=chip, epochs=epochs)
