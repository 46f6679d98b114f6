"""The ``calib`` command line: characterize, fit, and validate AIMC devices.

Every command that talks to a chip takes ``--resource`` (any VISA resource string); without
it the embedded emulated chip is started on a free loopback port. Errors the user can fix
are printed as one line on stderr with a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from calib._version import __version__
from calib.cli.bench import bench as bench_group
from calib.cli.demo import demo as demo_command
from calib.cli.emulator import emulator as emulator_group
from calib.cli.export import export as export_command
from calib.cli.fit import fit as fit_group
from calib.cli.fit import fit_many_alias
from calib.cli.formats import formats_command
from calib.cli.import_csv import import_group
from calib.cli.measure import measure as measure_group
from calib.cli.validate import validate_command
from calib.errors import CalibError
from calib.runtime.invocation import set_command

log = logging.getLogger("calib")


VERBOSE_HELP = "Log progress details and every instrument exchange (SCPI, truncated)."


def _set_verbose(ctx: click.Context, param: click.Parameter, verbose: bool) -> None:
    """``-v`` anywhere on the command line: INFO logs, and the SCPI traffic at DEBUG."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if verbose:
        root.setLevel(logging.INFO)
        logging.getLogger("instruments.traffic").setLevel(logging.DEBUG)
    elif ctx.parent is None:  # the group's own default; a subcommand never lowers it
        root.setLevel(logging.WARNING)


def _verbose_option() -> click.Option:
    return click.Option(
        ["-v", "--verbose"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_verbose,
        help=VERBOSE_HELP,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="calib")
def cli() -> None:
    """Hardware-in-the-loop calibration of analog in-memory computing devices.

    Characterize a chip (measure), fit device models (fit), export presets
    (export) and check them by simulated and chip-in-the-loop inference (validate, demo).
    Without --resource, commands use the embedded emulated chip. `calib formats` shows
    where the file-format and command references are.
    """


# --------------------------------------------------------------------------- commands
# Each area of the toolkit owns one module under calib/cli/.
cli.add_command(demo_command, "demo")
cli.add_command(emulator_group, "emulator")
cli.add_command(measure_group, "measure")
cli.add_command(fit_group, "fit")
cli.add_command(import_group, "import")
cli.add_command(export_command, "export")
cli.add_command(fit_many_alias, "fit-many")  # old name of `calib fit many`, hidden
cli.add_command(validate_command, "validate")
cli.add_command(bench_group, "bench")
cli.add_command(formats_command, "formats")


def _add_verbose(command: click.Command) -> None:
    """``-v/--verbose`` on every command and group, so it may follow the subcommand too."""
    command.params.append(_verbose_option())
    for sub in getattr(command, "commands", {}).values():
        _add_verbose(sub)


_add_verbose(cli)


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, non-zero exit codes."""
    from calib.runtime.installation import check_installation
    from fitting.traces import FitInputError
    from instruments.visa_transport import InstrumentError

    set_command(["calib", *(sys.argv[1:] if argv is None else argv)])
    try:
        check_installation()
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
    except Exception as exc:  # a bug, not a user error: one line, traceback only on request
        if logging.getLogger().isEnabledFor(logging.INFO):
            log.exception("internal error")
        click.echo(
            f"calib: internal error: {type(exc).__name__}: {exc} (rerun with -v for details)",
            err=True,
        )
        return 3
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
