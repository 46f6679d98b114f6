"""Chunk-then-combine structure of the pulse-response fit (any split of the devices).

The fit of :mod:`fitting.pulse_response` has two kinds of stages:

* **per-device** stages, pure functions of one piece of the devices and of a few numbers
  computed once for the whole dataset: :func:`screen_piece` (screening statistics) and
  :func:`fit_piece` (per-device estimates with their covariances and noise sums, a few
  dozen floats per device, never the traces);
* **population** stages that run once on the concatenated per-device results: the
  screening classification (scale outliers against the population's medians), the
  reference conductance and normalization, the model choice and shared shape (on an evenly
  spread subsample of the screened-in devices), and after the per-device fits the outlier
  exclusion, recentering, random effects, noise, bootstrap and predictive check.

Everything that depends on more than one device is therefore computed once from the whole
dataset (first pass: screening; then the subsample) and passed to the pieces as a
:class:`FitPlan`, so a fit split into pieces and combined equals the fit of all devices in
one process. The pieces of the per-device fit are consecutive groups of ``chunk_devices``
screened-in devices, the same groups the in-process fit uses, so the two are identical for
the same ``chunk_devices``; other chunk sizes agree to floating-point tolerance (the
per-device solvers only use chunk statistics as fallback starting values for degenerate
devices).

A :class:`DeviceSource` gives the pieces their traces: :class:`TracesSource` wraps arrays
in memory; ``calib`` provides an HDF5 source that pickles as a path, so a task sent to a
distributed worker carries (file, device rows, plan) and the worker reads its rows itself.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fitting.families import family_model
from fitting.family_fit import DeviceData, fit_devices
from fitting.gmm import DeviceFit
from fitting.increment_noise import IncrementNoise
from fitting.leverage import FitLeverage
from fitting.noise import NoiseSums, noise_sums
from fitting.pairs import build_pairs, repeat_reads
from fitting.screening import chunks, device_statistics
from fitting.traces import PulseTraces

__all__ = [
    "READ_RANGE",
    "DeviceEstimates",
    "DeviceSource",
    "FitPlan",
    "MapTasks",
    "TracesSource",
    "column_values",
    "compact_rows",
    "compact_sums",
    "device_data",
    "fit_device_chunk",
    "fit_piece",
    "release_freed_memory",
    "screen_piece",
    "screening_pieces",
    "serial_map",
]

#: ``map_tasks(func, tasks)``: ``[func(*t) for t in tasks]`` in order (in-process or on a
#: cluster, see ``calib.runtime.distributed.map_tasks``)
MapTasks = Callable[[Callable[..., Any], Sequence[tuple]], list]


class DeviceSource(Protocol):
    """Where the traces of a dataset's devices come from (all of them, or a few rows)."""

    source: str  # file name or label, for messages
    units: str  # "S" or "normalized"

    @property
    def n_devices(self) -> int: ...

    @property
    def device_ids(self) -> np.ndarray: ...

    def read(self, rows: np.ndarray | slice) -> PulseTraces:
        """The traces of the devices ``rows`` (increasing row numbers, or a slice)."""
        ...


@dataclass
class TracesSource:
    """A :class:`DeviceSource` over traces held in memory."""

    traces: PulseTraces
    source: str = field(init=False)
    units: str = field(init=False)

    def __post_init__(self) -> None:
        self.source, self.units = self.traces.source, self.traces.units

    @property
    def n_devices(self) -> int:
        return self.traces.n_devices

    @property
    def device_ids(self) -> np.ndarray:
        return self.traces.device_ids

    def read(self, rows: np.ndarray | slice) -> PulseTraces:
        if isinstance(rows, slice) and rows == slice(0, self.n_devices):
            return self.traces
        return self.traces.subset(rows)


def serial_map(func: Callable[..., Any], tasks: Iterable[tuple]) -> list:
    """Run the tasks one after the other in this process."""
    return [func(*t) for t in tasks]


