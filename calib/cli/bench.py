"""``calib bench ...``: rehearse a bench campaign on the virtual bench; check bench files.

``calib bench serve`` serves the virtual instruments (Keysight B2900 and Keithley 2600B
SMUs, Keysight 33500B pulse generator, Keysight E5250A switch) on loopback ports and writes
the bench file for them (format: ``datasets/BENCH.md``), so ``calib measure ...
--resource bench:FILE`` or any PyVISA client can talk to them. ``calib bench check`` reads
a bench file and reports the first problem in one line (file and key).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from calib.cli.option_types import CHIP_KINDS, SEED
from calib.errors import CalibError

__all__ = ["bench"]


@click.group()
def bench() -> None:
    """A bench of instruments: serve the virtual one, check bench files."""


@bench.command("serve")
@click.option(
    "--chip",
    type=click.Choice((*CHIP_KINDS, "custom")),
    default="reram",
    show_default=True,
    help="Device kind on the virtual bench; 'custom' reads --params.",
)
@click.option(
    "--params",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Custom-chip JSON file (datasets/BENCH.md), with --chip custom.",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Hidden chip seed.")
@click.option("--rows", type=click.IntRange(1, 24), default=8, show_default=True)
@click.option("--cols", type=click.IntRange(1, 24), default=8, show_default=True)
@click.option(
    "--smu",
    type=click.Choice(("keysight_b2900", "keithley_2600")),
    default="keysight_b2900",
    show_default=True,
    help="Which virtual SMU the bench file names (both are served).",
)
@click.option(
    "--bench-file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the bench file for the served instruments.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def bench_serve(
    chip: str,
    params: Path | None,
    seed: int,
    rows: int,
    cols: int,
    smu: str,
    bench_file: Path,
    host: str,
) -> None:
    """Serve the virtual bench until Ctrl-C; prints 'READY <bench file>' when listening."""
    from instruments.emulator.bench import running_bench
    from instruments.emulator.physics import chip_truth, load_truth_file

    if (chip == "custom") != (params is not None):
        raise CalibError("--chip custom needs --params FILE, and --params needs --chip custom")
    try:
        truth = load_truth_file(params) if params is not None else chip_truth(chip)
    except ValueError as exc:
        raise CalibError(str(exc)) from None
    if bench_file.exists() and bench_file.is_dir():
        raise CalibError(f"{bench_file}: is a directory")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with running_bench(truth=truth, seed=seed, shape=(rows, cols), host=host) as res:
            res.write_description(bench_file, smu=smu)
            for role, resource in zip(
                ("B2900 SMU", "2600B SMU", "33500B pulser", "E5250A switch"), res, strict=True
            ):
                click.echo(f"{role}: {resource}", err=True)
            click.echo(f"READY {bench_file}")
            sys.stdout.flush()
            try:
                while not stop.wait(0.2):
                    pass
            except KeyboardInterrupt:
                pass
    except OSError as exc:
        raise CalibError(f"bench serve: {exc}") from None
    click.echo("virtual bench stopped", err=True)


@bench.command("check")
@click.argument("bench_file", type=click.Path(dir_okay=False, path_type=Path))
def bench_check(bench_file: Path) -> None:
    """Check a bench file without connecting; one line per verdict."""
    from instruments.bench_chip import load_bench_description

    try:
        doc = load_bench_description(bench_file)
    except ValueError as exc:
        raise CalibError(str(exc)) from None
    rows, cols = doc["_routing"].shape
    pulser = doc.get("pulser")
    limiter = doc["_limiter"].to_dict() if doc["_limiter"] else None
    click.echo(
        f"{bench_file}: ok ({rows}x{cols} crossbar, smu {doc['smu']['driver']}, "
        f"pulser {pulser['driver'] if pulser else 'none'}, series limiter {limiter})"
    )
