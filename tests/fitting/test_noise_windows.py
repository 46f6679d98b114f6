"""The c2c windows of the noise model (fitting.noise): where they start, what they span.

Reference: the definition in ``fitting.noise._RunLayout.windows`` written out device by
device with Python loops (runs of contiguous usable pairs, a window at every m-th pair of a
run with m pairs left). The vectorized layout computes the runs once per block, in one row
when every device has the same complete pairs (a chip file), per device otherwise; both
must give exactly the windows of the definition.
"""

from __future__ import annotations

import numpy as np
import pytest

from fitting.families import family_model
from fitting.gmm import read_noise_sd
from fitting.noise import (
    WINDOWS,
    _clear_of_clip,
    _RunLayout,
    _shared_start,
    _window_statistics,
    noise_sums,
)
from fitting.pairs import build_pairs


def _reference(block, m: int) -> dict[tuple[int, int], tuple[float, float, int]]:
    """{(device, read index of y0): (y0, y1 of the window's last pair, pulses)}."""
    out = {}
    n_dev, p = block.y0.shape
    for d in range(n_dev):
        j = 0
        while j < p:
            if block.weight[d, j] == 0:
                j += 1
                continue
            run = [j]  # a run of contiguous usable pairs starting at j
            while run[-1] + 1 < p and block.contiguous[d, run[-1]]:
                run.append(run[-1] + 1)
            for start in range(0, len(run) - m + 1, m):
                cols = run[start : start + m]
                key = (d, int(block.read_index[d, cols[0]]))
                out[key] = (
                    block.y0[d, cols[0]],
                    block.y1[d, cols[-1]],
                    int(block.n[d, cols].sum()),
                )
            j = run[-1] + 1
    return out


def _found(wb) -> dict[tuple[int, int], tuple[float, float, int]]:
    if wb is None:
        return {}
    d, c = np.nonzero(wb.weight > 0)
    return {
        (int(i), int(wb.read_index[i, k])): (wb.y0[i, k], wb.y1[i, k], int(wb.n[i, k]))
        for i, k in zip(d, c, strict=True)
    }


def _traces(gaps: bool, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # two cycles of 40 up and 40 down pulses, a repeat read and a double pulse in between
    pulses = np.array([0] + [1] * 40 + [0] + [2] * 3 + [-1] * 40 + [1] * 40 + [-1] * 40)
    g = np.cumsum(rng.normal(0.0, 1.0, (6, pulses.size)), axis=1)
    if gaps:
        g[1, 17] = g[2, 60] = g[4, 100] = np.nan  # a missing read cuts a run
        g[3, -30:] = np.nan  # a shorter trace
    return g, pulses


@pytest.mark.parametrize("gaps", [False, True], ids=["complete (one row)", "missing reads"])
@pytest.mark.parametrize("direction", [1, -1])
def test_windows_are_those_of_the_definition(gaps: bool, direction: int) -> None:
    g, pulses = _traces(gaps)
    block = build_pairs(g, pulses, direction)
    layout = _RunLayout(block)
    assert (layout.run_start.shape[0] == 1) is (not gaps)  # the one-row layout is used
    for m in (*WINDOWS, 3, 41):
        expected = _reference(block, m)
        assert bool(expected) is (m < 41)  # runs are 40 pairs long at most
        wb = layout.windows(m)
        assert _found(wb) == expected, m
        if wb is not None:  # only columns that hold a window (the pulse map runs on them)
            assert (wb.weight > 0).any(axis=0).all()
            assert wb.pulse_counts == tuple(sorted({v[2] for v in expected.values()}))


@pytest.mark.parametrize("gaps", [False, True], ids=["complete (one row)", "missing reads"])
def test_windows_continued_from_shorter_ones_equal_windows_mapped_from_their_first_read(
    gaps: bool,
) -> None:
    # a window of m pairs starts where one of m/2 pairs does and continues its map; the
    # reference maps every window from its first read. Bounds at ±8 (the walks reach ±10)
    # so that some windows are clipped and others are not; per-device values as in a fit.
    g, pulses = _traces(gaps)
    model = family_model("linear-step")
    rng = np.random.default_rng(7)
    col = np.ones((g.shape[0], 1))
    values = {
        "delta_up": 0.5 + 0.1 * rng.random((g.shape[0], 1)),
        "delta_down": 0.4 * col,
        "b_max": 8.0 * col,
        "b_min": -8.0 * col,
        "kappa_up": 0.05 * col,
        "kappa_down": 0.08 * col,
    }
    blocks = [build_pairs(g, pulses, 1), build_pairs(g, pulses, -1)]
    sums = {k: np.zeros((g.shape[0], len(WINDOWS))) for k in ("uu", "one_a2", "v", "n")}
    continued = 0
    for b in blocks:
        layout, sd = _RunLayout(b), read_noise_sd(b)
        done = None
        for i, m in enumerate(WINDOWS):
            cols, wb = layout.window_columns(m)
            fresh, _ = _window_statistics(model, wb, values)
            start = _shared_start(done, cols, wb)
            continued += start is not None
            st, done = _window_statistics(model, wb, values, start=start)
            done.cols = cols
            for name in ("u", "a", "v", "ok", "valid"):
                np.testing.assert_array_equal(getattr(st, name), getattr(fresh, name), name)
            okf = (fresh.ok & _clear_of_clip(model, wb, fresh, values, sd)).astype(float)
            sums["uu"][:, i] += np.einsum("ij,ij->i", fresh.u * okf, fresh.u * okf)
            sums["one_a2"][:, i] += okf.sum(axis=1) + np.einsum("ij,ij->i", fresh.a * okf, fresh.a)
            sums["v"][:, i] += np.einsum("ij,ij->i", fresh.v, okf)
            sums["n"][:, i] += okf.sum(axis=1)
    assert continued == 2 * (len(WINDOWS) - 1)  # every longer window was continued
    assert 0 < sums["n"].sum() < sum(_window_count(b) for b in blocks)  # some were clipped
    s = noise_sums(model, blocks, values)
    for k in sums:
        np.testing.assert_array_equal(getattr(s, f"{k}_w")[:, : len(WINDOWS)], sums[k], k)


def _window_count(block) -> int:
    layout = _RunLayout(block)
    return int(sum((layout.windows(m).weight > 0).sum() for m in WINDOWS))
