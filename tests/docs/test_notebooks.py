"""The tutorial notebooks: stored executed from their current code, and each runs top to bottom.

Executed with nbclient in a kernel of this interpreter (jupyter_client runs a ``python``
kernel spec with ``sys.executable``, i.e. the project's virtual environment under
``make test``), in a temporary folder so that their files do not land in the checkout.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _load_execute_script():
    """``notebooks/execute.py`` (it stores the hash of the code cells)."""
    spec = importlib.util.spec_from_file_location("notebooks_execute", NOTEBOOK_DIR / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


source_sha256 = _load_execute_script().source_sha256
CELL_TIMEOUT_S = 120  # one cell; a whole notebook takes 3-15 s on the 2-core VM


def test_the_four_tutorials_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_characterize_chip.ipynb",
        "02_fit_device_response.ipynb",
        "03_fit_pcm_drift.ipynb",
        "04_validate_by_inference.ipynb",
    ]


MAX_NOTEBOOK_BYTES = 400_000  # figures are stored scaled down (the notebooks' show())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_executed_from_its_current_code(path: Path) -> None:
    """Stored with outputs (a reader on the web sees results), from the code as it is now.

    After editing a notebook, run ``.venv/bin/python notebooks/execute.py``.
    """
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), (
        f"{path.name} is not stored executed top to bottom: run notebooks/execute.py"
    )
    stored = nb.metadata.get("aimc_calib", {}).get("source_sha256")
    assert stored == source_sha256(nb), (
        f"{path.name}: code changed since it was executed: run notebooks/execute.py"
    )
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert sum("image/png" in out.get("data", {}) for out in outputs) >= 2
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    errors = [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
        if out.output_type == "error"
    ]  # fmt: skip
    assert not errors
    images = sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert images >= 2  # every tutorial shows its figures
    assert any(tmp_path.glob("tutorial-output/*/*"))  # files went to the working folder
    kernel_python = nb.cells[-1].outputs[0]["text"].strip()
    assert Path(kernel_python).resolve() == Path(sys.executable).resolve()
