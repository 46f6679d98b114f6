"""Checks of a fit against traces made by aihwkit itself (issue 13; fixtures in fixtures/aihwkit).

The reference step rules below are written from aihwkit 1.2.0's C++ update rules
(``src/rpucuda/rpu_*_device.cpp``: ``update_once`` of each device, ``populate`` of
``PulsedRPUDevice``), independently of ``simulator.devices``: they are what an aihwkit
user's device does, so they can judge our families. ``test_aihwkit_conformance`` checks
them against the noise-free trace aihwkit itself produced for every fixture.

:func:`evaluate_case` runs the user's path on one case (``calib fit pulse-response --model
auto`` through :func:`calib.fit.pulse_response.fit_pulse_response_file`, then the aihwkit export
of :mod:`calib.presets.export`) and measures every criterion of the issue:

* ``family``: the chosen family, and whether it is the true one or one the case states as
  exactly equivalent;
* ``curve_rms``: up and down expected step vs w of the exported device against the truth
  (both the nominal device: population-mean fields, no spreads; the truth's step sizes and
  bounds are those of the devices aihwkit actually drew, :func:`realized_fields`), rms over
  the visited range relative to the truth's largest step, in the truth's frame: the exported
  device lives in w_e = (G - g_offset_s)/scale_s (the export's ``conversion``) and the
  fixtures store G = w;
* ``dw_min_dtod`` (absolute) and ``dw_min_std`` (relative) errors, when the family is the
  true one (an equivalent family reparametrizes the spreads);
* bounds reached by at least :data:`REACHED` of the devices: relative error against the
  drawn devices' mean bound; bounds reached by fewer are reported as limits (the fitted
  value, not checked);
* re-simulation of the exported preset in our torch simulator (``simulator.tile.PulsedTile``
  driven pulse by pulse from the measured first reads, with the preset's read noise): the
  largest error of the mean trace as a fraction of the measured span, and the ratio of the
  device spread (std across devices, mean over reads) simulated / measured; the same for
  the exported device rebuilt in aihwkit when aihwkit is installed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures" / "aihwkit"
CASES = tuple(sorted(p.stem for p in FIXTURES.glob("*.h5")))

#: the issue's acceptance limits
CURVE_RMS_MAX = 0.05  # rms step error / largest true step
DTOD_ABS_MAX = 0.05  # |dw_min_dtod - truth|
STD_REL_MAX = 0.20  # |dw_min_std / truth - 1|
BOUND_REL_MAX = 0.10  # |bound / truth - 1| for reached bounds
MEAN_TRACE_MAX = 0.03  # max |simulated - measured mean trace| / measured span
SPREAD_REL_MAX = 0.20  # |spread ratio - 1|
REACHED = 0.25  # a bound counts as reached when this fraction of devices touched it
SIM_COPIES = 4  # simulated devices per measured one (the mean trace is then the model's)

#: aihwkit 1.2.0's defaults of the fields that shape the nominal step (devices.py)
AIHWKIT_DEFAULTS: dict[str, dict[str, Any]] = {
    "PulsedDevice": {"dw_min": 0.001, "up_down": 0.0, "w_max": 0.6, "w_min": -0.6},
    "ConstantStepDevice": {},
    "LinearStepDevice": {
        "gamma_up": 0.0,
        "gamma_down": 0.0,
        "allow_increasing": False,
        "mean_bound_reference": True,
    },
    "SoftBoundsDevice": {},
    "SoftBoundsReferenceDevice": {"reference_mean": 0.0, "subtract_symmetry_point": False},
    "ExpStepDevice": {
        "A_up": 0.00081,
        "A_down": 0.36833,
        "gamma_up": 12.44625,
        "gamma_down": 12.78785,
        "a": 0.244,
        "b": 0.2425,
    },
    "PowStepDevice": {"pow_gamma": 1.0, "pow_up_down": 0.0},
    "PowStepReferenceDevice": {
        "pow_gamma": 1.0,
        "pow_up_down": 0.0,
        "reference_mean": 0.0,
        "subtract_symmetry_point": False,
    },
    "PiecewiseStepDevice": {"piecewise_up": [1.0], "piecewise_down": [1.0]},
}


def load_truth(case: str, fixtures: Path = FIXTURES) -> dict[str, Any]:
    return json.loads((fixtures / f"{case}.json").read_text())


def nominal_fields(cls: str, params: dict[str, Any]) -> dict[str, Any]:
    """aihwkit's defaults of ``cls`` overridden by ``params``."""
    return {**AIHWKIT_DEFAULTS["PulsedDevice"], **AIHWKIT_DEFAULTS[cls], **params}


