"""Dataset I/O: the HDF5 campaign format and loaders to pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calib.io.hdf5 import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CampaignWriter,
    PulseResponseData,
    open_dataset,
    read_pulse_response,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CampaignWriter",
    "PulseResponseData",
    "load",
    "open_dataset",
    "read_pulse_response",
]


def load(path: str | Path) -> dict[str, pd.DataFrame]:
    """Every campaign of a dataset file as a tidy DataFrame (one row per read).

    Pulse response columns: ``device``, ``row``, ``col``, ``step``, ``pulse``, ``time``
    (seconds since the campaign started), ``conductance`` (siemens).
    """
    out: dict[str, pd.DataFrame] = {}
    with open_dataset(path) as f:
        groups = list(f)
    for name in groups:
        if name == "pulse_response":
            out[name] = _pulse_response_frame(read_pulse_response(path, name))
    return out


def _pulse_response_frame(data: PulseResponseData) -> pd.DataFrame:
    n_dev, n_reads = data.conductance_s.shape
    step = np.tile(np.arange(n_reads), n_dev)
    frame = {
        "device": np.repeat(data.device_index, n_reads),
        "row": np.repeat(data.row, n_reads),
        "col": np.repeat(data.col, n_reads),
        "step": step,
        "pulse": np.tile(data.pulses, n_dev),
        "conductance": data.conductance_s.ravel(),
    }
    if data.time_s is not None:
        frame["time"] = np.tile(data.time_s, n_dev)
    return pd.DataFrame(frame)
