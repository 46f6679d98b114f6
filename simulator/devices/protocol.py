"""A pulse-and-read protocol on a device population: the reads an instrument would record.

Every read is preceded by a signed number of pulses, the same for all devices (a measured
pulse-response sequence). The pulses move the devices with the simulator's own update
(:func:`simulator.devices.pulses.apply_pulse_counts`: the family's expected step with
cycle-to-cycle noise and the device's bounds, REFERENCES.md [R4]), exactly as a
:class:`~simulator.tile.PulsedTile` applies them in training; the pulses before one read are
one update. Write noise (REFERENCES.md [R5]) is an offset of the apparent state, redrawn
for every device a read's pulses touch; it starts at zero, since the starting states are
reads themselves. Read noise is added to every read. Stuck devices (``population.stuck``)
stay where they start. A population with a per-device reference offset (``reference``) reads
the physical state plus the offset; ``w0`` are apparent states.

Weight units throughout (whatever units the population is in); float64 unless the
population says otherwise. Populations under :data:`PARALLEL_DEVICES` devices run on one torch
thread (restored afterwards): below torch's own grain size the element-wise updates are
serial anyway, and the random draws' parallel regions only synchronize (on a busy 2-core
machine two threads made a 512-device campaign 10-60x slower; benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from simulator.devices.config import DevicePopulation
from simulator.devices.pulses import affine_coefficients, apply_pulse_counts

__all__ = ["PARALLEL_DEVICES", "simulate_reads"]

#: populations of at least this many devices keep torch's intra-op threads
PARALLEL_DEVICES = 32768


@contextmanager
def _threads_for(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if n >= PARALLEL_DEVICES or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def simulate_reads(
    population: DevicePopulation,
    pulses: Sequence[int] | np.ndarray,
    w0: torch.Tensor,
    generator: torch.Generator,
    dw_min_std: float = 0.0,
    write_noise: float = 0.0,
    read_noise: float = 0.0,
    mult_noise: bool = True,
) -> torch.Tensor:
    """Reads (n_devices, n_reads) of a 1-d population starting at ``w0``.

    ``pulses[k]`` is the signed pulse count before read k (positive up). ``write_noise`` and
    ``read_noise`` are absolute standard deviations in the population's units. The loop runs
    over reads; every operation is vectorized over devices. Non-affine families are stepped
    pulse by pulse (no grouping of pulses within a read).
    """
    with _threads_for(population.stuck.numel()):
        return _simulate(
            population, pulses, w0, generator, dw_min_std, write_noise, read_noise, mult_noise
        )


def _simulate(population, pulses, w0, generator, dw_min_std, write_noise, read_noise, mult_noise):
    params = population.params
    b_min, b_max = params["b_min"], params["b_max"]
    dtype = b_max.dtype
    counts = np.asarray(pulses, dtype=np.int64).reshape(-1)
    # a per-device reference offset (families.REFERENCE_FIELD): reads are the physical state
    # plus it; the bounds and steps act on the physical state
    ref = params.get("reference")
    w = torch.as_tensor(w0, dtype=dtype)
    w = w if ref is None else w - ref.reshape(-1)
    w = torch.minimum(torch.maximum(w, b_min), b_max)
    n = w.numel()
    active = ~population.stuck.reshape(-1)
    everyone = bool(active.all())
    moving = active.nonzero().squeeze(1)
    sub = {k: v.reshape(-1)[moving] if torch.is_tensor(v) else v for k, v in params.items()}
    sub.update(affine_coefficients(population.family, sub) or {})
    substeps = max(1, int(np.abs(counts).max(initial=0)))
    out = torch.empty((n, counts.size), dtype=dtype)
    offset = torch.zeros(n, dtype=dtype)
    counts_of: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for k, count in enumerate(counts.tolist()):
        if count != 0 and moving.numel():
            if count not in counts_of:
                up, down = float(max(count, 0)), float(max(-count, 0))
                counts_of[count] = (
                    torch.full((moving.numel(),), up, dtype=dtype),
                    torch.full((moving.numel(),), down, dtype=dtype),
                )
            n_up, n_down = counts_of[count]
            args = (sub, dw_min_std, generator, mult_noise, substeps)
            if everyone:
                w = apply_pulse_counts(population.family, w, n_up, n_down, *args)
            else:
                w[moving] = apply_pulse_counts(population.family, w[moving], n_up, n_down, *args)
            if write_noise > 0:
                fresh = write_noise * torch.randn(n, generator=generator, dtype=dtype)
                offset = fresh if everyone else torch.where(active, fresh, offset)
        out[:, k] = w + offset
        if read_noise > 0:
            out[:, k] += read_noise * torch.randn(n, generator=generator, dtype=dtype)
    return out if ref is None else out + ref.reshape(-1, 1)
