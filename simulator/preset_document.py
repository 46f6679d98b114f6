"""The preset document: one validated, read-only type from the fit to the tile.

A :class:`Preset` is built from a parsed JSON document (``datasets/PRESET.md``) by
:meth:`Preset.from_dict`, the one place a preset is validated: the JSON schema, finite
numbers, an integer ``schema_version`` no newer than this software, parameter ranges in
aihwkit's meaning, per-device arrays of numbers of one length, a well-formed sidecar
reference. Everything downstream (``calib`` saving, exporting and validating, the simulator
building tiles) takes the :class:`Preset` as it is, without checking again. Problems raise
:class:`PresetError` (a ValueError) with one line ``SOURCE: invalid preset at PATH: problem``;
``calib`` turns it into its one-line :class:`~calib.errors.CalibError` with the same text.

The type lives in ``simulator`` because the simulator reads presets and may import neither
``fitting`` nor ``calib``; file I/O (JSON, the per-device sidecar, provenance) stays in
``calib.presets``. The on-disk format is unchanged: a :class:`Preset` reads like the JSON
object it came from (``preset["device"]``, ``preset.get("pcm")``) and :meth:`Preset.to_dict`
gives a plain, editable copy.
"""

from __future__ import annotations

import copy
import math
import numbers
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.devices.families import CATALOGUE, FAMILIES, REFERENCE_FIELD

__all__ = [
    "FAMILY_REQUIRED",
    "KINDS",
    "PRESET_SCHEMA",
    "REFERENCE_SCHEMA",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "DeferredArrays",
    "Preset",
    "PresetError",
    "as_preset",
    "check_document",
    "check_reference",
    "chip_technology",
    "first_non_finite",
]

SCHEMA_NAME = "aimc-calib-preset"
SCHEMA_VERSION = 1

#: What a preset describes (:attr:`Preset.kind`): a pulsed device of the family catalogue,
#: a PCM inference-noise model, both, or neither (a device section of model "none").
KINDS = ("pulsed", "pcm", "pulsed+pcm", "none")
#: the chip kind in an instrument identity (``EMU,AIMC-XBAR-RERAM,...``; instruments/MANUALS.md)
_IDN_KIND = re.compile(r"AIMC-XBAR-([A-Z0-9]+)", re.IGNORECASE)


class PresetError(ValueError):
    """A preset that is not valid or that the simulator cannot use (one line, names the field)."""


class DeferredArrays(Mapping[str, Any]):
    """``per_device`` arrays read on first access (e.g. ``calib``'s HDF5 sidecar).

    Names are known without reading; the reader checks the values when it reads them, so
    validation of the document skips them. ``reference`` is the ``per_device_file`` record.
    """

    reference: Mapping[str, Any]

    @property
    def n_devices(self) -> int:
        return int(self.reference["n_devices"])


# ------------------------------------------------------------------------------ the schema
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

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: The ``per_device_file`` reference to a sidecar of per-device arrays (datasets/PRESET.md).
REFERENCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file", "format", "sha256", "n_devices", "arrays"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "minLength": 1},
        "format": {"const": "hdf5"},
        "sha256": {"type": "string", "pattern": _HEX64.pattern},
        "n_devices": {"type": "integer", "minimum": 1},
        "arrays": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string"},
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

#: bare sections (simulator inputs that are not files): the same rules, no envelope
_SECTIONS_SCHEMA: dict[str, Any] = {**PRESET_SCHEMA, "required": []}


