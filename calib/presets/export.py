"""Export a preset's device model to IBM aihwkit (JSON description or a Python snippet).

The JSON written by :func:`aihwkit_device` is
``{"device": {"class": "<aihwkit device class>", "parameters": {<field>: <value>}}, ...}``
so that ``getattr(aihwkit.simulator.configs.devices, cls)(**parameters)`` rebuilds the
device. aihwkit is not a dependency of this toolkit; the field names and their meaning
follow aihwkit's code (REFERENCES.md [R2]-[R4]).

aihwkit works in weight units. The preset's conductance fields (``dw_min``, ``w_max``,
``w_min``, siemens around ``g_offset_s``) are divided by a conductance-per-weight scale,
by default ``max(w_max, −w_min)`` as in the simulator (bounds become at most ±1). Relative
fields (``*_dtod``, ``dw_min_std``, ``up_down``) and ``write_noise_std`` (units of
``dw_min``) need no conversion. The read noise of the measurement is not a device field and
is reported under ``not_exported``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from calib.errors import CalibError
from calib.presets import Preset, as_preset
from simulator.devices.families import CATALOGUE, PULSED_FIELDS, REFERENCE_FIELD

__all__ = ["AIHWKIT_CLASSES", "AIHWKIT_FIELDS", "aihwkit_device", "python_snippet"]

#: aihwkit device class of every family (from the family catalogue).
AIHWKIT_CLASSES = {name: fam.aihwkit_class for name, fam in CATALOGUE.items()}

#: Constructor fields we export, per aihwkit class (a subset of each dataclass's fields).
AIHWKIT_FIELDS: dict[str, tuple[str, ...]] = {
    fam.aihwkit_class: fam.exported for fam in CATALOGUE.values()
}

CONDUCTANCE_FIELDS = tuple(
    f.name for f in (*PULSED_FIELDS, REFERENCE_FIELD) if f.kind == "conductance"
)
FIXED = {fam.aihwkit_class: dict(fam.export_fixed) for fam in CATALOGUE.values()}


def aihwkit_device(
    preset: Preset | Mapping[str, Any], scale_s: float | None = None
) -> dict[str, Any]:
    """The aihwkit description of ``preset``'s device (see the module docstring).

    A :class:`~calib.presets.Preset` (from ``load_preset``) is used as validated; a plain
    document is validated first (one-line :class:`CalibError`).
    """
    preset = as_preset(preset, "<preset>")
    device = preset.device
    model = preset.model
    if device is None or model not in AIHWKIT_CLASSES:
        raise CalibError(
            f"preset device model {model!r} has no aihwkit counterpart; "
            f"exportable models: {', '.join(AIHWKIT_CLASSES)}"
        )
    cls = AIHWKIT_CLASSES[model]
    params = device["parameters"]
    if scale_s is None:
        scale_s = max(float(params["w_max"]), -float(params["w_min"]))
    if not scale_s > 0:
        raise CalibError(f"conductance scale must be positive, got {scale_s}")
    out: dict[str, Any] = {}
    not_exported: dict[str, Any] = {}
    for name in AIHWKIT_FIELDS[cls]:
        if name in FIXED.get(cls, {}):
            out[name] = FIXED[cls][name]
        elif name in params and params[name] is not None:
            value = params[name]
            if name in CONDUCTANCE_FIELDS:
                value = float(value) / scale_s
            out[name] = value
    for name in CATALOGUE[model].export_refused:  # e.g. ConstantStep aborts on write noise
        if float(params.get(name) or 0.0) > 0:
            not_exported[name] = params[name]
    if device.get("read_noise_s") is not None:
        not_exported["read_noise_s"] = device["read_noise_s"]
    notes = _reference_offset(model, params, scale_s, out, not_exported)
    exported_fields = AIHWKIT_FIELDS[cls]  # the family's (a reference class drops zeros)
    if REFERENCE_FIELD.name in out:
        cls = CATALOGUE[model].reference_class or cls
    for name, value in params.items():
        if name not in out and name not in not_exported and name not in exported_fields:
            not_exported[name] = value
    return {
        "device": {"class": cls, "parameters": out},
        "conversion": {
            "weight_per_siemens": 1.0 / scale_s,
            "scale_s": scale_s,
            "g_offset_s": device["g_offset_s"],
            "conductance_unit": device.get("conductance_unit", "S"),
            "note": "w = (G - g_offset_s) / scale_s; dw_min, w_max, w_min converted, "
            "relative fields unchanged",
        },
        "not_exported": not_exported,
        **({"notes": notes} if notes else {}),
        "source": {"schema_version": preset.get("schema_version"), "model": model},
    }


def _reference_offset(
    model: str, params: Mapping[str, Any], scale_s: float, out: dict, not_exported: dict
) -> list[str]:
    """A per-device reference offset (``reference_std`` > 0, datasets/PRESET.md): aihwkit's
    reference device of the family carries it as ``reference_std`` (a reference subtracted
    from each device's weight, mean 0); families without one list it under ``not_exported``
    with a note. Returns the notes (empty: no offset, nothing changed)."""
    value = float(params.get(REFERENCE_FIELD.name) or 0.0)
    if value <= 0:
        return []
    fam = CATALOGUE[model]
    if fam.reference_class is None:
        not_exported[REFERENCE_FIELD.name] = value
        return [
            f"the preset's per-device reference offset (reference_std = {value:.3g} S) is not "
            f"representable in aihwkit's {fam.aihwkit_class} (its w_max_dtod/w_min_dtod are "
            "independent per bound: windows shifted together cannot be drawn); the exported "
            "device's windows do not move together"
        ]
    refused = [n for n in fam.reference_refused if float(params.get(n) or 0.0) > 0]
    if refused:  # e.g. PowStepReferenceDevice has no write noise: keep the plain class
        not_exported[REFERENCE_FIELD.name] = value
        return [
            f"reference_std = {value:.3g} S not exported: aihwkit's {fam.reference_class} "
            f"has no {', '.join(refused)} and this preset's is > 0"
        ]
    for name in fam.reference_refused:  # zero here; not a field of the reference class
        out.pop(name, None)
    out[REFERENCE_FIELD.name] = value / scale_s
    out["reference_mean"] = 0.0
    if "mult_noise" in {f.name for f in fam.fields}:
        out.setdefault("mult_noise", True)  # SoftBoundsReferenceDevice defaults to False
    return [
        f"per-device reference offset exported as {fam.reference_class}.reference_std "
        f"(weight units; aihwkit subtracts a reference r ~ N(0, reference_std^2) from each "
        "device's weight, so its window is shifted by -r)"
    ]


def python_snippet(exported: dict[str, Any]) -> str:
    """Python code that builds the exported device with aihwkit."""
    cls = exported["device"]["class"]
    lines = [
        f"from aihwkit.simulator.configs.devices import {cls}",
        "",
        f"device = {cls}(",
    ]
    for name, value in exported["device"]["parameters"].items():
        lines.append(f"    {name}={_literal(value)},")
    lines.append(")")
    conv = exported["conversion"]
    lines.append(
        f"# weights w = (G - {conv['g_offset_s']:.6g}) / {conv['scale_s']:.6g} "
        f"({conv['conductance_unit']})"
    )
    return "\n".join(lines) + "\n"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise CalibError(f"{value} is not a finite number: no aihwkit code written")
    if isinstance(value, float):
        return repr(float(f"{value:.10g}"))
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)
