"""Pulse-response traces of a device population with aihwkit semantics (numpy, per pulse).

Used to simulate a fitted preset (posterior predictive check, report plots) and to make
test and benchmark data for the families the emulator does not produce. Device-to-device
sampling follows aihwkit's construction (aihwkit_spec.md §1.3): gain g = 1 + σ_d2d·ξ,
asymmetry r = σ_ud·ξ, Δ⁺ = dw_min·(g + r + min(β, 0)), Δ⁻ = dw_min·(g − r − max(β, 0)),
relative bound spreads, |·| and swapped bounds as with ``enforce_consistency``, per-device
γ for linear-step and pow-step, stuck devices with probability ``corrupt_devices_prob``.
Every pulse moves w by the family's expected step (:func:`expected_step`, the single source of
truth) times (1 + σ_c2c·ξ), then w is clipped to the device's bounds. Write noise
(``write_noise_std``·dw_min) is redrawn after every pulse and seen by the reads; read noise
is added to every read.

Units: whatever the parameters are in (siemens relative to ``g_offset_s`` for a preset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.devices.response import expected_step

__all__ = ["sample_devices", "simulate_preset", "simulate_traces"]


def sample_devices(
    family: str, params: Mapping[str, Any], n: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Per-device parameters of ``n`` devices (arrays) plus a boolean ``stuck`` mask."""
    p = dict(params)
    dw_min = float(p["dw_min"])
    beta = float(p.get("up_down", 0.0))
    xi = rng.standard_normal((4, n))
    gain = 1.0 + float(p.get("dw_min_dtod", 0.0)) * xi[0]
    asym = float(p.get("up_down_dtod", 0.0)) * xi[1]
    dev: dict[str, Any] = {
        "delta_up": np.abs(dw_min * (gain + asym + min(beta, 0.0))),
        "delta_down": np.abs(dw_min * (gain - asym - max(beta, 0.0))),
    }
    b_max = float(p["w_max"]) * (1.0 + float(p.get("w_max_dtod", 0.0)) * xi[2])
    b_min = float(p["w_min"]) * (1.0 + float(p.get("w_min_dtod", 0.0)) * xi[3])
    lo, hi = np.minimum(b_min, b_max), np.maximum(b_min, b_max)
    dev["b_max"], dev["b_min"] = np.abs(hi), -np.abs(lo)
    if family == "linear-step":
        z = rng.standard_normal((2, n))
        # |γ'| unless allow_increasing (then steps may grow towards the bound)
        sign = (lambda x: x) if p.get("allow_increasing") else np.abs
        dev["gamma_up"] = sign(float(p["gamma_up"]) + float(p.get("gamma_up_dtod", 0.0)) * z[0])
        dev["gamma_down"] = sign(
            float(p["gamma_down"]) + float(p.get("gamma_down_dtod", 0.0)) * z[1]
        )
        dev["ref_max"] = float(p["w_max"])
        dev["ref_min"] = float(p["w_min"])
    elif family == "pow-step":
        z = rng.standard_normal((2, n))
        gamma, beta_p = float(p["pow_gamma"]), float(p.get("pow_up_down", 0.0))
        g = 1.0 + float(p.get("pow_gamma_dtod", 0.0)) * z[0]
        r = float(p.get("pow_up_down_dtod", 0.0)) * z[1]
        dev["pow_gamma_up"] = np.abs(gamma * (g + r + min(beta_p, 0.0)))
        dev["pow_gamma_down"] = np.abs(gamma * (g - r - max(beta_p, 0.0)))
    elif family == "exp-step":
        for k in ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b"):
            dev[k] = float(p[k])
    elif family == "piecewise-step":
        dev["piecewise_up"] = [float(v) for v in p["piecewise_up"]]
        dev["piecewise_down"] = [float(v) for v in p["piecewise_down"]]
    stuck = rng.random(n) < float(p.get("corrupt_devices_prob", 0.0))
    if stuck.any():
        value = dev["b_min"] + rng.random(n) * (dev["b_max"] - dev["b_min"])
        for key in ("delta_up", "delta_down"):
            dev[key] = np.where(stuck, 0.0, dev[key])
        dev["b_max"] = np.where(stuck, value, dev["b_max"])
        dev["b_min"] = np.where(stuck, value, dev["b_min"])
    dev["stuck"] = stuck
    return dev


def simulate_traces(
    family: str,
    devices: Mapping[str, Any],
    pulses: np.ndarray,
    w0: np.ndarray,
    rng: np.random.Generator,
    dw_min_std: float = 0.0,
    write_noise: float = 0.0,
    read_noise: float = 0.0,
) -> np.ndarray:
    """Reads (n_dev, n_reads) of devices starting at ``w0`` under the pulse sequence.

    ``write_noise`` and ``read_noise`` are absolute standard deviations (parameter units).
    The loop runs over reads and pulses; every operation is vectorized over devices.
    """
    lo, hi = np.asarray(devices["b_min"]), np.asarray(devices["b_max"])
    w = np.clip(np.asarray(w0, dtype=float), lo, hi)
    n = w.size
    out = np.empty((n, pulses.size))
    offset = np.zeros(n)
    stuck = np.asarray(devices.get("stuck", np.zeros(n, dtype=bool)))
    for k, count in enumerate(np.asarray(pulses, dtype=np.int64)):
        for _ in range(abs(int(count))):
            step = expected_step(family, w, count > 0, devices)
            if dw_min_std > 0:
                step = step * (1.0 + dw_min_std * rng.standard_normal(n))
            if stuck.any():  # a stuck device does nothing (its range is a single point)
                step = np.where(stuck, 0.0, step)
            w = np.clip(w + step, lo, hi)
        if count != 0 and write_noise > 0:
            offset = write_noise * rng.standard_normal(n)
        out[:, k] = w + offset + (read_noise * rng.standard_normal(n) if read_noise > 0 else 0.0)
    return out


def simulate_preset(
    device: Mapping[str, Any],
    pulses: np.ndarray,
    initial_g: np.ndarray,
    seed: int = 0,
    with_stuck: bool = True,
) -> np.ndarray:
    """Simulated reads of a preset's ``device`` section, in the preset's conductance units.

    One device per entry of ``initial_g`` (its starting conductance); parameters are those
    of ``device["parameters"]`` around ``device["g_offset_s"]``, with the preset's read
    noise. ``with_stuck=False`` leaves out stuck devices (to compare with responsive ones).
    """
    rng = np.random.default_rng(seed)
    family = device["model"]
    params = dict(device["parameters"])
    if not with_stuck:
        params["corrupt_devices_prob"] = 0.0
    g0 = float(device["g_offset_s"])
    devs = sample_devices(family, params, initial_g.size, rng)
    write = float(params.get("write_noise_std", 0.0) or 0.0) * float(params["dw_min"])
    read = float(device.get("read_noise_s", 0.0) or 0.0)
    sigma = float(params.get("dw_min_std", 0.0) or 0.0)
    w = simulate_traces(family, devs, pulses, initial_g - g0, rng, sigma, write, read)
    return w + g0