# ------------------------------------------------------------------------------ the type
@dataclass(frozen=True, eq=False)
class Preset(Mapping[str, Any]):
    """A validated preset document (read-only; build it with :meth:`from_dict`).

    Reads like its JSON object; typed views: :attr:`technology`, :attr:`kind`,
    :attr:`model`, :attr:`device`, :attr:`pcm`, :attr:`per_device`, :attr:`provenance`.
    ``source`` names where it came from (a file, ``<new preset>``) for later messages.
    """

    _document: Mapping[str, Any] = field(repr=False)
    source: str = "<preset>"
    #: a copy of the sections as validated (all but ``per_device``): :meth:`check_unedited`
    _validated: Mapping[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, document: Any, source: str = "<preset>", envelope: bool = True) -> Preset:
        """Validate ``document`` (a parsed JSON object) once and wrap a copy of it.

        A :class:`Preset` is returned as it is (already validated). :class:`PresetError`
        (``SOURCE: invalid preset at PATH: problem``) names the first problem otherwise.
        ``envelope=False`` accepts bare sections (``{"device": ...}``, ``{"pcm": ...}``, as
        the emulator's truth and hand-written simulator inputs give them): the same checks
        of every section, without requiring ``schema``, ``schema_version`` and ``provenance``.
        """
        if isinstance(document, Preset):
            document.check_unedited()
            return document
        check_document(document, source, envelope)
        doc = {k: v for k, v in document.items() if k != "per_device"}
        doc = copy.deepcopy(doc)  # small sections: later edits of the input cannot leak in
        per_device = document.get("per_device")
        if isinstance(per_device, dict):  # arrays: copied one level (lists of numbers)
            doc["per_device"] = {k: _copy_array(v) for k, v in per_device.items()}
        elif per_device is not None:
            doc["per_device"] = per_device  # DeferredArrays: read-only already
        validated = copy.deepcopy({k: v for k, v in doc.items() if k != "per_device"})
        return cls(doc, source, validated)

    def check_unedited(self) -> None:
        """Raise :class:`PresetError` if a section was changed in place since validation.

        The sections read as plain dicts and lists (``preset["device"]["parameters"]``), so
        an in-place edit is possible; every consumer that takes a Preset without validating
        it again (:func:`as_preset`) calls this, so that an edited preset is refused, not
        simulated, exported or saved unchecked. (Inline per-device lists are not compared.)
        """
        if self._validated is None:
            return
        current = {k: v for k, v in self._document.items() if k != "per_device"}
        if current != self._validated:
            raise PresetError(
                f"{self.source}: preset edited in place after it was validated (a Preset is "
                "read-only: edit preset.to_dict() and build a new one from it)"
            )

    # -- the JSON object view
    def __getitem__(self, key: str) -> Any:
        return self._document[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._document)

    def __len__(self) -> int:
        return len(self._document)

    def __repr__(self) -> str:
        return f"Preset({self.source!r}, kind={self.kind!r}, technology={self.technology!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain, editable deep copy of the document: JSON values (per-device numpy arrays
        as lists, null for NaN), a sidecar's deferred arrays as they are held."""
        doc = copy.deepcopy({k: v for k, v in self._document.items() if k != "per_device"})
        per_device = self._document.get("per_device")
        if isinstance(per_device, dict):
            doc["per_device"] = {k: _plain_array(v) for k, v in per_device.items()}
        elif per_device is not None:
            doc["per_device"] = per_device
        return doc

    # -- typed views
    @property
    def device(self) -> Mapping[str, Any] | None:
        """The ``device`` section (pulsed device model), or None (a PCM-only preset)."""
        return self._document.get("device")

    @property
    def pcm(self) -> Mapping[str, Any] | None:
        """The ``pcm`` section (PCM inference-noise model), or None."""
        return self._document.get("pcm")

    @property
    def model(self) -> str | None:
        """The device family (``soft-bounds``, ...), ``none``, or None without a device."""
        return None if self.device is None else self.device.get("model")

    @property
    def technology(self) -> str | None:
        """The chip technology the preset describes (``reram``, ``ecram``, ``pcm``), or None
        when the document does not say (:func:`chip_technology`)."""
        return chip_technology(self._document)

    @property
    def kind(self) -> str:
        """One of :data:`KINDS`: what the simulator can build from the preset."""
        pulsed = self.model in FAMILIES
        if pulsed and self.pcm is not None:
            return "pulsed+pcm"
        if pulsed:
            return "pulsed"
        return "pcm" if self.pcm is not None else "none"

    @property
    def per_device(self) -> Mapping[str, Any] | None:
        """Per-device arrays (inline lists, or :class:`DeferredArrays` of a sidecar)."""
        return self._document.get("per_device")

    @property
    def provenance(self) -> Mapping[str, Any]:
        """Software version, date, command and input of the fit (empty for bare sections)."""
        return self._document.get("provenance", {})


def chip_technology(document: Mapping[str, Any]) -> str | None:
    """The chip technology of a preset document (``reram``, ``ecram``, ``pcm``), if known.

    Read from the emulator record of a truth preset (``provenance/emulator/kind``) or the
    instrument identity of the measurement (``provenance/instrument_idn``,
    ``EMU,AIMC-XBAR-<KIND>``); a preset with a ``pcm`` section is ``pcm``.
    """
    prov = document.get("provenance") or {}
    emulator = prov.get("emulator") or {}
    if isinstance(emulator, Mapping) and emulator.get("kind"):
        return str(emulator["kind"]).lower()
    for key in ("instrument_idn", "idn"):
        match = _IDN_KIND.search(str(prov.get(key) or ""))
        if match:
            return match.group(1).lower()
    return "pcm" if isinstance(document.get("pcm"), Mapping) else None