# ---------------------------------------------------------------------------------- screening
def screening_pieces(n_devices: int, chunk_devices: int, pieces_of: int | None) -> list[slice]:
    """Device ranges of the screening pass: one (``pieces_of=None``) or ``pieces_of`` chunks.

    A piece is a whole number of screening chunks, so its statistics are computed over the
    same groups of devices as in one pass (bit-identical results).
    """
    if pieces_of is None:
        return [slice(0, n_devices)]
    return list(chunks(n_devices, pieces_of * chunk_devices))


#: keys of :func:`screen_piece` beyond the screening statistics: each device's smallest and
#: largest finite read (NaN without one), for the campaign's window coverage
#: (``calib.fit.coverage``), so that no later pass over the traces is needed for it
READ_RANGE = ("read_min", "read_max")


def screen_piece(source: DeviceSource, rows: slice, chunk_devices: int) -> dict[str, np.ndarray]:
    """Screening statistics of the devices ``rows`` (first pass; per device only), and each
    device's read range (:data:`READ_RANGE`, data units)."""
    traces = source.read(rows)
    stats = device_statistics(traces, chunk_devices)
    g = traces.conductance_s
    # fmin/fmax skip NaN reads, no all-NaN warning; exact in the file's dtype (float32 too)
    stats[READ_RANGE[0]] = np.fmin.reduce(g, axis=1).astype(np.float64)
    stats[READ_RANGE[1]] = np.fmax.reduce(g, axis=1).astype(np.float64)
    return stats


# ---------------------------------------------------------------------------------- device fits
@dataclass(frozen=True)
class FitPlan:
    """What the per-device fits need, computed once from the whole dataset.

    ``g0_pre`` and ``scale`` (data units) normalize conductances as ``(G − g0_pre)/scale``;
    ``shape`` holds the shared shape parameters fitted on the subsample; with
    ``per_device_shape`` they are only starting values of per-device shapes.
    """

    family: str
    g0_pre: float
    scale: float
    shape: dict[str, float]
    per_device_shape: bool
    #: the chip's increment noise (up, down) of the per-device errors, from the subsample,
    #: so that every chunk's errors use the same (fitting.increment_noise)
    increment_noise: tuple[IncrementNoise | None, IncrementNoise | None] | None = None


@dataclass
class DeviceEstimates:
    """Per-device stage of a set of devices (normalized units), a few dozen floats each."""

    names: list[str]
    theta: np.ndarray  # (n, p) per-device values
    cov: np.ndarray  # (n, p, p) sandwich covariances
    shared_names: list[str]
    phi: np.ndarray  # (q,) shared values used
    sums: NoiseSums  # per-device residual sums for the noise model

    @property
    def n_dev(self) -> int:
        return self.theta.shape[0]

    def release(self) -> tuple[np.ndarray, np.ndarray, NoiseSums]:
        """``(theta, cov, sums)``, handed over: this object keeps none of them (it holds
        zero devices afterwards), so the caller's copies are the only ones."""
        out = (self.theta, self.cov, self.sums)
        self.theta, self.cov = self.theta[:0].copy(), self.cov[:0].copy()  # no views
        self.sums = self.sums.take(np.zeros(0, dtype=np.int64))
        return out

    @staticmethod
    def concat(parts: list[DeviceEstimates]) -> DeviceEstimates:
        """The estimates of consecutive sets of devices as one (same plan).

        The list is emptied as its pieces are copied, so the per-device stage holds its
        results about once, not twice (4.2e6 devices: about 1 GB of estimates).
        """
        first = parts[0]
        arrays = {"theta": [p.theta for p in parts], "cov": [p.cov for p in parts]}
        fields = list(NoiseSums.__dataclass_fields__)
        arrays.update({f: [getattr(p.sums, f) for p in parts] for f in fields})
        names, shared_names, phi = first.names, first.shared_names, first.phi
        parts.clear()
        out = {k: _gather(v) for k, v in arrays.items()}
        sums = NoiseSums(**{f: out.pop(f) for f in fields})
        return DeviceEstimates(names, out["theta"], out["cov"], shared_names, phi, sums)


