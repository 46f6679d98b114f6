"""Pulse-response traces read from an HDF5 dataset a piece at a time (for chunked fits).

:class:`HDF5PulseSource` is a :class:`fitting.chunked.DeviceSource` over the one reader of
the format, :class:`calib.io.hdf5.CampaignFile`: the file is checked on creation (structure,
units, status ``complete``, unique device indices, and that the pulse sequence has both
directions) without reading the conductance matrix (10⁵-10⁷ devices x 10³ reads); each
piece is value-checked as it is read. It pickles as its path: a task sent to a Dask worker
carries (file, device rows, options) and the worker reads its rows itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from calib.errors import CalibError
from calib.io.checks import check_unique_ids
from calib.io.hdf5 import CampaignFile
from fitting.traces import FitInputError, PulseTraces, check_pulse_directions

__all__ = ["HDF5PulseSource"]

GROUP = "pulse_response"


class HDF5PulseSource:
    """The pulse-response devices of ``path``; checked on creation without reading traces."""

    def __init__(self, path: str | Path, group: str = GROUP) -> None:
        self.path = str(path)
        self.group = group
        self.source = self.path
        self.file = CampaignFile(path, group, require_complete=True)
        self.units = str(self.file.units["conductance"])
        self.shape = tuple(self.file.shapes["conductance"])
        self.attrs = dict(self.file.attrs)
        ids = np.asarray(self.file.read_column("device_index"), dtype=np.int64)
        check_unique_ids(ids, group, self.path)  # over the whole file; values per piece
        self._ids: np.ndarray | None = ids
        self._pulses: np.ndarray | None = None
        if len(self.file.shapes["pulses"]) == 1:  # shared: the whole-set pulse checks once
            try:
                check_pulse_directions(self.pulses_shared(), self.path)
            except FitInputError as exc:
                raise CalibError(str(exc)) from None

    # pickled as the path and metadata: workers open the file themselves
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ids"] = state["_pulses"] = None
        return state

    @property
    def n_devices(self) -> int:
        return self.file.n_devices

    @property
    def device_ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = np.asarray(self.file.read_column("device_index"), dtype=np.int64)
        return self._ids

    def pulses_shared(self) -> np.ndarray:
        """The pulse sequence shared by all devices (1-D files only)."""
        if self._pulses is None:
            self._pulses = np.asarray(self.file.read_column("pulses"), dtype=np.int64)
        return self._pulses

    def read(self, rows: np.ndarray | slice) -> PulseTraces:
        """Traces of the devices ``rows`` (a slice or increasing row numbers), value-checked."""
        arrays = self.file.read(rows)
        g = arrays["conductance"]
        if not np.issubdtype(g.dtype, np.floating):
            g = g.astype(np.float64)
        pulses = arrays["pulses"] if arrays["pulses"].ndim == 2 else self.pulses_shared()
        return PulseTraces.piece(g, pulses, arrays["device_index"], self.path, self.units)
