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
The per-read update is :func:`~simulator.devices.pulses.apply_pulse_counts`'s arithmetic with
what depends only on the signed count done once per count (:class:`_ReadUpdate`): the same
numbers and draws, bit for bit (tests/simulator/test_fast_paths_identical.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from simulator.devices.config import DevicePopulation
from simulator.devices.pulses import (
    ClosedFormSteps,
    affine_coefficients,
    apply_equal_counts,
)

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
    physical_start: bool = False,
) -> torch.Tensor:
    """Reads (n_devices, n_reads) of a 1-d population starting at ``w0``.

    ``pulses[k]`` is the signed pulse count before read k (positive up). ``write_noise`` and
    ``read_noise`` are absolute standard deviations in the population's units. The loop runs
    over reads; every operation is vectorized over devices. Non-affine families are stepped
    pulse by pulse (no grouping of pulses within a read). ``w0`` are apparent states, or
    with ``physical_start`` physical ones (a device's reference offset not taken off).
    """
    with _threads_for(population.stuck.numel()):
        return _simulate(
            population,
            pulses,
            w0,
            generator,
            dw_min_std,
            write_noise,
            read_noise,
            mult_noise,
            physical_start,
        )


def _simulate(
    population,
    pulses,
    w0,
    generator,
    dw_min_std,
    write_noise,
    read_noise,
    mult_noise,
    physical_start=False,
):
    params = population.params
    b_min, b_max = params["b_min"], params["b_max"]
    dtype = b_max.dtype
    counts = np.asarray(pulses, dtype=np.int64).reshape(-1)
    # a per-device reference offset (families.REFERENCE_FIELD): reads are the physical state
    # plus it; the bounds and steps act on the physical state
    ref = params.get("reference")
    w = torch.as_tensor(w0, dtype=dtype)
    w = w if ref is None or physical_start else w - ref.reshape(-1)
    w = torch.minimum(torch.maximum(w, b_min), b_max)
    n = w.numel()
    active = ~population.stuck.reshape(-1)
    everyone = bool(active.all())
    moving = active.nonzero().squeeze(1)
    sub = {k: v.reshape(-1)[moving] if torch.is_tensor(v) else v for k, v in params.items()}
    sub.update(affine_coefficients(population.family, sub) or {})
    substeps = max(1, int(np.abs(counts).max(initial=0)))
    update = _ReadUpdate(population.family, sub, moving.numel(), dtype, dw_min_std, mult_noise)
    out = torch.empty((counts.size, n), dtype=dtype)  # one contiguous row per read
    offset = torch.zeros(n, dtype=dtype)
    w_moving = w if everyone else w[moving]
    pulsing = moving.numel() > 0
    for row, count in zip(out, counts.tolist(), strict=True):
        if count != 0 and pulsing:
            w_moving = update(w_moving, count, generator, substeps)
            if everyone:
                w = w_moving
            else:
                w.index_copy_(0, moving, w_moving)
            if write_noise > 0:  # (x·s and s·x round alike)
                fresh = torch.randn(n, generator=generator, dtype=dtype).mul_(write_noise)
                offset = fresh if everyone else torch.where(active, fresh, offset)
        torch.add(w, offset, out=row)
        if read_noise > 0:
            row.add_(torch.randn(n, generator=generator, dtype=dtype).mul_(read_noise))
    out = out.T.contiguous()
    return out if ref is None else out + ref.reshape(-1, 1)


class _ReadUpdate:
    """The pulses before one read on the moving devices, exactly as :func:`apply_pulse_counts`
    applies them (same numbers, same draws), with what depends only on the signed count
    worked out once per count: the closed form's factors (:class:`ClosedFormSteps`) for the
    affine families, the per-substep counts (:func:`apply_equal_counts`) for the others."""

    def __init__(self, family, params, m, dtype, dw_min_std, mult_noise) -> None:
        self.family, self.params, self.m, self.dtype = family, params, m, dtype
        self.sigma, self.mult = dw_min_std, mult_noise
        self.affine = "_ku" in params
        self.steps: dict[int, ClosedFormSteps] = {}
        self.buffers = (torch.empty(m, dtype=dtype), torch.empty(m, dtype=dtype))
        self.calls = 0

    def __call__(self, w, count: int, generator, substeps: int) -> torch.Tensor:
        if not self.affine:
            up, down = float(max(count, 0)), float(max(-count, 0))
            return apply_equal_counts(
                self.family, w, up, down, self.params, self.sigma, generator, substeps
            )
        steps = self.steps.get(count)
        if steps is None:
            n_up = torch.full((1, self.m), float(max(count, 0)), dtype=self.dtype)
            n_down = torch.full((1, self.m), float(max(-count, 0)), dtype=self.dtype)
            steps = self.steps[count] = ClosedFormSteps(
                self.params, n_up, n_down, self.sigma, self.mult
            )
        self.calls += 1  # alternate buffers: the result must not overwrite its input
        return steps.apply(0, w, generator, out=self.buffers[self.calls % 2])
