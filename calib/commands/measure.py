"""``calib measure ...``: measurement campaigns that write HDF5 datasets.

Every campaign takes ``--resource`` (any VISA resource; default: start the embedded
emulator), ``--seed``, ``-o FILE.h5``, ``--resume`` (continue an interrupted file) and
``--overwrite``, shows a progress bar with an ETA, and logs the instrument identity.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from calib.commands.common import CHIP_KINDS, SEED, number, open_chip, progress_bar
from calib.commands.interruption import check_campaign_output, interrupted_message, stop_on_sigterm
from calib.errors import CalibError

__all__ = ["measure"]


@click.group()
def measure() -> None:
    """Measurement campaigns (write HDF5 datasets in the documented format)."""


def _common_options(func: Callable) -> Callable:
    """Options shared by every campaign."""
    options = [
        click.option(
            "--resource", default=None, help="VISA resource string; default: embedded emulator."
        ),
        click.option(
            "--chip",
            type=click.Choice(CHIP_KINDS),
            default=None,
            help="Emulated chip kind [default: reram]; not with --resource (a chip reports "
            "its own technology).",
        ),
        click.option(
            "--seed",
            type=SEED,
            default=0,
            show_default=True,
            help="Seed of device selection (and of the embedded emulator).",
        ),
        click.option(
            "--devices",
            "n_devices",
            type=click.IntRange(1),
            default=256,
            show_default=True,
            help="Number of devices to measure.",
        ),
        click.option(
            "--selection",
            type=click.Choice(["block", "random"]),
            default="random",
            show_default=True,
            help="First devices (block) or a random sample.",
        ),
        click.option(
            "--chunk",
            "chunk_devices",
            type=click.IntRange(1),
            default=4096,
            show_default=True,
            help="Devices per chunk (written and flushed together).",
        ),
        click.option(
            "--read-voltage",
            "read_voltage_v",
            type=number(0, min_open=True),
            default=0.2,
            show_default=True,
            help="Read voltage (V).",
        ),
        click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            required=True,
            help="HDF5 file to write.",
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue an interrupted campaign in OUTPUT with the same parameters.",
        ),
        click.option(
            "--resume-on-other-chip",
            is_flag=True,
            help="With --resume: continue although the instrument's identity, technology or "
            "shape differ from the file's (recorded in the file).",
        ),
        click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _program_options(func: Callable) -> Callable:
    """Options of the campaigns that program devices to target levels first."""
    options = [
        click.option(
            "--levels",
            default=None,
            help="Comma-separated target conductances in S (default: --n-levels "
            "levels spread over the technology's usual range).",
        ),
        click.option("--n-levels", type=click.IntRange(1, 256), default=8, show_default=True),
        click.option(
            "--tolerance",
            "tolerance_s",
            type=number(0, min_open=True),
            default=None,
            help="Program-and-verify tolerance (S); default per technology "
            "(reram 0.5e-6, ecram 0.05e-6, pcm 0.25e-6).",
        ),
        click.option("--max-iterations", type=click.IntRange(1), default=100, show_default=True),
        click.option(
            "--pulse-amplitude",
            "pulse_amplitude_v",
            type=number(),
            default=None,
            help="Programming pulse amplitude (V); default per technology.",
        ),
        click.option(
            "--pulse-width",
            "pulse_width_s",
            type=number(0, min_open=True),
            default=None,
            help="Programming pulse width (s); default per technology.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _alias(kw: dict[str, Any], key: str, name: str, old_name: str) -> Any:
    """The value of option ``name`` or of its hidden old name (not both)."""
    value, old = kw[key], kw.pop(f"{key}_alias")
    if value is not None and old is not None:
        raise click.UsageError(f"give {name} only (the old name {old_name} is the same option)")
    return old if value is None else value


def _levels(text: str | None, n_levels: int, technology: str) -> tuple[float, ...]:
    from calib.campaigns.programming import default_levels

    if text is None:
        return default_levels(technology, n_levels)
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CalibError(f"--levels must be comma-separated numbers in S, got {text!r}") from None


def _run(
    kind: str,
    make_params: Callable[[str], Any],
    run: Callable[..., Path],
    resource: str | None,
    chip: str | None,
    seed: int,
    n_devices: int,
    output: Path,
    resume: bool,
    overwrite: bool,
) -> None:
    if resource is not None and chip is not None:
        raise click.UsageError(
            "--chip picks the embedded emulator's kind; with --resource the chip reports its "
            "own technology (drop --chip)"
        )
    chip = chip or "reram"
    other_chip = bool(click.get_current_context().params.get("resume_on_other_chip"))
    check_campaign_output(output, resume, overwrite, other_chip, resource)
    with (
        stop_on_sigterm(),
        open_chip(resource, seed, chip) as c,
        progress_bar() as progress,
    ):
        technology = str(c.snapshot().get("configuration", {}).get("technology", chip))
        params = make_params(technology)
        click.echo(f"instrument: {c.identity()}", err=True)
        task = progress.add_task(kind, total=n_devices)
        try:
            path = run(
                c,
                params,
                output,
                lambda done, total: progress.update(task, completed=done),
                resume=resume,
                overwrite=overwrite,
                resume_on_other_chip=other_chip,
            )
        except KeyboardInterrupt:
            progress.stop()
            click.echo(interrupted_message(output, n_devices), err=True)
            raise
    click.echo(f"dataset written to {path}")


@measure.command("pulse-response")
@_common_options
@click.option(
    "--n-up",
    type=click.IntRange(0),
    default=None,
    help="Up pulses per cycle; default per technology (reram 200, ecram 400, pcm 200).",
)
@click.option(
    "--n-down",
    type=click.IntRange(0),
    default=None,
    help="Down pulses per cycle; default per technology (reram 200, ecram 400, pcm 200).",
)
@click.option(
    "--cycles",
    type=click.IntRange(1),
    default=None,
    help="Cycles; default per technology (reram 3, ecram 2, pcm 3).",
)
@click.option(
    "--read-every",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Read after every k pulses.",
)
@click.option(
    "--pulse-amplitude",
    "amplitude",
    type=number(),
    default=None,
    help="Pulse amplitude (V); up pulses +A, down pulses -A; default per technology "
    "(reram 1.2, ecram 3.0, pcm 1.0).",
)
@click.option(
    "--pulse-width",
    "width",
    type=number(0, min_open=True),
    default=None,
    help="Pulse width (s); default per technology (reram 1e-6, ecram 10e-3, pcm 100e-9).",
)
@click.option("--amplitude", "amplitude_alias", type=number(), default=None, hidden=True)
@click.option("--width", "width_alias", type=number(0, min_open=True), default=None, hidden=True)
def measure_pulse_response_cmd(**kw: Any) -> None:
    """N up then N down pulses with a read after each (or every k), C cycles.

    Pulse settings and train length follow the chip's technology unless given; the
    defaults cross the emulated chip kinds' whole conductance window.
    """
    from calib.campaigns import PulseResponseParams, measure_pulse_response

    amplitude = _alias(kw, "amplitude", "--pulse-amplitude", "--amplitude")
    width = _alias(kw, "width", "--pulse-width", "--width")

    def make(technology: str) -> PulseResponseParams:
        return PulseResponseParams.for_technology(
            technology,
            n_devices=kw["n_devices"],
            selection=kw["selection"],
            seed=kw["seed"],
            chunk_devices=kw["chunk_devices"],
            read_voltage_v=kw["read_voltage_v"],
            n_up=kw["n_up"],
            n_down=kw["n_down"],
            cycles=kw["cycles"],
            read_every=kw["read_every"],
            amplitude_up_v=None if amplitude is None else abs(amplitude),
            amplitude_down_v=None if amplitude is None else -abs(amplitude),
            width_s=width,
        )

    _run(
        "pulse response",
        make,
        measure_pulse_response,
        kw["resource"],
        kw["chip"],
        kw["seed"],
        kw["n_devices"],
        kw["output"],
        kw["resume"],
        kw["overwrite"],
    )


def _programming_kwargs(kw: dict[str, Any], technology: str) -> dict[str, Any]:
    from calib.campaigns.programming import PROGRAM_DEFAULTS

    tol, amp, width = PROGRAM_DEFAULTS.get(technology.lower(), PROGRAM_DEFAULTS["reram"])
    for key, default in (
        ("tolerance_s", tol),
        ("pulse_amplitude_v", amp),
        ("pulse_width_s", width),
    ):
        if kw[key] is None:
            kw[key] = default
    return {
        "n_devices": kw["n_devices"],
        "selection": kw["selection"],
        "seed": kw["seed"],
        "chunk_devices": kw["chunk_devices"],
        "read_voltage_v": kw["read_voltage_v"],
        "levels_s": _levels(kw["levels"], kw["n_levels"], technology),
        "tolerance_s": kw["tolerance_s"],
        "max_iterations": kw["max_iterations"],
        "pulse_amplitude_v": kw["pulse_amplitude_v"],
        "pulse_width_s": kw["pulse_width_s"],
    }


@measure.command("drift")
@_common_options
@_program_options
@click.option(
    "--t-min",
    type=number(0, min_open=True),
    default=20.0,
    show_default=True,
    help="First read time after programming (s).",
)
@click.option(
    "--t-max",
    type=number(0, min_open=True),
    default=1e5,
    show_default=True,
    help="Last read time after programming (s).",
)
@click.option(
    "--n-times",
    type=click.IntRange(2),
    default=40,
    show_default=True,
    help="Log-spaced read times.",
)
@click.option(
    "--n-avg",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Reads averaged per time point.",
)
def measure_drift_cmd(**kw: Any) -> None:
    """Program to target levels, then read at log-spaced times after programming."""
    from calib.campaigns import DriftParams, measure_drift

    def make(technology: str) -> DriftParams:
        return DriftParams(
            **_programming_kwargs(kw, technology),
            t_min_s=kw["t_min"],
            t_max_s=kw["t_max"],
            n_times=kw["n_times"],
            n_avg=kw["n_avg"],
        )

    _run(
        "drift",
        make,
        measure_drift,
        kw["resource"],
        kw["chip"],
        kw["seed"],
        kw["n_devices"],
        kw["output"],
        kw["resume"],
        kw["overwrite"],
    )


@measure.command("programming")
@_common_options
@_program_options
@click.option(
    "--read-delay",
    type=number(0),
    default=20.0,
    show_default=True,
    help="Time after programming of the independent read (s).",
)
def measure_programming_cmd(**kw: Any) -> None:
    """Program-and-verify statistics per target level: achieved, error, iterations."""
    from calib.campaigns import ProgrammingParams, measure_programming

    def make(technology: str) -> ProgrammingParams:
        return ProgrammingParams(
            **_programming_kwargs(kw, technology), read_delay_s=kw["read_delay"]
        )

    _run(
        "programming",
        make,
        measure_programming,
        kw["resource"],
        kw["chip"],
        kw["seed"],
        kw["n_devices"],
        kw["output"],
        kw["resume"],
        kw["overwrite"],
    )


@measure.command("read-noise")
@_common_options
@_program_options
@click.option(
    "--n-reads",
    type=click.IntRange(2),
    default=200,
    show_default=True,
    help="Back-to-back reads per device.",
)
@click.option(
    "--read-delay",
    type=number(0),
    default=100.0,
    show_default=True,
    help="Wait after programming before the reads (s).",
)
def measure_read_noise_cmd(**kw: Any) -> None:
    """Program to target levels, then repeated reads per device."""
    from calib.campaigns import ReadNoiseParams, measure_read_noise

    def make(technology: str) -> ReadNoiseParams:
        return ReadNoiseParams(
            **_programming_kwargs(kw, technology),
            n_reads=kw["n_reads"],
            read_delay_s=kw["read_delay"],
        )

    _run(
        "read noise",
        make,
        measure_read_noise,
        kw["resource"],
        kw["chip"],
        kw["seed"],
        kw["n_devices"],
        kw["output"],
        kw["resume"],
        kw["overwrite"],
    )
