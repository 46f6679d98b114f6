"""The command line that is running, recorded by the CLI for the provenance of every file."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

__all__ = ["current_command", "set_command"]

_command: list[str] | None = None


def set_command(argv: list[str]) -> None:
    """Record the CLI invocation (``["calib", "fit", ...]``); called by ``calib.cli.main``."""
    global _command
    _command = list(argv)


def current_command() -> str:
    """The recorded CLI invocation, else this process's own command line."""
    argv = _command if _command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]]
    return shlex.join(argv)
