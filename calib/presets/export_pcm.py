"""Export a preset's ``pcm`` section as an aihwkit inference noise model.

aihwkit's ``PCMLikeNoiseModel`` (``aihwkit.inference.noise.pcm``; REFERENCES.md [R8]) works
in µS and seconds: ``prog_coeff`` are µS at the reference g_max (we pass our g_max through a
``SinglePairConductanceConverter`` and leave ``prog_coeff_g_max_reference`` unset, so the
reference is that g_max; passing both crashes aihwkit), ``t_0`` and ``t_read`` in s. Its
drift exponents and its Q_s are hard-coded to the published constants, so:

- drift: when the fitted μ_ν, σ_ν equal the published curves (within 1e-4 over the valid
  range) ``PCMLikeNoiseModel`` is used; otherwise ``CustomDriftPCMLikeNoiseModel`` with
  ``custom_drift_model`` = our μ_ν(g), σ_ν(g) sampled at 64 conductances from 0 to g_max
  (aihwkit interpolates linearly in g; we sample geometrically, so the difference to our
  model, linear in ln g, stays small);
- read noise: ``read_noise_scale`` s minimizes the squared log-ratio between s·Q_s,published
  and our Q_s over the valid range; the largest remaining relative difference is reported.
  aihwkit takes x from g_prog; a preset fitted with the g_T convention is noted; our white
  read-noise floor has no aihwkit counterpart.

Time: aihwkit evaluates at t = t_inference + t_0, so its ``t_inference`` is our time since
programming minus t0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calib.errors import CalibError
from calib.presets import json_text
from fitting.pcm_model import PUBLISHED, drift_curves, min_power_q

__all__ = ["aihwkit_noise_model", "python_snippet"]

N_DRIFT_POINTS = 64
SAME_DRIFT_TOL = 1e-4


def _valid_x(pcm: dict[str, Any]) -> np.ndarray:
    g_max = float(pcm["g_max_s"])
    rng = pcm.get("valid_range") or {}
    lo = max(float(rng.get("g_min_s") or 0.0), 1e-3 * g_max)
    hi = float(rng.get("g_max_s") or g_max)
    return np.geomspace(lo, max(hi, lo * 1.001), 200) / g_max


def aihwkit_noise_model(pcm: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of aihwkit's PCM noise model for a preset ``pcm`` section.

    Returns ``{"class", "module", "arguments", "g_converter", "units", "notes",
    "read_noise_scale_max_rel_error"}``; ``arguments`` are in aihwkit's units (µS, s).
    """
    try:
        g_max = float(pcm["g_max_s"])
        coeffs = [float(c) for c in pcm["prog_noise"]["coefficients_s"]]
        drift, read = pcm["drift"], pcm["read_noise"]
        t0, t_read = float(pcm["t0_s"]), float(pcm["t_read_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibError(f"preset pcm section is incomplete for aihwkit export: {exc}") from None
    g_max_us = g_max * 1e6
    notes: list[str] = [
        "aihwkit t_inference = (time since programming) - t_0; drift starts at t_0",
    ]
    x = _valid_x(pcm)
    mu, sig = drift_curves(drift, x)
    pub = PUBLISHED
    x_pub = x * g_max / pub["g_max_s"]
    pmu, psig = drift_curves(
        {"form": "clipped-log", "mu_nu": pub["mu_nu"], "sigma_nu": pub["sigma_nu"]}, x_pub
    )
    same_drift = bool(
        np.max(np.abs(mu - pmu)) < SAME_DRIFT_TOL and np.max(np.abs(sig - psig)) < SAME_DRIFT_TOL
    )
    q = min_power_q(x, read["a"], read["b"], read["c"], read.get("x_floor", 1e-3))
    q_pub_params = pub["read_q"]
    q_pub = min_power_q(
        x_pub, q_pub_params["a"], q_pub_params["b"], q_pub_params["c"], q_pub_params["x_floor"]
    )
    if np.all(q == 0):  # a = 0: no read noise, which aihwkit's scale 0 reproduces exactly
        scale, max_rel = 0.0, 0.0
    else:
        log_ratio = np.log(q / q_pub)
        scale = float(np.exp(log_ratio.mean()))
        max_rel = float(np.max(np.abs(scale * q_pub / q - 1)))
    if max_rel > 0.01:
        notes.append(
            f"read noise: aihwkit's Q_s shape is fixed; read_noise_scale={scale:.4g} matches "
            f"ours within {100 * max_rel:.1f} % over the valid range"
        )
    if read.get("conductance", "g_prog") != "g_prog":
        notes.append("read noise: fitted with x = g_T/g_max, aihwkit uses g_prog/g_max")
    if float(read.get("white_s", 0.0) or 0.0) > 0:
        notes.append(
            f"read noise: white floor {float(read['white_s']):.3g} S not representable in aihwkit"
        )
    args: dict[str, Any] = {
        "prog_coeff": [float(f"{c * 1e6:.12g}") for c in coeffs],
        "t_read": t_read,
        "t_0": t0,
        "prog_noise_scale": 1.0,
        "read_noise_scale": scale,
        "drift_scale": 1.0,
    }
    signed = drift.get("sign", "absolute") == "signed"
    if signed:
        same_drift = False
        notes.append(_signed_drift_note(pcm, mu, sig))
    if same_drift:
        cls = "PCMLikeNoiseModel"
        notes.append("drift: the published μ_ν, σ_ν (aihwkit's built-in curves)")
    else:
        cls = "CustomDriftPCMLikeNoiseModel"
        g_lst = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, N_DRIFT_POINTS - 1)]) * g_max
        m, s = drift_curves(drift, g_lst / g_max)
        args["custom_drift_model"] = {
            "g_lst": (g_lst * 1e6).tolist(),
            "nu_mean_lst": m.tolist(),
            "nu_std_lst": np.maximum(s, 0.0).tolist(),
        }
        notes.append(
            f"drift: fitted μ_ν, σ_ν ({drift.get('form')}) as a custom drift model "
            "(aihwkit interpolates linearly in g)"
        )
    return {
        "class": cls,
        "module": "aihwkit.inference.noise.pcm",
        "arguments": args,
        "g_converter": {
            "class": "SinglePairConductanceConverter",
            "module": "aihwkit.inference.converter.conductance",
            "arguments": {"g_max": g_max_us, "g_min": 0.0},
        },
        "units": {
            "prog_coeff": "uS at g_max",
            "g_max": "uS",
            "t_0": "s",
            "t_read": "s",
            "custom_drift_model.g_lst": "uS",
        },
        "read_noise_scale_max_rel_error": max_rel,
        "notes": notes,
    }


