"""The per-device fit's exact leverage on the c2c sums (``fitting.leverage``, issue 14).

Reference: constant-step away from its bounds, whose n-pulse increment is n·Δ of the
pulse direction (aihwkit's ConstantStepDevice, ``fitting/families.py``): J_k = n_k for the
Δ of the pair's direction, contraction 1, v_k = Δ² per pulse. With N single-pulse pairs of a
direction, G = N, the pairs' leverage is Σ_k H_kk·v_k = Δ², and a window of m pairs loses
2·m·(m·Δ²)/N − m²·(N·Δ²)/N² = m²·Δ²/N, written out here by hand. The hard bounds are not
fitted (their clipped pairs are not in the sums) and must not enter.
"""

from __future__ import annotations

import numpy as np

from fitting.chunked import leverage_sample
from fitting.families import family_model
from fitting.leverage import FitLeverage
from fitting.noise import (
    N_KINDS,
    TRIANGLES,
    WINDOWS,
    NoiseSums,
    _leverage_parts,
    _RunLayout,
    _sum,
    kind_shares,
    noise_sums,
    pair_statistics,
    triangle_weights,
)
from fitting.pairs import build_pairs


def test_exact_leverage_of_a_linear_map_pairs_and_windows() -> None:
    rng = np.random.default_rng(5)
    pulses = np.array([0] + [1] * 64 + [-1] * 64)  # one sweep each way, single pulses
    g = np.cumsum(rng.normal(0.0, 0.05, (3, pulses.size)), axis=1)
    col = np.ones((3, 1))
    delta = {"delta_up": 0.01, "delta_down": -0.02}
    values = {k: v * col for k, v in delta.items()} | {"b_max": 50 * col, "b_min": -50 * col}
    names = ("delta_up", "delta_down", "b_max", "b_min")
    fitted = np.tile([True, True, False, False], (3, 1))
    model = family_model("constant-step")
    blocks = [build_pairs(g, pulses, 1), build_pairs(g, pulses, -1)]
    lev = FitLeverage(names, fitted)
    for b in blocks:
        st = pair_statistics(model, b, values)
        lev.add_pairs(model, b, values, st.ok, st.v, st.a)
    # forward differences of a linear map: exact up to rounding
    np.testing.assert_allclose(lev.pairs(), 0.01**2 + 0.02**2, rtol=1e-6)
    for index, (b, d) in enumerate(zip(blocks, (0.01, 0.02), strict=True)):
        n = int((b.weight[0] > 0).sum())
        for m in WINDOWS:
            cols, wb = _RunLayout(b).window_columns(m)
            got = lev.windows(model, index, wb, cols, values, wb.weight > 0, m)[0]
            np.testing.assert_allclose(got, cols.size * m**2 * d**2 / n, rtol=1e-6)
        # a triangle window Σ w_t·u_t: s = Σw = b, t = Σ w·v = b·Δ², C_v = Δ²/N, so it loses
        # 2·b·b·Δ²/N − b²·Δ²/N = b²·Δ²/N (b = half-length)
        for b_half in TRIANGLES[:3]:  # (the longest does not fit a 64-pulse sweep)
            w = triangle_weights(b_half)
            cols = np.arange(0, n - w.size + 1, w.size + 1)
            keep = np.ones((3, cols.size), dtype=bool)
            got = lev.triangles(index, cols, keep, w)[0]
            np.testing.assert_allclose(got, cols.size * b_half**2 * d**2 / n, rtol=1e-6)
    sums = noise_sums(
        model, blocks, values, n_fit=np.full(3, 2.0), leverage=FitLeverage(names, fitted)
    )
    np.testing.assert_allclose(sums.q_fit, 0.01**2 + 0.02**2, rtol=1e-6)
    assert np.all(sums.q_fit_w[sums.n_w > 0] > 0) and (sums.n_w[:, :-1] > 0).all()
    plain = noise_sums(model, blocks, values, n_fit=np.full(3, 2.0))  # without: p·v̄
    assert np.all(np.isnan(plain.q_fit)) and np.all(np.isnan(plain.q_fit_w))


def test_exact_leverage_of_a_sample_scales_p_vbar_and_untrusted_values_count_as_p_vbar() -> None:
    # the exact leverage is known on a sample of devices (NaN elsewhere); its ratio to p·v̄
    # there scales the p·v̄ of every device (the totals over all devices). A sampled device
    # whose linearized value is negative or far above p·v̄ (aihwkit's es_strong: -2 to -47 x
    # Σv) counts as its p·v̄.
    n = 4
    z = np.zeros(n)
    zw = np.zeros((n, N_KINDS))
    base = {f: z.copy() for f in NoiseSums.__dataclass_fields__ if not f.endswith("_w")}
    base.update({f: zw.copy() for f in NoiseSums.__dataclass_fields__ if f.endswith("_w")})
    base.update(n=np.full(n, 100.0), v=np.full(n, 1.0), n_fit=np.full(n, 2.0))
    base.update(n_w=np.full((n, N_KINDS), 25.0), v_w=np.full((n, N_KINDS), 1.0))
    # p·v̄ = 2 x 1/100 = 0.02 per pair and 2·m x 1/100 per window of m pairs (Σv_w = 1 on
    # every window length; a triangle's m is (Σw)²/Σw²); device 3 not sampled
    pv_w = 0.02 * kind_shares()
    base.update(q_fit=np.array([0.03, -0.01, 0.5, np.nan]))
    base.update(
        q_fit_w=np.array([[0.1] * N_KINDS, [0.1] * N_KINDS, [-3.0] * N_KINDS, [np.nan] * N_KINDS])
    )
    q, q_w = _leverage_parts(NoiseSums(**base)).totals(_sum)
    np.testing.assert_allclose(q, n * 0.02 * (0.03 + 0.02 + 0.02) / 0.06)
    np.testing.assert_allclose(q_w, n * pv_w * (0.1 + 0.1 + pv_w) / (3 * pv_w))
    base.update(q_fit=np.full(n, np.nan), q_fit_w=np.full((n, N_KINDS), np.nan))
    q, q_w = _leverage_parts(NoiseSums(**base)).totals(_sum)  # none known: p·v̄
    np.testing.assert_allclose(q, n * 0.02)
    np.testing.assert_allclose(q_w, n * pv_w)


