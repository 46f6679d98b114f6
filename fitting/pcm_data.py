"""PCM campaign data as the fitter consumes it: validation, device screening, target levels.

Three samples mirror the dataset campaigns (``datasets/FORMAT.md``), in siemens and
seconds since each device's programming:

- :class:`ProgrammingSample`: one read per device after program-and-verify;
- :class:`DriftSample`: reads at (log-spaced) times after programming, ``n_avg`` averaged;
- :class:`RepeatedReadSample`: back-to-back reads per device (the read-noise campaign).

Malformed input (shapes, negative targets, times <= 0) raises :class:`FitInputError` naming
the problem. Devices that cannot be used (not converged, non-positive or constant reads, too
few reads) are excluded and counted per reason by :func:`screen_devices`, never dropped
silently; :func:`group_levels` assigns devices to target levels and reports levels left with
too few usable devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fitting.traces import FitInputError

__all__ = [
    "DriftSample",
    "Levels",
    "ProgrammingSample",
    "RepeatedReadSample",
    "Screening",
    "group_levels",
    "screen_devices",
]

#: More distinct targets than this (or fewer than MIN_PER_TARGET devices per target on
#: average) are treated as continuous and binned into quantile bins.
MAX_DISCRETE_LEVELS = 64
MIN_PER_TARGET = 4


def _ids(device_ids: np.ndarray | None, n: int) -> np.ndarray:
    return np.arange(n) if device_ids is None else np.asarray(device_ids)


def _targets(target: np.ndarray, n: int, src: str) -> np.ndarray:
    t = np.asarray(target, dtype=float).reshape(-1)
    if t.size != n:
        raise FitInputError(f"{src}: {t.size} targets for {n} devices")
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        k = int(np.argmax(bad))
        raise FitInputError(
            f"{src}: target of device row {k} is {t[k]:g} S; targets must be finite and >= 0 S"
        )
    return t


def _converged(conv: np.ndarray | None, n: int, src: str) -> np.ndarray | None:
    if conv is None:
        return None
    c = np.asarray(conv).reshape(-1)
    if c.size != n:
        raise FitInputError(f"{src}: {c.size} converged flags for {n} devices")
    return c.astype(bool)


def _check_common(sample, n: int) -> None:
    """Converged flags, device ids and n_avg of any sample with ``n`` devices."""
    sample.converged = _converged(sample.converged, n, sample.source)
    sample.device_ids = _ids(sample.device_ids, n)
    if sample.n_avg < 1:
        raise FitInputError(f"{sample.source}: n_avg must be >= 1, got {sample.n_avg}")


def _read_matrix(g: np.ndarray, t: np.ndarray, src: str) -> tuple[np.ndarray, np.ndarray]:
    """Conductance (n, R) and time broadcast to (n, R); checks shapes and times."""
    g = np.asarray(g, dtype=float)
    if g.ndim != 2 or g.shape[0] == 0 or g.shape[1] == 0:
        raise FitInputError(f"{src}: conductance must be a non-empty (devices, reads) matrix")
    t = np.asarray(t, dtype=float)
    if t.ndim == 1:
        if t.size != g.shape[1]:
            raise FitInputError(f"{src}: {t.size} read times for {g.shape[1]} reads per device")
        t = np.broadcast_to(t, g.shape)
    elif t.shape != g.shape:
        raise FitInputError(f"{src}: time shape {t.shape} does not match conductance {g.shape}")
    if np.isinf(g).any():
        raise FitInputError(f"{src}: conductance has infinite values")
    used = np.isfinite(g)
    bad = used & ~(np.isfinite(t) & (t > 0))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise FitInputError(
            f"{src}: read {col} of device row {row} is at time {t[row, col]:g} s; times are "
            "seconds since programming and must be > 0"
        )
    return g, t


@dataclass
class ProgrammingSample:
    """One read per device ``read_time_s`` after program-and-verify (None: at t0)."""

    target_s: np.ndarray
    conductance_s: np.ndarray
    read_time_s: float | None = None
    n_avg: int = 1
    converged: np.ndarray | None = None
    device_ids: np.ndarray | None = None
    source: str = "programming"

    def __post_init__(self) -> None:
        g = np.asarray(self.conductance_s, dtype=float).reshape(-1)
        if g.size == 0:
            raise FitInputError(f"{self.source}: no devices")
        self.conductance_s = g
        self.target_s = _targets(self.target_s, g.size, self.source)
        _check_common(self, g.size)
        if self.read_time_s is not None and not (self.read_time_s > 0):
            raise FitInputError(f"{self.source}: read time {self.read_time_s} s must be > 0")

    @property
    def n_devices(self) -> int:
        return int(self.conductance_s.size)


@dataclass
class DriftSample:
    """Reads of each device at times after its programming, ``n_avg`` reads averaged each."""

    target_s: np.ndarray
    time_s: np.ndarray  # (times,) shared or (devices, times)
    conductance_s: np.ndarray  # (devices, times); NaN marks a missing read
    n_avg: int = 1
    converged: np.ndarray | None = None
    device_ids: np.ndarray | None = None
    source: str = "drift"

    def __post_init__(self) -> None:
        self.conductance_s, self.time_s = _read_matrix(self.conductance_s, self.time_s, self.source)
        n = self.conductance_s.shape[0]
        self.target_s = _targets(self.target_s, n, self.source)
        _check_common(self, n)

    @property
    def n_devices(self) -> int:
        return int(self.conductance_s.shape[0])

    def first_read_time(self) -> float:
        """Earliest read time (s) of any device."""
        t = np.where(np.isfinite(self.conductance_s), self.time_s, np.inf)
        return float(t.min())


@dataclass
class RepeatedReadSample:
    """Back-to-back reads per device (read-noise campaign); times since programming (s)."""

    time_s: np.ndarray  # (reads,) or (devices, reads)
    conductance_s: np.ndarray  # (devices, reads)
    target_s: np.ndarray | None = None
    n_avg: int = 1
    converged: np.ndarray | None = None
    device_ids: np.ndarray | None = None
    source: str = "read_noise"

    def __post_init__(self) -> None:
        self.conductance_s, self.time_s = _read_matrix(self.conductance_s, self.time_s, self.source)
        n = self.conductance_s.shape[0]
        if self.target_s is not None:
            self.target_s = _targets(self.target_s, n, self.source)
        _check_common(self, n)

    @property
    def n_devices(self) -> int:
        return int(self.conductance_s.shape[0])


@dataclass
class Screening:
    """Which devices a fit uses, and how many were excluded for which reason."""

    keep: np.ndarray  # bool (devices,)
    excluded: dict[str, int] = field(default_factory=dict)

    def exclude(self, mask: np.ndarray, reason: str) -> None:
        new = mask & self.keep
        if new.any():
            self.excluded[reason] = self.excluded.get(reason, 0) + int(new.sum())
            self.keep &= ~new

    @property
    def n_used(self) -> int:
        return int(self.keep.sum())


def screen_devices(
    conductance_s: np.ndarray,
    converged: np.ndarray | None,
    min_reads: int = 1,
    positive: bool = False,
    source: str = "data",
) -> Screening:
    """Exclude devices that did not converge, have constant or too few reads.

    ``conductance_s`` is (devices,) or (devices, reads) with NaN for missing reads. With
    ``positive`` (fits in ln G) devices with a read <= 0 are excluded too; otherwise such
    reads are kept as read noise around 0 S, unless most reads are negative, which is
    refused (a sign or unit error, not noise).
    """
    g = np.asarray(conductance_s, dtype=float)
    g2 = g[:, None] if g.ndim == 1 else g
    s = Screening(np.ones(g2.shape[0], dtype=bool))
    if converged is not None:
        s.exclude(~converged, "program-and-verify did not converge")
    finite = np.isfinite(g2)
    negative = finite & (g2 < 0)
    if negative.sum() > 0.5 * max(finite.sum(), 1):
        raise FitInputError(
            f"{source}: {int(negative.sum())} of {int(finite.sum())} conductance reads are "
            "negative; conductances must be >= 0 S (check the sign and the units)"
        )
    if positive:
        s.exclude(np.any(finite & (g2 <= 0), axis=1), "non-positive conductance read (ln G)")
    s.exclude(finite.sum(axis=1) < min_reads, f"fewer than {min_reads} reads")
    if g2.shape[1] >= 3 and min_reads >= 3:
        lo = np.nanmin(np.where(finite, g2, np.inf), axis=1)
        hi = np.nanmax(np.where(finite, g2, -np.inf), axis=1)
        s.exclude(hi <= lo, "constant reads (stuck device or saturated readout)")
    return s


@dataclass
class Levels:
    """Target levels: per-device level index (-1: excluded) and level conductances (S)."""

    index: np.ndarray  # (devices,) int, -1 for devices not in a usable level
    g_target_s: np.ndarray  # (levels,) representative target of each level
    n_devices: np.ndarray  # (levels,) usable devices per level
    binned: bool  # True when continuous targets were binned into quantile bins
    excluded_levels: dict[str, str] = field(default_factory=dict)  # "1.00 uS" -> reason

    @property
    def n_levels(self) -> int:
        return int(self.g_target_s.size)


def group_levels(
    target_s: np.ndarray, keep: np.ndarray, min_devices: int = 8, max_bins: int = 16
) -> Levels:
    """Group devices by target level; levels with < ``min_devices`` usable devices are dropped.

    Distinct targets (equal within 1e-6 relative) are the levels. When there are more than
    ``MAX_DISCRETE_LEVELS`` of them or fewer than ``MIN_PER_TARGET`` devices per target on
    average, targets are continuous and are binned into up to ``max_bins`` quantile bins
    (level conductance = median target of the bin).
    """
    t = np.asarray(target_s, dtype=float)
    scale = max(float(np.max(t)), 1e-30)
    key = np.round(t / scale * 1e6).astype(np.int64)
    uniq, inverse = np.unique(key, return_inverse=True)
    binned = uniq.size > MAX_DISCRETE_LEVELS or t.size < MIN_PER_TARGET * uniq.size
    if binned:
        n_bins = int(max(1, min(max_bins, keep.sum() // max(min_devices, 1))))
        edges = np.quantile(t[keep] if keep.any() else t, np.linspace(0, 1, n_bins + 1))
        inverse = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_bins - 1)
        n_lv = n_bins
    else:
        n_lv = uniq.size
    g_level = np.array(
        [np.median(t[inverse == k]) if np.any(inverse == k) else np.nan for k in range(n_lv)]
    )
    usable = np.bincount(inverse[keep], minlength=n_lv)
    total = np.bincount(inverse, minlength=n_lv)
    ok = (usable >= min_devices) & np.isfinite(g_level)
    excluded = {}
    for k in np.flatnonzero(~ok & (total > 0)):
        excluded[f"{g_level[k] * 1e6:.4g} uS"] = (
            f"{usable[k]} of {total[k]} devices usable (< {min_devices})"
        )
    new_index = np.full(n_lv, -1)
    new_index[ok] = np.arange(int(ok.sum()))
    index = np.where(keep, new_index[inverse], -1)
    return Levels(index, g_level[ok], usable[ok], bool(binned), excluded)
