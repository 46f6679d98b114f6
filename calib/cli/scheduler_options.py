"""``--scheduler`` / ``--workers`` options shared by the commands that distribute work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["scheduler_options"]


def scheduler_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--scheduler SPEC`` and ``--workers N`` (see :mod:`calib.runtime.distributed`)."""
    func = click.option(
        "--workers",
        type=click.IntRange(1),
        default=None,
        help="Worker processes of a local Dask cluster (implies --scheduler local).",
    )(func)
    func = click.option(
        "--dashboard",
        is_flag=True,
        expose_value=False,
        callback=_remember_dashboard,
        help="Serve the local Dask cluster's dashboard on 127.0.0.1 (a free port, printed).",
    )(func)
    return click.option(
        "--scheduler",
        default=None,
        metavar="SPEC",
        help="Run tasks on Dask: 'local' (a local cluster on this machine, loopback only, "
        "--workers processes) or tcp://HOST:PORT (an existing scheduler). A scheduler must "
        "be trusted: Dask's protocol is unauthenticated pickle, so whoever controls it runs "
        "code here. Default: in this process.",
    )(func)


def _remember_dashboard(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    from calib.runtime.distributed import DASHBOARD_META

    if value:
        ctx.meta[DASHBOARD_META] = True
