"""Checks on the values of a campaign, shared by every reader (HDF5, CSV, chunked pulse source).

``datasets/FORMAT.md`` states what a campaign may contain; the readers check shapes and
units, and this module checks the values, the same way for every path, so that a file
that would be refused as a CSV is refused as HDF5 too:

- every dataset is numeric; no infinite value anywhere; NaN only as the trailing padding of
  a shorter per-device sequence (pulse response, and drift/read noise with per-device
  times, where the time is NaN too);
- ``device_index`` unique; conductances in siemens plausible for a memory device
  (``MIN_PLAUSIBLE_S`` <= largest |G| <= ``MAX_PLAUSIBLE_S``; a unit error moves values by
  10³-10⁹);
- times >= 0 and strictly increasing within each device (a reversed or shuffled time axis
  is refused, not fitted as "no drift");
- pulse counts integers with |n| <= ``MAX_PULSES_PER_READ`` (1e20 does not fit in int64);
- a trace whose second half repeats its first exactly, or a file where most devices read
  every value twice in a row, is refused (a file pasted twice or every row duplicated:
  measured reads carry read noise and do not repeat bit for bit).

Errors name the file and the place: the CSV line when ``lines`` is given, else the device
and read. :func:`check_self_contained` refuses HDF5 external links, external raw storage and
virtual datasets, whose data would not be covered by the file's recorded hash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from calib.errors import CalibError

__all__ = [
    "MAX_PLAUSIBLE_S",
    "MAX_PULSES_PER_READ",
    "MIN_PLAUSIBLE_S",
    "check_campaign_values",
    "check_numeric",
    "check_pulse_sequence",
    "check_reads",
    "check_self_contained",
    "check_technology",
    "check_unique_ids",
]

#: Conductances above this many siemens are not plausible for a memory device (10 Ω).
MAX_PLAUSIBLE_S = 0.1
#: A file whose largest |conductance| is below this many siemens (100 pS, far below any
#: memory device's conductance window) is in other units than it says.
MIN_PLAUSIBLE_S = 1e-10
#: Largest pulse count one read may follow (int32; a campaign pulses at most ~1e6 between reads).
MAX_PULSES_PER_READ = 2**31 - 1
#: A file where more than this fraction of the (non-constant) devices read every value twice.
MAX_REPEAT_FRACTION = 0.5
#: Shortest half-trace that counts as "repeated" (shorter exact repeats can be chance).
MIN_REPEAT_READS = 3


class _Where:
    """Names a device row / read: the CSV line when known, else the device and read."""

    def __init__(self, source: str, ids: np.ndarray, lines: np.ndarray | None) -> None:
        self.source, self.ids, self.lines = source, ids, lines

    def __call__(self, i: int, j: int | None = None) -> str:
        if self.lines is not None:
            row = self.lines[i]
            line = row if np.ndim(row) == 0 else row[0 if j is None else j]
            return f"{self.source}: line {int(line)}"
        read = "" if j is None else f" read {j}"
        return f"{self.source}: device {int(self.ids[i])}{read}"

    def fail(self, i: int, j: int | None, problem: str) -> None:
        raise CalibError(f"{self(i, j)}: {problem}")


def _numeric(name: str, arr: np.ndarray, source: str, campaign: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise CalibError(
            f"{source}: {campaign}/{name} has non-numeric type {arr.dtype} (numbers expected)"
        )


def check_numeric(campaign: str, arrays: Mapping[str, np.ndarray], source: str) -> None:
    """Every dataset of the campaign holds numbers (not strings or compound records)."""
    for name, arr in arrays.items():
        _numeric(name, np.asarray(arr), source, campaign)


def check_campaign_values(
    campaign: str,
    arrays: Mapping[str, np.ndarray],
    units: Mapping[str, str],
    source: str,
    lines: np.ndarray | None = None,
) -> None:
    """Check one whole campaign (the arrays of :class:`calib.io.CampaignData`).

    ``lines``: the CSV line of each read, shaped like ``conductance`` (padding -1).
    """
    check_numeric(campaign, arrays, source)
    ids = np.asarray(arrays["device_index"])
    where = _Where(source, ids, lines)
    _check_unique_ids(ids, where, campaign)
    check_reads(campaign, arrays, units, source, lines)
    g = _as_float(arrays["conductance"])
    for name in ("conductance", "target"):
        if name in arrays and units.get(name, "S") == "S":
            values = g if name == "conductance" else _as_float(arrays[name])
            _check_lower_bound(values, name, source, campaign)
    if campaign == "pulse_response" or (campaign != "programming" and g.ndim == 2):
        _check_repeated_reads(g, arrays, where)


def check_reads(
    campaign: str,
    arrays: Mapping[str, np.ndarray],
    units: Mapping[str, str],
    source: str,
    lines: np.ndarray | None = None,
) -> None:
    """The per-device checks, valid on any subset of devices (a chunk of a large file)."""
    ids = np.asarray(arrays["device_index"])
    where = _Where(source, ids, lines)
    g = np.asarray(arrays["conductance"])
    _numeric("conductance", g, source, campaign)
    g = _as_float(g)
    top, bottom = _extremes(g)  # two reductions: no temporaries on a large file
    if np.isinf(top) or np.isinf(bottom):
        i, *j = np.argwhere(np.isinf(g))[0]
        where.fail(i, j[0] if j else None, "infinite conductance")
    if units.get("conductance", "S") == "S" and max(top, -bottom) > MAX_PLAUSIBLE_S:
        g = g.astype(float, copy=False)  # compared in float64, as the extremes
        big = np.abs(g) > MAX_PLAUSIBLE_S  # NaN compares False
        if big.any():
            i, *j = np.argwhere(big)[0]
            where.fail(
                i,
                j[0] if j else None,
                f"conductance {g[tuple([i, *j])]:g} S is not plausible for a memory device "
                f"(> {MAX_PLAUSIBLE_S:g} S); wrong units?",
            )
    for name in ("target", "verify_conductance"):
        if name in arrays:
            values = np.asarray(arrays[name], dtype=float)
            bad = ~np.isfinite(values)
            if units.get(name, "S") == "S":
                bad |= np.abs(values) > MAX_PLAUSIBLE_S
            if bad.any():
                k = tuple(np.argwhere(bad)[0])
                where.fail(
                    int(k[0]), None, f"{name} {values[k]:g} is not a finite, plausible conductance"
                )
    if campaign == "programming":
        if g.ndim == 1 and np.isnan(g).any():
            where.fail(int(np.argmax(np.isnan(g))), None, "NaN conductance read")
        return
    if g.ndim != 2:
        return
    time = arrays.get("time")
    t = None if time is None else np.asarray(time, dtype=float)
    if campaign == "pulse_response":
        _check_padding(g, where, None)
        _check_pulses(np.asarray(arrays["pulses"]), g, where)
        if t is not None:
            _check_times(np.broadcast_to(t, g.shape), g, where, strict=True)
    else:
        _check_padding(g, where, t)
        if t is not None:  # back-to-back reads may share a coarse time stamp
            strict = campaign != "read_noise"
            _check_times(np.broadcast_to(t, g.shape), g, where, strict=strict)


def check_unique_ids(ids: np.ndarray, campaign: str, source: str) -> None:
    """Each ``device_index`` once (a chunked reader checks the whole file up front)."""
    _check_unique_ids(np.asarray(ids), _Where(source, np.asarray(ids), None), campaign)


def _check_unique_ids(ids: np.ndarray, where: _Where, campaign: str) -> None:
    if ids.size < 2:
        return
    order = np.argsort(ids, kind="stable")
    same = ids[order][1:] == ids[order][:-1]
    if same.any():
        k = int(np.argmax(same))
        first, second = int(order[k]), int(order[k + 1])
        where.fail(
            second,
            None,
            f"device_index {int(ids[second])} appears twice in {campaign} (also at "
            f"{where(first, None).split(': ', 1)[1]}); each device must be given once",
        )


def _as_float(values: Any) -> np.ndarray:
    """``values`` as floating point: float32 files stay float32 (every check below is exact
    in the file's own type: extremes, NaN/inf, equality; a float64 copy of a chunk of reads
    cost more than reading it), other types become float64."""
    arr = np.asarray(values)
    return arr if arr.dtype.kind == "f" else arr.astype(float)


def _extremes(values: np.ndarray) -> tuple[float, float]:
    """Largest and smallest value ignoring NaN (NaN, NaN when there is none)."""
    if values.size == 0:
        return math.nan, math.nan
    return float(np.fmax.reduce(values, axis=None)), float(np.fmin.reduce(values, axis=None))


def _check_lower_bound(values: np.ndarray, name: str, source: str, campaign: str) -> None:
    top, bottom = _extremes(values)
    largest = max(abs(top), abs(bottom)) if np.isfinite(top) else math.nan
    if 0 < largest < MIN_PLAUSIBLE_S:
        raise CalibError(
            f"{source}: {campaign} {name} is at most {largest:g} S, not plausible in "
            f"siemens (< {MIN_PLAUSIBLE_S:g} S); wrong units? (a CSV states them with --units)"
        )


def _check_padding(g: np.ndarray, where: _Where, t: np.ndarray | None) -> None:
    """NaN only as trailing padding (and, with per-device times, where the time is NaN)."""
    pad = np.isnan(g)
    if not pad.any():
        if t is not None and t.ndim == 2 and np.isnan(t).any():
            i, j = np.argwhere(np.isnan(t))[0]
            where.fail(i, j, "NaN time for a measured read")
        return
    first_pad = np.where(pad.any(1), pad.argmax(1), g.shape[1])
    trailing = pad.sum(1) == g.shape[1] - first_pad
    if not np.all(trailing):
        i = int(np.argmax(~trailing))
        j = int(np.argmax(pad[i]))
        where.fail(
            i,
            j,
            "NaN read inside the trace (only trailing padding of a shorter sequence may be NaN)",
        )
    if t is not None:
        if t.ndim == 1:  # one time axis for every device: no device may miss a read
            i, j = np.argwhere(pad)[0]
            where.fail(i, j, "NaN read (a missing read needs per-device times)")
        mismatch = pad != np.isnan(t)
        if mismatch.any():
            i, j = np.argwhere(mismatch)[0]
            where.fail(i, j, "read and time disagree on which reads are padding (NaN)")


def _check_pulses(p: np.ndarray, g: np.ndarray, where: _Where) -> None:
    pf = p.astype(float)
    bad = ~np.isfinite(pf) | (pf != np.round(pf)) | (np.abs(pf) > MAX_PULSES_PER_READ)
    if bad.any():
        pm = np.broadcast_to(pf, g.shape)
        i, j = np.argwhere(np.broadcast_to(bad, g.shape))[0]
        where.fail(
            i,
            j,
            f"pulse count {pm[i, j]:g} is not an integer within ±{MAX_PULSES_PER_READ} "
            "(pulses applied before this read)",
        )


class _SharedSequence(_Where):
    """Names a read of a pulse sequence shared by every device."""

    def __init__(self, source: str) -> None:
        super().__init__(source, np.zeros(1, dtype=np.int64), None)

    def __call__(self, i: int, j: int | None = None) -> str:
        return f"{self.source}: shared pulse sequence" + ("" if j is None else f" read {j}")


def check_pulse_sequence(pulses: np.ndarray, source: str) -> None:
    """A pulse sequence shared by every device holds integer counts (before any cast)."""
    p = np.asarray(pulses).reshape(1, -1)
    _check_pulses(p, np.empty(p.shape), _SharedSequence(source))


def _check_times(t: np.ndarray, g: np.ndarray, where: _Where, strict: bool) -> None:
    used = ~np.isnan(g)
    bad = used & ~(np.isfinite(t) & (t >= 0))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        where.fail(i, j, f"time {t[i, j]:g} s is not a finite time >= 0")
    if t.shape[1] < 2:
        return
    both = used[:, 1:] & used[:, :-1]
    step = np.diff(t, axis=1)
    back = both & ((step <= 0) if strict else (step < 0))
    if back.any():
        i, j = np.argwhere(back)[0]
        where.fail(
            i,
            j + 1,
            f"time {t[i, j + 1]:g} s does not come after the previous read's "
            f"{t[i, j]:g} s (reads of a device must be in time order, without repeats)",
        )


def _check_repeated_reads(g: np.ndarray, arrays: Mapping[str, Any], where: _Where) -> None:
    """A trace pasted twice, or most reads exact repeats of the previous one."""
    if g.ndim != 2 or g.shape[1] < 2:
        return
    pulses = arrays.get("pulses")
    p = None if pulses is None else np.broadcast_to(np.asarray(pulses, dtype=float), g.shape)
    lengths = g.shape[1] - np.isnan(g).sum(1)
    for half in np.unique(lengths[(lengths % 2 == 0) & (lengths >= 2 * MIN_REPEAT_READS)] // 2):
        rows = np.flatnonzero(lengths == 2 * half)
        a, b = g[rows, :half], g[rows, half : 2 * half]
        same = np.all(a == b, axis=1) & (np.ptp(a, axis=1) > 0)
        if p is not None:
            same &= np.all(p[rows, :half] == p[rows, half : 2 * half], axis=1)
        if same.any():
            i = int(rows[np.argmax(same)])
            where.fail(
                i,
                int(half),
                f"the reads from here on repeat the device's first {int(half)} reads exactly "
                "(the same data pasted twice?)",
            )
    # every row duplicated: each aligned pair of reads (0-1, 2-3, ...) identical, in a trace
    # that is not constant (a stuck device reads the same value without any duplication)
    n_pairs = g.shape[1] // 2
    if n_pairs < MIN_REPEAT_READS:
        return
    a, b = g[:, 0 : 2 * n_pairs : 2], g[:, 1 : 2 * n_pairs : 2]
    pair = (a == b) | (np.isnan(a) & np.isnan(b))
    if p is not None:
        pair &= p[:, 0 : 2 * n_pairs : 2] == p[:, 1 : 2 * n_pairs : 2]
    varying = np.nanmax(g, axis=1, initial=-np.inf) > np.nanmin(g, axis=1, initial=np.inf)
    doubled = pair.all(axis=1) & varying & (np.sum(~np.isnan(a), axis=1) >= MIN_REPEAT_READS)
    if varying.any() and doubled.sum() > MAX_REPEAT_FRACTION * varying.sum():
        i = int(np.argmax(doubled))
        where.fail(
            i,
            1,
            f"every read repeats the one before it exactly, in {int(doubled.sum())} of "
            f"{int(varying.sum())} devices (every row duplicated?)",
        )


# ------------------------------------------------------------------------------ HDF5 only
def check_self_contained(f: h5py.File, source: str) -> None:
    """Refuse external and soft links, external raw storage and virtual datasets.

    Their data live outside the file (or could change under one name), so the input hash
    recorded in a preset would not identify what was fitted.
    """

    def walk(group: h5py.Group, prefix: str) -> None:
        for name in group:
            link = group.get(name, getlink=True)
            path = f"{prefix}{name}"
            if isinstance(link, h5py.ExternalLink):
                raise CalibError(
                    f"{source}: {path} is an external link to {link.filename}:{link.path}; "
                    "datasets must hold their data (copy it in, e.g. h5copy)"
                )
            if isinstance(link, h5py.SoftLink):
                raise CalibError(f"{source}: {path} is a soft link to {link.path}; not supported")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj, path + "/")
            elif isinstance(obj, h5py.Dataset):
                if obj.external:
                    raise CalibError(
                        f"{source}: {path} keeps its data in external file(s) "
                        f"{', '.join(str(e[0]) for e in obj.external)}; not supported"
                    )
                if obj.is_virtual:
                    raise CalibError(
                        f"{source}: {path} is a virtual dataset (data in other files); "
                        "not supported"
                    )

    walk(f, "")


def check_technology(attrs: Mapping[str, Any], expected: str, source: str, what: str) -> None:
    """Refuse a campaign whose instrument snapshot names another technology than ``expected``.

    ``what`` says what the data were about to be used for (e.g. "a PCM fit"). Files without
    a recorded technology (imported CSVs, hand-written files) pass.
    """
    instrument = attrs.get("instrument")
    conf = instrument.get("configuration") if isinstance(instrument, dict) else None
    tech = conf.get("technology") if isinstance(conf, dict) else None
    if isinstance(tech, str) and tech.lower() != expected.lower():
        raise CalibError(
            f"{source}: measured on a {tech} chip (instrument snapshot), not {expected}; "
            f"refusing {what} (pass --any-technology to fit it anyway)"
        )