def as_preset(preset: Any, source: str = "<preset>") -> Preset:
    """``preset`` as a :class:`Preset`: a Preset as it is; a mapping validated once, as a
    whole document when it names its ``schema``, else as bare sections."""
    if isinstance(preset, Preset):
        preset.check_unedited()
        return preset
    envelope = isinstance(preset, Mapping) and "schema" in preset
    return Preset.from_dict(preset, source, envelope=envelope)


def _plain_array(values: Any) -> Any:
    """A per-device array as a JSON list (numpy: NaN as None, as in an inline preset)."""
    if isinstance(values, np.ndarray):
        return [
            v if not isinstance(v, float) or math.isfinite(v) else None for v in values.tolist()
        ]
    return list(values) if isinstance(values, list) else values


def _copy_array(values: Any) -> Any:
    """A list copied (pointers only); a numpy array as a read-only view (no copy: a chip's
    arrays can be hundreds of MB, and the fitter hands them over)."""
    if isinstance(values, list):
        return list(values)
    if isinstance(values, np.ndarray):
        view = values.view()
        view.flags.writeable = False
        return view
    return values


# ------------------------------------------------------------------------------ validation
def check_document(preset: Any, source: str, envelope: bool = True) -> None:
    """Raise :class:`PresetError` naming the first problem of a parsed preset ``preset``.

    Beyond the schema: every number is finite, ``schema_version`` is an integer (not 2.0),
    per-device arrays are numbers (or null) of one length, and the values are in range
    (:func:`_check_ranges`). Without ``envelope`` the top-level ``schema``,
    ``schema_version`` and ``provenance`` may be absent (bare sections).
    """
    import jsonschema

    if not isinstance(preset, Mapping):
        raise PresetError(f"{source}: a preset must be a JSON object")
    version = preset.get("schema_version")
    if "schema_version" in preset and type(version) is not int:
        raise PresetError(
            f"{source}: invalid preset at schema_version: {version!r} is not an integer"
        )
    bad = first_non_finite({k: v for k, v in preset.items() if k != "per_device"})
    if bad is not None:
        where, value = bad
        raise PresetError(
            f"{source}: invalid preset at {where}: {value} is not a finite number "
            "(use null for a value that is not known)"
        )
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise PresetError(
            f"{source}: preset schema version {version} is newer than this software supports "
            f"({SCHEMA_VERSION}); upgrade aimc-calib"
        )
    # Per-device arrays can hold millions of numbers: check them with numpy and give the
    # schema validator the rest of the document (element-wise jsonschema costs ~0.1 ms/device).
    per_device = preset.get("per_device")
    if "per_device_file" in preset:
        check_reference(preset["per_device_file"], source)
        if per_device is not None and not isinstance(per_device, DeferredArrays):
            raise PresetError(
                f"{source}: invalid preset: per_device and per_device_file both given (one only)"
            )
    rest = {k: v for k, v in preset.items() if k != "per_device"}
    if isinstance(per_device, dict):
        _check_per_device(per_device, source)
    elif per_device is not None and not isinstance(per_device, DeferredArrays):
        rest["per_device"] = per_device  # not an object: the schema names it
    try:
        _schema_check(rest, PRESET_SCHEMA if envelope else _SECTIONS_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        message = exc.message
        if exc.validator == "oneOf":
            message = f"{exc.instance!r} is not a number, a flag or a list of numbers"
        raise PresetError(f"{source}: invalid preset at {where}: {message}") from None
    device = rest.get("device") or {}  # PCM-only presets have no device section
    if device.get("model") in FAMILIES:
        params = device["parameters"]
        problem = _check_types(device["model"], params)
        if problem is not None:
            raise PresetError(f"{source}: invalid preset at {problem}")
        if not (isinstance(params["dw_min"], int | float) and params["dw_min"] > 0):
            raise PresetError(f"{source}: invalid preset: device dw_min must be positive")
        w_max, w_min = params["w_max"], params["w_min"]
        if (
            not (isinstance(w_max, int | float) and isinstance(w_min, int | float))
            or w_min >= w_max
        ):
            raise PresetError(f"{source}: invalid preset: device needs w_min < w_max")
    problem = _check_ranges(rest)
    if problem is not None:
        raise PresetError(f"{source}: invalid preset at {problem}")


def _check_types(model: str, params: Mapping[str, Any]) -> str | None:
    """``"path: problem"`` for the first aihwkit field of ``model`` whose value has the wrong
    type: a number field given a flag (``true`` would be read as 1) or a list, a node list
    given a single value. Unknown names are ignored (datasets/PRESET.md); null is allowed."""
    for spec in (*CATALOGUE[model].all_fields, REFERENCE_FIELD):
        value = params.get(spec.name)
        if value is None or isinstance(spec.default, bool):
            continue
        where = f"device/parameters/{spec.name}"
        if isinstance(spec.default, list):
            if not isinstance(value, list):
                return f"{where}: {value!r} is not a list of step scale factors"
        elif not _is_number(value):
            return f"{where}: {value!r} is not a number"
    return None


_VALIDATORS: dict[int, Any] = {}


def _schema_check(instance: Any, schema: dict[str, Any]) -> None:
    """``jsonschema.validate`` with the validator of each (module-level) schema built once:
    the same first error (``best_match``), without re-checking the schema on every call
    (about 0.1 s per preset otherwise)."""
    import jsonschema

    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = _VALIDATORS[id(schema)] = cls(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


def check_reference(reference: Any, source: str) -> None:
    """The ``per_device_file`` reference has the documented fields (one-line error)."""
    import jsonschema

    try:
        _schema_check(reference, REFERENCE_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        where = f"per_device_file/{where}" if where else "per_device_file"
        raise PresetError(f"{source}: invalid preset at {where}: {exc.message}") from None


def _check_per_device(per_device: dict[str, Any], source: str) -> None:
    """Every per-device entry is a flat list (or array) of numbers or null, all one length."""
    sizes: dict[str, int] = {}
    for name, values in per_device.items():
        where = f"{source}: invalid preset at per_device/{name}"
        if not isinstance(values, list | np.ndarray):
            raise PresetError(f"{where}: not an array")
        if isinstance(values, np.ndarray):
            if values.dtype.kind not in "biuf":
                raise PresetError(f"{where}: not numeric")
            if values.ndim != 1:
                raise PresetError(f"{where}: not a flat list")
            arr = values.astype(float, copy=False)
            bad = np.isinf(arr)  # NaN marks a missing estimate (null in JSON)
        else:
            kinds = {type(v) for v in values}
            if any(issubclass(t, bool | np.bool_) for t in kinds):
                raise PresetError(f"{where}: booleans found")
            if any(t is not type(None) and not issubclass(t, numbers.Real) for t in kinds):
                raise PresetError(f"{where}: values must be numbers or null")  # e.g. "1e-5"
            try:
                arr = np.asarray([0.0 if v is None else v for v in values], dtype=float)
            except (TypeError, ValueError, OverflowError):
                raise PresetError(f"{where}: values must be numbers or null") from None
            if arr.ndim != 1:
                raise PresetError(f"{where}: not a flat list")
            bad = ~np.isfinite(arr)
        if np.any(bad):
            k = int(np.argmax(bad))
            raise PresetError(
                f"{where}/{k}: {arr[k]} is not a finite number (use null for a missing estimate)"
            )
        sizes[name] = int(arr.size)
    if len(set(sizes.values())) > 1:
        raise PresetError(
            f"{source}: invalid preset at per_device: arrays differ in length {sizes}"
        )


# -- value checks the schema cannot express (finite numbers, ranges, ordered tables)
#: device parameters that are spreads or noise levels (relative std devs): >= 0
_NON_NEGATIVE = (
    "write_noise_std",
    "dw_min_std",
    "pow_gamma_dtod",
    "pow_up_down_dtod",
    "reference_std",
)
#: device parameters that are probabilities
_PROBABILITY = ("corrupt_devices_prob",)


_FLOAT_MAX = sys.float_info.max


def first_non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """(path, value) of the first NaN or infinite float inside ``value``, or None."""
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            return (where or "top level", float(value))
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _FLOAT_MAX:
            return (where or "top level", math.inf if value > 0 else -math.inf)  # 1e400 as digits
        return None
    for key, item in items:
        found = first_non_finite(item, f"{where}/{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_ranges(preset: Mapping[str, Any]) -> str | None:
    """The first out-of-range value as ``"path: problem"`` (None when all are in range).

    Ranges follow aihwkit's meaning of each field (``datasets/PRESET.md``): spreads
    (``*_dtod``, ``*_std``), uncertainties and noise levels are >= 0, probabilities in
    [0, 1], ``up_down`` in [-1, 1] (aihwkit's steps are dw_min·(1 ± up_down): beyond ±1 one
    direction would step backwards); PCM clip bounds ``lo <= hi``, drift tables sorted in
    x > 0 with one μ_ν and σ_ν per x, σ_ν >= 0, valid ranges with min <= max.
    """
    device = preset.get("device")
    if isinstance(device, Mapping):
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
    if isinstance(pcm, Mapping):
        return _check_pcm_ranges(pcm)
    return None


def _check_pcm_ranges(pcm: Mapping[str, Any]) -> str | None:
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
