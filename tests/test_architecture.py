"""The layers import one way: simulator <- fitting <- calib, instruments <- calib."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "simulator": {"fitting", "calib", "instruments"},
    "fitting": {"calib", "instruments"},
    "instruments": {"fitting", "calib", "simulator"},
    "calib": set(),
}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_layer_direction(package: str) -> None:
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        bad = _imported_top_levels(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("package", "must_not_load"),
    [("instruments", {"fitting", "calib"}), ("simulator", {"fitting", "calib", "instruments"})],
)
def test_importing_a_layer_does_not_load_higher_layers(package: str, must_not_load: set) -> None:
    code = (
        f"import sys, {package}; "
        f"print(','.join(sorted(m for m in {sorted(must_not_load)!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert out == ""


def test_datasets_is_not_a_python_package() -> None:
    assert not (ROOT / "datasets" / "__init__.py").exists()
