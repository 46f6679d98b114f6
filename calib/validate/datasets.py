"""Classification data sets for validation by inference: names, shapes, train/test splits.

* ``digits``: scikit-learn's 8x8 handwritten digits (shipped with scikit-learn), scaled to
  [0, 1], stratified 75/25 split by ``seed``
  (:func:`calib.validate.in_memory_training.load_digits_split`).
* ``mnist1d``: MNIST-1D (Greydanus 2020), 40-sample 1-D signals of 10 classes, generated
  procedurally and offline by the ``mnist1d`` package (``make_dataset`` with its published
  default arguments: 5,000 samples, 4,000 train / 1,000 test, its own seed 42). The package's
  ``get_dataset`` would download a pickle and is never called.

Every split is returned as float32 feature tensors ``(n, n_features)`` and int64 labels.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np
import torch

from calib.errors import CalibError
from calib.validate.in_memory_training import Split, load_digits_split

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """Shape of a data set: features per sample, their 2-D image layout, and classes."""

    name: str
    n_features: int
    image_shape: tuple[int, int]  # (height, width) of the 1-channel image a CNN sees
    n_classes: int
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", 64, (8, 8), 10, "scikit-learn 8x8 digits, 1,797 images"),
    "mnist1d": DatasetInfo("mnist1d", 40, (1, 40), 10, "MNIST-1D, 5,000 signals of 40 samples"),
}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; a one-line :class:`CalibError` if unknown."""
    try:
        return DATASETS[name]
    except KeyError:
        raise CalibError(
            f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}"
        ) from None


def load_dataset(name: str, seed: int = 0) -> Split:
    """Train/test split of data set ``name`` (features float32, labels int64).

    ``seed`` chooses the digits split; MNIST-1D has one fixed published split (its own
    generator seed), so ``seed`` does not change it.
    """
    dataset_info(name)
    if name == "digits":
        return load_digits_split(seed)
    return _mnist1d_split()


@functools.lru_cache(maxsize=1)
def _mnist1d_split() -> Split:
    """MNIST-1D generated with the package's default arguments (about 1 s, cached)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:  # pragma: no cover - a dependency of the project
        raise CalibError("the mnist1d package is not installed (pip install mnist1d)") from None
    np_state, py_state = np.random.get_state(), random.getstate()
    try:  # make_dataset seeds numpy's and Python's global generators: restore them after
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    f32 = torch.float32
    return Split(
        torch.tensor(np.asarray(data["x"]), dtype=f32),
        torch.tensor(np.asarray(data["y"]), dtype=torch.int64),
        torch.tensor(np.asarray(data["x_test"]), dtype=f32),
        torch.tensor(np.asarray(data["y_test"]), dtype=torch.int64),
    )
