"""``calib measure ...``: measurement campaigns that write HDF5 datasets.

Every campaign takes ``--resource`` (any VISA resource; default: start the embedded
emulator), ``--seed``, ``-o FILE.h5``, ``--resume`` (continue an interrupted file) and
``--overwrite``, shows a progress bar with an ETA, and logs the instrument identity.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from calib.campaigns.options import Option, cli_fields
from calib.campaigns.parameters import (
    DEFAULT_N_LEVELS,
    DriftParams,
    ProgrammingParams,
    PulseResponseParams,
    ReadNoiseParams,
)
from calib.campaigns.technology import chip_technology
from calib.cli.interruption import check_campaign_output, interrupted_message, stop_on_sigterm
from calib.cli.option_types import CHIP_KINDS, SEED, number, progress_bar
from calib.errors import CalibError
from calib.runtime.chips import open_chip

__all__ = ["campaign_fields", "campaign_options", "measure"]


@click.group()
def measure() -> None:
    """Measurement campaigns (write HDF5 datasets in the documented format)."""


def _run_options(func: Callable) -> Callable:
    """Options of every campaign run that are not campaign parameters (where, which file)."""
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


def _levels_options(func: Callable) -> Callable:
    """``--levels``/``--n-levels``: the target levels of the program-and-verify campaigns."""
    func = click.option(
        "--n-levels",
        type=click.IntRange(1, 256),
        default=DEFAULT_N_LEVELS,
        show_default=True,
        help="Target levels spread over the technology's usual range (without --levels).",
    )(func)
    return click.option(
        "--levels",
        default=None,
        help="Comma-separated target conductances in S (default: --n-levels "
        "levels spread over the technology's usual range).",
    )(func)


def _click_type(hint: Any, spec: Option) -> click.ParamType:
    """The click type of a field of type ``hint`` (``int``, ``float``, ``str``, or ``| None``)."""
    kinds = set(typing.get_args(hint)) - {type(None)} or {hint}
    if spec.choices is not None:
        return click.Choice(spec.choices)
    if kinds == {int}:
        lo = None if spec.minimum is None else int(spec.minimum)
        hi = None if spec.maximum is None else int(spec.maximum)
        return SEED if spec.flag == "--seed" else click.IntRange(lo, hi)
    if kinds == {float}:
        return number(spec.minimum, spec.maximum, min_open=spec.min_open)
    raise TypeError(f"no command-line type for {hint!r} ({spec.flag})")  # a bug: fix the field


def _old_name_key(name: str, old: str) -> str:
    return f"{name}__{old.lstrip('-').replace('-', '_')}"


def campaign_options(params_class: type) -> Callable[[Callable], Callable]:
    """Click options of the campaign parameters of ``params_class`` (:func:`cli_fields`).

    The field's default is the option's default; a ``None`` default is left to the chip's
    technology when the campaign runs.
    """
    hints = typing.get_type_hints(params_class)

    def decorate(func: Callable) -> Callable:
        options = []
        for f, spec in cli_fields(params_class):
            kind = _click_type(hints[f.name], spec)
            shown = f.default is not None
            options.append(
                click.option(
                    spec.flag,
                    f.name,
                    type=kind,
                    default=f.default,
                    show_default=shown,
                    help=spec.help(),
                )
            )
            for old in spec.old_names:  # accepted, not shown
                key = _old_name_key(f.name, old)
                options.append(click.option(old, key, type=kind, default=None, hidden=True))
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def campaign_fields(params_class: type, kw: dict[str, Any]) -> dict[str, Any]:
    """The campaign parameters among the command's values ``kw`` (old option names merged)."""
    fields: dict[str, Any] = {}
    for f, spec in cli_fields(params_class):
        value = kw[f.name]
        for old in spec.old_names:
            old_value = kw[_old_name_key(f.name, old)]
            if old_value is not None and value is not None:
                raise click.UsageError(
                    f"give {spec.flag} only (the old name {old} is the same option)"
                )
            value = old_value if value is None else value
        if spec.mirror is not None:
            fields[spec.mirror] = None if value is None else -abs(value)
            value = None if value is None else abs(value)
        fields[f.name] = value
    return fields


def _levels(text: str | None, n_levels: int, technology: str) -> tuple[float, ...]:
    from calib.campaigns.technology import default_levels

    if text is None:
        return default_levels(technology, n_levels)
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CalibError(f"--levels must be comma-separated numbers in S, got {text!r}") from None


def _run(kind: str, params_class: type, run: Callable[..., Path], kw: dict[str, Any]) -> None:
    """Open the chip, build ``params_class`` for its technology, run the campaign ``run``."""
    resource, chip, output = kw["resource"], kw["chip"], kw["output"]
    if resource is not None and chip is not None:
        raise click.UsageError(
            "--chip picks the embedded emulator's kind; with --resource the chip reports its "
            "own technology (drop --chip)"
        )
    chip = chip or "reram"
    fields = campaign_fields(params_class, kw)
    n_devices = fields["n_devices"]
    other_chip = kw["resume_on_other_chip"]
    check_campaign_output(output, kw["resume"], kw["overwrite"], other_chip, resource)
    with (
        stop_on_sigterm(),
        open_chip(resource, kind=chip, seed=fields["seed"]) as c,
        progress_bar() as progress,
    ):
        technology = chip_technology(c) or chip
        if "levels" in kw:
            fields["levels_s"] = _levels(kw["levels"], kw["n_levels"], technology)
        params = params_class.for_technology(technology, **fields)
        click.echo(f"instrument: {c.identity()}", err=True)
        task = progress.add_task(kind, total=n_devices)
        try:
            path = run(
                c,
                params,
                output,
                lambda done, total: progress.update(task, completed=done),
                resume=kw["resume"],
                overwrite=kw["overwrite"],
                resume_on_other_chip=other_chip,
            )
        except KeyboardInterrupt:
            progress.stop()
            click.echo(interrupted_message(output, n_devices), err=True)
            raise
    click.echo(f"dataset written to {path}")


@measure.command("pulse-response")
@_run_options
@campaign_options(PulseResponseParams)
def measure_pulse_response_cmd(**kw: Any) -> None:
    """N up then N down pulses with a read after each (or every k), C cycles.

    Pulse settings and train length follow the chip's technology unless given; the
    defaults cross the emulated chip kinds' whole conductance window.
    """
    from calib.campaigns import measure_pulse_response

    _run("pulse response", PulseResponseParams, measure_pulse_response, kw)


@measure.command("drift")
@_run_options
@_levels_options
@campaign_options(DriftParams)
def measure_drift_cmd(**kw: Any) -> None:
    """Program to target levels, then read at log-spaced times after programming."""
    from calib.campaigns import measure_drift

    _run("drift", DriftParams, measure_drift, kw)


@measure.command("programming")
@_run_options
@_levels_options
@campaign_options(ProgrammingParams)
def measure_programming_cmd(**kw: Any) -> None:
    """Program-and-verify statistics per target level: achieved, error, iterations."""
    from calib.campaigns import measure_programming

    _run("programming", ProgrammingParams, measure_programming, kw)


@measure.command("read-noise")
@_run_options
@_levels_options
@campaign_options(ReadNoiseParams)
def measure_read_noise_cmd(**kw: Any) -> None:
    """Program to target levels, then repeated reads per device."""
    from calib.campaigns import measure_read_noise

    _run("read noise", ReadNoiseParams, measure_read_noise, kw)
