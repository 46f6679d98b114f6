"""Per-device screening before any model is fitted: data, scale, responsiveness (vectorized).

Every device gets a status; only ``ok`` devices (and, for direction-wise data, ``up_only``
and ``down_only`` devices) are fitted, every other status is counted in the fit's
``excluded`` report, never dropped silently:

``no_data``        fewer than 3 finite reads
``too_few_pairs``  fewer than :data:`MIN_PAIRS` usable read pairs in every direction
``constant``       all finite reads equal (a dead or disconnected device)
``scale_outlier``  conductance scale or level ~100x away from the other devices (a wrong
                   unit or a shorted/open device); if many devices are, the file is refused
``stuck``          does not respond to either pulse direction (aihwkit's corrupt devices)
``one_direction``  responds to one direction only although both were applied (broken)
``weak_response``  responds to both directions, below :data:`SWING_T` in one or both but above
                   :data:`WEAK_T` in each: a device with a small step (aihwkit's gain
                   |1 + σξ| near 0), fitted like ``ok``; its exclusion would cut the low
                   tail of the step distribution off (dw_min_dtod 0.535 for 0.6 on aihwkit's
                   cs_twice_spread). A stuck device (no response, t ~ N(0, 1) per
                   direction) passes WEAK_T in both directions with probability ~2e-6; a
                   device broken in one direction (t ~ 0 there) never. Steps so small that
                   a direction stays below WEAK_T are indistinguishable from stuck devices
                   and counted as ``stuck``.

Responsiveness is a t statistic of the summed increments of each direction: read noise
telescopes within a run of consecutive pairs, so the sum over a run has variance 2σ² from
read noise alone (σ from second differences of the reads, robust to steps).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fitting.pairs import build_pairs
from fitting.traces import FitInputError, PulseTraces

__all__ = [
    "MIN_PAIRS",
    "SWING_T",
    "WEAK_T",
    "Screening",
    "chunks",
    "classify_devices",
    "concat_statistics",
    "device_statistics",
    "screen_traces",
]

MIN_PAIRS = 8
SWING_T = 8.0  # a device "responds" to a direction when its swing t statistic exceeds this
WEAK_T = 3.0  # ... and responds weakly (still fitted) when it exceeds this in both directions
SCALE_DECADES = 2.0  # scale outliers: span or level more than 10^2 away from the median
MAX_SCALE_OUTLIERS = 0.2  # more than this fraction: refuse the file (mixed units?)

STATUSES = (
    "ok",
    "up_only",
    "down_only",
    "no_data",
    "too_few_pairs",
    "constant",
    "scale_outlier",
    "stuck",
    "one_direction",
    "weak_response",
)
FITTED_STATUSES = ("ok", "up_only", "down_only", "weak_response")


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` rows covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@dataclass
class Screening:
    """Per-device summary statistics (siemens or the data's units), shape (n_dev,)."""

    status: np.ndarray  # str codes, see module docstring
    finite_reads: np.ndarray
    level: np.ndarray  # median read
    span: np.ndarray  # 97th − 3rd percentile of the reads
    hi: np.ndarray  # 97th percentile: upper plateau
    lo: np.ndarray  # 3rd percentile: lower plateau
    noise: np.ndarray  # read-noise scale from second differences
    t_up: np.ndarray  # swing statistic of the up direction (nan: no up pairs)
    t_down: np.ndarray
    n_up: np.ndarray  # usable pairs per direction
    n_down: np.ndarray
    masked_reads: int  # NaN reads inside the traces of fitted devices
    start: np.ndarray | None = None  # first finite read (the state before the first pulse)

    @property
    def fitted(self) -> np.ndarray:
        """Devices that go into the fit."""
        return np.isin(self.status, FITTED_STATUSES)

    @property
    def direction_wise(self) -> bool:
        """True when no device has both directions but some have one each."""
        s = self.status
        return not np.any(s == "ok") and np.any(s == "up_only") and np.any(s == "down_only")

    def counts(self) -> dict[str, int]:
        return {k: int(np.sum(self.status == k)) for k in STATUSES if np.any(self.status == k)}


def _swing(block, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = block.weight
    total = np.sum((block.y1 - block.y0) * w, axis=1)
    n = w.sum(axis=1)
    runs = n - block.contiguous.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = block.direction * total / (noise * np.sqrt(2.0 * np.maximum(runs, 1.0)))
    t = np.where(n > 0, t, np.nan)
    return t, n


def _swing_shared(
    g: np.ndarray, pulses: np.ndarray, direction: int, noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_swing` for one shared pulse sequence and no missing reads (column sums)."""
    cols = np.nonzero(np.sign(pulses[1:]) == direction)[0]
    n = np.full(g.shape[0], float(cols.size))
    if cols.size == 0:
        return np.full(g.shape[0], np.nan), n
    total = g[:, cols + 1].sum(axis=1) - g[:, cols].sum(axis=1)
    runs = cols.size - int(np.sum(np.diff(cols) == 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = direction * total / (noise * np.sqrt(2.0 * max(runs, 1)))
    return t, n


def _noise_scale(g: np.ndarray) -> np.ndarray:
    d2 = g[:, 2:] - 2.0 * g[:, 1:-1] + g[:, :-2]
    if d2.shape[1] > 300:  # a robust scale needs a few hundred values, not all
        d2 = d2[:, :: d2.shape[1] // 200]
    # the NaN-aware reductions are an order of magnitude slower: use them only when needed
    median = np.median if np.isfinite(d2).all() else np.nanmedian
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # devices without data: NaN, counted
        med = median(d2, axis=1, keepdims=True)
        mad = median(np.abs(d2 - med), axis=1)
        sd = np.nanstd(d2, axis=1)
    sigma = 1.4826 * mad / np.sqrt(6.0)
    # quantized data (e.g. normalized published curves) can have MAD 0: use the std then
    return np.where(sigma > 0, sigma, sd / np.sqrt(6.0))


def screen_traces(traces: PulseTraces, chunk_devices: int = 4096) -> Screening:
    """Status and summary statistics of every device of ``traces``."""
    return classify_devices(
        device_statistics(traces, chunk_devices), traces.device_ids, traces.source
    )


def device_statistics(traces: PulseTraces, chunk_devices: int = 4096) -> dict[str, np.ndarray]:
    """Per-device summary statistics of ``traces`` (no population statistics).

    Every value depends on its own device only, so the statistics of a file can be computed
    in pieces (any split of the devices) and concatenated (:func:`concat_statistics`) before
    :func:`classify_devices` compares devices with the population.
    """
    n = traces.n_devices
    out = {
        k: np.full(n, np.nan)
        for k in ("level", "span", "hi", "lo", "noise", "t_up", "t_down", "n_up", "n_down", "start")
    }
    out["finite_reads"] = np.zeros(n, dtype=np.int64)
    out["nan_inside"] = np.zeros(n, dtype=np.int64)
    for rows in chunks(n, chunk_devices):
        g = traces.conductance_s[rows].astype(np.float64)
        p = traces.pulses_of(rows)
        finite = np.isfinite(g)
        out["finite_reads"][rows] = finite.sum(axis=1)
        # NaNs between the first and last finite read (not trailing padding)
        first = np.argmax(finite, axis=1)
        out["start"][rows] = g[np.arange(g.shape[0]), first]  # the state before any pulse
        last = g.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
        idx = np.arange(g.shape[1])
        inside = (idx >= first[:, None]) & (idx <= last[:, None]) & ~finite
        out["nan_inside"][rows] = inside.sum(axis=1)
        all_finite = bool(finite.all())
        # levels from every other read of long traces: ample for 3 % / 97 % quantiles
        sub = g[:, ::2] if g.shape[1] > 400 else g
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pct = np.percentile if all_finite else np.nanpercentile
            q = pct(sub, [3.0, 50.0, 97.0], axis=1)
        out["lo"][rows], out["level"][rows], out["hi"][rows] = q
        out["span"][rows] = q[2] - q[0]
        noise = _noise_scale(g)
        out["noise"][rows] = noise
        for key, direction in (("up", 1), ("down", -1)):
            if traces.shared_pulses and all_finite:
                t, cnt = _swing_shared(g, p, direction, noise)
            else:
                t, cnt = _swing(build_pairs(g, p, direction), noise)
            out[f"t_{key}"][rows] = t
            out[f"n_{key}"][rows] = cnt
    return out


def concat_statistics(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The statistics of consecutive pieces of the devices, as one (in the given order)."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def classify_devices(
    stats: dict[str, np.ndarray], device_ids: np.ndarray, source: str
) -> Screening:
    """Status of every device from its statistics and the population's (scale outliers)."""
    out = dict(stats)
    finite_reads, nan_inside = out.pop("finite_reads"), out.pop("nan_inside")
    n = finite_reads.size
    status = np.full(n, "ok", dtype=object)
    has_up = out["n_up"] >= MIN_PAIRS
    has_down = out["n_down"] >= MIN_PAIRS
    status[~has_up & has_down] = "down_only"
    status[has_up & ~has_down] = "up_only"
    status[~has_up & ~has_down] = "too_few_pairs"
    data = finite_reads >= 3
    status[~data] = "no_data"
    constant = data & (out["span"] == 0) & (out["noise"] == 0)
    status[constant] = "constant"
    resp_up = out["t_up"] > SWING_T
    resp_down = out["t_down"] > SWING_T
    live = np.isin(status, ("ok", "up_only", "down_only"))
    both = live & (status == "ok")
    status[both & ~resp_up & ~resp_down] = "stuck"
    status[both & (resp_up != resp_down)] = "one_direction"
    status[live & (status == "up_only") & ~resp_up] = "stuck"
    status[live & (status == "down_only") & ~resp_down] = "stuck"
    weak = both & ~(resp_up & resp_down) & (out["t_up"] > WEAK_T) & (out["t_down"] > WEAK_T)
    status[weak] = "weak_response"
    _flag_scale_outliers(device_ids, source, out, status)
    fitted = np.isin(status, FITTED_STATUSES)
    return Screening(
        status=status.astype(str),
        finite_reads=finite_reads,
        level=out["level"],
        span=out["span"],
        hi=out["hi"],
        lo=out["lo"],
        noise=out["noise"],
        t_up=out["t_up"],
        t_down=out["t_down"],
        n_up=out["n_up"],
        n_down=out["n_down"],
        masked_reads=int(nan_inside[fitted].sum()),
        start=out.get("start"),
    )


def _flag_scale_outliers(
    device_ids: np.ndarray, source: str, out: dict, status: np.ndarray
) -> None:
    """Devices ~100x away from the others in level (any device) or span (responsive ones)."""
    responsive = np.isin(status, (*FITTED_STATUSES, "one_direction"))
    live = responsive | (status == "stuck")
    responsive &= out["span"] > 0
    if responsive.sum() < 3:
        return
    span = out["span"]
    ref_span = float(np.median(span[responsive]))
    ref_level = float(np.median(out["level"][responsive]))
    with np.errstate(divide="ignore", invalid="ignore"):
        # a stuck device has a tiny span (read noise only): only the level tells its scale
        bad_span = responsive & (np.abs(np.log10(span / ref_span)) > SCALE_DECADES)
    bad_level = live & (np.abs(out["level"] - ref_level) > 10**SCALE_DECADES * ref_span)
    bad = bad_span | bad_level
    if bad.sum() > MAX_SCALE_OUTLIERS * live.sum():
        ids = device_ids[bad][:5].tolist()
        raise FitInputError(
            f"{source}: {int(bad.sum())} of {int(live.sum())} devices have conductances "
            f"about 100x or more away from the others (e.g. devices {ids}); mixed units? "
            "Convert every device to the same unit (siemens) before fitting"
        )
    status[bad] = "scale_outlier"
