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
from calib.io.checks import check_pulse_sequence, check_unique_ids
from calib.io.hdf5 import CampaignFile
from fitting.screening import chunks
from fitting.traces import FitInputError, PulseTraces, check_pulse_directions

__all__ = ["HDF5PulseSource", "sample_complete_traces"]

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
            raw = np.asarray(self.file.read_column("pulses"))
            check_pulse_sequence(raw, self.path)  # a count of 0.5 must not become 0
            self._pulses = raw.astype(np.int64)
        return self._pulses

    def read(self, rows: np.ndarray | slice) -> PulseTraces:
        """Traces of the devices ``rows`` (a slice or increasing row numbers), value-checked."""
        arrays = self.file.read(rows)
        g = arrays["conductance"]
        if not np.issubdtype(g.dtype, np.floating):
            g = g.astype(np.float64)
        pulses = arrays["pulses"] if arrays["pulses"].ndim == 2 else self.pulses_shared()
        return PulseTraces.piece(g, pulses, arrays["device_index"], self.path, self.units)


def sample_complete_traces(
    path: str | Path, max_devices: int, seed: int, chunk_devices: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, dict[str, int]]:
    """Up to ``max_devices`` devices with every read finite, for a predictive check.

    Returns ``(conductance, device_ids, pulses, units, excluded)``: devices picked at random (seed
    ``seed``, in file order) among those with a complete trace and the most common pulse
    sequence, and the counts set aside. A dataset with one pulse sequence is read a chunk of
    devices at a time (one pass for the finiteness, then the picked rows); per-device
    sequences (CSV imports) are read whole.
    """
    from calib.fit.pulse_response import load_pulse_traces

    excluded: dict[str, int] = {}
    rng = np.random.default_rng(seed)
    if Path(path).suffix.lower() in (".h5", ".hdf5"):
        source = HDF5PulseSource(path)
        if len(source.file.shapes["pulses"]) == 1:
            complete = np.concatenate(
                [
                    np.all(np.isfinite(source.read(sl).conductance_s), axis=1)
                    for sl in chunks(source.n_devices, chunk_devices)
                ]
            )
            rows = np.nonzero(complete)[0]
            if (~complete).any():
                excluded["missing reads"] = int((~complete).sum())
            if rows.size > max_devices:
                rows = rows[np.sort(rng.choice(rows.size, max_devices, replace=False))]
            g = source.read(rows).conductance_s if rows.size else np.zeros((0, source.shape[1]))
            return g, source.device_ids[rows], source.pulses_shared(), source.units, excluded
    traces, _ = load_pulse_traces(path)
    g, ids, pulses = traces.conductance_s, np.asarray(traces.device_ids), traces.pulses
    if pulses.ndim == 2:  # per-device sequences: keep the most common one
        seqs, counts = np.unique(pulses, axis=0, return_counts=True)
        keep = np.all(pulses == seqs[np.argmax(counts)], axis=1)
        if (~keep).any():
            excluded["different pulse sequence"] = int((~keep).sum())
        g, ids, pulses = g[keep], ids[keep], seqs[np.argmax(counts)]
    complete = np.all(np.isfinite(g), axis=1)
    if (~complete).any():
        excluded["missing reads"] = int((~complete).sum())
        g, ids = g[complete], ids[complete]
    if g.shape[0] > max_devices:
        pick = np.sort(rng.choice(g.shape[0], max_devices, replace=False))
        g, ids = g[pick], ids[pick]
    return g, ids, pulses, traces.units, excluded
