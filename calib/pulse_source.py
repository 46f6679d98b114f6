"""Pulse-response traces read from an HDF5 dataset a piece at a time (for chunked fits).

:class:`HDF5PulseSource` is a :class:`fitting.chunked.DeviceSource` that pickles as its
path: a task sent to a Dask worker carries (file, device rows, options) and the worker
reads its rows itself (h5py, ``locking=False``). Only the device addresses are read up
front; the conductance matrix (10⁵-10⁶ devices x 10³ reads) is never loaded whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calib.errors import CalibError
from calib.io.checks import check_campaign_values, check_unique_ids
from calib.io.hdf5 import UNITS, open_dataset
from fitting.traces import PulseTraces

__all__ = ["HDF5PulseSource"]

GROUP = "pulse_response"
DENSE_READ = 4  # read the whole span of rows when it is at most this many times the rows


class HDF5PulseSource:
    """The pulse-response devices of ``path``; checked on creation without reading traces."""

    def __init__(self, path: str | Path, group: str = GROUP) -> None:
        self.path = str(path)
        self.group = group
        self.source = self.path
        with open_dataset(path) as f:
            if group not in f:
                raise CalibError(f"{path}: has no {group!r} group (groups: {sorted(f)})")
            g = f[group]
            for name in ("conductance", "pulses", "device_index"):
                if name not in g:
                    raise CalibError(f"{path}: {group}/{name} is missing")
            status = g.attrs.get("status")
            status = status.decode() if isinstance(status, bytes) else status
            if status != "complete":
                raise CalibError(
                    f"{path}: campaign status is {status!r}, not 'complete'; resume it first"
                )
            unit = g["conductance"].attrs.get("units")
            unit = unit.decode() if isinstance(unit, bytes) else unit
            if unit not in UNITS["conductance"]:
                raise CalibError(
                    f"{path}: {group}/conductance has units {unit!r}; "
                    f"expected one of {UNITS['conductance']}"
                )
            self.units = str(unit)
            shape = g["conductance"].shape
            pshape = g["pulses"].shape
            n = g["device_index"].shape[0]
            if len(shape) != 2 or shape[0] != n:
                raise CalibError(
                    f"{path}: {group}/conductance must be (devices, reads), got {shape}"
                )
            if pshape not in ((shape[1],), shape):
                raise CalibError(
                    f"{path}: {group}/pulses shape {pshape} does not match conductance {shape}"
                )
            for name in ("conductance", "pulses", "device_index"):
                if g[name].dtype.kind not in "biuf":
                    raise CalibError(
                        f"{path}: {group}/{name} has non-numeric type {g[name].dtype} "
                        "(numbers expected)"
                    )
            ids = np.asarray(g["device_index"][()], dtype=np.int64)
            check_unique_ids(ids, group, path)  # over the whole file; values per piece
            self.shape = (int(shape[0]), int(shape[1]))
            self.attrs = {
                k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()
            }
        self._ids: np.ndarray | None = None
        self._pulses: np.ndarray | None = None

    # pickled as the path: workers open the file themselves
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ids"] = state["_pulses"] = None
        return state

    @property
    def n_devices(self) -> int:
        return self.shape[0]

    @property
    def device_ids(self) -> np.ndarray:
        if self._ids is None:
            with self._open() as f:
                self._ids = np.asarray(f[self.group]["device_index"][()], dtype=np.int64)
        return self._ids

    def _open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r", locking=False)
        except OSError as exc:
            raise CalibError(f"{self.path}: cannot be read ({exc})") from None

    def read(self, rows: np.ndarray | slice) -> PulseTraces:
        """Traces of the devices ``rows`` (a slice or increasing row numbers)."""
        with self._open() as f:
            g = f[self.group]
            try:
                cond = _rows(g["conductance"], rows)
                ids = _rows(g["device_index"], rows).astype(np.int64)
                pds = g["pulses"]
                if pds.ndim == 1:
                    if self._pulses is None:
                        self._pulses = np.asarray(pds[()])
                    pulses = self._pulses
                else:
                    pulses = _rows(pds, rows)
            except OSError as exc:
                raise CalibError(f"{self.path}: data cannot be read (truncated? {exc})") from None
        return _traces(cond, pulses, ids, self.path, self.units)


def _rows(ds: h5py.Dataset, rows: np.ndarray | slice) -> np.ndarray:
    if isinstance(rows, slice):
        return np.asarray(ds[rows])
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.asarray(ds[0:0])
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo <= DENSE_READ * rows.size:  # one contiguous read, then pick
        return np.asarray(ds[lo:hi])[rows - lo]
    return np.asarray(ds[rows])  # h5py point selection (increasing rows)


def _traces(g: np.ndarray, pulses: np.ndarray, ids: np.ndarray, path: str, units: str):
    """PulseTraces of one piece, after the checks every reader applies (calib.io.checks)."""
    if not np.issubdtype(g.dtype, np.floating):
        g = g.astype(np.float64)
    arrays = {"device_index": ids, "conductance": g, "pulses": pulses}
    check_campaign_values(GROUP, arrays, {"conductance": units}, path)
    out = object.__new__(PulseTraces)
    out.conductance_s = g
    out.pulses = pulses.astype(np.int64)
    out.device_ids = ids
    out.source = path
    out.units = units
    return out
