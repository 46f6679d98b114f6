"""The HDF5 dataset format (``datasets/FORMAT.md``): chunked writer with resume, and readers.

One group per campaign. Rows are devices. Every chunk of devices is appended to all row
datasets and flushed, and the file is closed between chunks, so a process killed while
measuring leaves a consistent file holding every chunk written before. The group's
``status`` attribute is ``running`` while measuring, ``complete`` at the end, and
``interrupted`` after an error; ``rows_complete`` counts the device rows safely written
(readers ignore rows beyond it). One process writes a campaign file at a time
(:class:`~calib.io.writer_lock.WriterLock`); a full disk interrupts the campaign with one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calib._version import __version__
from calib.errors import CalibError
from calib.io.checks import (
    check_campaign_values,
    check_numeric,
    check_self_contained,
)
from calib.io.writer_lock import WriterLock
from calib.presets import json_text

__all__ = [
    "CAMPAIGNS",
    "CONDUCTANCE_UNITS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CampaignData",
    "CampaignFile",
    "CampaignWriter",
    "RowSpec",
    "check_complete",
    "open_dataset",
    "read_campaign",
    "read_pulse_response",
    "write_campaign",
]

FORMAT_NAME = "aimc-calib-dataset"
FORMAT_VERSION = 1
CAMPAIGNS = ("pulse_response", "drift", "programming", "read_noise")
#: Accepted units of conductance datasets: siemens, or dimensionless normalized values.
CONDUCTANCE_UNITS = ("S", "normalized")
#: Sub-group holding the reads taken so far of a chunk still being measured (drift); not
#: part of the campaign's rows. ``--resume`` renames it ``partial_interrupted_<i>``.
PARTIAL = "partial"


def _json_attr(key: str, value: Any) -> Any:
    """An attribute value: dicts and lists as strict JSON (no NaN/Infinity, which are not
    JSON; a non-finite parameter is refused in one line naming it)."""
    if isinstance(value, dict | list):
        return json_text(value, f"attribute {key}", indent=None)
    return value


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, so a chunk is written whole.

    The handlers in place before are called afterwards with the signals that came in.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in kinds}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(caught):
            handler = old[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


class DiskFullError(CalibError):
    """The disk (or the file-size limit) is full: the campaign stops, its file stays valid."""


#: Room kept free beyond a chunk's data (HDF5 metadata, the final status attributes).
SPACE_MARGIN_BYTES = 1 << 20


def _check_space(path: Path, nbytes: int) -> None:
    """Refuse a chunk that may not fit on the disk or under the file-size limit.

    HDF5 does not recover from a failed write (the library may crash when it closes the
    file), so the space is checked before writing: twice the chunk plus a margin.
    """
    need = 2 * nbytes + SPACE_MARGIN_BYTES
    try:
        st = os.statvfs(path.parent)
        free = st.f_bavail * st.f_frsize
    except (OSError, AttributeError):
        free = None
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            room = limit - (path.stat().st_size if path.exists() else 0)
            free = room if free is None else min(free, room)
    except (ImportError, OSError, ValueError):
        pass
    if free is not None and free < need:
        raise DiskFullError(
            f"{path}: disk full ({free / 1e6:.1f} MB free, the next chunk needs about "
            f"{need / 1e6:.1f} MB); the campaign stopped and the file keeps its complete "
            "chunks (free space, then --resume)"
        )


def _is_disk_full(exc: BaseException) -> bool:
    full = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    if getattr(exc, "errno", None) in full:
        return True
    text = str(exc)
    return any(os_text in text for os_text in ("No space left", "File too large", "quota"))


@dataclass(frozen=True)
class RowSpec:
    """A per-device dataset: ``shape`` is the shape of one device's row (``()`` for scalars)."""

    shape: tuple[int, ...] = ()
    dtype: str = "f8"
    units: str | None = None


ADDRESS_ROWS = {
    "device_index": RowSpec((), "i8", None),
    "row": RowSpec((), "i8", None),
    "col": RowSpec((), "i8", None),
}


