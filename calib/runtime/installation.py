"""Check that no other installed project provides our top-level package names.

The wheel installs four top-level packages, ``calib``, ``fitting``, ``instruments`` and
``simulator`` (the repository layout). PyPI has unrelated projects named ``calib``,
``fitting`` and ``simulator``; installed into the same environment, one would overwrite or
shadow the other. :func:`check_installation` finds such a clash by looking for another
package directory of the same name on ``sys.path`` (a few ``stat`` calls), and only then
asks :func:`importlib.metadata.packages_distributions` which distribution owns it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from calib.errors import CalibError

__all__ = ["DISTRIBUTION", "TOP_LEVEL", "check_installation", "name_clashes"]

DISTRIBUTION = "aimc-calib"
TOP_LEVEL = ("calib", "fitting", "instruments", "simulator")
_HERE = Path(__file__).resolve().parents[2]  # the folder that holds our four packages


def name_clashes(search_path: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Top-level name -> other directories on ``search_path`` that provide a package of it."""
    clashes: dict[str, list[str]] = {}
    for entry in sys.path if search_path is None else search_path:
        base = Path(entry or ".")
        for name in TOP_LEVEL:
            candidate = base / name
            init = candidate / "__init__.py"
            try:
                if not init.is_file() or candidate.resolve() == (_HERE / name).resolve():
                    continue
            except OSError:
                continue
            clashes.setdefault(name, []).append(str(candidate))
    return clashes


def _owners(name: str) -> list[str]:
    from importlib.metadata import packages_distributions

    return sorted(set(packages_distributions().get(name, [])) - {DISTRIBUTION})


def check_installation(search_path: Sequence[str] | None = None) -> None:
    """:class:`CalibError` (one line) when another package provides one of our names."""
    clashes = name_clashes(search_path)
    if not clashes:
        return
    name, where = next(iter(clashes.items()))
    owners = _owners(name)
    owner = f" (installed by {', '.join(owners)})" if owners else ""
    raise CalibError(
        f"another package named {name!r} is importable from {where[0]}{owner}; it clashes "
        f"with {DISTRIBUTION}'s top-level packages {', '.join(TOP_LEVEL)}: install "
        f"{DISTRIBUTION} in its own virtual environment (python -m venv)"
    )
