"""Execute the tutorials and store them with their outputs (run after editing a notebook).

    .venv/bin/python notebooks/execute.py [NOTEBOOK ...]

Each notebook runs top to bottom in a kernel of this interpreter, in a temporary folder (its
files do not land in the checkout), and is written back with its outputs, so that a reader
on the web sees the results. Figures are shown scaled down (the notebooks' ``show``), which
keeps the files small. The SHA-256 of the code cells is stored in the notebook's metadata
(``aimc_calib.source_sha256``); ``tests/docs/test_notebooks.py`` fails when a code cell was
edited after the notebook was executed.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
CELL_TIMEOUT_S = 300


def source_sha256(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of the notebook's code cells (sources only, in order)."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode("utf-8") + b"\0")
    return digest.hexdigest()


def execute(path: Path) -> None:
    """Run ``path`` and write it back with its outputs and the hash of its code."""
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        client = NotebookClient(
            nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": tmp}}
        )
        client.execute()
    nb.metadata["aimc_calib"] = {"source_sha256": source_sha256(nb)}
    nb.metadata.pop("widgets", None)
    nbformat.validate(nb)
    nbformat.write(nb, path)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        print(f"executing {path.name}", flush=True)
        execute(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
