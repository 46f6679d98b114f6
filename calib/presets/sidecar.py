"""Per-device arrays of large presets in an HDF5 sidecar, ``NAME.devices.h5`` next to ``NAME.json``.

A preset of more than :data:`INLINE_MAX_DEVICES` devices keeps its population model,
uncertainties and provenance in the JSON and moves ``per_device`` into the sidecar; the JSON
holds a ``per_device_file`` reference (relative file name, sha256 of the file, device count,
array names). Small chips keep inline arrays. Layout and plain-h5py reading:
``datasets/PRESET.md`` ("Per-device sidecar").

Readers get a :class:`SidecarArrays` mapping in place of ``per_device``: the file's existence,
hash and array shapes are checked when the preset is loaded (metadata only); the arrays are read
on first access (the simulator with ``use_per_device=True``), hash re-checked. Every problem is a
one-line :class:`CalibError` naming the sidecar file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calib.errors import CalibError
from simulator import preset_document as document
from simulator.preset_document import REFERENCE_SCHEMA, DeferredArrays

__all__ = [
    "INLINE_MAX_DEVICES",
    "REFERENCE_SCHEMA",
    "SIDECAR_SCHEMA",
    "SIDECAR_SUFFIX",
    "SidecarArrays",
    "check_reference",
    "open_sidecar",
    "per_device_arrays",
    "sidecar_path",
    "write_sidecar",
]

#: Presets of at most this many devices keep ``per_device`` inline in the JSON (about 0.5 MB
#: of JSON numbers for 12 arrays); larger ones write a sidecar.
INLINE_MAX_DEVICES = 4096
SIDECAR_SUFFIX = ".devices.h5"
#: ``schema`` attribute of the sidecar's root group (a file without it is not ours).
SIDECAR_SCHEMA = "aimc-calib-preset-devices"
SIDECAR_VERSION = 1

#: conductance-valued arrays (their ``_se`` too) carry the preset's conductance unit
_CONDUCTANCE = ("delta_up", "delta_down", "w_max", "w_min", "reference_offset")


def sidecar_path(preset_path: str | Path) -> Path:
    """``NAME.devices.h5`` next to ``NAME.json``."""
    preset_path = Path(preset_path)
    return preset_path.with_name(preset_path.stem + SIDECAR_SUFFIX)


def _unit(name: str, conductance_unit: str) -> str:
    base = name[:-3] if name.endswith("_se") else name
    if name == "device_id":
        return "index"
    return conductance_unit if base in _CONDUCTANCE else "1"


def _as_array(name: str, values: Any) -> np.ndarray:
    """Float64 (NaN for a missing estimate) or int64 for integers; one-dimensional."""
    if isinstance(values, list):
        values = [np.nan if v is None else v for v in values]
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64).reshape(-1)
    arr = arr.astype(np.float64).reshape(-1)
    arr[~np.isfinite(arr)] = np.nan  # as inline JSON: a non-finite estimate is missing
    return arr


def write_sidecar(
    path: str | Path, per_device: Mapping[str, Any], conductance_unit: str = "S"
) -> dict[str, Any]:
    """Write ``per_device`` to HDF5 file ``path`` (temp file, then rename); its reference.

    One 1-D dataset per array (gzip + shuffle, float64 or int64, ``units`` attribute);
    ``track_times`` off so that the same arrays give the same bytes (and sha256).
    """
    import h5py

    path = Path(path)
    arrays = {str(k): _as_array(str(k), v) for k, v in per_device.items()}
    sizes = {arr.size for arr in arrays.values()}
    if len(sizes) != 1:
        raise CalibError(f"{path}: per-device arrays differ in length; nothing written")
    n = sizes.pop()
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w", track_order=True) as fh:
        fh.attrs["schema"] = SIDECAR_SCHEMA
        fh.attrs["schema_version"] = SIDECAR_VERSION
        fh.attrs["n_devices"] = n
        for name, arr in arrays.items():
            ds = fh.create_dataset(
                name,
                data=arr,
                compression="gzip",
                compression_opts=4,
                shuffle=True,
                track_times=False,
            )
            ds.attrs["units"] = _unit(name, conductance_unit)
    digest = _sha256(tmp)
    os.replace(tmp, path)
    return {
        "file": path.name,
        "format": "hdf5",
        "sha256": digest,
        "n_devices": int(n),
        "arrays": list(arrays),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_sidecar(preset_path: str | Path, reference: Mapping[str, Any]) -> Path:
    """The sidecar file of a preset, checked: present, same sha256, one array of
    ``n_devices`` per name (metadata only). :class:`CalibError` naming the file otherwise."""
    import h5py

    name = str(reference["file"])
    if Path(name).name != name or name in (".", ".."):
        raise CalibError(
            f"{preset_path}: per_device_file/file {name!r} must be a file name in the "
            "preset's folder"
        )
    path = Path(preset_path).parent / name
    if not path.is_file():
        raise CalibError(f"{path}: per-device sidecar of {preset_path} not found")
    if _sha256(path) != reference["sha256"]:
        raise CalibError(
            f"{path}: per-device sidecar does not match the sha256 recorded in {preset_path} "
            "(altered or replaced)"
        )
    try:
        with h5py.File(path, "r") as fh:
            if fh.attrs.get("schema") != SIDECAR_SCHEMA:
                raise CalibError(f"{path}: not a per-device sidecar (no schema attribute)")
            for array in reference["arrays"]:
                ds = fh.get(array)
                if not isinstance(ds, h5py.Dataset):
                    raise CalibError(f"{path}: per-device sidecar has no array {array!r}")
                if ds.shape != (reference["n_devices"],):
                    raise CalibError(
                        f"{path}: per-device array {array!r} has shape {ds.shape}, "
                        f"expected ({reference['n_devices']},)"
                    )
                if ds.dtype.kind not in "iuf":
                    raise CalibError(f"{path}: per-device array {array!r} is not numeric")
    except OSError as exc:
        raise CalibError(f"{path}: per-device sidecar cannot be read ({exc})") from None
    return path


def _read_arrays(path: Path, reference: Mapping[str, Any]) -> dict[str, np.ndarray]:
    import h5py

    if _sha256(path) != reference["sha256"]:
        raise CalibError(f"{path}: per-device sidecar changed since its preset was loaded")
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as fh:
            for name in reference["arrays"]:
                arr = fh[name][()]
                if arr.dtype.kind == "f" and np.isinf(arr).any():
                    k = int(np.argmax(np.isinf(arr)))
                    raise CalibError(
                        f"{path}: per-device array {name!r}[{k}] is {arr[k]}, not a finite "
                        "number (NaN marks a missing estimate)"
                    )
                out[name] = arr
    except OSError as exc:
        raise CalibError(f"{path}: per-device sidecar cannot be read ({exc})") from None
    return out


class SidecarArrays(DeferredArrays):
    """``per_device`` of a loaded preset whose arrays live in a sidecar, read on first access.

    Names and length are known without reading; ``arrays[name]`` or iterating the items reads
    the whole file once (NaN where the inline JSON would hold null).
    """

    def __init__(self, path: Path, reference: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.reference = dict(reference)
        self._arrays: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = _read_arrays(self.path, self.reference)
        return self._arrays

    @property
    def loaded(self) -> bool:
        return self._arrays is not None

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.reference["arrays"]:
            raise KeyError(name)
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.reference["arrays"])

    def __len__(self) -> int:
        return len(self.reference["arrays"])

    def __eq__(self, other: object) -> bool:
        """Same names and bit-identical arrays (NaN equals NaN); reads both."""
        if not isinstance(other, Mapping) or list(self) != list(other):
            return NotImplemented if not isinstance(other, Mapping) else False
        return all(np.array_equal(self[k], _as_array(k, other[k]), equal_nan=True) for k in self)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"SidecarArrays({self.path}, {self.reference['n_devices']} devices, {state})"


def check_reference(reference: Any, source: str) -> None:
    """The ``per_device_file`` reference has the documented fields (one-line error)."""
    try:
        document.check_reference(reference, source)
    except document.PresetError as exc:
        raise CalibError(str(exc)) from None


def per_device_arrays(preset: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The per-device arrays of a preset as numpy (inline or sidecar), or None."""
    per_device = preset.get("per_device")
    if not per_device:
        return None
    return {k: _as_array(k, v) for k, v in per_device.items()}