#: rows moved per step of :func:`compact_rows` (its one temporary: this many rows)
COMPACT_BLOCK = 65536


def compact_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]`` for increasing ``rows``, written over the front of ``a`` (no copy of it).

    Returns a view of ``a``'s first ``rows.size`` rows; ``a`` itself is overwritten (the
    caller gives it up). The rows move a block of :data:`COMPACT_BLOCK` at a time: row ``i``
    of the result comes from row ``rows[i] >= i``, so no block is read after it was
    overwritten. Equal to ``a[rows]`` bit for bit (the values are only moved). The population
    stage drops failed fits and outliers this way: ``theta[keep]`` held the estimates twice
    (about 1.5 GB more at 4.2e6 devices, issue 19).
    """
    rows = np.asarray(rows)
    if rows.size and (np.any(np.diff(rows) <= 0) or rows[0] < 0 or rows[-1] >= a.shape[0]):
        raise ValueError("compact_rows needs increasing row numbers within the array")
    for sl in chunks(rows.size, COMPACT_BLOCK):
        a[sl] = a[rows[sl]]
    return a[: rows.size]


def compact_sums(sums: NoiseSums, rows: np.ndarray) -> NoiseSums:
    """``sums.take(rows)`` by :func:`compact_rows` of each field (``sums`` is given up)."""
    return NoiseSums(
        **{f: compact_rows(getattr(sums, f), rows) for f in NoiseSums.__dataclass_fields__}
    )


#: bytes of copied pieces after which :func:`_gather` hands freed memory back to the system
RELEASE_EVERY = 64 * 2**20


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere: other allocators are left as they are)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Give the pages that freed arrays leave in the C heap back to the system.

    The pieces of a per-device stage are many arrays of a few kB-MB; glibc keeps them in its
    heap, and freed there they stay resident (they are interleaved with the stage's other
    allocations, so the heap's top cannot shrink). Gathering the pieces of a 4.2e6-device
    fit into one table held the estimates twice in resident memory (1.5 GB more) until
    ``malloc_trim(0)`` returned the freed pages (issue 19). Only memory use changes.
    """
    if _TRIM is not None:
        _TRIM(0)


def _gather(pieces: list[np.ndarray]) -> np.ndarray:
    """``np.concatenate(pieces)``, dropping each piece once copied (the list is emptied) and
    handing the freed memory back every :data:`RELEASE_EVERY` bytes."""
    n = sum(p.shape[0] for p in pieces)
    out = np.empty((n, *pieces[0].shape[1:]), dtype=np.result_type(*{p.dtype for p in pieces}))
    at = freed = 0
    pieces.reverse()
    while pieces:
        p = pieces.pop()
        out[at : at + p.shape[0]] = p
        at += p.shape[0]
        freed += p.nbytes
        del p
        if freed >= RELEASE_EVERY:
            release_freed_memory()
            freed = 0
    release_freed_memory()
    return out


def column_values(fit: DeviceFit) -> dict[str, Any]:
    """Model values of a fit: per-device columns (n, 1) and shared scalars."""
    vals: dict[str, Any] = {n: fit.theta[:, j : j + 1] for j, n in enumerate(fit.names)}
    vals.update({n: float(fit.phi[j]) for j, n in enumerate(fit.shared_names)})
    return vals


def device_data(
    traces: PulseTraces, g0: float, scale: float, hi: np.ndarray, lo: np.ndarray
) -> tuple[DeviceData, Any]:
    """Normalized read pairs of every device of ``traces`` (plateaus ``hi``/``lo``, data units)."""
    g = (traces.conductance_s.astype(np.float64) - g0) / scale
    p = traces.pulses
    data = DeviceData(
        build_pairs(g, p, 1), build_pairs(g, p, -1), (hi - g0) / scale, (lo - g0) / scale
    )
    return data, repeat_reads(g, p)


