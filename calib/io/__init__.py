"""Dataset I/O: the HDF5 campaign format, CSV import, and loaders to pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calib.io.csv_import import (
    campaign_from_csv,
    read_campaign_any,
    read_pulse_response_any,
    read_pulse_response_csv,
)
from calib.io.hdf5 import (
    CAMPAIGNS,
    FORMAT_NAME,
    FORMAT_VERSION,
    CampaignData,
    CampaignWriter,
    PulseResponseData,
    RowSpec,
    open_dataset,
    read_campaign,
    read_pulse_response,
    write_campaign,
)

__all__ = [
    "CAMPAIGNS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CampaignData",
    "CampaignWriter",
    "PulseResponseData",
    "RowSpec",
    "campaign_from_csv",
    "load",
    "open_dataset",
    "read_campaign",
    "read_campaign_any",
    "read_pulse_response",
    "read_pulse_response_any",
    "read_pulse_response_csv",
    "tidy_frame",
    "write_campaign",
]


def load(path: str | Path) -> dict[str, pd.DataFrame]:
    """Every campaign of a dataset file as a tidy DataFrame (one row per read).

    Columns: ``device``, ``row``, ``col``, then per campaign: pulse response ``step``,
    ``pulse``, ``conductance`` (and ``time`` when recorded); drift and read noise ``step``,
    ``time``, ``conductance``, ``target``; programming ``target``, ``conductance``,
    ``iterations``, ``converged``. Conductance in siemens (or normalized, as the file says),
    time in seconds. Padding of shorter per-device sequences is not returned.
    """
    with open_dataset(path) as f:
        groups = [name for name in f if name in CAMPAIGNS]
    return {name: tidy_frame(read_campaign(path, name)) for name in groups}


def tidy_frame(data: CampaignData) -> pd.DataFrame:
    """One campaign as a tidy (long) DataFrame."""
    a = data.arrays
    n_dev = data.n_devices
    if data.campaign == "programming":
        cols = {"device": a["device_index"], "row": a["row"], "col": a["col"]}
        for name in ("target", "conductance", "iterations", "converged", "program_time"):
            if name in a:
                cols[name] = a[name]
        return pd.DataFrame(cols)
    g = a["conductance"]
    n_reads = g.shape[1]
    frame = {
        "device": np.repeat(a["device_index"], n_reads),
        "row": np.repeat(a["row"], n_reads),
        "col": np.repeat(a["col"], n_reads),
        "step": np.tile(np.arange(n_reads), n_dev),
    }
    for name in ("pulses", "time"):
        if name in a:
            col = a[name]
            frame["pulse" if name == "pulses" else name] = (
                col.ravel() if col.ndim == 2 else np.tile(col, n_dev)
            )
    frame["conductance"] = g.ravel()
    if "target" in a:
        frame["target"] = np.repeat(a["target"], n_reads)
    out = pd.DataFrame(frame)
    return out[np.isfinite(out["conductance"].to_numpy())].reset_index(drop=True)
