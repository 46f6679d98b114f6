"""The layers import one way: simulator <- fitting <- calib, instruments <- calib."""

from __future__ import annotations

import ast
import re
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


# --------------------------------------------------------------------------- citations
#: a citation of the research notes that were never in the repository (``../shared/data`` is
#: different: the optional real measurements that converters and skip-if tests read)
_OUTSIDE_CITATION = re.compile(r"anchors\.md|aihwkit_spec|shared/reference")
_CITED_FILES = ("*.py", "*.md", "*.toml", "*.ipynb", "*.json", "*.txt", "*.cfg")
_NOT_OURS = {".git", ".venv", "aimc_calib.egg-info", "__pycache__", ".pytest_cache"}


def _repository_text_files() -> list[Path]:
    files = []
    for pattern in _CITED_FILES:
        for path in ROOT.rglob(pattern):
            if not _NOT_OURS & set(path.relative_to(ROOT).parts):
                files.append(path)
    return files


def test_no_citation_points_outside_the_repository() -> None:
    offenders = []
    for path in _repository_text_files():
        if path.name == "test_architecture.py":
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _OUTSIDE_CITATION.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not offenders, "cite REFERENCES.md [Rn] instead:\n" + "\n".join(offenders)


def test_every_cited_reference_exists_in_references_md() -> None:
    entries = set(re.findall(r"^\*\*\[(R\d+)\]", (ROOT / "REFERENCES.md").read_text(), re.M))
    cited = {}
    for path in _repository_text_files():
        for match in re.finditer(
            r"REFERENCES\.md\)?`? \[(R\d+)\](?:-\[(R\d+)\])?", path.read_text(errors="replace")
        ):
            for ref in filter(None, match.groups()):
                cited.setdefault(ref, str(path.relative_to(ROOT)))
    missing = {ref: where for ref, where in cited.items() if ref not in entries}
    assert cited and not missing, missing


# --------------------------------------------------------------------------- the emulator
#: The emulator (``instruments/emulator/``) is a test double of a chip and a bench: production
#: code drives hardware through ``ChipInterface`` drivers and never reaches into it. The one
#: exception is ``calib``'s embedded default (``--chip emulated``, ``calib demo``, ``calib
#: emulator|bench serve``), which may *launch* an emulator through these entry points only:
EMULATOR_ENTRY_POINTS = {
    "instruments.emulator.server": {"running_emulator", "EmulatorServer"},
    "instruments.emulator.crossbar": {"EmulatedCrossbar"},  # `calib emulator serve`
    "instruments.emulator.bench": {"running_bench"},
    "instruments.emulator.bench.client": {"open_virtual_bench"},
    "instruments.emulator.physics": {"chip_truth", "load_truth_file"},  # truth to serve
}


