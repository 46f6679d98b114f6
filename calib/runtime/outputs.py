"""The one guard every writer calls before writing: nothing is overwritten by surprise.

Rules, for every command that writes (``-o``, ``--report``):

* an output that exists is replaced only with ``--overwrite``;
* an output is never one of the command's own inputs, even with ``--overwrite`` (compared
  by resolved path and, when both exist, by ``os.path.samefile``, so links and ``./x``
  spellings are caught);
* an output folder may hold other files; a file the command writes there (named by the
  command's ``writes`` patterns, e.g. ``summary.md``, ``*.png``) that exists already needs
  ``--overwrite``, and an input of that name is refused. A folder whose files are not
  named is treated as all-or-nothing: non-empty needs ``--overwrite`` and may then hold
  no input.

Each violation is a :class:`CalibError` with one line naming the file.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path

from calib.errors import CalibError

__all__ = [
    "FIT_MANY_FILES",
    "FIT_REPORT_FILES",
    "VALIDATE_FILES",
    "check_output_dir",
    "check_output_file",
    "same_file",
]

FIGURES = ("*.png", "*.pdf", "*.svg")
#: Files a ``--report`` folder of ``calib fit`` receives (pulse-response and PCM reports).
FIT_REPORT_FILES = (*FIGURES, "summary.md", "summary.json")
#: Files ``calib fit-many`` writes into its output folder.
FIT_MANY_FILES = ("presets/*", "wafer_*")
#: Files ``calib validate`` writes into its output folder.
VALIDATE_FILES = (*FIGURES, "report.json", "report.md", "network.pt")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (links and relative spellings too)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inputs(inputs: Iterable[str | Path | None]) -> list[Path]:
    return [Path(p) for p in inputs if p is not None and str(p) != ""]


def check_output_file(
    output: str | Path,
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
    option: str = "-o",
) -> Path:
    """Refuse to write file ``output`` over an input, or over anything without ``overwrite``."""
    output = Path(output)
    for source in _inputs(inputs):
        if same_file(output, source):
            raise CalibError(
                f"{output}: {option} names the input file {source}; "
                "write the output to another file (--overwrite never replaces an input)"
            )
    if output.is_dir():
        raise CalibError(f"{output}: {option} names a folder; give a file name")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise CalibError(f"{output}: exists; pass --overwrite to replace it")
    return output


def check_output_dir(
    output: str | Path,
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
    option: str = "-o",
    writes: tuple[str, ...] | None = None,
) -> Path:
    """Refuse to write into folder ``output`` over files (without ``overwrite``) or over an
    input (ever), or if it is a file. ``writes``: patterns (relative to the folder) of the
    files the command writes there."""
    output = Path(output)
    sources = _inputs(inputs)
    for source in sources:
        if same_file(output, source):
            raise CalibError(f"{output}: {option} names the input {source}; choose a new folder")
    if output.exists() and not output.is_dir():
        raise CalibError(f"{output}: {option} must be a folder, but a file of that name exists")
    if not output.is_dir() or not any(output.iterdir()):
        return output
    if writes is not None:
        _check_named_files(output, sources, overwrite, writes)
        return output
    if not overwrite:
        raise CalibError(
            f"{output}: folder exists and is not empty; pass --overwrite to write into it"
        )
    root = output.resolve()
    for source in sources:
        if source.resolve().is_relative_to(root):
            raise CalibError(
                f"{output}: holds the input {source}, which writing this folder could replace; "
                "choose another folder"
            )
    return output


def _written(relative: str, writes: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in writes)


def _check_named_files(
    output: Path, sources: list[Path], overwrite: bool, writes: tuple[str, ...]
) -> None:
    root = output.resolve()
    for source in sources:
        resolved = source.resolve()
        if resolved.is_relative_to(root) and _written(
            resolved.relative_to(root).as_posix(), writes
        ):
            raise CalibError(
                f"{output}: the command writes {resolved.relative_to(root).as_posix()} there, "
                f"which is the input {source}; choose another folder"
            )
    if overwrite:
        return
    for path in sorted(output.rglob("*")):
        relative = path.relative_to(output).as_posix()
        if path.is_file() and _written(relative, writes):
            raise CalibError(f"{output / relative}: exists; pass --overwrite to replace it")
