"""Pulse-response traces of a device population with aihwkit semantics (numpy, per pulse).

Used to simulate a fitted preset (posterior predictive check, report plots) and to make
test and benchmark data for the families the emulator does not produce. Device-to-device
sampling is the family catalogue's (:mod:`simulator.devices.families`, REFERENCES.md [R3]),
shared with the simulator.
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

from simulator.devices.families import NumpyDraws, sample_population
from simulator.devices.response import expected_step

__all__ = ["sample_devices", "simulate_preset", "simulate_traces"]


def sample_devices(
    family: str, params: Mapping[str, Any], n: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Per-device parameters of ``n`` devices (arrays) plus a boolean ``stuck`` mask.

    The catalogue's sampler (:func:`simulator.devices.families.sample_population`), the same
    one the simulator uses; a field the parameters lack has no spread.
    """
    return sample_population(family, params, NumpyDraws(rng, n))


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