def _emulator_imports(path: Path) -> list[tuple[str, set[str]]]:
    """Every import of ``instruments.emulator*`` in ``path`` (module level or in a function)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, {"*"}) for a in node.names if a.name.startswith("instruments.emul")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = {alias.name for alias in node.names}
            if node.module.startswith("instruments.emulator"):
                found.append((node.module, names))
            elif node.module == "instruments" and "emulator" in names:
                found.append(("instruments.emulator", {"*"}))
    return found


def test_no_production_module_imports_the_emulator_outside_its_entry_points() -> None:
    offenders = []
    for package in ("simulator", "fitting", "instruments", "calib"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if relative.parts[:2] == ("instruments", "emulator"):
                continue
            for module, names in _emulator_imports(path):
                allowed = EMULATOR_ENTRY_POINTS.get(module, set()) if package == "calib" else set()
                if not names <= allowed:
                    offenders.append(f"{relative} imports {sorted(names - allowed)} from {module}")
    assert not offenders, offenders


def test_importing_instruments_and_its_drivers_does_not_load_the_emulator() -> None:
    code = (
        "import sys, instruments, instruments.bench_chip, instruments.drivers.scpi_crossbar, "
        "instruments.drivers.keysight_b2900, instruments.drivers.keysight_33500, "
        "instruments.drivers.keysight_e5250, instruments.drivers.keithley_2600; "
        "print(','.join(m for m in sys.modules if m.startswith('instruments.emulator')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert out == ""


def test_presets_are_validated_by_one_module() -> None:
    """The preset schema and its checks live in simulator/preset_document.py (``Preset``);
    every other module builds a ``Preset`` instead of validating a document itself."""
    offenders = []
    for package in ("simulator", "fitting", "instruments", "calib"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if relative == Path("simulator/preset_document.py"):
                continue
            if "jsonschema" in _imported_top_levels(path):
                offenders.append(f"{relative} imports jsonschema")
    assert not offenders, offenders


# --------------------------------------------------------------------------- calib by job
#: ``calib/``'s folders, one per job (ARCHITECTURE.md), and the few modules at its root
CALIB_JOBS = {
    "cli": "the click commands, one module per command (calib/cli/<command>.py)",
    "campaigns": "measurement campaigns and their parameters",
    "io": "dataset files: the HDF5 format (its one reader), CSV import, the chunked source",
    "fit": "file-level fits: a dataset in, a preset out",
    "presets": "preset files, the per-device sidecar, export, the emulator's truth",
    "reports": "fit reports and figures",
    "validate": "validation by simulated and chip-in-the-loop inference",
    "runtime": "chip connection, Dask, progress, provenance, the output guard",
    "docs": "links to the shipped references",
}
CALIB_ROOT_MODULES = {"__init__", "__main__", "_version", "errors", "recipes", "demo"}


def test_every_calib_module_lives_in_the_folder_of_its_job() -> None:
    stray = []
    for path in (ROOT / "calib").rglob("*.py"):
        parts = path.relative_to(ROOT / "calib").parts
        if len(parts) == 1 and path.stem not in CALIB_ROOT_MODULES:
            stray.append(f"calib/{parts[0]}")
        elif len(parts) > 1 and parts[0] not in CALIB_JOBS:
            stray.append("/".join(("calib", *parts)))
    assert not stray, f"not in a job folder of calib/ (or its root list): {stray}"


#: production modules that open HDF5 files, and why; the campaign format has one reader
#: (``calib/io/hdf5.py``: ``CampaignFile``, ``open_dataset``); ``calib/io/pulse_source.py``
#: streams through it
HDF5_OPENERS = {
    "calib/io/hdf5.py": "the campaign format: its writer and its one reader",
    "calib/presets/sidecar.py": "the per-device sidecar of a preset (another format)",
    "calib/presets/__init__.py": "tells a sidecar from another file before writing over it",
}


def test_one_module_reads_the_hdf5_campaign_format() -> None:
    opened_in = set()
    for package in ("simulator", "fitting", "instruments", "calib"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"\bh5py\.File\(", path.read_text()):
                opened_in.add(path.relative_to(ROOT).as_posix())
    assert opened_in == set(HDF5_OPENERS), opened_in ^ set(HDF5_OPENERS)


def _leaf_commands() -> list[tuple[list[str], object]]:
    import click

    from calib.cli import cli

    def walk(command: click.Command, path: list[str]) -> list:
        if isinstance(command, click.Group):
            return [
                leaf
                for name, sub in command.commands.items()
                if not sub.hidden
                for leaf in walk(sub, [*path, name])
            ]
        return [(path, command)]

    return walk(cli, [])


#: commands whose module is their whole implementation
SELF_CONTAINED_COMMANDS = {"formats": "lists the shipped references (a dozen lines)"}


def test_each_command_is_in_the_cli_module_named_like_it_which_calls_its_implementation() -> None:
    """Two hops from a README command to its code: calib/cli/<command>.py, then what it calls.

    ``calib A B`` lives in ``calib/cli/A_B.py`` if that exists, else in ``calib/cli/A.py``;
    its callback imports its implementation from outside ``calib.cli``.
    """
    wrong = []
    for path, command in _leaf_commands():
        names = ["_".join(path).replace("-", "_"), path[0].replace("-", "_")]
        expected = next(
            (f"calib.cli.{n}" for n in names if (ROOT / "calib" / "cli" / f"{n}.py").is_file()),
            f"calib.cli.{names[0]}",
        )
        callback = command.callback
        if callback.__module__ != expected:
            wrong.append(f"calib {' '.join(path)}: in {callback.__module__}, not {expected}")
            continue
        source = (ROOT / (expected.replace(".", "/") + ".py")).read_text()
        function = next(
            node
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef) and node.name == callback.__name__
        )
        called = {
            node.module
            for node in ast.walk(function)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        implementation = {m for m in called if not m.startswith("calib.cli")}
        if not implementation and " ".join(path) not in SELF_CONTAINED_COMMANDS:
            wrong.append(f"calib {' '.join(path)}: {expected} imports no implementation")
    assert not wrong, wrong
