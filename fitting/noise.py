"""Separate cycle-to-cycle step noise from non-accumulating (read/write) noise.

With the fitted mean map F_n, the residual of pair k is, to first order,
u_k = c_k + e_{k+1} − a_k·e_k, where c_k is the accumulated cycle-to-cycle noise of the
pulses between the reads (variance σ_c²·v_k, v_k = Σ step² ≈ inc_k²/n_k, multiplicative as in
aihwkit), e_k the non-accumulating noise of read k (variance σ_na² = σ_read² + σ_write²) and
a_k = F_n'(y_k) the contraction of the map. Hence (REFERENCES.md [R15])

    E[u_k²]        = σ_c²·v_k + σ_na²·(1 + a_k²)
    E[u_k·u_{k+1}] = −a_{k+1}·σ_na²           (contiguous pairs)

so the lag-1 autocovariance gives σ_na² and the rest of the variance gives σ_c². Pairs that
may hit a hard bound (clipping truncates the step noise) are left out, judged from the read
before the pair's first (:func:`_clear_of_clip`), and so are pairs and windows whose map
amplifies a read error more than :data:`MAX_CONTRACTION`-fold (the linearization fails).
Judged from the pair's own first read, the choice selected on that read's noise: a device
dwelling at its bound kept its pairs whose first read fell more than a step below it, whose
lag-1 products are then about a third of −σ_na² (the variance of a truncated normal), so
σ_na² came out low and σ_c high (aihwkit's ls_strong_asym, read noise 1.7 steps:
dw_min_std 0.516 for 0.3; constant-step chips of the emulator at read noise 2.2 steps: 0.42).

With read noise much larger than one step's c2c noise (aihwkit's defaults: σ_c·Δ ≈ 0.003 of
the range against σ_read ≈ 0.01), one pair carries almost no c2c information: σ_c² is a
difference of two numbers 30-100 times larger. Windows of m consecutive pairs of one
sweep (the m-pulse map applied to the window's first read) obey the same equation,
E[u_m²] = σ_c²·v_m + σ_na²·(1 + a_m²) with v_m ≈ m·Δ², so the c2c part grows m-fold against
the same read noise: σ_c² comes from the window length with the smallest estimated error
(:data:`WINDOWS`), σ_na² from the lag-1 equations. Windows that end near a clipping
bound are left out (a clip at a noisy read truncates the c2c noise).

A plain window still carries two single reads' noise at its ends, so its c2c part stays
small where a read is many steps wide. Triangle windows (:data:`TRIANGLES`) compare the
means of two adjacent blocks of b reads instead: S = Σ_t w_t·u_t over 2b − 1 consecutive
pairs with triangular weights w (:func:`triangle_weights`), E[S²] = σ_c²·Σ w_t²·v_t +
σ_na²·Σ_t (w_{t−1} − a_t·w_t)², whose read part is about 2σ_na²/b while the c2c part grows
as (2b/3)·Δ²: a random walk's variance from block averages in white noise, as the Allan
variance does it (REFERENCES.md [R24]). With read noise of 12.5 steps and c2c 0.3
(aihwkit's GokmenVlasovPresetDevice, 1000-pulse sweeps) the 32-pulse windows gave
dw_min_std 0.10 ± 0.25, triangles over blocks of 64 reads 0.29 ± 0.11; at 4 steps
(CapacitorPresetDevice) 0.24 ± 0.08 and 0.29 ± 0.015.

Read noise alone shows in repeated reads with no pulse in between (variance 2σ_read²);
without such reads, write noise cannot be told from read noise and the non-accumulating
part is reported as read noise unless the read noise is known from elsewhere.

Every estimate is a ratio of sums over devices, so a bootstrap over devices (resampling the
per-device sums) gives its standard error at no cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fitting.families import FamilyModel
from fitting.gmm import predict_increment, read_noise_sd
from fitting.leverage import FitLeverage
from fitting.pairs import PairBlock, RepeatReads

__all__ = ["NoiseEstimate", "NoiseSums", "estimate_noise", "noise_sums", "pair_statistics"]

#: the largest |a| of a pair or window kept: the moment equations are linear in the read
#: errors (u = c + e₁ − a·e₀), which fails where the map amplifies a read error, i.e. next to
#: a point where the step's slope diverges (pow-step with exponent below 1 at its bounds: a
#: of ±1e3 per pulse, σ_na²·Σ(1 + a²) of 7e95 over 32-pulse windows, σ_c² negative from every
#: window length, dw_min_std 0 for 0.3 on aihwkit's ps_gamma_below_one). Maps that contract
#: (soft-bounds, linear-step) or barely expand (exp-step and linear-step steps that grow
#: towards a bound) stay far below it
MAX_CONTRACTION = 2.0

#: window lengths (pulses) of the c2c moment equations besides single pairs
WINDOWS = (4, 8, 16, 32)

#: half-lengths b of the triangle windows (:func:`triangle_weights`): the difference of the
#: means of two adjacent blocks of b reads, i.e. a weighted sum of 2b − 1 consecutive pair
#: residuals. Averaging b reads divides the read noise that a difference carries by b,
#: while the c2c noise accumulated between the blocks grows with b (see the module's
#: docstring); with read noise many steps wide these are the only windows whose c2c part
#: is not buried in read noise
TRIANGLES = (8, 16, 32, 64)

#: every window kind of the sums' ``*_w`` columns: the plain windows, then the triangles
N_KINDS = len(WINDOWS) + len(TRIANGLES)

#: the largest exact leverage of a device taken, in units of its p·v̄ (soft-bounds: 2.2 for
#: pairs, 1.0-2.2 for windows); beyond it, or below 0, the fit's linearization is not trusted
MAX_LEVERAGE_RATIO = 4.0

#: the share of a window's leverage Q·σ_c² that :func:`_windowed_c2c` charges as its bias
#: where the exact leverage corrects it (a sample, :mod:`fitting.leverage`): the windows of
#: 4-16 pulses (Q = 4-16 % of Σv) came out 0.6-1.9 % low in σ_c, i.e. 1.2-3.8 % in σ_c²,
#: about a quarter of Q (8 emulated soft-bounds chips x 1024 devices). Charged in full, the
#: choice kept the single pairs where read noise makes them biased (aihwkit's
#: sb_twice_spread: σ_c 0.425 from pairs, 0.56 from 4-pulse windows, for 0.6)
EXACT_LEVERAGE_BIAS_SHARE = 0.5


@dataclass
class NoiseSums:
    """Per-device sufficient statistics of the residuals, each of shape (n_dev,)."""

    uu: np.ndarray  # Σ u²
    one_a2: np.ndarray  # Σ (1 + a²)
    v: np.ndarray  # Σ v
    lag: np.ndarray  # Σ u_k u_{k+1} over pairs sharing a read
    a_lag: np.ndarray  # Σ a_{k+1} over the same links
    lag_state: np.ndarray  # Σ u_k u_{k+1} over pairs linked by a repeat read of one state
    a_lag_state: np.ndarray
    n: np.ndarray  # pairs used
    rep: np.ndarray  # Σ (repeat-read differences)²
    n_rep: np.ndarray  # repeat-read differences
    n_fit: np.ndarray  # per-device parameters fitted to these residuals (their leverage)
    q_fit: np.ndarray  # their exact leverage (fitting.leverage; NaN: not known)
    # the same Σ u², Σ (1 + a²), Σ v and count over windows of WINDOWS[i] pulses, (n_dev, W)
    uu_w: np.ndarray
    one_a2_w: np.ndarray
    v_w: np.ndarray
    n_w: np.ndarray
    q_fit_w: np.ndarray
    #: the windows' read leverage (fitting.leverage, units of σ_na²; NaN: not known)
    r_fit_w: np.ndarray

    @staticmethod
    def concat(parts: Sequence[NoiseSums]) -> NoiseSums:
        fields = NoiseSums.__dataclass_fields__
        return NoiseSums(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})

    def take(self, rows: np.ndarray) -> NoiseSums:
        fields = NoiseSums.__dataclass_fields__
        return NoiseSums(**{f: getattr(self, f)[rows] for f in fields})


@dataclass
class PairStatistics:
    """Residual u, contraction a, c2c factor v and usability of every pair of one block."""

    u: np.ndarray
    a: np.ndarray
    v: np.ndarray
    ok: np.ndarray  # usable for the noise model (valid and not clipped)
    valid: np.ndarray  # a usable pair


def pair_statistics(
    model: FamilyModel, block: PairBlock, values: Mapping[str, object], h: float = 1e-6
) -> PairStatistics:
    """Residuals and local map properties of every pair at the fitted ``values``.

    ``u``, ``a`` and ``v`` are given for every valid pair (0 on padding); ``ok`` marks the
    pairs the noise moments use (valid and not clipped at a bound).
    """
    inc, clipped = predict_increment(model, block, values, return_clipped=True)
    inc_h = predict_increment(model, block, values, y0=block.y0 + h)
    a = 1.0 + (inc_h - inc) / h
    u = (block.y1 - block.y0) - inc
    v = inc * inc if block.max_pulses == 1 else inc**2 / block.n
    valid = (block.weight > 0) & np.isfinite(u) & np.isfinite(a)
    ok = valid & ~clipped
    if not valid.all():
        for arr in (u, a, v):
            arr[~valid] = 0.0
    return PairStatistics(u, a, v, ok, valid)


def triangle_weights(half: int) -> np.ndarray:
    """Weights of the 2·half − 1 consecutive pair residuals whose sum is the difference of
    the means of two adjacent blocks of ``half`` reads (pair t of the window runs from read
    t to read t + 1): (t + 1)/half rising to 1, then falling."""
    t = np.arange(2 * half - 1)
    return np.minimum(t + 1, 2 * half - 1 - t) / half


def kind_shares() -> np.ndarray:
    """Per window kind (:data:`N_KINDS`) the factor m of its p·v̄ leverage, p·m·Σv_w/n:
    m for a plain window of m pairs, (Σw)²/Σw² for a triangle (its c2c coefficient Σv_w
    is Σw²·v, the fitted means' share (Σw)²·v̄·p/n)."""
    tri = [triangle_weights(b) for b in TRIANGLES]
    return np.array([*WINDOWS, *(w.sum() ** 2 / (w * w).sum() for w in tri)], dtype=float)


@dataclass
class _Triangles:
    """Triangle windows of one half-length in one block: their column of the sums' ``*_w``
    arrays, weights, the columns of their first pairs (n_win,) and which devices have each
    (n_dev, n_win)."""

    kind: int
    weights: np.ndarray
    cols: np.ndarray
    keep: np.ndarray


class _TriangleLayout:
    """Where triangle windows can lie in one block (the same for every half-length).

    A window takes 2·half − 1 consecutive contiguous pairs that the mean map does not clip
    and whose map does not amplify read errors (runs of such pairs); windows start every
    2·half pairs of a run (no read shared).
    """

    def __init__(self, block: PairBlock, st: PairStatistics) -> None:
        self.block, self.st = block, st
        n_dev, p = st.u.shape
        good = st.ok & (np.abs(st.a) <= MAX_CONTRACTION)
        col = np.arange(p, dtype=np.int32)
        linked = block.contiguous & good[:, :-1] & good[:, 1:]
        brk = np.ones((n_dev, p), dtype=bool)
        brk[:, 1:] = ~linked
        self.offset = col - np.maximum.accumulate(np.where(brk, col, 0), axis=1)
        is_last = np.ones((n_dev, p), dtype=bool)
        is_last[:, :-1] = ~linked
        run_end = np.minimum.accumulate(np.where(is_last, col, p)[:, ::-1], axis=1)[:, ::-1]
        self.room = np.where(good, run_end - col + 1, 0)  # pairs of the run from here on
        # the predicted travel Σ inc of the pairs up to each column
        self.inc = np.cumsum(block.y1 - block.y0 - st.u, axis=1)

    def windows(
        self, model: FamilyModel, values: Mapping[str, object], sd: float, kind: int
    ) -> tuple[_Triangles, np.ndarray, np.ndarray, np.ndarray] | None:
        """Triangle windows of the window kind ``kind`` (a column of the sums' ``*_w``, half
        length TRIANGLES[kind − len(WINDOWS)]) and their Σw·u, Σw²·v and Σ (read
        coefficient)², each (n_dev, n_win), or None.

        The read coefficients are those of e_t in Σ_t w_t·u_t with u_t = c_t + e_{t+1} −
        a_t·e_t: w_{t−1} − a_t·w_t. Like a plain window a triangle must run clear of a clip,
        judged from the read before it and the predicted travel (:func:`_clear_of_clip`).
        """
        st, block = self.st, self.block
        w = triangle_weights(TRIANGLES[kind - len(WINDOWS)])
        length = w.size
        keep = (self.room >= length) & (self.offset % (length + 1) == 0)
        cols = np.nonzero(keep.any(axis=0))[0]
        if cols.size == 0:
            return None
        idx = cols[:, None] + np.arange(length)  # (n_win, length)
        keep = keep[:, cols]
        w2 = w * w
        s_w = st.u[:, idx] @ w
        v_w = st.v[:, idx] @ w2
        a = st.a[:, idx]
        # Σ_t (w_{t−1} − a_t·w_t)² over the reads t = 0 .. length (w_{−1} = w_length = 0)
        cross = a[..., 1:] @ (w[1:] * w[:-1])
        read_w = w2.sum() + np.einsum("nct,nct,t->nc", a, a, w2) - 2.0 * cross
        before = np.where(cols > 0, self.inc[:, np.maximum(cols - 1, 0)], 0.0)
        travel = self.inc[:, cols + length - 1] - before
        z = block.z[:, cols]
        keep &= _clear(model, values, z, z + travel, sd) & np.isfinite(s_w)
        kf = keep.astype(float)
        return _Triangles(kind, w, cols, keep), np.where(keep, s_w, 0.0), v_w * kf, read_w * kf


def noise_sums(
    model: FamilyModel,
    blocks: Sequence[PairBlock],
    values: Mapping[str, object],
    repeats: RepeatReads | None = None,
    n_fit: np.ndarray | None = None,
    leverage: FitLeverage | None = None,
    read_sd: float | None = None,
    triangles: bool = True,
) -> NoiseSums:
    """Per-device residual sums for the noise moment equations.

    ``n_fit`` is the number of parameters fitted to each device's pairs (shape (n_dev,));
    their leverage is taken out of the cycle-to-cycle estimate (see :func:`_pooled`), as
    p·v̄ per pair or window, or exactly from the fit's Jacobian where ``leverage`` (the
    fitted parameters, :class:`fitting.leverage.FitLeverage`) is given. ``read_sd``: the
    chip's read-noise SD (normalized), which sets the margin of pairs and windows kept clear
    of a clip (:func:`_clear_of_clip`); each block's own median when None (then the sums
    depend on how the devices are split into chunks). ``triangles``: False leaves the
    triangle windows out (their columns 0), whose long reach makes them the estimate most
    sensitive to a mean map that misses the data.
    """
    n_dev = blocks[0].y0.shape[0]
    keys = ("uu", "one_a2", "v", "lag", "a_lag", "lag_state", "a_lag_state", "n")
    acc = {k: np.zeros(n_dev) for k in keys}

    def dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # row-wise Σ x·y, no temporaries
        return np.einsum("ij,ij->i", x, y)

    win = {
        k: np.zeros((n_dev, N_KINDS))
        for k in ("uu_w", "one_a2_w", "v_w", "n_w", "q_fit_w", "r_fit_w")
    }
    found_triangles: list[list[_Triangles]] = []  # per block: its triangle windows
    # each block's read-noise SD: the clip margin of its pairs and of its windows
    sds = [read_noise_sd(b) if read_sd is None else read_sd for b in blocks]
    for b, sd in zip(blocks, sds, strict=True):
        st = pair_statistics(model, b, values)
        found_triangles.append([])
        tri_layout = _TriangleLayout(b, st) if triangles else None
        for j in range(len(WINDOWS), N_KINDS) if triangles else ():
            found = tri_layout.windows(model, values, sd, j)
            if found is None:
                continue
            tri, s_w, v_w, read_w = found
            found_triangles[-1].append(tri)
            win["uu_w"][:, j] += dot(s_w, s_w)
            win["one_a2_w"][:, j] += read_w.sum(axis=1)
            win["v_w"][:, j] += v_w.sum(axis=1)
            win["n_w"][:, j] += tri.keep.sum(axis=1)
        # judged from the instrument read, as the windows are (_clear_of_clip): the clip
        # judged at the pair's own noisy first read selects on that read's noise
        st.ok &= _usable(model, b, st, values, sd)
        okf = st.ok.astype(float)
        u = st.u if st.ok.all() else st.u * okf
        acc["uu"] += dot(u, u)
        acc["one_a2"] += okf.sum(axis=1) + dot(st.a * okf, st.a)
        acc["v"] += dot(st.v, okf)
        acc["n"] += okf.sum(axis=1)
        if leverage is not None:
            leverage.add_pairs(model, b, values, st.ok, st.v, st.a, st.valid, st.u)
        if u.shape[1] > 1:
            prod = u[:, :-1] * u[:, 1:]  # zero unless both pairs are usable
            a_next = st.a[:, 1:] * (okf[:, :-1] * okf[:, 1:])
            link = b.contiguous.astype(float)
            acc["lag"] += dot(prod, link)
            acc["a_lag"] += dot(a_next, link)
            # the next pair starts at another read of the same state: only the write noise
            # (redrawn by pulses, not by reads) is shared
            if b.same_state.any():
                link = b.same_state.astype(float)
                acc["lag_state"] += dot(prod, link)
                acc["a_lag_state"] += dot(a_next, link)
    if repeats is not None and repeats.diff.size:
        rep = np.sum(repeats.diff**2 * repeats.weight, axis=1)
        n_rep = repeats.weight.sum(axis=1)
    else:
        rep = np.zeros(n_dev)
        n_rep = np.zeros(n_dev)
    n_fit = np.zeros(n_dev) if n_fit is None else np.asarray(n_fit, dtype=float)
    q_fit = np.full(n_dev, np.nan) if leverage is None else leverage.pairs()
    if leverage is None:
        win["q_fit_w"][:] = np.nan
        win["r_fit_w"][:] = np.nan
    # where windows may start: the same for every window length (the sums of each window
    # length run over the blocks in block order, as before)
    for index, (b, sd) in enumerate(zip(blocks, sds, strict=True)):
        layout = _RunLayout(b)
        done: _WindowMap | None = None  # the map of the previous (shorter) windows
        for i, m in enumerate(WINDOWS):
            found = layout.window_columns(m)
            if found is None:
                done = None
                continue
            cols, wb = found
            st, done = _window_statistics(model, wb, values, start=_shared_start(done, cols, wb))
            done.cols = cols
            okf = (st.ok & _usable(model, wb, st, values, sd)).astype(float)
            u = st.u * okf
            win["uu_w"][:, i] += dot(u, u)
            win["one_a2_w"][:, i] += okf.sum(axis=1) + dot(st.a * okf, st.a)
            win["v_w"][:, i] += dot(st.v, okf)
            win["n_w"][:, i] += okf.sum(axis=1)
            if leverage is not None:
                q, r = leverage.windows(model, index, wb, cols, values, okf > 0, m, st.a)
                win["q_fit_w"][:, i] += q
                win["r_fit_w"][:, i] += r
        if leverage is not None:
            for tri in found_triangles[index]:
                q, r = leverage.triangles(index, tri.cols, tri.keep, tri.weights)
                win["q_fit_w"][:, tri.kind] += q
                win["r_fit_w"][:, tri.kind] += r
    return NoiseSums(rep=rep, n_rep=n_rep, n_fit=n_fit, q_fit=q_fit, **acc, **win)


class _RunLayout:
    """Where windows of consecutive contiguous pairs can start in one block, for any length.

    Runs of contiguous pairs, the cumulative count of usable pairs and of pulses are computed
    once per block (they do not depend on the window length). When every pair is usable and
    every device has the same links (complete traces of one pulse sequence: a chip file) the
    runs are one row for all devices.
    """

    def __init__(self, block: PairBlock) -> None:
        n_dev, p = block.y0.shape
        self.block, self.p = block, p
        links, usable = block.contiguous, block.weight > 0
        if n_dev and usable.all() and (links == links[:1]).all():
            links, usable = links[:1], usable[:1]  # one layout for every device
        self.col = np.arange(p)
        brk = np.ones((links.shape[0], p), dtype=bool)
        brk[:, 1:] = ~links
        self.run_start = np.maximum.accumulate(np.where(brk, self.col, 0), axis=1)
        self.good = np.cumsum(usable, axis=1)
        self._n_cum: np.ndarray | None = None

    @property
    def n_cum(self) -> np.ndarray:
        """Cumulative pulse counts; one row when every device has the same counts."""
        if self._n_cum is None:
            n = self.block.n
            self._n_cum = np.cumsum(n[:1] if n.size and (n == n[:1]).all() else n, axis=1)
        return self._n_cum

    def windows(self, m: int) -> PairBlock | None:
        """Windows of ``m`` consecutive contiguous pairs (one pair per window), or None
        (:meth:`window_columns` without the columns)."""
        found = self.window_columns(m)
        return None if found is None else found[1]

    def window_columns(self, m: int) -> tuple[np.ndarray, PairBlock] | None:
        """The columns of the block's first pairs and the windows of ``m`` consecutive
        contiguous pairs (one pair per window), or None.

        Windows start at every m-th pair of a run of contiguous pairs (non-overlapping); a
        window sits at the column of its first pair, from that pair's y0 to the last pair's
        y1, with the summed pulse count. Only the columns where some device has a window
        are returned (the pulse-by-pulse map of the windows is the costliest step of the
        per-device stage); on them, devices without a window there get weight 0.
        """
        block, p, col, run_start = self.block, self.p, self.col, self.run_start
        n_dev = block.y0.shape[0]
        if p < m or n_dev == 0:
            return None
        last = col + m - 1
        fits = last < p
        end = np.minimum(last, p - 1)
        keep = ((col - run_start) % m == 0) & fits & (run_start[:, end] == run_start)
        cols = np.nonzero(keep.any(axis=0))[0]

        def window_sum(c: np.ndarray, at: np.ndarray) -> np.ndarray:  # Σ over at..at+m−1
            before = c[:, np.maximum(at - 1, 0)] * (at > 0)
            return c[:, end[at]] - before

        keep = keep[:, cols] & (window_sum(self.good, cols) == m)
        some = keep.any(axis=0)
        cols, keep = cols[some], keep[:, some]
        if cols.size == 0:
            return None
        n = np.where(keep, window_sum(self.n_cum, cols), 1).astype(np.int64)
        counts = tuple(int(c) for c in np.unique(n[np.broadcast_to(keep, n.shape)]))
        keep = np.broadcast_to(keep, (n_dev, cols.size))
        n = np.ascontiguousarray(np.broadcast_to(n, keep.shape))
        links = np.zeros((n_dev, max(cols.size - 1, 0)), dtype=bool)
        return cols, PairBlock(
            block.direction,
            block.y0[:, cols],
            block.y1[:, end[cols]],
            block.z[:, cols],
            n,
            keep.astype(float),
            np.where(keep, block.read_index[:, cols], -1),
            links,
            links,
            counts,
        )


@dataclass
class _WindowMap:
    """The mean map of windows after their first ``done`` pulses, each (n_dev, columns):
    state ``w``, contraction ``a``, c2c factor ``v`` and whether a pulse was clipped."""

    w: np.ndarray
    a: np.ndarray
    v: np.ndarray
    clipped: np.ndarray
    done: np.ndarray  # pulses applied (those of the windows where ``kept``)
    kept: np.ndarray  # where a window is
    cols: np.ndarray | None = None  # the block's columns of the windows' first pairs


def _shared_start(prev: _WindowMap | None, cols: np.ndarray, block: PairBlock) -> _WindowMap | None:
    """``prev`` (windows of m' pairs) at the windows ``block`` (m pairs, starting at the
    block's columns ``cols``), or None where they do not share their first pulses.

    A window of m pairs starts at every m-th pair of a run; with m' dividing m, every window
    of m' pairs that starts there holds its first m' pairs, so its map is the first part of
    the longer window's (the same pulses from the same first read, in the same order).
    """
    if prev is None or prev.cols is None:
        return None
    at = np.searchsorted(prev.cols, cols)
    if at.size and (at[-1] >= prev.cols.size or (prev.cols[at] != cols).any()):
        return None
    kept = block.weight > 0
    done = prev.done[:, at]
    if not (prev.kept[:, at][kept].all() and (done[kept] < block.n[kept]).all()):
        return None  # not the first part of each window
    # C order, as a fresh map's arrays (row sums then add in the same order)
    w, a, v, clipped = (
        np.ascontiguousarray(x[:, at]) for x in (prev.w, prev.a, prev.v, prev.clipped)
    )
    return _WindowMap(w, a, v, clipped, done, prev.kept[:, at])


def _window_statistics(
    model: FamilyModel,
    block: PairBlock,
    values: Mapping[str, object],
    h: float = 1e-6,
    start: _WindowMap | None = None,
) -> tuple[PairStatistics, _WindowMap]:
    """:func:`pair_statistics` of multi-pulse windows, pulse by pulse, and their map.

    The c2c noise of pulse j reaches the window's end contracted by the later pulses, so
    v = Σ_j step_j²·Π_{l>j} a_l² (a_l = 1 + step'(w_l)), and the window's contraction is
    a = Π_l a_l; pairs that the mean map clips at any pulse are not ``ok``. ``start``: the
    map after each window's first pulses (shorter windows from the same first reads);
    only the remaining pulses are applied.
    """
    params = model.step_params(values)
    up = block.direction > 0
    lo, hi = params["b_min"], params["b_max"]
    if start is None:
        w = block.y0.copy()
        a = np.ones_like(w)
        v = np.zeros_like(w)
        clipped = np.zeros(w.shape, dtype=bool)
        todo = block.n
    else:
        w, a, v, clipped = start.w, start.a, start.v, start.clipped.copy()
        todo = block.n - start.done
    kept = block.weight > 0
    # pulses that every window has (entries without a window are zeroed below)
    every = int(todo[kept].min()) if kept.any() else 0
    last = int(todo[kept].max()) if kept.any() else 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for j in range(last):
            step = model.step(w, up, values)
            slope = 1.0 + (model.step(w + h, up, values) - step) / h
            new = w + step
            if j < every:  # every window takes this pulse (the same as the masked update)
                if model.clip:
                    bounded = np.minimum(np.maximum(new, lo), hi)
                    clipped |= bounded != new
                    new = bounded
                w, v, a = new, v * slope**2 + step**2, a * slope
                continue
            live = todo > j
            if model.clip:
                bounded = np.minimum(np.maximum(new, lo), hi)
                clipped |= live & (bounded != new)
                new = bounded
            w = np.where(live, new, w)
            v = np.where(live, v * slope**2 + step**2, v)
            a = np.where(live, a * slope, a)
    u = (block.y1 - block.y0) - (w - block.y0)
    valid = kept & np.isfinite(u) & np.isfinite(a) & np.isfinite(v)
    u[~valid] = 0.0
    st = PairStatistics(
        u, np.where(valid, a, 0.0), np.where(valid, v, 0.0), valid & ~clipped, valid
    )
    return st, _WindowMap(w, a, v, clipped, block.n, kept)


def _usable(
    model: FamilyModel,
    block: PairBlock,
    st: PairStatistics,
    values: Mapping[str, object],
    sd: float,
) -> np.ndarray:
    """Pairs or windows the moment equations use: clear of a clip (:func:`_clear_of_clip`)
    and with a map that does not amplify a read error (:data:`MAX_CONTRACTION`)."""
    return _clear_of_clip(model, block, st, values, sd) & (np.abs(st.a) <= MAX_CONTRACTION)


def _clear_of_clip(
    model: FamilyModel,
    block: PairBlock,
    st: PairStatistics,
    values: Mapping[str, object],
    sd: float,
) -> np.ndarray:
    """Windows (or single pairs) that run three read-noise SDs (``sd``) clear of a clipping
    bound.

    The clip is evaluated at the noisy first read: a window that truly reaches the bound
    while the prediction does not (or the other way round) truncates its c2c noise. The
    window's course is judged from its instrument read z (the read before its first read,
    independent of the window's own read and c2c noise, so the selection does not bias
    its moments) and the predicted travel.
    """
    return _clear(model, values, block.z, block.z + (block.y1 - block.y0 - st.u), sd)


def _clear(
    model: FamilyModel,
    values: Mapping[str, object],
    start: np.ndarray,
    end: np.ndarray,
    sd: float,
) -> np.ndarray:
    """Courses from ``start`` to ``end`` (n_dev, k) that run three read-noise SDs (``sd``)
    clear of the clipping bounds (all True for a family that does not clip)."""
    if not model.clip:
        return np.ones(start.shape, dtype=bool)
    params = model.step_params(values)
    lo = np.broadcast_to(np.asarray(params["b_min"], dtype=float), start.shape)
    hi = np.broadcast_to(np.asarray(params["b_max"], dtype=float), start.shape)
    margin = 3.0 * sd
    with np.errstate(invalid="ignore"):
        return (np.minimum(start, end) > lo + margin) & (np.maximum(start, end) < hi - margin)


@dataclass
class NoiseEstimate:
    """Pooled noise estimates (normalized units unless stated) and bootstrap errors."""

    c2c: float  # σ_c, relative to the step (aihwkit dw_min_std)
    non_accumulating: float  # σ_na (read + write)
    read: float  # σ_read
    write: float  # σ_write
    separable: bool  # True when read and write noise could be told apart
    c2c_se: float
    non_accumulating_se: float
    read_se: float
    write_se: float


def _leverage(s: NoiseSums) -> float:
    """Q = Σ_d p_d·v̄_d: the c2c variance (in units of σ_c²) absorbed by the fitted means.

    A fit of p_d smooth parameters to device d's n_d pair residuals removes p_d of their
    low-frequency directions. Read noise enters a pair as e_{k+1} − a·e_k (a ≈ 1), which has
    almost no low-frequency content, so what is removed is cycle-to-cycle noise: E[Σu²] drops
    by σ_c²·p_d·v̄_d (v̄_d = Σv/n, the mean c2c factor), and because the removed directions
    are smooth (hat matrix H_{k,k+1} ≈ H_kk) each lag-1 product drops by the same per pair.
    Ignored, both bias σ_c low: by 1.5·p/n (linear-step, 6 parameters, 400 pairs: −2.3 %).
    """
    return _leverage_parts(s).totals(_sum)[0]


@dataclass
class _LeverageParts:
    """Per-device leverage terms: p·v̄ for single pairs (n_dev,) and every window length
    (n_dev, len(WINDOWS)), and on the devices where the exact leverage is known (a sample,
    ``fitting.chunked.leverage_sample``; 0 elsewhere) its trusted value and their p·v̄."""

    pairs: np.ndarray
    windows: np.ndarray
    exact: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    #: the sampled devices' read leverage per window, one value per window length
    read: np.ndarray | None = None

    def totals(self, total: Total) -> tuple[float, list[float]]:
        """Q of single pairs and of each window length over the devices ``total`` sums: p·v̄
        times the exact-to-p·v̄ ratio of the sampled devices it sums (a bootstrap replicate
        its drawn ones)."""
        q = total(self.pairs)
        q_w = [total(self.windows[:, i]) for i in range(N_KINDS)]
        if self.exact is None:
            return q, q_w
        ex_p, base_p, ex_w, base_w = self.exact

        def ratio(ex: np.ndarray, base: np.ndarray) -> float:
            b = total(base)
            return total(ex) / b if b > 0 else 1.0

        q *= ratio(ex_p, base_p)
        return q, [q_w[i] * ratio(ex_w[:, i], base_w[:, i]) for i in range(N_KINDS)]


def _leverage_parts(s: NoiseSums) -> _LeverageParts:
    """The leverage terms of ``s`` (:class:`_LeverageParts`). A sampled device's exact value
    counts only between 0 and :data:`MAX_LEVERAGE_RATIO` times its p·v̄ (else its p·v̄):
    outside that the linearization fails (aihwkit's es_strong, exp-step with strong
    nonlinearity: window leverages of -2 to -47 times Σv, dw_min_std 0.211 for 0.3).

    A window's p·v̄ is p·m·v̄ of the pairs, the windows' Σv_w times p·m/n. Taken as p·Σv_w/n_w
    (the window's own mean v), it was 0 for a device that kept no more windows than it has
    parameters. Hard-bound devices lose their clipped windows, so their windows still
    entered Σu_w² and Σv_w but none of their leverage did. On the coverage bench's
    chips (fitted with the true family, 60 chips each) σ_c² from 32-pulse windows came out
    8.2 % low for constant-step and 17 % low for linear-step; now 3.0 ± 1.2 % and 2.2 ± 2.0 %
    low. Soft-bounds and pow-step are unchanged: their windows cover their pairs, and the
    exact leverage rescales p·v̄ anyway."""
    pairs = np.where(s.n > s.n_fit, s.n_fit * s.v / np.maximum(s.n, 1.0), 0.0)
    # a window of m pairs carries m pairs' share p/n of the leverage each (the parameters
    # are fitted to the n pairs, not to the windows): p·m·Σv_w/n, however few windows a
    # device keeps
    m = kind_shares()
    windows = np.where(
        (s.n > s.n_fit)[:, None], s.n_fit[:, None] * s.v_w * m / np.maximum(s.n, 1.0)[:, None], 0.0
    )
    known = np.isfinite(s.q_fit) & np.all(np.isfinite(s.q_fit_w), axis=1)
    if not known.any():
        return _LeverageParts(pairs, windows, None)
    read = _trusted_read_leverage(s, known)

    def trusted(exact: np.ndarray, approx: np.ndarray) -> np.ndarray:
        kept = np.isfinite(exact) & (exact >= 0) & (exact <= MAX_LEVERAGE_RATIO * approx)
        return np.where(kept, exact, approx)

    on = known[:, None]
    exact = (
        np.where(known, trusted(s.q_fit, pairs), 0.0),
        np.where(known, pairs, 0.0),
        np.where(on, trusted(s.q_fit_w, windows), 0.0),
        np.where(on, windows, 0.0),
    )
    return _LeverageParts(pairs, windows, exact, read)


#: a sampled device's read leverage per window further than this many robust SDs from the
#: sample's median (at least 1e-3) is a failed linearization and left out: aihwkit's
#: ps_twice_spread has one of 15 sampled devices at −1.1 to −10 per window (4-32 pulses)
#: against medians of −0.005 to 0.11, below −(1 + a²), a negative variance; it alone set R
READ_LEVERAGE_MADS = 5.0


def _trusted_read_leverage(s: NoiseSums, known: np.ndarray) -> np.ndarray | None:
    """The read leverage per window of each window length: Σr/Σn_w over the sampled
    devices whose own value per window is within :data:`READ_LEVERAGE_MADS` robust SDs of
    their median (0 where none has windows), or None where no device has one. One ratio
    for the chip (a bootstrap replicate does not redraw it): per-device arrays here held
    the population stage's memory 5 % above its bound (tests/fitting/test_population_memory)."""
    rows = np.nonzero(known & np.all(np.isfinite(s.r_fit_w), axis=1))[0]
    if rows.size == 0:
        return None
    out = np.zeros(N_KINDS)
    for i in range(N_KINDS):
        r, n = s.r_fit_w[rows, i], s.n_w[rows, i]
        r, n = r[n > 0], n[n > 0]
        if n.size == 0:
            continue
        per = r / n
        med = np.median(per)
        mad = 1.4826 * np.median(np.abs(per - med))
        keep = np.abs(per - med) <= READ_LEVERAGE_MADS * max(mad, 1e-3)
        out[i] = float(r[keep].sum() / n[keep].sum())
    return out


#: ``total(x)``: the sum over devices of a per-device array (or a bootstrap's weighted sum)
Total = Callable[[np.ndarray], float]


def _sum(x: np.ndarray) -> float:
    return float(np.sum(x))


def _pooled(
    s: NoiseSums,
    read_known: float | None,
    total: Total = _sum,
    leverage: _LeverageParts | None = None,
) -> tuple[float, float, float, float, bool]:
    """σ_c, σ_na, σ_read, σ_write and separability from the sums over devices (``total``:
    plain sums; a bootstrap replicate passes the sums weighted by how often it draws each
    device, the same as the sums of its drawn rows). ``leverage``: :func:`_leverage_parts`
    of ``s`` (computed when None)."""
    leverage = _leverage_parts(s) if leverage is None else leverage
    q, q_w = leverage.totals(total)
    bias_share = 1.0 if leverage.exact is None else EXACT_LEVERAGE_BIAS_SHARE
    a_lag, a_state = total(s.a_lag), total(s.a_lag_state)
    n_rep = total(s.n_rep)
    read2 = total(s.rep) / (2.0 * n_rep) if n_rep >= 10 else None
    if read2 is None and read_known is not None:
        read2 = read_known**2
    write2_state = max(-total(s.lag_state) / a_state, 0.0) if a_state > 0 else None
    v, uu, one_a2 = total(s.v), total(s.uu), total(s.one_a2)
    if a_lag > 0:
        # −Σlag = σ_na²·Σa + σ_c²·Q and Σu² = σ_c²·(Σv − Q) + σ_na²·Σ(1 + a²), solved jointly
        lag = -total(s.lag)
        den = v - q - one_a2 * q / a_lag
        c2 = (uu - one_a2 * lag / a_lag) / den if den > 0 else 0.0
        na2 = max((lag - max(c2, 0.0) * q) / a_lag, 0.0)
        c2 = (uu - na2 * one_a2) / (v - q) if v > q else 0.0
    else:
        known = write2_state is not None and read2 is not None
        na2 = write2_state + read2 if known else 0.0
        c2 = (uu - na2 * one_a2) / (v - q) if v > q else 0.0
    c2 = _windowed_c2c(s, na2, c2, v, q, uu, one_a2, total, q_w, bias_share, leverage.read)
    separable = read2 is not None
    if not separable:
        read2 = na2
    elif a_lag <= 0 and write2_state is not None:
        pass  # na2 was built from the two parts
    else:
        read2 = min(read2, na2)
    write2 = max(na2 - read2, 0.0)
    return np.sqrt(max(c2, 0.0)), np.sqrt(na2), np.sqrt(read2), np.sqrt(write2), separable


def _windowed_c2c(
    s: NoiseSums,
    na2: float,
    c2: float,
    v: float,
    q: float,
    uu: float,
    one_a2: float,
    total: Total = _sum,
    q_w: Sequence[float] | None = None,
    bias_share: float = 1.0,
    r_w: Sequence[float] | None = None,
) -> float:
    """σ_c² from the window length (single pairs or :data:`WINDOWS`) with the smallest error.

    Error of each candidate (σ_na² taken as known up to its own error): Var Σu² ≈ 2 Σu²²/n
    for n windows of about equal variance, and σ_na² from the lag-1 equations of n₁ pairs
    with relative variance ≈ 3/n₁; both divided by (Σv − Q)², Q the leverage of the fitted
    per-device parameters (:func:`_leverage`, here per window: ``q_w``).

    Q = p·v̄ is exact only where the fitted parameters' leverage is spread evenly over the
    windows. Where the step depends on the state (soft-bounds: large early steps carry both
    the c2c noise and most of the leverage) the fit absorbs more: on 20 emulated soft-bounds
    chips (100-pulse sweeps) windows of 4, 8, 16 pulses (Q = 4, 8, 16 % of Σv) gave σ_c 1.5,
    3.3, 4.7 % low, i.e. σ_c² low by 0.6-0.8 of their own Q·σ_c² (simulated with the
    true map and no fit: unbiased). That error does not shrink with more devices: it enters
    each candidate's error as a squared bias (Q·σ_c²)², σ_c² from the single pairs (one
    value for every candidate, not each window's own estimate). With the fit's exact
    leverage (:mod:`fitting.leverage`) those windows are 0.6-1.9 % low and single pairs
    unbiased (8 chips x 1024 devices), so the choice charges ``bias_share`` of it
    (:data:`EXACT_LEVERAGE_BIAS_SHARE`, 1 where only p·v̄ is known).

    ``r_w``: the windows' read leverage per window of each length (:mod:`fitting.leverage`,
    units of σ_na²; R_m = r_w·n_m over n_m windows): the fitted parameters' read-noise error
    that m pulses of the map add to Σu_m², so E[Σu_m²] = σ_c²·(Σv_m − Q_m) +
    σ_na²·(Σ(1 + a²) + R_m). Left out, it grew with the
    window length and read noise (constant-step, read noise 2.2 steps, c2c 0.3: σ_c 0.27 from
    4-pulse windows, 0.42 from 32).
    """
    if q_w is None:
        q_w = _leverage_parts(s).totals(total)[1]
    n1 = total(s.n)
    if n1 < 10 or v <= q:
        return c2

    c2_pairs = max(c2, 0.0) * bias_share  # the bias scale, common to every candidate

    def variance(uu_m: float, one_a2_m: float, den: float, n_m: float, q_m: float) -> float:
        # numpy scalars: a diverged trial fit gives inf (not an OverflowError), never chosen
        uu_m, one_a2_m, den = np.float64(uu_m), np.float64(one_a2_m), np.float64(den)
        with np.errstate(over="ignore", invalid="ignore"):
            noise = 2.0 * uu_m**2 / n_m + 3.0 * (na2 * one_a2_m) ** 2 / n1
            var = (noise + (q_m * c2_pairs) ** 2) / den**2  # + the leverage's bias²
        return float(var) if np.isfinite(var) else np.inf

    best, best_var = c2, variance(uu, one_a2, v - q, n1, q)
    for i in range(N_KINDS):
        n_m = total(s.n_w[:, i])
        if n_m < 30:
            continue
        q_m = q_w[i]
        v_m = total(s.v_w[:, i])
        uu_m, one_m = total(s.uu_w[:, i]), total(s.one_a2_w[:, i])
        if r_w is not None:
            one_m += r_w[i] * n_m
        if v_m <= q_m:
            continue
        var_m = variance(uu_m, one_m, v_m - q_m, n_m, q_m)
        if var_m < best_var and np.isfinite(uu_m - na2 * one_m):
            best, best_var = (uu_m - na2 * one_m) / (v_m - q_m), var_m
    return best


def estimate_noise(
    sums: NoiseSums, read_known: float | None = None, n_boot: int = 200, seed: int = 0
) -> NoiseEstimate:
    """Pooled σ_c, σ_na, σ_read, σ_write with standard errors from a device bootstrap.

    ``read_known`` is an externally measured read-noise std (normalized units).
    """
    c2c, na, read, write, separable = _pooled(sums, read_known)
    n = sums.uu.size
    if n >= 3 and n_boot > 0:
        rng = np.random.default_rng(seed)
        leverage = _leverage_parts(sums)
        reps = []
        # one replicate's rows at a time: the same draws as one (n_boot, n) array, which
        # would take n_boot x 8 bytes per device (6.7 GB for 4.2e6 devices); the sums of the
        # drawn rows are the sums weighted by each device's count of draws (no copy of the
        # drawn devices' sums)
        for _ in range(n_boot):
            drawn = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)

            def weighted(x: np.ndarray, w: np.ndarray = drawn) -> float:
                return float(np.einsum("i,i->", w, x))  # no BLAS call (its threads: 15x slower)

            reps.append(_pooled(sums, read_known, weighted, leverage)[:4])
        reps = np.array(reps)
        se = reps.std(axis=0, ddof=1)
    else:
        se = np.full(4, np.nan)
    return NoiseEstimate(
        float(c2c),
        float(na),
        float(read),
        float(write),
        separable,
        float(se[0]),
        float(se[1]),
        float(se[2]),
        float(se[3]),
    )