class CampaignWriter:
    """Appends device chunks of one campaign group, flushing and closing after each.

    ``rows`` declares the per-device datasets besides the addresses (``device_index``,
    ``row``, ``col``, which every campaign has). ``columns`` are written once (per-read
    arrays such as ``pulses`` or ``time``), with optional units in ``column_units``.
    """

    def __init__(
        self,
        path: str | Path,
        campaign: str,
        rows: dict[str, RowSpec],
        columns: dict[str, np.ndarray],
        attrs: dict[str, Any],
        column_units: dict[str, str] | None = None,
        overwrite: bool = False,
        chunk_rows: int = 256,
    ) -> None:
        self.path = Path(path)
        self.campaign = campaign
        self.rows = {**ADDRESS_ROWS, **rows}
        self.moved_partial: str | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = WriterLock(self.path).acquire()
        try:
            if self.path.exists() and not overwrite:
                raise CalibError(f"{self.path}: exists; use --resume to continue it or remove it")
            self._create(columns, attrs, column_units, chunk_rows)
        except BaseException:
            self.lock.release()
            raise

    def _create(
        self,
        columns: dict[str, np.ndarray],
        attrs: dict[str, Any],
        column_units: dict[str, str] | None,
        chunk_rows: int,
    ) -> None:
        campaign = self.campaign
        with self._open("w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["software_version"] = __version__
            g = f.create_group(campaign)
            g.attrs["campaign"] = campaign
            g.attrs["status"] = "running"
            g.attrs["rows_complete"] = 0
            g.attrs["start_time"] = _now()
            g.attrs["software_version"] = __version__
            for key, value in attrs.items():
                g.attrs[key] = _json_attr(key, value)
            for name, spec in self.rows.items():
                row_bytes = 8 * max(int(np.prod(spec.shape)), 1)
                rows_per_chunk = max(1, min(chunk_rows, (4 << 20) // row_bytes))
                ds = g.create_dataset(
                    name,
                    shape=(0, *spec.shape),
                    maxshape=(None, *spec.shape),
                    dtype=spec.dtype,
                    chunks=(rows_per_chunk, *spec.shape),
                )
                if spec.units:
                    ds.attrs["units"] = spec.units
            for name, values in columns.items():
                ds = g.create_dataset(name, data=values)
                if column_units and name in column_units:
                    ds.attrs["units"] = column_units[name]

    @classmethod
    def resume(
        cls,
        path: str | Path,
        campaign: str,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> CampaignWriter:
        """Reopen an unfinished campaign; rows beyond ``rows_complete`` are discarded.

        ``check(attrs)`` sees the group's attributes first and may refuse (raise): the file
        is then left exactly as it was.
        """
        path = Path(path)
        lock = WriterLock(path).acquire()
        try:
            return cls._resume(path, campaign, lock, check)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _resume(
        cls,
        path: Path,
        campaign: str,
        lock: WriterLock,
        check: Callable[[dict[str, Any]], None] | None,
    ) -> CampaignWriter:
        with open_dataset(path) as f:
            if campaign not in f:
                raise CalibError(f"{path}: has no {campaign!r} group to resume")
            g = f[campaign]
            status = _text(g.attrs.get("status"))
            if status == "complete":
                raise CalibError(f"{path}: the {campaign} campaign is already complete")
            if check is not None:
                check({k: _attr(v) for k, v in g.attrs.items()})
            rows = {
                name: RowSpec(ds.shape[1:], ds.dtype.str, _text(ds.attrs.get("units")))
                for name, ds in g.items()
                if isinstance(ds, h5py.Dataset) and ds.maxshape[0] is None
            }
        self = cls.__new__(cls)
        self.path = path
        self.campaign = campaign
        self.rows = rows
        self.lock = lock
        self.moved_partial = None
        with self._open("a") as f:
            g = f[campaign]
            done = int(g.attrs.get("rows_complete", 0))
            for name in rows:
                if g[name].shape[0] != done:
                    g[name].resize(done, axis=0)  # drop a partially written chunk
            if PARTIAL in g:  # measured data are never deleted: set aside, named
                i = 0
                while f"{PARTIAL}_interrupted_{i}" in g:
                    i += 1
                g.move(PARTIAL, f"{PARTIAL}_interrupted_{i}")
                self.moved_partial = f"/{campaign}/{PARTIAL}_interrupted_{i}"
            g.attrs["status"] = "running"
            g.attrs["resumed_time"] = _now()
        return self

    def _open(self, mode: str) -> h5py.File:
        try:
            return h5py.File(self.path, mode, locking=False)
        except OSError as exc:
            raise CalibError(f"{self.path}: cannot open for writing ({exc})") from None

    @property
    def rows_complete(self) -> int:
        with self._open("r") as f:
            return int(f[self.campaign].attrs["rows_complete"])

    def attrs(self) -> dict[str, Any]:
        """The campaign group's attributes (JSON values decoded)."""
        with self._open("r") as f:
            return {k: _attr(v) for k, v in f[self.campaign].attrs.items()}

    def append(
        self,
        device_index: np.ndarray,
        shape: tuple[int, int],
        attrs: dict[str, Any] | None = None,
        **rows: np.ndarray,
    ) -> None:
        """Append one chunk: every declared row dataset must be given, leading dim = chunk.

        ``attrs`` are group attributes written with the chunk (before it counts as complete).
        """
        device_index = np.asarray(device_index, dtype=np.int64)
        n = device_index.size
        r, c = np.divmod(device_index, shape[1])
        data = {"device_index": device_index, "row": r, "col": c, **rows}
        missing = set(self.rows) - set(data)
        extra = set(data) - set(self.rows)
        if missing or extra:
            raise ValueError(
                f"chunk rows mismatch: missing {sorted(missing)}, extra {sorted(extra)}"
            )
        for name, values in data.items():
            shape = np.shape(values)
            if shape != (n, *self.rows[name].shape):
                raise ValueError(f"{name}: chunk of shape {shape}, expected {n} rows")
        _check_space(self.path, sum(np.asarray(v).nbytes for v in data.values()))
        with self._writing("the rows written before") as (f, g, n0):
            for name, values in data.items():
                ds = g[name]
                ds.resize(n0 + n, axis=0)
                ds[n0:] = np.asarray(values)
            for key, value in (attrs or {}).items():
                g.attrs[key] = _json_attr(key, value)
            f.flush()
            # rows count only once their data are on disk
            g.attrs["rows_complete"] = n0 + n
            if PARTIAL in g:  # the chunk's partial reads are now complete rows
                del g[PARTIAL]
            f.flush()

    @contextlib.contextmanager
    def _writing(self, kept_if_unknown: str) -> Iterator[tuple[h5py.File, h5py.Group, int]]:
        """The campaign group open for writing, signals held: ``(file, group, rows_complete)``.

        A full disk (or file-size limit) becomes one :class:`DiskFullError` line saying what
        the file keeps (``kept_if_unknown`` when it failed before the row count was read).
        """
        n0 = None
        try:
            with _signals_deferred(), self._open("a") as f:
                g = f[self.campaign]
                n0 = int(g.attrs["rows_complete"])
                yield f, g, n0
        except (OSError, CalibError) as exc:
            if _is_disk_full(exc):
                kept = kept_if_unknown if n0 is None else f"{n0} device rows"
                raise DiskFullError(
                    f"{self.path}: disk full; the campaign stopped and the file keeps {kept} "
                    "(free space, then --resume)"
                ) from None
            raise

    def write_partial(
        self,
        device_index: np.ndarray,
        shape: tuple[int, int],
        attrs: dict[str, Any],
        **rows: np.ndarray,
    ) -> None:
        """Store the chunk being measured, as far as it is read, in sub-group ``partial``.

        The values replace those of an earlier call for the same chunk (same devices and
        shapes), in place; the file is flushed. ``rows_complete`` does not change, so
        readers do not see these devices; :meth:`append` of the chunk removes the group.
        """
        device_index = np.asarray(device_index, dtype=np.int64)
        r, c = np.divmod(device_index, shape[1])
        data = {"device_index": device_index, "row": r, "col": c, **rows}
        _check_space(self.path, sum(np.asarray(v).nbytes for v in data.values()))
        with self._writing("its complete chunks") as (f, g, _):
            p = g.get(PARTIAL)
            same = p is not None and all(
                name in p and p[name].shape == np.shape(v) for name, v in data.items()
            )
            if p is not None and not (same and np.array_equal(p["device_index"][()], device_index)):
                del g[PARTIAL]
                p = None
            if p is None:
                p = g.create_group(PARTIAL)
                for name, values in data.items():
                    spec = self.rows.get(name)
                    dtype = spec.dtype if spec is not None else None
                    ds = p.create_dataset(name, data=np.asarray(values, dtype=dtype))
                    if spec is not None and spec.units:
                        ds.attrs["units"] = spec.units
            else:
                for name, values in data.items():
                    p[name][...] = np.asarray(values)
            for key, value in attrs.items():
                p.attrs[key] = _json_attr(key, value)
            f.flush()

    @property
    def has_partial(self) -> bool:
        """Whether the file holds reads of an unfinished chunk (group ``partial``)."""
        with self._open("r") as f:
            return PARTIAL in f[self.campaign]

    def set_attrs(self, **attrs: Any) -> None:
        """Record extra campaign attributes (JSON for dicts and lists)."""
        with self._open("a") as f:
            g = f[self.campaign]
            for key, value in attrs.items():
                g.attrs[key] = _json_attr(key, value)

    def discard(self) -> None:
        """Remove a file this writer created that holds no device row yet."""
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self.lock.release()

    def finish(self, status: str = "complete") -> None:
        """Set the final status and end time, and give up the writer lock.

        A file that cannot take the status (a full disk) keeps ``running``, which readers and
        ``--resume`` treat like ``interrupted``.
        """
        try:
            with self._open("a") as f:
                g = f[self.campaign]
                g.attrs["status"] = status
                g.attrs["end_time"] = _now()
        except (OSError, CalibError):
            if status == "complete":
                raise
        finally:
            self.lock.release()

    def __enter__(self) -> CampaignWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self.finish("complete" if exc_type is None else "interrupted")


# --------------------------------------------------------------------------- reading
def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _attr(value: Any) -> Any:
    value = _text(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class CampaignData:
    """One campaign read back from a file: arrays by dataset name, attributes, units."""

    campaign: str
    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]
    units: dict[str, str] = field(default_factory=dict)
    source: str = "<memory>"

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def n_devices(self) -> int:
        return int(self.arrays["device_index"].shape[0])

    # convenience views used by the fitters
    @property
    def conductance_s(self) -> np.ndarray:
        return self.arrays["conductance"]

    @property
    def pulses(self) -> np.ndarray:
        return self.arrays["pulses"]

    @property
    def time_s(self) -> np.ndarray | None:
        return self.arrays.get("time")

    @property
    def device_index(self) -> np.ndarray:
        return self.arrays["device_index"]

    @property
    def row(self) -> np.ndarray:
        return self.arrays["row"]

    @property
    def col(self) -> np.ndarray:
        return self.arrays["col"]


PulseResponseData = CampaignData  # backwards-compatible name

#: Datasets every campaign group must have, and those whose units are checked.
REQUIRED = {
    "pulse_response": ("conductance", "pulses", "device_index"),
    "drift": ("conductance", "time", "target", "device_index"),
    "programming": ("conductance", "target", "device_index"),
    "read_noise": ("conductance", "time", "device_index"),
}
UNITS = {"conductance": CONDUCTANCE_UNITS, "target": CONDUCTANCE_UNITS, "time": ("s",)}


def open_dataset(path: str | Path) -> h5py.File:
    """Open a dataset file for reading, checking that it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CalibError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise CalibError(
            f"{path}: not a readable HDF5 file (truncated or corrupt? {exc})"
        ) from None
    fmt = _text(f.attrs.get("format"))
    if fmt != FORMAT_NAME:
        f.close()
        raise CalibError(f"{path}: not an {FORMAT_NAME} file (format attribute is {fmt!r})")
    try:
        version = _count_attr(f.attrs.get("format_version", 0), "format_version", path)
    except CalibError:
        f.close()
        raise
    if version > FORMAT_VERSION:
        f.close()
        raise CalibError(
            f"{path}: format version {version} is newer than supported ({FORMAT_VERSION})"
        )
    try:
        check_self_contained(f, str(path))  # no data outside the file (issue 18.12)
    except CalibError:
        f.close()
        raise
    return f


def _count_attr(value: Any, name: str, source: str | Path) -> int:
    """A bookkeeping attribute that must be a whole number >= 0 (one line otherwise)."""
    v = _attr(value)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < 0 or v != int(v):
        raise CalibError(f"{source}: attribute {name} is {v!r}; expected a whole number >= 0")
    return int(v)


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, modification time) of a file: what changes when it is replaced or
    rewritten (None if it cannot be read; opening it then says why)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def check_complete(attrs: dict[str, Any], source: str | Path, campaign: str) -> None:
    """Refuse a campaign whose ``status`` is not ``complete`` (a missing status too: every
    writer of the format records one; FORMAT.md: a file without ``complete`` is unfinished).

    The one check of "campaign complete" for every fit command.
    """
    status = attrs.get("status")
    if status != "complete":
        raise CalibError(
            f"{source}: the {campaign} campaign status is {status!r}, not 'complete'; "
            "resume it first (calib measure ... --resume)"
        )


#: datasets with one value per read, which may be shared by all devices (one dimension)
PER_READ = ("pulses", "time")
#: read the whole span of rows when it is at most this many times the rows asked for
DENSE_READ = 4


class CampaignFile:
    """One campaign group of a dataset file: checked when opened, rows read on demand.

    The one reader of the HDF5 format. Opening checks the structure without reading the
    per-device data: the group and its required datasets, numeric types, units, row counts
    (rows beyond ``rows_complete`` are left out), shapes and, with ``require_complete``,
    the status (:func:`check_complete`). :meth:`read` returns the arrays of some device rows
    after the value checks every reader applies (:mod:`calib.io.checks`); a whole campaign
    gets the whole-campaign checks too (unique indices, plausible scale, repeated traces).
    Pickles as its path and metadata (a worker reopens the file).
    """

    def __init__(self, path: str | Path, campaign: str, *, require_complete: bool = False) -> None:
        self.path = Path(path)
        self.campaign = campaign
        self._identity = _file_identity(self.path)
        with open_dataset(self.path) as f:
            if campaign not in f:
                raise CalibError(f"{path}: has no {campaign!r} group (groups: {sorted(f)})")
            g = f[campaign]
            for name in REQUIRED.get(campaign, ("device_index",)):
                if name not in g:
                    raise CalibError(f"{path}: {campaign}/{name} is missing")
                if not isinstance(g[name], h5py.Dataset):
                    raise CalibError(f"{path}: {campaign}/{name} is a group, not a dataset")
            self.attrs = {k: _attr(v) for k, v in g.attrs.items()}
            if require_complete:
                check_complete(self.attrs, path, campaign)
            datasets = {name: ds for name, ds in g.items() if isinstance(ds, h5py.Dataset)}
            check_numeric(
                campaign, {k: np.empty(0, ds.dtype) for k, ds in datasets.items()}, str(path)
            )
            self.units = {
                name: _text(ds.attrs["units"])
                for name, ds in datasets.items()
                if "units" in ds.attrs
            }
            done = g.attrs.get("rows_complete")
            done = None if done is None else _count_attr(done, "rows_complete", path)
            if done is not None and self.attrs.get("status") == "complete":
                for name, ds in datasets.items():
                    per_device = ds.ndim and not (name in PER_READ and ds.ndim == 1)
                    if per_device and ds.maxshape[0] is None and ds.shape[0] != done:
                        raise CalibError(
                            f"{path}: {campaign} is 'complete' but rows_complete is {done} of "
                            f"{ds.shape[0]} rows of {name}: the file contradicts itself"
                        )
            self.shapes = {name: _complete_shape(ds, done) for name, ds in datasets.items()}
            self.dtypes = {name: ds.dtype for name, ds in datasets.items()}
        for name, allowed in UNITS.items():
            if name in self.shapes and self.units.get(name) not in allowed:
                raise CalibError(
                    f"{path}: {campaign}/{name} has units {self.units.get(name)!r}; "
                    f"expected one of {allowed}"
                )
        n = self.n_devices
        for name, shape in self.shapes.items():
            if name in PER_READ and len(shape) == 1:
                continue  # one value per read, shared by all devices
            if not shape or shape[0] != n:
                rows = shape[0] if shape else 0
                raise CalibError(f"{path}: {campaign}/{name} has {rows} rows for {n} devices")
        self._check_shapes()

    @property
    def n_devices(self) -> int:
        return int(self.shapes["device_index"][0])

    def _check_shapes(self) -> None:
        path, campaign, shapes = self.path, self.campaign, self.shapes
        g = shapes["conductance"]
        if campaign in ("pulse_response", "drift", "read_noise"):
            if len(g) != 2:
                raise CalibError(
                    f"{path}: {campaign}/conductance must be (devices, reads), got {g}"
                )
            key = "pulses" if campaign == "pulse_response" else "time"
            if shapes[key] not in ((g[1],), g):
                raise CalibError(
                    f"{path}: {campaign}/{key} shape {shapes[key]} does not match conductance {g}"
                )
        elif g != (self.n_devices,):
            raise CalibError(f"{path}: {campaign}/conductance must have one value per device")

    def _open(self) -> h5py.File:
        """The file, if it is still the one checked when this reader was made (a file
        replaced or rewritten since, e.g. by a new measurement, would mix two campaigns)."""
        if _file_identity(self.path) != self._identity:
            raise CalibError(
                f"{self.path}: changed since it was checked (replaced or rewritten while being "
                "read); nothing was mixed, read it again"
            )
        try:
            return h5py.File(self.path, "r", locking=False)
        except OSError as exc:
            raise CalibError(f"{self.path}: cannot be read ({exc})") from None

    def read_column(self, name: str) -> np.ndarray:
        """One dataset of every (complete) device row, or a shared per-read column, unchecked
        (e.g. ``device_index`` up front)."""
        return self._read({name}, slice(0, self.n_devices))[name]

    def _read(self, names: set[str], rows: np.ndarray | slice) -> dict[str, np.ndarray]:
        out = {}
        with self._open() as f:
            g = f[self.campaign]
            try:
                for name in names:
                    ds = g[name]
                    if name in PER_READ and len(self.shapes[name]) == 1:
                        out[name] = np.asarray(ds[()])
                    else:
                        out[name] = _rows(ds, rows)
            except OSError as exc:
                raise CalibError(
                    f"{self.path}: {self.campaign} data cannot be read (truncated? {exc})"
                ) from None
        return out

    def read(self, rows: np.ndarray | slice | None = None) -> dict[str, np.ndarray]:
        """The arrays of the device ``rows`` (increasing row numbers or a slice; None: all),
        after the value checks of :func:`calib.io.checks.check_campaign_values` (on a piece,
        those that look at several devices see the piece's)."""
        rows = slice(0, self.n_devices) if rows is None else rows
        arrays = self._read(set(self.shapes), rows)
        check_campaign_values(self.campaign, arrays, self.units, str(self.path))
        return arrays

    def read_all(self) -> CampaignData:
        """The whole campaign as :class:`CampaignData`."""
        arrays = self.read()
        return CampaignData(
            self.campaign, arrays, dict(self.attrs), dict(self.units), str(self.path)
        )


def _complete_shape(ds: h5py.Dataset, done: int | None) -> tuple[int, ...]:
    """A dataset's shape; per-device rows beyond ``rows_complete`` (a chunk being written
    when the writer stopped) are left out."""
    if done is not None and ds.ndim and ds.maxshape[0] is None and ds.shape[0] > done:
        return (done, *ds.shape[1:])
    return tuple(ds.shape)


def _rows(ds: h5py.Dataset, rows: np.ndarray | slice) -> np.ndarray:
    """Rows of a per-device dataset: a slice, or increasing row numbers."""
    if isinstance(rows, slice):
        return np.asarray(ds[rows])
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.asarray(ds[0:0])
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo <= DENSE_READ * rows.size:  # one contiguous read, then pick
        return np.asarray(ds[lo:hi])[rows - lo]
    return np.asarray(ds[rows])  # h5py point selection (increasing rows)


def read_campaign(path: str | Path, campaign: str) -> CampaignData:
    """Read one campaign group, validating required datasets, row counts, units and values."""
    return CampaignFile(path, campaign).read_all()


def read_pulse_response(path: str | Path, group: str = "pulse_response") -> CampaignData:
    """Read a pulse-response campaign (``conductance``, ``pulses``, addresses, attributes)."""
    return read_campaign(path, group)


def write_campaign(path: str | Path, data: CampaignData, overwrite: bool = False) -> Path:
    """Write a whole campaign (e.g. one imported from CSV) as a complete group of ``path``.

    Takes the writer lock of ``path``, so a campaign being measured into it is not replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with WriterLock(path):
        if path.exists() and not overwrite:
            raise CalibError(f"{path}: exists; pass --overwrite to replace it")
        return _write_whole(path, data)


def _write_whole(path: Path, data: CampaignData) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with h5py.File(tmp, "w", locking=False) as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["software_version"] = __version__
        g = f.create_group(data.campaign)
        for key, value in data.attrs.items():
            g.attrs[key] = _json_attr(key, value)
        g.attrs["status"] = data.attrs.get("status", "complete")
        g.attrs["rows_complete"] = data.n_devices
        g.attrs["software_version"] = __version__
        g.attrs.setdefault("start_time", _now())
        g.attrs.setdefault("end_time", _now())
        for name, values in data.arrays.items():
            ds = g.create_dataset(name, data=values)
            if name in data.units:
                ds.attrs["units"] = data.units[name]
    tmp.replace(path)
    return path
