"""The HDF5 dataset format (``datasets/FORMAT.md``): writer with per-chunk flushes, and reader.

One group per campaign. Rows are devices, columns are reads. Data are appended as they
arrive and the file is flushed after every chunk, with the group's ``status`` attribute
saying whether the campaign is ``running``, ``complete`` or ``interrupted``; a file left
by a crash therefore holds every chunk measured before it, marked as not complete.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calib._version import __version__
from calib.errors import CalibError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CampaignWriter",
    "PulseResponseData",
    "open_dataset",
    "read_pulse_response",
]

FORMAT_NAME = "aimc-calib-dataset"
FORMAT_VERSION = 1


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class CampaignWriter:
    """Appends device chunks of one campaign group to an HDF5 file.

    ``reads_per_device`` fixes the number of columns of ``conductance``; ``columns`` are the
    per-read arrays (``pulses``, ``time``) written once at creation.
    """

    def __init__(
        self,
        path: str | Path,
        campaign: str,
        reads_per_device: int,
        columns: dict[str, np.ndarray],
        attrs: dict[str, Any],
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = "w" if overwrite or not self.path.exists() else "a"
        try:
            self.file = h5py.File(self.path, mode)
        except OSError as exc:
            raise CalibError(f"{self.path}: cannot open for writing ({exc})") from None
        root = self.file.attrs
        root["format"] = FORMAT_NAME
        root["format_version"] = FORMAT_VERSION
        root["software_version"] = __version__
        if campaign in self.file:
            raise CalibError(f"{self.path}: already holds a {campaign!r} group")
        g = self.file.create_group(campaign)
        self.group = g
        g.attrs["campaign"] = campaign
        g.attrs["status"] = "running"
        g.attrs["start_time"] = _now()
        g.attrs["software_version"] = __version__
        for key, value in attrs.items():
            g.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
        chunk_rows = 64
        g.create_dataset(
            "conductance",
            shape=(0, reads_per_device),
            maxshape=(None, reads_per_device),
            dtype="f4",
            chunks=(chunk_rows, min(reads_per_device, 4096)),
        )
        g["conductance"].attrs["units"] = "S"
        for name in ("device_index", "row", "col"):
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
        g.create_dataset("start_time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
        g["start_time"].attrs["units"] = "s"
        for name, values in columns.items():
            g.create_dataset(name, data=values)
        if "time" in g:
            g["time"].attrs["units"] = "s"
        if "pulses" in g:
            g["pulses"].attrs["units"] = "pulses (signed count before each read)"
        self.file.flush()

    @property
    def n_devices(self) -> int:
        return int(self.group["conductance"].shape[0])

    def append(
        self,
        conductance_s: np.ndarray,
        device_index: np.ndarray,
        shape: tuple[int, int],
        start_time_s: float,
    ) -> None:
        """Append a chunk: ``conductance_s`` is ``(n_chunk, reads_per_device)``."""
        g = self.group
        n0 = self.n_devices
        n = conductance_s.shape[0]
        g["conductance"].resize(n0 + n, axis=0)
        g["conductance"][n0:] = conductance_s
        rows, cols = np.divmod(np.asarray(device_index), shape[1])
        for name, values in (("device_index", device_index), ("row", rows), ("col", cols)):
            g[name].resize(n0 + n, axis=0)
            g[name][n0:] = values
        g["start_time"].resize(n0 + n, axis=0)
        g["start_time"][n0:] = start_time_s
        self.file.flush()

    def finish(self, status: str = "complete") -> None:
        """Set the final status and end time, and close the file."""
        if not self.file:
            return
        self.group.attrs["status"] = status
        self.group.attrs["end_time"] = _now()
        self.file.flush()
        self.file.close()

    def __enter__(self) -> CampaignWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.finish("complete")
        else:
            self.finish("interrupted")


# --------------------------------------------------------------------------- reading
class PulseResponseData:
    """A pulse-response campaign read back from a file."""

    def __init__(self, group: h5py.Group, source: str) -> None:
        self.source = source
        self.conductance_s = np.asarray(group["conductance"][()], dtype=np.float64)
        self.pulses = np.asarray(group["pulses"][()], dtype=np.int64)
        self.time_s = np.asarray(group["time"][()]) if "time" in group else None
        self.device_index = np.asarray(group["device_index"][()])
        self.row = np.asarray(group["row"][()])
        self.col = np.asarray(group["col"][()])
        self.attrs = {k: _attr(v) for k, v in group.attrs.items()}


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_dataset(path: str | Path) -> h5py.File:
    """Open a dataset file for reading, checking that it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CalibError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CalibError(f"{path}: not a readable HDF5 file ({exc})") from None
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT_NAME:
        f.close()
        raise CalibError(f"{path}: not an {FORMAT_NAME} file (format attribute is {fmt!r})")
    version = int(f.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        f.close()
        raise CalibError(
            f"{path}: format version {version} is newer than supported ({FORMAT_VERSION})"
        )
    return f


def read_pulse_response(path: str | Path, group: str = "pulse_response") -> PulseResponseData:
    """Read a pulse-response campaign, validating shapes and units."""
    with open_dataset(path) as f:
        if group not in f:
            raise CalibError(f"{path}: has no {group!r} group (groups: {sorted(f)})")
        g = f[group]
        for name in ("conductance", "pulses", "device_index"):
            if name not in g:
                raise CalibError(f"{path}: {group}/{name} is missing")
        units = g["conductance"].attrs.get("units")
        if isinstance(units, bytes):
            units = units.decode()
        if units != "S":
            raise CalibError(f"{path}: {group}/conductance has units {units!r}; expected 'S'")
        if g["conductance"].ndim != 2 or g["conductance"].shape[1] != g["pulses"].shape[0]:
            raise CalibError(
                f"{path}: {group}/conductance shape {g['conductance'].shape} does not match "
                f"{g['pulses'].shape[0]} pulses"
            )
        return PulseResponseData(g, str(path))