def _signed_drift_note(pcm: dict[str, Any], mu: np.ndarray, sig: np.ndarray) -> str:
    """What aihwkit loses on a signed drift exponent (its drift is always |N(μ_ν, σ_ν)|)."""
    from scipy import special

    s = np.maximum(sig, 1e-12)
    folded_mean = s * np.sqrt(2 / np.pi) * np.exp(-(mu**2) / (2 * s**2)) + mu * (
        1 - 2 * special.ndtr(-mu / s)
    )
    rng = pcm.get("valid_range") or {}
    t0 = float(pcm["t0_s"])
    t = float(rng.get("t_max_s") or 1e4 * t0)
    log_t = np.log(max(t, t0) / t0)
    ours = float(np.exp(-np.mean(mu) * log_t))
    theirs = float(np.exp(-np.mean(folded_mean) * log_t))
    negative = float(np.mean(special.ndtr(-mu / s)))
    return (
        "drift: the preset's exponent is signed, ν ~ N(μ_ν, σ_ν) (conductance may relax up, "
        f"{negative:.0%} of devices on average over the valid range); aihwkit draws "
        "|N(μ_ν, σ_ν)| and cannot represent upward drift: the exported custom drift model "
        "carries the same μ_ν, σ_ν, so aihwkit's devices drift down more: geometric-mean "
        f"G(t)/G(t0) at t = {t:.3g} s is {theirs:.3f} in aihwkit vs {ours:.3f} in the preset "
        "(use this toolkit's simulator for the signed model)"
    )


def python_snippet(pcm: dict[str, Any]) -> str:
    """Python code that builds the aihwkit noise model and an InferenceRPUConfig using it."""
    model = aihwkit_noise_model(pcm)
    json_text(model, "aihwkit noise model")  # refuses NaN/inf: no `nan` in the code
    conv = model["g_converter"]
    args = dict(model["arguments"])
    lines = [
        "# aihwkit inference noise model from an aimc-calib preset (pcm section)",
        *(f"# note: {n}" for n in model["notes"]),
        f"from {model['module']} import {model['class']}",
        f"from {conv['module']} import {conv['class']}",
        "from aihwkit.simulator.configs import InferenceRPUConfig",
        "",
        f"noise_model = {model['class']}(",
    ]
    if "custom_drift_model" in args:
        drift = args.pop("custom_drift_model")
        lines.append(f"    custom_drift_model={json_text(drift, 'custom drift model', None)},")
    lines.append(
        f"    g_converter={conv['class']}(g_max={conv['arguments']['g_max']!r}, "
        f"g_min={conv['arguments']['g_min']!r}),"
    )
    for key, value in args.items():
        lines.append(f"    {key}={value!r},")
    lines += [")", "rpu_config = InferenceRPUConfig()", "rpu_config.noise_model = noise_model", ""]
    return "\n".join(lines)