def aihwkit_step(cls: str, params: dict[str, Any], w: np.ndarray, up: bool) -> np.ndarray:
    """Expected signed step of aihwkit's nominal device (no d2d, no c2c) at weights ``w``.

    Nominal device: gain 1 and asymmetry r = 0, so Δ⁺ = dw_min·(1 + min(up_down, 0)) and
    Δ⁻ = dw_min·(1 − max(up_down, 0)) (``PulsedRPUDevice::populate``); bounds w_max, w_min.
    """
    p = nominal_fields(cls, params)
    w = np.asarray(w, dtype=float)
    beta = float(p["up_down"])
    d_up = float(p["dw_min"]) * (1.0 + min(beta, 0.0))
    d_down = float(p["dw_min"]) * (1.0 - max(beta, 0.0))
    b_max, b_min = float(p["w_max"]), float(p["w_min"])
    if cls == "ConstantStepDevice":
        return np.full_like(w, d_up if up else -d_down)
    if cls == "SoftBoundsDevice":  # linear-step with γ = 1 and the device's own bounds
        return d_up * (1.0 - w / b_max) if up else -d_down * (1.0 - w / b_min)
    if cls == "SoftBoundsReferenceDevice":  # reads w = state − r, r = reference_mean
        if p["subtract_symmetry_point"]:
            raise ValueError("no reference rule for subtract_symmetry_point")
        x = w + float(p["reference_mean"])
        return d_up * (1.0 - x / b_max) if up else -d_down * (1.0 - x / b_min)
    if cls == "LinearStepDevice":
        g_up, g_down = float(p["gamma_up"]), float(p["gamma_down"])
        if not p["allow_increasing"]:
            g_up, g_down = abs(g_up), abs(g_down)
        # nominal device: the mean bound reference and the device's own bounds coincide
        if up:
            return d_up * (1.0 - g_up * w / b_max)
        return -d_down * (1.0 - g_down * w / b_min)
    if cls == "ExpStepDevice":
        z = 2.0 * float(p["a"]) * w / (b_max - b_min) + float(p["b"])
        if up:
            return d_up * np.maximum(1.0 - float(p["A_up"]) * np.exp(float(p["gamma_up"]) * z), 0)
        return -d_down * np.maximum(
            1.0 - float(p["A_down"]) * np.exp(-float(p["gamma_down"]) * z), 0.0
        )
    if cls in ("PowStepDevice", "PowStepReferenceDevice"):
        if p.get("subtract_symmetry_point"):
            raise ValueError("no reference rule for subtract_symmetry_point")
        w = w + float(p.get("reference_mean", 0.0))  # reads w = state − r
        gamma, beta_p = float(p["pow_gamma"]), float(p["pow_up_down"])
        g_up = abs(gamma * (1.0 + min(beta_p, 0.0)))  # enforce_consistency: |γ±|
        g_down = abs(gamma * (1.0 - max(beta_p, 0.0)))
        span = b_max - b_min
        if up:
            return d_up * np.clip((b_max - w) / span, 0.0, None) ** g_up
        return -d_down * np.clip((w - b_min) / span, 0.0, None) ** g_down
    if cls == "PiecewiseStepDevice":
        nodes = np.asarray(p["piecewise_up"] if up else p["piecewise_down"], dtype=float)
        n = nodes.size - 1
        if n == 0:
            mult = np.full_like(w, nodes[0])
        else:
            s = np.maximum((w - b_min) / (b_max - b_min) * n, 0.0)
            k = np.minimum(np.floor(s), n - 1).astype(int)
            q = np.minimum(s - k, 1.0)
            mult = (1.0 - q) * nodes[k] + q * nodes[k + 1]
        return d_up * mult if up else -d_down * mult
    raise ValueError(f"no reference rule for aihwkit class {cls!r}")


def _mean_gain(fields: dict[str, Any]) -> float:
    """E[g] of aihwkit's device gain under ``fields`` (``PulsedRPUDevice::populate``)."""
    from fitting.censored import folded_gain_moments

    sigma = float(fields.get("dw_min_dtod", 0.0))
    if fields.get("dw_min_dtod_log_normal", False):
        return float(np.exp(0.5 * sigma**2))
    return folded_gain_moments(sigma)[0]