def test_a_device_with_few_windows_keeps_their_leverage() -> None:
    # 300 pairs fitted with 4 parameters, 3 windows of 32 pairs left (the others clipped at a
    # hard bound): the fitted values absorb p·m/n of the windows' c2c variance, here 4·32/300
    # of Σv_w = 0.6. It was 0 (p·Σv_w/n_w counted only where n_w > p), while their Σu_w² and
    # Σv_w entered the moments: constant- and linear-step chips' 32-pulse windows gave σ_c²
    # 8 % and 17 % low
    n_w = N_KINDS
    fields = NoiseSums.__dataclass_fields__
    sums = {f: np.zeros((1, n_w)) if f.endswith("_w") else np.zeros(1) for f in fields}
    sums.update(n=np.array([300.0]), v=np.array([1.5]), n_fit=np.array([4.0]))
    sums.update(q_fit=np.array([np.nan]), q_fit_w=np.full((1, n_w), np.nan))
    last = len(WINDOWS) - 1
    sums["n_w"][0, last], sums["v_w"][0, last] = 3.0, 0.6
    _, q_w = _leverage_parts(NoiseSums(**sums)).totals(_sum)
    assert WINDOWS[last] == 32
    np.testing.assert_allclose(q_w[last], 4.0 * 32 * 0.6 / 300)


def test_the_leverage_sample_is_chosen_by_device_id() -> None:
    # by id, not by position in a chunk: a streamed fit samples the devices an in-memory
    # fit does; ids that are not integers: every device
    ids = np.array([3, 16, 17, 32, 0])
    np.testing.assert_array_equal(leverage_sample(ids), [False, True, False, True, True])
    assert leverage_sample(np.array(["a", "b"])).all()


def test_read_leverage_of_windows_matches_monte_carlo() -> None:
    # Read noise only (σ = 1, no c2c), constant steps fitted from the pairs as the fit does
    # (moments with a constant instrument: the mean increment of each direction). A window
    # of m pairs then has read variance 2 + R/n_w, R from the fitted steps' error: the first
    # window of a sweep, e_m − (1 − m/N)·e_0 − (m/N)·e_N, loses 2m/N − 2m²/N², an interior
    # one gains 2m²/N². 4000 devices: the mean excess has a standard error of 0.07-0.3,
    # the formula must be within 4 of them.
    rng = np.random.default_rng(1)
    n_dev, n = 4000, 64
    pulses = np.array([0] + [1] * n + [-1] * n)
    state = np.concatenate([[0.0], np.cumsum(np.where(pulses[1:] > 0, 0.3, -0.5))])
    g = state + rng.standard_normal((n_dev, pulses.size))
    blocks = [build_pairs(g, pulses, 1), build_pairs(g, pulses, -1)]

    def mean_step(b):
        return ((b.y1 - b.y0) * b.weight).sum(axis=1, keepdims=True) / b.weight.sum(axis=1)[:, None]

    col = np.ones((n_dev, 1))
    values = {"delta_up": mean_step(blocks[0]), "delta_down": -mean_step(blocks[1])}
    values |= {"b_max": 1e3 * col, "b_min": -1e3 * col}
    names = ("delta_up", "delta_down", "b_max", "b_min")
    fitted = np.tile([True, True, False, False], (n_dev, 1))
    model = family_model("constant-step")
    sums = noise_sums(
        model, blocks, values, n_fit=np.full(n_dev, 2.0), leverage=FitLeverage(names, fitted)
    )
    excess = sums.uu_w - sums.one_a2_w  # σ² = 1
    se = excess.std(axis=0) / np.sqrt(n_dev)
    r = sums.r_fit_w.mean(axis=0)
    # plain windows: the sweeps' first windows dominate (the fit took their noise); a
    # triangle's read part, ±e/b over 2b reads, shares little with the first reads
    assert np.all(r[2 : len(WINDOWS)] < 0)
    assert (sums.n_w[:, len(WINDOWS) :][:, :3] > 0).all()  # the triangles of half 8, 16, 32
    has = sums.n_w.sum(axis=0) > 0  # (a 64-pulse sweep has no triangle of half 64)
    np.testing.assert_array_less(np.abs(excess.mean(axis=0) - r)[has], 4 * se[has])
