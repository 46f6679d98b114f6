"""Calibrated presets: versioned JSON files (reading, writing, provenance).

The document type, its schema and its one validation are
:class:`simulator.preset_document.Preset` (the simulator reads presets and may not import
``calib``); this module builds presets (:func:`make_preset`), reads and writes them
(:func:`load_preset`, :func:`save_preset`) and turns a validation problem into a one-line
:class:`CalibError`. A preset carries a device model (family + aihwkit-named parameters
in siemens around a reference conductance), their uncertainties and units, optional
per-device arrays, an optional PCM noise section, and provenance (input file hash, software
version, date, command line). See ``datasets/PRESET.md`` for the field reference. Per-device
arrays of more than :data:`calib.presets.sidecar.INLINE_MAX_DEVICES` devices are written to
an HDF5 sidecar (:mod:`calib.presets.sidecar`, ``datasets/PRESET.md``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from calib._version import __version__
from calib.errors import CalibError
from calib.presets.sidecar import (
    INLINE_MAX_DEVICES,
    SIDECAR_SCHEMA,
    SidecarArrays,
    check_reference,
    open_sidecar,
    sidecar_path,
    write_sidecar,
)
from calib.runtime.invocation import current_command
from calib.runtime.json_values import plain_json
from calib.runtime.outputs import same_file
from simulator.preset_document import (
    FAMILY_REQUIRED,
    PRESET_SCHEMA,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    Preset,
    PresetError,
    first_non_finite,
)

__all__ = [
    "FAMILY_REQUIRED",
    "PRESET_SCHEMA",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "Preset",
    "as_preset",
    "file_sha256",
    "json_text",
    "load_preset",
    "make_preset",
    "provenance",
    "save_preset",
    "validate_preset",
]


def provenance(input_file: str | Path | None = None, **extra: Any) -> dict[str, Any]:
    """Software version, UTC date, command line and input-file hash for a new document."""
    record: dict[str, Any] = {
        "software_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": current_command(),
        "input_file": str(input_file) if input_file is not None else None,
        "input_sha256": file_sha256(input_file) if input_file is not None else None,
    }
    record.update(extra)
    return record


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_preset(
    device: dict[str, Any],
    prov: dict[str, Any],
    per_device: dict[str, np.ndarray] | None = None,
    **sections: Any,
) -> Preset:
    """Assemble a preset document and validate it (the one validation of a new preset)."""
    preset: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "device": plain_json(device),
        "provenance": plain_json(prov),
    }
    if per_device:
        # numpy arrays (float64) as given, not JSON lists (a chip of 4.2e6 devices: ~1.5 GB
        # of Python floats); a non-finite entry (e.g. the infinite error of an unidentified
        # bound) becomes NaN, written as null inline or NaN in the sidecar
        preset["per_device"] = {k: _finite_or_nan(v) for k, v in per_device.items()}
    preset.update(plain_json(sections))
    return validate_preset(preset, "<new preset>")


def _finite_or_nan(values: Any) -> np.ndarray:
    """Per-device values as a float64 array, NaN for anything not finite (a copy)."""
    arr = np.array(values, dtype=float)
    arr[~np.isfinite(arr)] = np.nan
    return arr


def validate_preset(preset: Any, source: str) -> Preset:
    """The :class:`Preset` of a parsed document (:meth:`Preset.from_dict`, the one validator);
    :class:`CalibError` naming the first problem. A :class:`Preset` is checked again in full
    (its sections are plain JSON values that a caller may have edited)."""
    if isinstance(preset, Preset):
        preset = preset.to_dict()
    try:
        return Preset.from_dict(preset, source)
    except PresetError as exc:
        raise CalibError(str(exc)) from None


def as_preset(preset: Any, source: str) -> Preset:
    """``preset`` unchanged if it is a :class:`Preset` (validated when it was built), else
    validated once into one; :class:`CalibError` naming the first problem (also for a Preset
    edited in place since it was validated)."""
    if isinstance(preset, Preset):
        try:
            preset.check_unedited()
        except PresetError as exc:
            raise CalibError(str(exc)) from None
        return preset
    return validate_preset(preset, source)


def json_text(doc: Any, what: str, indent: int | None = 2) -> str:
    """``doc`` as strict JSON (no NaN/Infinity); :class:`CalibError` naming the first
    non-finite value otherwise. Every JSON document the toolkit writes goes through here."""
    if isinstance(doc, Preset):
        doc = doc.to_dict()
    bad = first_non_finite(doc)
    if bad is not None:
        raise CalibError(f"{what}: {bad[0]} is {bad[1]}, not a finite number; nothing written")
    return json.dumps(doc, indent=indent, allow_nan=False)


def save_preset(preset: Preset | dict[str, Any], path: str | Path) -> Path:
    """Write ``preset`` as indented JSON (atomically: temp file, then rename).

    A :class:`Preset` was validated when it was built; a plain dict is validated here (as
    ``path``).

    Per-device arrays of more than ``INLINE_MAX_DEVICES`` devices go to the sidecar
    ``NAME.devices.h5`` first (temp file, then rename), then the JSON with its
    ``per_device_file`` reference; the sidecar is never written over the preset's input file
    (``provenance/input_file``) or over an existing file that is not a sidecar.
    """
    preset = as_preset(preset, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {k: v for k, v in preset.items() if k != "per_device_file"}
    per_device = doc.get("per_device")
    n_devices = _n_devices(per_device) if per_device else 0
    if n_devices > INLINE_MAX_DEVICES:
        side = sidecar_path(path)
        _check_sidecar_output(side, path, preset)
        unit = (preset.get("device") or {}).get("conductance_unit", "S")
        doc.pop("per_device")
        doc["per_device_file"] = write_sidecar(side, per_device, unit)
    elif per_device:  # a small chip: inline JSON lists (null for NaN)
        doc["per_device"] = {k: plain_json(np.asarray(v).tolist()) for k, v in per_device.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json_text(doc, str(path)) + "\n")
    tmp.replace(path)
    return path


def _n_devices(per_device: Any) -> int:
    if isinstance(per_device, SidecarArrays):
        return int(per_device.reference["n_devices"])
    return max(int(np.size(v)) for v in per_device.values())


def _check_sidecar_output(side: Path, path: Path, preset: Preset) -> None:
    """The sidecar may replace only an earlier sidecar, never an input (one-line error)."""
    source = (preset.get("provenance") or {}).get("input_file")
    if source and same_file(side, source):
        raise CalibError(
            f"{side}: the per-device sidecar of {path} would replace the input file {source}; "
            "give the preset another name"
        )
    per_device = preset.get("per_device")
    if isinstance(per_device, SidecarArrays) and same_file(side, per_device.path):
        raise CalibError(
            f"{side}: the per-device sidecar of {path} is the one being read; "
            "write the preset to another file"
        )
    if side.exists() and not _is_sidecar(side):
        raise CalibError(
            f"{side}: exists and is not a per-device sidecar; the preset {path} would replace "
            "it (move it or give the preset another name)"
        )


def _is_sidecar(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return fh.attrs.get("schema") == SIDECAR_SCHEMA
    except OSError:
        return False


def load_preset(path: str | Path) -> Preset:
    """Read a preset file and validate it once (:class:`CalibError` naming the file).

    Presets written by earlier versions of the same ``schema_version`` load unchanged; a
    sidecar's arrays (``per_device_file``) are opened lazily (:class:`SidecarArrays`).
    """
    path = Path(path)
    if not path.is_file():
        raise CalibError(f"{path}: preset file not found")
    try:
        preset = json.loads(
            path.read_bytes().decode("utf-8"),
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CalibError(f"{path}: not valid JSON ({exc})") from None
    except ValueError as exc:  # NaN/Infinity or a repeated key
        raise CalibError(f"{path}: not a valid preset ({exc})") from None
    except RecursionError:
        raise CalibError(f"{path}: not a valid preset (JSON nested too deeply)") from None
    if isinstance(preset, dict) and "per_device_file" in preset and "per_device" not in preset:
        reference = preset["per_device_file"]
        check_reference(reference, str(path))  # before the file it names is opened
        preset["per_device"] = SidecarArrays(open_sidecar(path, reference), reference)
    return validate_preset(preset, str(path))


def _refuse_constant(name: str) -> None:
    """``NaN``/``Infinity`` are not JSON (RFC 8259 §6); Python's parser accepts them."""
    raise ValueError(f"{name} is not a JSON number; use null for a value that is not known")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (the second would silently win)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out