def realized_fields(case: str, truth: dict[str, Any], fixtures: Path = FIXTURES) -> dict[str, Any]:
    """The truth's fields with the step sizes and bounds of the devices actually drawn.

    A population of 64-256 devices has mean step and bounds off the configured ones by
    spread/√n (3 % for 96 devices at aihwkit's 30 %): the fitter can only recover the drawn
    population. dw_min and up_down are chosen so that the nominal Δ± times the mean gain
    E[g] equal the drawn means of aihwkit's per-device ``dwmin_up``/``dwmin_down``;
    w_max/w_min become the drawn mean bounds, except for LinearStepDevice, whose step refers
    to the configured mean bounds (``mean_bound_reference``). Shape fields and spreads stay
    as configured.
    """
    import h5py

    with h5py.File(fixtures / f"{case}.h5", "r") as f:
        hidden = {k: np.asarray(v[()], dtype=float) for k, v in f["aihwkit_truth"].items()}
    out = dict(truth["aihwkit_fields"])
    d_up, d_down = float(hidden["dwmin_up"].mean()), float(hidden["dwmin_down"].mean())
    # the nominal device has gain 1, the drawn ones E[g] on average: e^{σ²/2} for aihwkit's
    # log-normal gain (1.13 at σ = 0.5), E|1 + σξ| for its folded normal (1.02 at σ = 0.6)
    mean_gain = _mean_gain(out)
    if d_up >= d_down:
        out["dw_min"], out["up_down"] = d_up / mean_gain, mean_gain * (1.0 - d_down / d_up)
    else:
        out["dw_min"], out["up_down"] = d_down / mean_gain, mean_gain * (d_up / d_down - 1.0)
    out["drawn_w_max"] = float(hidden["max_bound"].mean())
    out["drawn_w_min"] = float(hidden["min_bound"].mean())
    if truth["aihwkit_class"] != "LinearStepDevice":
        out["w_max"], out["w_min"] = out["drawn_w_max"], out["drawn_w_min"]
    return out


def curve_errors(
    cls_t: str,
    par_t: dict[str, Any],
    exported: dict[str, Any],
    lo: float,
    hi: float,
    n: int = 201,
) -> dict[str, float]:
    """rms(step_exported − step_true)/max|step_true| over [lo, hi] (truth frame), up and down."""
    conv = exported["conversion"]
    g_off, scale = float(conv["g_offset_s"]), float(conv["scale_s"])
    cls_e, par_e = exported["device"]["class"], exported["device"]["parameters"]
    w = np.linspace(lo, hi, n)
    out = {}
    for up, key in ((True, "up"), (False, "down")):
        s_true = aihwkit_step(cls_t, par_t, w, up)
        s_exp = scale * aihwkit_step(cls_e, par_e, (w - g_off) / scale, up)
        out[key] = float(np.sqrt(np.mean((s_exp - s_true) ** 2)) / np.max(np.abs(s_true)))
    return out


def resimulate(
    preset: dict[str, Any], g: np.ndarray, pulses: np.ndarray, seed: int = 0
) -> np.ndarray:
    """The preset's device in our simulator, pulse by pulse from the first reads ``g[:, 0]``.

    ``SIM_COPIES`` simulated devices per measured one; reads carry the preset's read noise.
    Returns (SIM_COPIES · n_devices, n_reads) in the data's units.
    """
    import torch

    from simulator.presets import device_config
    from simulator.tile import PulsedTile

    device = preset["device"]
    params = device["parameters"]
    scale = max(float(params["w_max"]), -float(params["w_min"]))
    g_off = float(device["g_offset_s"])
    read = float(device.get("read_noise_s") or 0.0)
    config = device_config(preset, scale_s=scale)
    start = np.tile(g[:, 0], SIM_COPIES)
    n = start.size
    tile = PulsedTile(1, n, config, seed=seed)
    tile.set_weights(torch.as_tensor((start - g_off) / scale, dtype=torch.float32)[None, :])
    rng = np.random.default_rng(seed + 1)
    out = np.empty((n, pulses.size))
    ones = torch.ones((1, n))
    for k, p in enumerate(pulses):
        if p != 0:
            tile.apply_pulses(ones * float(p))
        out[:, k] = g_off + scale * tile.weights()[0].double().numpy()
    return out + read * rng.standard_normal(out.shape)


