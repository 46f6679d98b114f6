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

from fitting.noise import WINDOWS, _RunLayout
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
