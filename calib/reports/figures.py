"""Where figures go and in which format: PNG by default, PDF or SVG for papers.

Every report saves its figures with :func:`save_figure`, which writes ``path`` with the
suffix of the current format (``--figure-format png|pdf|svg`` on the commands that write
figures, :func:`figure_format` in Python) and returns the path written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import click

__all__ = ["FORMATS", "figure_format", "figure_format_option", "figure_path", "save_figure"]

FORMATS = ("png", "pdf", "svg")
_FORMAT: ContextVar[str] = ContextVar("figure_format", default="png")


@contextlib.contextmanager
def figure_format(fmt: str) -> Iterator[None]:
    """Save figures as ``fmt`` (``png``, ``pdf``, ``svg``) inside the block."""
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r} is not one of {', '.join(FORMATS)}")
    token = _FORMAT.set(fmt)
    try:
        yield
    finally:
        _FORMAT.reset(token)


def figure_path(path: str | Path) -> Path:
    """``path`` with the suffix of the current figure format."""
    return Path(path).with_suffix("." + _FORMAT.get())


def save_figure(fig: Any, path: str | Path, **savefig: Any) -> Path:
    """Save the matplotlib figure ``fig`` at :func:`figure_path` of ``path``; returns it."""
    out = figure_path(path)
    if out.suffix != ".png":
        savefig.pop("dpi", None)  # vector formats: no raster resolution
    fig.savefig(out, **savefig)
    return out


def _set_format(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        token = _FORMAT.set(value)
        ctx.call_on_close(lambda: _FORMAT.reset(token))


def figure_format_option(func: Callable) -> Callable:
    """``--figure-format png|pdf|svg`` for a command that writes figures."""
    return click.option(
        "--figure-format",
        type=click.Choice(FORMATS),
        default=None,
        expose_value=False,
        callback=_set_format,
        help="Format of the figures [default: png; pdf or svg for papers].",
    )(func)
