"""Calibrated presets: versioned JSON documents validated against a schema.

A preset carries a device model (family + aihwkit-named parameters in siemens around a
reference conductance), their uncertainties and units, optional per-device arrays, an
optional PCM noise section, and provenance (input file hash, software version, date,
command line). See ``datasets/FORMAT.md`` for the field reference. Per-device arrays of more
than :data:`calib.preset_sidecar.INLINE_MAX_DEVICES` devices are written to an HDF5 sidecar
(:mod:`calib.preset_sidecar`, ``datasets/PRESET.md``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from calib._version import __version__
from calib.errors import CalibError
from calib.invocation import current_command
from calib.outputs import same_file
from calib.preset_sidecar import (
    INLINE_MAX_DEVICES,
    REFERENCE_SCHEMA,
    SIDECAR_SCHEMA,
    SidecarArrays,
    check_reference,
    open_sidecar,
    sidecar_path,
    write_sidecar,
)
from simulator.devices.families import CATALOGUE, FAMILIES

__all__ = [
    "FAMILY_REQUIRED",
    "PRESET_SCHEMA",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "file_sha256",
    "json_text",
    "load_preset",
    "make_preset",
    "provenance",
    "save_preset",
    "validate_preset",
]

SCHEMA_NAME = "aimc-calib-preset"
SCHEMA_VERSION = 1

_VALUE = {
    "oneOf": [
        {"type": ["number", "null", "boolean"]},
        {"type": "array", "items": {"type": ["number", "null"]}},
    ]
}
_NUMBER_MAP = {"type": "object", "additionalProperties": _VALUE}

#: aihwkit parameters every preset of a family must define (REFERENCES.md [R2]-[R4]).
FAMILY_REQUIRED: dict[str, tuple[str, ...]] = {
    name: family.preset_required for name, family in CATALOGUE.items()
}


def _family_rule(family: str) -> dict[str, Any]:
    return {
        "if": {"properties": {"model": {"const": family}}, "required": ["model"]},
        "then": {
            "properties": {
                "parameters": {"required": list(FAMILY_REQUIRED[family])},
            }
        },
    }


_DEVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "parameters", "g_offset_s"],
    "properties": {
        "model": {"enum": [*FAMILIES, "none"]},
        "parameters": _NUMBER_MAP,
        "uncertainty": _NUMBER_MAP,
        "units": {"type": "object", "additionalProperties": {"type": "string"}},
        "conductance_unit": {"enum": ["S", "normalized"]},
        "g_offset_s": {"type": "number"},
        "read_noise_s": {"type": "number", "minimum": 0},
    },
    "allOf": [
        # conductances in siemens are positive; normalized data may center anywhere
        {
            "if": {
                "properties": {"conductance_unit": {"const": "normalized"}},
                "required": ["conductance_unit"],
            },
            "else": {"properties": {"g_offset_s": {"exclusiveMinimum": 0}}},
        },
        *(_family_rule(f) for f in FAMILIES),
    ],
}

# -- the ``pcm`` section (datasets/PRESET.md); extra fields (levels, notes, ...) are allowed
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_NUMBERS = {"type": "array", "minItems": 1, "items": {"type": "number"}}
_CLIPPED_LOG = {
    "type": "object",
    "required": ["a", "b", "lo", "hi"],
    "properties": {k: {"type": "number"} for k in ("a", "b", "lo", "hi")},
}
_PCM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["g_max_s", "t0_s", "t_read_s", "prog_noise", "drift", "read_noise"],
    "properties": {
        "g_max_s": _POSITIVE,
        "t0_s": _POSITIVE,
        "t_read_s": _POSITIVE,
        "prog_noise": {
            "type": "object",
            "required": ["form", "coefficients_s"],
            "properties": {"form": {"const": "polynomial"}, "coefficients_s": _NUMBERS},
        },
        "drift": {
            "type": "object",
            "required": ["form"],
            "properties": {"form": {"enum": ["clipped-log", "table"]}},
            "allOf": [
                {
                    "if": {"properties": {"form": {"const": "clipped-log"}}},
                    "then": {
                        "required": ["mu_nu", "sigma_nu"],
                        "properties": {"mu_nu": _CLIPPED_LOG, "sigma_nu": _CLIPPED_LOG},
                    },
                },
                {
                    "if": {"properties": {"form": {"const": "table"}}},
                    "then": {
                        "required": ["x", "mu_nu", "sigma_nu"],
                        "properties": {"x": _NUMBERS, "mu_nu": _NUMBERS, "sigma_nu": _NUMBERS},
                    },
                },
            ],
        },
        "read_noise": {
            "type": "object",
            "required": ["form", "a", "b", "c"],
            "properties": {
                "form": {"const": "min-power"},
                "a": {"type": "number", "minimum": 0},
                "b": {"type": "number"},
                "c": _POSITIVE,
                "x_floor": _POSITIVE,
                "conductance": {"enum": ["g_prog", "g_T"]},
                "white_s": {"type": "number", "minimum": 0},
            },
        },
        "uncertainty": {"type": "object"},
        "valid_range": {
            "type": "object",
            "properties": {
                k: {"type": "number", "minimum": 0}
                for k in ("g_min_s", "g_max_s", "t_min_s", "t_max_s")
            },
        },
    },
}

PRESET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "schema_version", "provenance"],
    # a PCM-only preset (calib fit pcm) has no device section; every other preset needs one
    "if": {"not": {"required": ["pcm"]}},
    "then": {"required": ["device"]},
    "properties": {
        "schema": {"const": SCHEMA_NAME},
        "schema_version": {"type": "integer", "minimum": 1},
        "device": _DEVICE_SCHEMA,
        "per_device": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": ["number", "null"]}},
        },
        "per_device_file": REFERENCE_SCHEMA,
        "pcm": _PCM_SCHEMA,
        "provenance": {
            "type": "object",
            "required": ["software_version", "created"],
            "properties": {
                "software_version": {"type": "string"},
                "created": {"type": "string"},
                "command": {"type": "string"},
                "input_file": {"type": ["string", "null"]},
                "input_sha256": {"type": ["string", "null"]},
            },
        },
    },
}


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
) -> dict[str, Any]:
    """Assemble and validate a preset document."""
    preset: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "device": _clean(device),
        "provenance": _clean(prov),
    }
    if per_device:
        # non-finite entries (e.g. the infinite error of an unidentified bound) become null
        preset["per_device"] = {
            k: _clean(np.asarray(v, dtype=float).tolist()) for k, v in per_device.items()
        }
    preset.update(_clean(sections))
    validate_preset(preset, "<new preset>")
    return preset


def _check_per_device(per_device: dict[str, Any], source: str) -> None:
    """Every per-device entry is a list of numbers (or null for a missing estimate)."""
    for name, values in per_device.items():
        if not isinstance(values, list | np.ndarray):
            raise CalibError(f"{source}: invalid preset at per_device/{name}: not an array")
        if isinstance(values, np.ndarray):
            if values.dtype.kind not in "biuf":
                raise CalibError(f"{source}: invalid preset at per_device/{name}: not numeric")
            continue
        if any(isinstance(v, bool) for v in values):
            raise CalibError(f"{source}: invalid preset at per_device/{name}: booleans found")
        try:
            arr = np.asarray([0.0 if v is None else v for v in values], dtype=float)
        except (TypeError, ValueError):
            raise CalibError(
                f"{source}: invalid preset at per_device/{name}: values must be numbers or null"
            ) from None
        if arr.ndim != 1:
            raise CalibError(f"{source}: invalid preset at per_device/{name}: not a flat list")
        if not np.all(np.isfinite(arr)):
            k = int(np.argmax(~np.isfinite(arr)))
            raise CalibError(
                f"{source}: invalid preset at per_device/{name}/{k}: {arr[k]} is not a finite "
                "number (use null for a missing estimate)"
            )


def validate_preset(preset: Any, source: str) -> None:
    """Raise :class:`CalibError` naming the first problem of ``preset``.

    Beyond the schema: every number is finite, ``schema_version`` is an integer (not 2.0),
    and the values are in range (:func:`_check_ranges`).
    """
    if not isinstance(preset, dict):
        raise CalibError(f"{source}: a preset must be a JSON object")
    version = preset.get("schema_version")
    if "schema_version" in preset and type(version) is not int:
        raise CalibError(
            f"{source}: invalid preset at schema_version: {version!r} is not an integer"
        )
    bad = _first_non_finite({k: v for k, v in preset.items() if k != "per_device"})
    if bad is not None:
        where, value = bad
        raise CalibError(
            f"{source}: invalid preset at {where}: {value} is not a finite number "
            "(use null for a value that is not known)"
        )
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise CalibError(
            f"{source}: preset schema version {version} is newer than this software supports "
            f"({SCHEMA_VERSION}); upgrade aimc-calib"
        )
    # Per-device arrays can hold millions of numbers: check them with numpy and give the
    # schema validator the rest of the document (element-wise jsonschema costs ~0.1 ms/device).
    per_device = preset.get("per_device")
    if "per_device_file" in preset:
        check_reference(preset["per_device_file"], source)
        if per_device is not None and not isinstance(per_device, SidecarArrays):
            raise CalibError(
                f"{source}: invalid preset: per_device and per_device_file both given (one only)"
            )
    if isinstance(per_device, SidecarArrays):
        # a loaded sidecar: its hash and shapes were checked by load_preset, its values are
        # checked when read (calib.preset_sidecar)
        preset = {k: v for k, v in preset.items() if k != "per_device"}
    elif isinstance(per_device, dict):
        _check_per_device(per_device, source)
        preset = {k: v for k, v in preset.items() if k != "per_device"}
    try:
        jsonschema.validate(preset, PRESET_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        message = exc.message
        if exc.validator == "oneOf":
            message = f"{exc.instance!r} is not a number, a flag or a list of numbers"
        raise CalibError(f"{source}: invalid preset at {where}: {message}") from None
    device = preset.get("device") or {}  # PCM-only presets have no device section
    if device.get("model") in FAMILIES:
        params = device["parameters"]
        if not (isinstance(params["dw_min"], int | float) and params["dw_min"] > 0):
            raise CalibError(f"{source}: invalid preset: device dw_min must be positive")
        w_max, w_min = params["w_max"], params["w_min"]
        if (
            not (isinstance(w_max, int | float) and isinstance(w_min, int | float))
            or w_min >= w_max
        ):
            raise CalibError(f"{source}: invalid preset: device needs w_min < w_max")
    problem = _check_ranges(preset)
    if problem is not None:
        raise CalibError(f"{source}: invalid preset at {problem}")


# -- value checks the schema cannot express (finite numbers, ranges, ordered tables)
#: device parameters that are spreads or noise levels (relative std devs): >= 0
_NON_NEGATIVE = ("write_noise_std", "dw_min_std", "pow_gamma_dtod", "pow_up_down_dtod")
#: device parameters that are probabilities
_PROBABILITY = ("corrupt_devices_prob",)


def _first_non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """(path, value) of the first NaN or infinite float inside ``value``, or None."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            return (where or "top level", float(value))
        return None
    for key, item in items:
        found = _first_non_finite(item, f"{where}/{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_ranges(preset: dict[str, Any]) -> str | None:
    """The first out-of-range value as ``"path: problem"`` (None when all are in range).

    Ranges follow aihwkit's meaning of each field (``datasets/PRESET.md``): spreads
    (``*_dtod``, ``*_std``), uncertainties and noise levels are >= 0, probabilities in
    [0, 1], ``up_down`` in [-1, 1] (aihwkit's steps are dw_min·(1 ± up_down): beyond ±1 one
    direction would step backwards); PCM clip bounds ``lo <= hi``, drift tables sorted in
    x > 0 with one μ_ν and σ_ν per x, σ_ν >= 0, valid ranges with min <= max.
    """
    device = preset.get("device")
    if isinstance(device, dict):
        params = device.get("parameters") or {}
        for name, value in params.items():
            where = f"device/parameters/{name}"
            if not _is_number(value):
                nodes = value if name.startswith("piecewise_") and isinstance(value, list) else []
                if any(_is_number(v) and v < 0 for v in nodes):
                    return f"{where}: step scale factors must be >= 0"
                continue
            if (name.endswith("_dtod") or name in _NON_NEGATIVE) and value < 0:
                return f"{where}: a spread must be >= 0, got {value:g}"
            if name in _PROBABILITY and not 0 <= value <= 1:
                return f"{where}: a probability must be in [0, 1], got {value:g}"
            if name == "up_down" and not -1 <= value <= 1:
                return f"{where}: must be in [-1, 1] (steps dw_min·(1 ± up_down)), got {value:g}"
        for name, value in (device.get("uncertainty") or {}).items():
            values = value if isinstance(value, list) else [value]
            if any(_is_number(v) and v < 0 for v in values):
                return f"device/uncertainty/{name}: a standard error must be >= 0"
    pcm = preset.get("pcm")
    if isinstance(pcm, dict):
        return _check_pcm_ranges(pcm)
    return None


def _check_pcm_ranges(pcm: dict[str, Any]) -> str | None:
    drift = pcm.get("drift") or {}
    if drift.get("form") == "clipped-log":
        for part in ("mu_nu", "sigma_nu"):
            clip = drift[part]
            if clip["lo"] > clip["hi"]:
                return f"pcm/drift/{part}: clip bounds lo {clip['lo']:g} > hi {clip['hi']:g}"
        if drift["sigma_nu"]["lo"] < 0:
            return "pcm/drift/sigma_nu/lo: a standard deviation must be >= 0"
    elif drift.get("form") == "table":
        x = np.asarray(drift["x"], dtype=float)
        for part in ("mu_nu", "sigma_nu"):
            if len(drift[part]) != x.size:
                return (
                    f"pcm/drift/{part}: {len(drift[part])} values for {x.size} table points x "
                    "(one per x)"
                )
        if np.any(x <= 0):
            return "pcm/drift/x: normalized conductances must be > 0"
        if np.any(np.diff(x) <= 0):
            return "pcm/drift/x: table points must be strictly increasing"
        if np.any(np.asarray(drift["sigma_nu"], dtype=float) < 0):
            return "pcm/drift/sigma_nu: a standard deviation must be >= 0"
    rng = pcm.get("valid_range") or {}
    for lo, hi in (("g_min_s", "g_max_s"), ("t_min_s", "t_max_s")):
        if _is_number(rng.get(lo)) and _is_number(rng.get(hi)) and rng[lo] > rng[hi]:
            return f"pcm/valid_range: {lo} {rng[lo]:g} > {hi} {rng[hi]:g}"
    return None


def json_text(doc: Any, what: str, indent: int | None = 2) -> str:
    """``doc`` as strict JSON (no NaN/Infinity); :class:`CalibError` naming the first
    non-finite value otherwise. Every JSON document the toolkit writes goes through here."""
    bad = _first_non_finite(doc)
    if bad is not None:
        raise CalibError(f"{what}: {bad[0]} is {bad[1]}, not a finite number; nothing written")
    return json.dumps(doc, indent=indent, allow_nan=False)


def save_preset(preset: dict[str, Any], path: str | Path) -> Path:
    """Validate and write ``preset`` as indented JSON (atomically: temp file, then rename).

    Per-device arrays of more than ``INLINE_MAX_DEVICES`` devices go to the sidecar
    ``NAME.devices.h5`` first (temp file, then rename), then the JSON with its
    ``per_device_file`` reference; the sidecar is never written over the preset's input file
    (``provenance/input_file``) or over an existing file that is not a sidecar.
    """
    validate_preset(preset, str(path))
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
    elif isinstance(per_device, SidecarArrays):  # a small chip loaded from a sidecar: inline
        doc["per_device"] = {k: _clean(np.asarray(v).tolist()) for k, v in per_device.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json_text(doc, str(path)) + "\n")
    tmp.replace(path)
    return path


def _n_devices(per_device: Any) -> int:
    if isinstance(per_device, SidecarArrays):
        return int(per_device.reference["n_devices"])
    return max(int(np.size(v)) for v in per_device.values())


def _check_sidecar_output(side: Path, path: Path, preset: dict[str, Any]) -> None:
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


def load_preset(path: str | Path) -> dict[str, Any]:
    """Read and validate a preset file."""
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
    if isinstance(preset, dict) and "per_device_file" in preset:
        reference = preset["per_device_file"]
        check_reference(reference, str(path))
        if "per_device" in preset:
            raise CalibError(
                f"{path}: invalid preset: per_device and per_device_file both given (one only)"
            )
        preset["per_device"] = SidecarArrays(open_sidecar(path, reference), reference)
    validate_preset(preset, str(path))
    return preset


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


def _clean(value: Any) -> Any:
    """numpy scalars/arrays to plain JSON types; non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
