"""``--scheduler`` / ``--workers`` options shared by the commands that distribute work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["scheduler_options"]


def scheduler_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--scheduler SPEC`` and ``--workers N`` (see :mod:`calib.distributed`)."""
    func = click.option(
        "--workers",
        type=click.IntRange(1),
        default=None,
        help="Worker processes of a local Dask cluster (implies --scheduler local).",
    )(func)
    return click.option(
        "--scheduler",
        default=None,
        metavar="SPEC",
        help="Run tasks on Dask: 'local' (a local cluster, --workers processes) or "
        "tcp://HOST:PORT (an existing scheduler). Default: in this process.",
    )(func)
