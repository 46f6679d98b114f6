"""Pairs of consecutive reads per pulse direction, with their instruments (vectorized).

A *pair* is (read k, read k+1) with n ≥ 1 pulses of one sign in between. The fitters model
the later read as a function of the earlier one, but both carry read noise: regressing on
the noisy read biases every slope toward "soft bounds" (REFERENCES.md [R14]). Each
pair therefore carries an *instrument*: the last read taken before the pulses that led to
read k (normally read k−1). It is correlated with the state at k but independent of the
read noise of reads k and k+1, of the write noise redrawn after those pulses, and of the
cycle-to-cycle noise of the pulses between k and k+1.

Pairs are packed per direction into ``(n_devices, n_pairs)`` arrays; devices with fewer
pairs (per-device pulse sequences, missing reads) are padded with weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PairBlock", "RepeatReads", "build_pairs", "repeat_reads"]


@dataclass
class PairBlock:
    """All pairs of one pulse direction, packed per device."""

    direction: int  # +1 up, -1 down
    y0: np.ndarray  # (n_dev, P) read before the pulses
    y1: np.ndarray  # (n_dev, P) read after the pulses
    z: np.ndarray  # (n_dev, P) instrument read
    n: np.ndarray  # (n_dev, P) int, pulses between y0 and y1 (>= 1; 1 on padding)
    weight: np.ndarray  # (n_dev, P) 1.0 for a usable pair, 0.0 for padding / missing reads
    read_index: np.ndarray  # (n_dev, P) index k of y0 in the trace (-1 on padding)
    contiguous: np.ndarray  # (n_dev, P-1) bool: pair j+1 starts at the read pair j ends on
    same_state: np.ndarray  # (n_dev, P-1) bool: pair j+1 starts at a repeat read of that state
    pulse_counts: tuple[int, ...] = ()  # distinct pulse counts of the usable pairs

    @property
    def n_pairs(self) -> np.ndarray:
        """Usable pairs per device, shape (n_dev,)."""
        return self.weight.sum(axis=1)

    @property
    def max_pulses(self) -> int:
        return int(self.n.max()) if self.n.size else 1

    def take(self, rows: np.ndarray | slice) -> PairBlock:
        """The pairs of the devices ``rows``."""
        return PairBlock(
            self.direction,
            self.y0[rows],
            self.y1[rows],
            self.z[rows],
            self.n[rows],
            self.weight[rows],
            self.read_index[rows],
            self.contiguous[rows],
            self.same_state[rows],
            tuple(int(c) for c in np.unique(self.n[rows][self.weight[rows] > 0])),
        )


@dataclass
class RepeatReads:
    """Differences of consecutive reads with no pulse in between: pure read noise."""

    diff: np.ndarray  # (n_dev, R) y_{k+1} - y_k
    weight: np.ndarray  # (n_dev, R)


def _instrument_index(p: np.ndarray) -> np.ndarray:
    """Index of the instrument read for every read k (shape of ``p``; -1 if none).

    The instrument of read k is the read just before the most recent pulse block at or
    before k; if no pulse came before k, the previous read.
    """
    t = p.shape[-1]
    idx = np.broadcast_to(np.arange(t), p.shape)
    last_pulse = np.maximum.accumulate(np.where(p != 0, idx, -1), axis=-1)
    inst = np.where(last_pulse >= 1, last_pulse - 1, idx - 1)
    return inst


def build_pairs(g: np.ndarray, pulses: np.ndarray, direction: int) -> PairBlock:
    """Pairs of ``direction`` from reads ``g`` (n_dev, T) and pulses (T,) or (n_dev, T)."""
    if pulses.ndim == 1:
        return _build_shared(g, pulses, direction)
    n_dev = g.shape[0]
    finite = np.isfinite(g)
    cand_mask = np.sign(pulses[:, 1:]) == direction
    count = cand_mask.sum(axis=1)
    width = int(count.max()) if count.size else 0
    k = np.argsort(~cand_mask, axis=1, kind="stable")[:, :width]
    valid_c = np.take_along_axis(cand_mask, k, axis=1)
    inst = np.take_along_axis(_instrument_index(pulses), k, axis=1)
    valid = valid_c & (inst >= 0)
    inst2 = np.maximum(inst, 0)
    n_p = np.abs(np.take_along_axis(pulses, k + 1, axis=1))
    rows = np.arange(n_dev)[:, None]
    y0 = g[rows, k].astype(np.float64)
    y1 = g[rows, k + 1].astype(np.float64)
    z = g[rows, inst2].astype(np.float64)
    ok = valid & finite[rows, k] & finite[rows, k + 1] & finite[rows, inst2]
    state = np.broadcast_to(np.cumsum(pulses != 0, axis=-1), g.shape)
    return _finish(direction, y0, y1, z, n_p, ok, k, state)


def _build_shared(g: np.ndarray, pulses: np.ndarray, direction: int) -> PairBlock:
    """Fast path for one pulse sequence shared by all devices: column slices only."""
    n_dev = g.shape[0]
    cand = np.nonzero(np.sign(pulses[1:]) == direction)[0]  # pair k: reads k, k+1
    inst = _instrument_index(pulses)[cand]
    keep = inst >= 0
    cand, inst = cand[keep], inst[keep]
    y0 = g[:, cand].astype(np.float64)
    y1 = g[:, cand + 1].astype(np.float64)
    z = g[:, inst].astype(np.float64)
    ok = np.isfinite(y0) & np.isfinite(y1) & np.isfinite(z)
    k = np.broadcast_to(cand, (n_dev, cand.size))
    n_p = np.broadcast_to(np.abs(pulses[cand + 1]), (n_dev, cand.size))
    state = np.cumsum(pulses != 0)
    links = None
    if cand.size > 1:  # links between consecutive pairs, the same for every device
        contiguous = cand[1:] == cand[:-1] + 1
        links = (contiguous, (state[cand[:-1] + 1] == state[cand[1:]]) & ~contiguous)
    return _finish(direction, y0, y1, z, n_p, ok, k, state, links, np.abs(pulses[cand + 1]))


def _finish(direction, y0, y1, z, n_p, ok, k, state, links=None, n_shared=None) -> PairBlock:
    n_dev = y0.shape[0]
    if not ok.all():
        for arr in (y0, y1, z):
            arr[~ok] = 0.0
    weight = ok.astype(np.float64)
    n_arr = np.where(ok, n_p, 1).astype(np.int64)
    read_index = np.where(ok, k, -1)
    if links is not None:
        both = ok[:, 1:] & ok[:, :-1]
        contiguous = links[0] & both
        same_state = links[1] & both
    elif k.shape[1] > 1:
        both = ok[:, 1:] & ok[:, :-1]
        contiguous = (k[:, 1:] == k[:, :-1] + 1) & both
        # a state changes only with pulses: count pulse blocks up to every read
        after = np.take_along_axis(state, k[:, :-1] + 1, axis=1)
        start = np.take_along_axis(state, k[:, 1:], axis=1)
        same_state = (after == start) & ~contiguous & both
    else:
        contiguous = np.zeros((n_dev, 0), dtype=bool)
        same_state = contiguous
    # one sequence for all devices: its counts on the usable columns suffice
    counts = np.unique(n_shared[ok.any(axis=0)] if n_shared is not None else n_arr[ok])
    return PairBlock(
        direction,
        y0,
        y1,
        z,
        n_arr,
        weight,
        read_index,
        np.asarray(contiguous),
        same_state,
        tuple(int(c) for c in counts),
    )


def repeat_reads(g: np.ndarray, pulses: np.ndarray) -> RepeatReads:
    """Consecutive reads with zero pulses in between (read noise only)."""
    n_dev = g.shape[0]
    p2 = np.broadcast_to(pulses, g.shape)
    rep = p2[:, 1:] == 0
    if pulses.ndim == 1:
        cols = np.nonzero(rep[0])[0]
        d = g[:, cols + 1].astype(np.float64) - g[:, cols]
        w = np.isfinite(d)
        return RepeatReads(np.where(w, d, 0.0), w.astype(np.float64))
    d = np.where(rep, g[:, 1:].astype(np.float64) - g[:, :-1], np.nan)
    w = np.isfinite(d)
    if not w.any():
        return RepeatReads(np.zeros((n_dev, 0)), np.zeros((n_dev, 0)))
    return RepeatReads(np.where(w, d, 0.0), w.astype(np.float64))
