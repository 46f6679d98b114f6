"""Pulse-response traces of a device population, simulated by the simulator's device model.

Used to simulate a fitted preset (posterior predictive check, report plots, ``calib
validate``) and to make test and benchmark data with known truth for the families the
emulator does not produce. The physics is the simulator's, in one place: device-to-device
sampling by the family catalogue (:func:`simulator.devices.families.sample_population`,
REFERENCES.md [R3]), the pulses by the update a training tile applies
(:func:`simulator.devices.protocol.simulate_reads`: expected step times (1 + σ_c2c·ξ),
clipped to the device's bounds; write noise ``write_noise_std``·dw_min redrawn whenever a
device is pulsed; read noise on every read). A preset's ``device`` section becomes the
simulator's :class:`~simulator.devices.config.PulsedDeviceConfig` exactly as a tile's does.

Units: whatever the parameters are in (siemens relative to ``g_offset_s`` for a preset).
Seeded: a numpy ``Generator`` (``simulate_traces``) or an integer seed (``simulate_preset``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.devices.families import NumpyDraws, sample_population

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
    """Reads (n_dev, n_reads) of ``devices`` (:func:`sample_devices`) starting at ``w0``.

    ``pulses[k]`` is the signed pulse count before read k; ``write_noise`` and
    ``read_noise`` are absolute standard deviations (parameter units). The noise is drawn
    from a torch generator seeded from ``rng``.
    """
    import torch

    from simulator.devices.config import DevicePopulation
    from simulator.devices.protocol import simulate_reads

    params = {
        k: torch.as_tensor(np.asarray(v, dtype=float)) if isinstance(v, np.ndarray) else v
        for k, v in devices.items()
        if k != "stuck"
    }
    n = np.asarray(w0).size
    stuck = torch.as_tensor(np.asarray(devices.get("stuck", np.zeros(n, dtype=bool)), dtype=bool))
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    population = DevicePopulation(family, params, stuck)
    w = torch.as_tensor(np.asarray(w0, dtype=float))
    reads = simulate_reads(population, pulses, w, generator, dw_min_std, write_noise, read_noise)
    return reads.numpy()


def simulate_preset(
    device: Mapping[str, Any],
    pulses: np.ndarray,
    initial_g: np.ndarray,
    seed: int = 0,
    with_stuck: bool = True,
    physical_start: bool = False,
) -> np.ndarray:
    """Simulated reads of a preset's ``device`` section, in the preset's conductance units.

    One device per entry of ``initial_g`` (its starting conductance), drawn from the
    population of ``device["parameters"]`` around ``device["g_offset_s"]`` as the simulator
    draws a tile's (:meth:`PulsedDeviceConfig.from_preset`: aihwkit's defaults for fields
    the preset leaves out), with the preset's read noise. ``with_stuck=False`` leaves out
    stuck devices (to compare with responsive ones). With a per-device reference offset
    (``reference_std``) ``initial_g`` is read through each drawn device's offset, or with
    ``physical_start`` taken as its state before the offset (a measured device's read minus
    its own fitted offset: the same state on another device).
    """
    import torch

    from simulator.devices.config import DevicePopulation, PulsedDeviceConfig
    from simulator.devices.protocol import simulate_reads

    params = dict(device["parameters"])
    if not with_stuck:
        params["corrupt_devices_prob"] = 0.0
    scale = max(float(params["w_max"]), -float(params["w_min"]))
    config = PulsedDeviceConfig.from_preset({"model": device["model"], "parameters": params}, scale)
    g0 = float(device["g_offset_s"])
    initial_g = np.asarray(initial_g, dtype=float)
    generator = torch.Generator().manual_seed(int(seed))
    population = DevicePopulation.sample(config, (initial_g.size,), generator, torch.float64)
    w = simulate_reads(
        population,
        pulses,
        torch.as_tensor((initial_g - g0) / scale),
        generator,
        config.dw_min_std,
        config.write_noise_std * config.dw_min,
        float(device.get("read_noise_s", 0.0) or 0.0) / scale,
        config.mult_noise,
        physical_start,
    )
    return w.numpy() * scale + g0