def resimulate_in_aihwkit(
    exported: dict[str, Any], read_noise: float, g: np.ndarray, pulses: np.ndarray, seed: int = 0
) -> np.ndarray | None:
    """The exported device rebuilt in aihwkit (when installed), driven like the fixtures.

    One single-pulse tile (aihwkit's fitting-utility settings), ``SIM_COPIES`` devices per
    measured one, from the measured first reads converted by the export's ``conversion``.
    """
    try:
        import torch
        from aihwkit.simulator.configs import SingleRPUConfig, devices
        from aihwkit.simulator.tiles import AnalogTile as AihwkitTile
    except ImportError:
        return None
    conv = exported["conversion"]
    g_off, scale = float(conv["g_offset_s"]), float(conv["scale_s"])
    device = getattr(devices, exported["device"]["class"])(**exported["device"]["parameters"])
    config = SingleRPUConfig(device=device)
    config.update.desired_bl = 1
    config.update.update_bl_management = False
    config.update.update_management = False
    start = np.tile(g[:, 0], SIM_COPIES)
    tile = AihwkitTile(1, start.size, config)
    tile.set_learning_rate(1.0)
    tile.set_weights(torch.as_tensor((start - g_off) / scale, dtype=torch.float32)[None, :])
    out = np.empty((start.size, pulses.size))
    x_up, d = torch.ones(start.size), -torch.ones(1)
    for k, p in enumerate(pulses):
        if p != 0:
            tile.update(x_up if p > 0 else -x_up, d)
        out[:, k] = g_off + scale * tile.tile.get_weights()[0].double().numpy()
    rng = np.random.default_rng(seed + 2)
    return out + read_noise * rng.standard_normal(out.shape)