def fit_device_chunk(
    traces: PulseTraces, hi: np.ndarray, lo: np.ndarray, plan: FitPlan
) -> DeviceEstimates:
    """Per-device estimates of every device of ``traces`` under ``plan`` (one chunk)."""
    fm = family_model(plan.family)
    data, rep = device_data(traces, plan.g0_pre, plan.scale, hi, lo)
    dfit = fit_devices(
        fm, data, plan.shape, plan.per_device_shape, increment_noise=plan.increment_noise
    )
    # the parameters fitted to each device's own pairs (their leverage biases σ_c low)
    var = np.diagonal(dfit.cov, axis1=1, axis2=2) if dfit.cov.ndim == 3 else None
    fitted = np.isfinite(dfit.theta) if var is None else np.isfinite(dfit.theta) & (var > 0)
    estimated = fitted.copy()
    if fm.bounds_only_by_clip:  # hard bounds act on clipped pairs, which the sums leave out
        fitted[:, [k for k, n in enumerate(dfit.names) if n in ("b_max", "b_min")]] = False
    values = column_values(dfit)
    read_sd = chip_read_sd(plan.increment_noise)
    sums = noise_sums(fm, data.blocks, values, rep, fitted.sum(axis=1), read_sd=read_sd)
    # the fit's exact leverage on a sample of the devices (its ratio to p·v̄ is applied to
    # all, fitting.noise._leverage_parts): on every device it cost 3-4x the per-device
    # stage of a soft-bounds chip (4096 devices x 1201 reads: 0.95 -> 4.1 CPU s)
    rows = np.nonzero(leverage_sample(traces.device_ids))[0]
    if rows.size:
        n = dfit.theta.shape[0]
        sub_values = {
            k: v[rows] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v
            for k, v in values.items()
        }
        sub = noise_sums(
            fm,
            [b.take(rows) for b in data.blocks],
            sub_values,
            n_fit=fitted[rows].sum(axis=1),
            leverage=FitLeverage(dfit.names, fitted[rows], estimated[rows]),
            read_sd=read_sd,
        )
        sums.q_fit[rows], sums.q_fit_w[rows] = sub.q_fit, sub.q_fit_w
        sums.r_fit_w[rows] = sub.r_fit_w
    return DeviceEstimates(dfit.names, dfit.theta, dfit.cov, dfit.shared_names, dfit.phi, sums)


def chip_read_sd(noise: tuple[IncrementNoise | None, IncrementNoise | None] | None) -> float | None:
    """The chip's read-noise SD (normalized) from the plan's increment noise (up, down): the
    root of their mean read variance; None without one."""
    if noise is None:
        return None
    var = [
        n.read_var for n in noise if n is not None and np.isfinite(n.read_var) and n.read_var > 0
    ]
    return float(np.sqrt(np.mean(var))) if var else None


#: the exact leverage (:mod:`fitting.leverage`) is computed for every LEVERAGE_EVERY-th
#: device by device id (chunk-independent); at least one device of any chip (id 0)
LEVERAGE_EVERY = 16


def leverage_sample(device_ids: np.ndarray) -> np.ndarray:
    """Which devices get the fit's exact leverage (bool per device): integer ids divisible
    by :data:`LEVERAGE_EVERY`, every device where the ids are not integers."""
    ids = np.asarray(device_ids)
    if not np.issubdtype(ids.dtype, np.integer):
        return np.ones(ids.shape[0], dtype=bool)
    return ids % LEVERAGE_EVERY == 0


def fit_piece(
    source: DeviceSource, rows: np.ndarray, hi: np.ndarray, lo: np.ndarray, plan: FitPlan
) -> DeviceEstimates:
    """Task of the per-device stage: read the devices ``rows`` of ``source`` and fit them.

    ``rows`` are increasing row numbers of screened-in devices; ``hi``/``lo`` their read
    plateaus from the screening pass (data units).
    """
    return fit_device_chunk(source.read(rows), hi, lo, plan)
