"""What a preset is (PCM inference or pulsed device), whether two presets can be compared,
and the form in which the simulator evaluates each.

* ``pcm``: a preset with a ``pcm`` section (``calib fit pcm``; the PCM chip's truth), used
  for inference: programming noise, drift and read noise of differential conductance pairs.
* ``pulsed``: a preset whose ``device`` is a pulsed-device family (``calib fit
  pulse-response``; the ReRAM and ECRAM chips' truths), used to train the network and then
  hold its weights, one device per weight against a reference conductance.

The ECRAM chip's truth response (``quadratic-saturation``) is not one of the simulator's
families; :func:`simulatable_preset` rewrites it exactly as a 21-node ``piecewise-step``
(the step multiplier 1 - c·u² up and 1 - c·(1 - u)² down, u the position in the device's own
range, is exact at the nodes and linear in between: at most c/1600 relative error).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from calib.errors import CalibError
from simulator.devices.response import FAMILIES
from simulator.preset_document import chip_technology

__all__ = [
    "check_compatible",
    "defect_fraction",
    "preset_kind",
    "rereferenced",
    "simulatable_preset",
    "technology",
    "weight_scale",
]

PIECEWISE_NODES = 21


def preset_kind(preset: Mapping[str, Any], label: str) -> str:
    """``"pcm"`` or ``"pulsed"``; a one-line :class:`CalibError` for anything else."""
    if not isinstance(preset, Mapping):
        raise CalibError(f"{label}: a preset must be a JSON object")
    if isinstance(preset.get("pcm"), Mapping):
        return "pcm"
    device = preset.get("device") or {}
    model = device.get("model")
    if model in FAMILIES or device.get("emulator_response") == "quadratic-saturation":
        return "pulsed"
    raise CalibError(
        f"{label}: neither a PCM inference preset (no 'pcm' section) nor a pulsed-device "
        f"preset (device model {model!r} is not one of {', '.join(FAMILIES)})"
    )


def technology(preset: Mapping[str, Any]) -> str | None:
    """The chip technology a preset was measured on (``reram``, ``ecram``, ``pcm``), if known.

    Read from the instrument identity in the provenance (``EMU,AIMC-XBAR-<KIND>``) or the
    emulator record of a truth preset; PCM inference presets are ``pcm``.
    """
    return chip_technology(preset)  # the preset document's one reading of it


def check_compatible(
    fitted: Mapping[str, Any], truth: Mapping[str, Any], fitted_name: str, truth_name: str
) -> str:
    """The common kind of two presets; :class:`CalibError` when they cannot be compared."""
    kind_f, kind_t = preset_kind(fitted, fitted_name), preset_kind(truth, truth_name)
    names = {"pcm": "a PCM inference preset", "pulsed": "a pulsed-device (training) preset"}
    if kind_f != kind_t:
        raise CalibError(
            f"{fitted_name} is {names[kind_f]} but {truth_name} is {names[kind_t]}; "
            "compare presets of the same family"
        )
    tech_f, tech_t = technology(fitted), technology(truth)
    if tech_f and tech_t and tech_f != tech_t:
        raise CalibError(
            f"{fitted_name} was measured on a {tech_f} chip but {truth_name} describes a "
            f"{tech_t} chip; compare presets of the same technology"
        )
    return kind_f


def weight_scale(preset: Mapping[str, Any]) -> float:
    """Siemens per weight unit of a pulsed preset: max(w_max, -w_min) (the simulator's)."""
    params = preset["device"]["parameters"]
    return max(float(params["w_max"]), -float(params["w_min"]))


def simulatable_preset(preset: Mapping[str, Any]) -> dict[str, Any]:
    """``preset`` in a form the simulator reads (a copy); ECRAM truth -> piecewise-step."""
    out = copy.deepcopy(dict(preset))
    device = out.get("device") or {}
    if device.get("model") in FAMILIES or device.get("emulator_response") is None:
        return out
    if device["emulator_response"] != "quadratic-saturation":
        raise CalibError(f"device response {device['emulator_response']!r} cannot be simulated")
    params = dict(device["parameters"])
    c = float(params.pop("curvature", device.get("curvature", 0.0)))
    u = np.linspace(0.0, 1.0, PIECEWISE_NODES)
    params["piecewise_up"] = (1.0 - c * u**2).tolist()
    params["piecewise_down"] = (1.0 - c * (1.0 - u) ** 2).tolist()
    device.update(model="piecewise-step", parameters=params)
    device.pop("emulator_response", None)
    device.pop("curvature", None)
    return out


def rereferenced(preset: Mapping[str, Any], g_ref_s: float) -> dict[str, Any]:
    """A pulsed preset re-expressed around the reference conductance ``g_ref_s`` (a copy).

    The bounds move by Δ = g_offset_s - g_ref_s and their relative device-to-device spreads
    are rescaled so that the absolute spreads (siemens) stay the same. Only the bounds change
    meaning; a weight w is the conductance g_ref_s + scale·w in either form.
    """
    out = copy.deepcopy(dict(preset))
    device = out["device"]
    params = device["parameters"]
    delta = float(device.get("g_offset_s", g_ref_s)) - float(g_ref_s)
    if delta == 0.0:
        return out
    for bound in ("w_max", "w_min"):
        old = float(params[bound])
        new = old + delta
        params[bound] = new
        key = f"{bound}_dtod"
        if key in params and params[key] is not None and new != 0:
            params[key] = abs(float(params[key]) * old / new)
    if not float(params["w_min"]) < 0 < float(params["w_max"]):
        raise CalibError(
            f"the device range [{params['w_min']:.3g}, {params['w_max']:.3g}] S around the "
            f"reference {g_ref_s:.3g} S does not contain it: presets of different devices?"
        )
    device["g_offset_s"] = float(g_ref_s)
    return out


def defect_fraction(preset: Mapping[str, Any]) -> float:
    """Fraction of devices that cannot be programmed (stuck), as the preset records it.

    A truth (or any preset with a device section) states ``corrupt_devices_prob``; a fitted
    PCM preset has no device section, so the fraction is what its campaigns measured: the
    devices excluded because program-and-verify did not converge, pooled over the campaigns
    (``pcm.excluded_devices`` / ``pcm.n_devices``). 0 when neither is recorded.
    """
    params = (preset.get("device") or {}).get("parameters") or {}
    if params.get("corrupt_devices_prob") is not None:
        return float(params["corrupt_devices_prob"])
    pcm = preset.get("pcm") or {}
    excluded, counts = pcm.get("excluded_devices") or {}, pcm.get("n_devices") or {}
    failed = total = 0
    for source, reasons in excluded.items():
        if isinstance(reasons, Mapping) and isinstance(counts.get(source), (int, float)):
            failed += sum(int(n) for r, n in reasons.items() if "did not converge" in r)
            total += int(counts[source])
    return failed / total if total else 0.0
