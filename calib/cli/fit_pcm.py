"""``calib fit pcm INPUT... -o preset.json``: fit the PCM inference-noise model."""

from __future__ import annotations

from pathlib import Path

import click

from calib.cli.option_types import number
from calib.reports.figures import figure_format_option

__all__ = ["fit_pcm_command"]


def _degree(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        degree = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not 'auto' or an integer 0..4") from None
    if not 0 <= degree <= 4:
        raise click.BadParameter(f"degree {degree} is outside 0..4")
    return degree


@click.command("pcm")
@click.argument(
    "inputs", metavar="INPUT...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT (and a non-empty report folder).")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write plots (σ_prog, ν, read noise, drift traces) to this folder.",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["programming", "drift", "read-noise"]),
    help="Campaign of each CSV input, in order (one --kind per CSV file).",
)
@click.option(
    "--units",
    type=click.Choice(["S", "mS", "uS", "nS"]),
    default="S",
    show_default=True,
    help="Conductance units of CSV inputs.",
)
@click.option(
    "--g-max",
    "g_max",
    type=number(0, min_open=True),
    help="Reference conductance g_max (S) [auto].",
)
@click.option(
    "--t0",
    "t0",
    type=number(0, min_open=True),
    help="Drift reference time t0 (s) [first drift read].",
)
@click.option(
    "--t-read",
    "t_read",
    type=number(0, min_open=True),
    default=250e-9,
    show_default=True,
    help="t_read (s).",
)
@click.option(
    "--prog-degree",
    default="auto",
    show_default=True,
    help="Programming-noise polynomial degree (0..4) or 'auto' (AIC).",
)
@click.option(
    "--prog-from",
    type=click.Choice(["auto", "programming", "drift", "both"]),
    default="auto",
    show_default=True,
    help="Campaign(s) the programming noise is fitted from.",
)
@click.option(
    "--read-noise-conductance",
    type=click.Choice(["auto", "g_prog", "g_T"]),
    default="auto",
    show_default=True,
    help="Conductance that sets Q_s: the programmed one (aihwkit code), the target, or the "
    "one the data prefer.",
)
@click.option(
    "--read-noise-method",
    type=click.Choice(["auto", "variance", "spectrum"]),
    default="auto",
    show_default=True,
    help="Read noise pooled over devices (variance), or per device from the 1/f^alpha "
    "spectrum of long evenly sampled records (spectrum); auto: spectrum when every record "
    "has >= 1024 evenly spaced reads and fewer than --min-devices devices are usable.",
)
@click.option(
    "--min-devices",
    type=click.IntRange(2),
    default=8,
    show_default=True,
    help="Usable devices a target level needs to be fitted (and the pooled read-noise fit, "
    "at least 4).",
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A preset with the true pcm section (e.g. the emulator's): print fit vs truth.",
)
@click.option(
    "--any-technology",
    is_flag=True,
    help="Fit campaigns whose instrument snapshot names another technology than PCM "
    "(refused by default).",
)
@figure_format_option
def fit_pcm_command(
    inputs: tuple[Path, ...],
    output: Path,
    report_dir: Path | None,
    kinds: tuple[str, ...],
    units: str,
    g_max: float | None,
    t0: float | None,
    t_read: float,
    prog_degree: str,
    prog_from: str,
    read_noise_conductance: str,
    read_noise_method: str,
    min_devices: int,
    truth: Path | None,
    overwrite: bool,
    any_technology: bool,
) -> None:
    """Fit PCM programming noise, drift and read noise from INPUT files into a preset.

    INPUT: HDF5 datasets holding programming, drift and/or read_noise campaigns, or CSV
    files (one campaign each, named by --kind in order). Whatever is present is fitted; the
    output says which parts could not be fitted and why, and which devices were excluded.
    """
    from calib.errors import CalibError
    from calib.fit.pcm import accuracy_table, fit_pcm_files
    from calib.presets import load_preset
    from calib.runtime.outputs import FIT_REPORT_FILES, check_output_dir, check_output_file
    from fitting.pcm import PcmFitOptions

    check_output_file(output, [*inputs, truth], overwrite)
    if report_dir is not None:
        sources = [*inputs, truth, output]
        check_output_dir(report_dir, sources, overwrite, "--report", FIT_REPORT_FILES)
    options = PcmFitOptions(
        g_max_s=g_max,
        t0_s=t0,
        t_read_s=t_read,
        prog_degree=_degree(prog_degree),
        prog_from=prog_from,
        read_noise_conductance=read_noise_conductance,
        min_devices_per_level=min_devices,
        read_noise_method=read_noise_method,
    )
    truth_section = None
    if truth is not None:
        truth_doc = load_preset(truth)
        if "pcm" not in truth_doc:
            raise CalibError(f"{truth}: has no pcm section")
        truth_section = truth_doc["pcm"]
    from calib.runtime.progress import stage_progress

    with stage_progress() as progress:  # one stage: fitting.pcm reports no finer steps
        stage = progress.add_task("fitting programming noise, drift and read noise", total=None)
        path, fit, preset = fit_pcm_files(
            inputs, output, options, kinds, units, report_dir, any_technology=any_technology
        )
        progress.update(stage, total=1, completed=1)
    for line in fit.summary():
        click.echo(line)
    click.echo(f"preset written to {path}" + (f"; plots in {report_dir}" if report_dir else ""))
    if truth_section is not None:
        _print_accuracy(accuracy_table(preset["pcm"], truth_section, _levels(fit)))


def _levels(fit) -> list[float]:
    import numpy as np

    parts = [
        p
        for p in (
            None if fit.prog is None else fit.prog.level_g_s,
            None if fit.drift is None else fit.drift.levels.g_target_s,
        )
        if p is not None
    ]
    return np.unique(np.concatenate(parts)) if parts else np.array([])


def _print_accuracy(table: dict) -> None:
    fit, truth = table["fit"], table["truth"]
    click.echo(
        "g_T (uS)  sigma_prog fit/true (uS)  mu_nu fit/true   sigma_nu fit/true   Q_s fit/true"
    )
    for k, g in enumerate(table["g_target_s"]):
        click.echo(
            f"{g * 1e6:8.3f}  {fit['sigma_prog_s'][k] * 1e6:7.4f} / "
            f"{truth['sigma_prog_s'][k] * 1e6:7.4f}"
            f"      {fit['mu_nu'][k]:.4f} / {truth['mu_nu'][k]:.4f}"
            f"  {fit['sigma_nu'][k]:.4f} / {truth['sigma_nu'][k]:.4f}"
            f"     {fit['q_s'][k]:.4f} / {truth['q_s'][k]:.4f}"
        )