def trace_errors(sim: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """Largest |simulated − measured| mean trace / measured span, and the ratio of the device
    spreads (std across devices, mean over reads) simulated / measured."""
    mean = g.mean(axis=0)
    err = float(np.max(np.abs(sim.mean(axis=0) - mean)) / np.ptp(mean))
    return err, float(np.mean(sim.std(axis=0)) / np.mean(g.std(axis=0)))


def limits(truth: dict[str, Any]) -> tuple[float, float]:
    """The mean-trace and spread limits of a case: the issue's 3 % and 20 %, or what aihwkit's
    own true device achieves on the same traces when that is worse (``aihwkit_redraw``: the
    worst of 5 fresh d2d draws; a 64-256-device population is one draw of its
    configuration, and the measured mean trace carries that draw's deviation)."""
    redraw = truth.get("aihwkit_redraw", {})
    mean_lim = max([MEAN_TRACE_MAX, *redraw.get("mean_trace_error", [])])
    spread_lim = max([SPREAD_REL_MAX, *(abs(r - 1.0) for r in redraw.get("spread_ratio", []))])
    return mean_lim, spread_lim


def evaluate_case(case: str, seed: int = 0, fixtures: Path = FIXTURES) -> dict[str, Any]:
    """Fit ``case`` with ``--model auto`` as a user would, export it, measure the criteria
    (``fixtures``: the directory of its traces and truth)."""
    from calib.fit.pulse_response import fit_pulse_response_file, load_pulse_traces
    from calib.presets import load_preset
    from calib.presets.export import aihwkit_device

    truth = load_truth(case, fixtures)
    path = fixtures / f"{case}.h5"
    from calib.errors import CalibError

    with tempfile.TemporaryDirectory() as tmp:
        try:
            out, fit = fit_pulse_response_file(
                path, Path(tmp) / "preset.json", model="auto", units="normalized", seed=seed
            )
        except CalibError as exc:  # the user's command fails: a result, not a crash
            return {
                "case": case,
                "true_family": truth["family"],
                "family": "(fit failed)",
                "failures": [f"calib fit pulse-response fails: {exc}"],
            }
        preset = load_preset(out)
    exported = aihwkit_device(preset)
    traces, _ = load_pulse_traces(path)
    g = traces.conductance_s.astype(np.float64)
    pulses = np.asarray(traces.pulses)
    fields_t = realized_fields(case, truth, fixtures)
    conv = exported["conversion"]
    g_off, scale = float(conv["g_offset_s"]), float(conv["scale_s"])
    par_e = nominal_fields(exported["device"]["class"], exported["device"]["parameters"])
    result: dict[str, Any] = {"case": case, "true_family": truth["family"], "family": fit.model}
    result["family_ok"] = fit.model == truth["family"] or fit.model in truth.get(
        "equivalent_families", {}
    )
    # visited range: the measured mean trace, inside the true nominal bounds
    mean = g.mean(axis=0)
    lo = max(float(mean.min()), float(fields_t["w_min"]))
    hi = min(float(mean.max()), float(fields_t["w_max"]))
    result["visited"] = (lo, hi)
    result["curve_rms"] = curve_errors(truth["aihwkit_class"], fields_t, exported, lo, hi)
    same = fit.model == truth["family"]
    for name in ("dw_min_dtod", "dw_min_std"):
        result[name] = (float(par_e.get(name, np.nan)), float(truth["aihwkit_fields"][name]))
    result["spreads_checked"] = same
    bounds = {}
    for name in ("w_max", "w_min"):
        fitted = g_off + scale * float(par_e[name])
        true = float(fields_t[f"drawn_{name}"])
        bounds[name] = {
            "fitted": fitted,
            "true": true,
            "rel_error": abs(fitted / true - 1.0),
            "reached": float(truth["reached"][name]),
            "checked": truth["reached"][name] >= REACHED,
        }
    result["bounds"] = bounds
    sim = resimulate(preset, g, pulses, seed=seed)
    result["mean_trace_error"], result["spread_ratio"] = trace_errors(sim, g)
    result["limits"] = limits(truth)
    ref = resimulate_in_aihwkit(
        exported, float(preset["device"].get("read_noise_s") or 0.0), g, pulses, seed
    )
    if ref is not None:
        result["aihwkit_mean_trace_error"], result["aihwkit_spread_ratio"] = trace_errors(ref, g)
    result["exported"] = exported["device"]
    result["failures"] = failures(result)
    return result


def failures(r: dict[str, Any]) -> list[str]:
    """The criteria ``r`` (from :func:`evaluate_case`) misses, one line each."""
    out = []
    if not r["family_ok"]:
        out.append(f"auto picked {r['family']}, truth {r['true_family']}")
    for d, v in r["curve_rms"].items():
        if not v <= CURVE_RMS_MAX:
            out.append(f"{d} step curve rms {v:.3f} of the largest step > {CURVE_RMS_MAX}")
    if r["spreads_checked"]:
        fit_dtod, true_dtod = r["dw_min_dtod"]
        if not abs(fit_dtod - true_dtod) <= DTOD_ABS_MAX:
            out.append(f"dw_min_dtod {fit_dtod:.3f} vs {true_dtod:.3f}")
        fit_std, true_std = r["dw_min_std"]
        if not abs(fit_std / true_std - 1.0) <= STD_REL_MAX:
            out.append(f"dw_min_std {fit_std:.3f} vs {true_std:.3f}")
    for name, b in r["bounds"].items():
        if b["checked"] and not b["rel_error"] <= BOUND_REL_MAX:
            out.append(
                f"{name} {b['fitted']:.3f} vs {b['true']:.3f} (reached by {b['reached']:.0%})"
            )
    mean_lim, spread_lim = r.get("limits", (MEAN_TRACE_MAX, SPREAD_REL_MAX))
    if not r["mean_trace_error"] <= mean_lim:
        out.append(
            f"re-simulated mean trace off by {r['mean_trace_error']:.1%} of the span "
            f"(limit {mean_lim:.1%})"
        )
    if not abs(r["spread_ratio"] - 1.0) <= spread_lim:
        out.append(
            f"re-simulated device spread ratio {r['spread_ratio']:.2f} (limit ±{spread_lim:.2f})"
        )
    if "aihwkit_mean_trace_error" in r:
        if not r["aihwkit_mean_trace_error"] <= mean_lim:
            err = r["aihwkit_mean_trace_error"]
            out.append(
                f"exported device in aihwkit: mean trace off by {err:.1%} of the span "
                f"(limit {mean_lim:.1%})"
            )
        if not abs(r["aihwkit_spread_ratio"] - 1.0) <= spread_lim:
            out.append(f"exported device in aihwkit: spread ratio {r['aihwkit_spread_ratio']:.2f}")
    return out
