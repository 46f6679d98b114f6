"""Stochastic pulse trains: expectation, spread, correlations, update management, sign."""

from __future__ import annotations

import math

import pytest
import torch

from simulator.update import UpdateParameters, coincidence_counts

EPS = 0.01  # device granularity in these tests


def _repeat(x: torch.Tensor, d: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return x.expand(n, -1).clone(), d.expand(n, -1).clone()


def test_mean_signed_count_is_the_sgd_update() -> None:
    """E[n_down − n_up]·ε = lr·d_i·x_j (W ← W − lr·d·xᵀ), per sample, below clipping."""
    x = torch.tensor([[0.9, -0.5, 0.2, 0.0]])
    d = torch.tensor([[0.3, -0.1, 0.05]])
    lr, n = 0.2, 4000  # k = lr·0.9·0.3/ε = 5.4 < 31: BL = 6, no clipping
    xs, ds = _repeat(x, d, n)
    n_up, n_down = coincidence_counts(xs, ds, lr, EPS, UpdateParameters(), torch.Generator())
    got = (n_down - n_up) / n * EPS
    want = lr * d.T @ x
    # per-sample count variance ≤ BL·p·q ≤ k: the mean of 4000 samples has std ≤ 0.04 pulses
    assert torch.allclose(got, want, atol=5 * math.sqrt(5.4 / n) * EPS)
    assert float(n_up[:, 3].sum() + n_down[:, 3].sum()) == 0.0  # x = 0: no pulses at all


def test_single_sample_counts_are_binomial_with_shared_row_trains() -> None:
    """One sample: c_ij ~ Bin(BL, p_j·q_i); devices of a row share the d-side train."""
    x = torch.tensor([[1.0, 0.5]])
    d = torch.tensor([[0.02]])
    lr = 0.25  # k = 0.25·1·0.02/0.01 = 0.5; fixed BL = 10 (no BL management)
    up = UpdateParameters(desired_bl=10, update_bl_management=False)
    gen = torch.Generator().manual_seed(3)
    samples = []
    for _ in range(6000):
        n_up, n_down = coincidence_counts(x, d, lr, EPS, up, gen)
        samples.append((n_down - n_up)[0])
    c = torch.stack(samples)  # (6000, 2), all down pulses
    k = lr * 1.0 * 0.02 / EPS
    prob = math.sqrt(k / 10)  # at the maxima both sides fire with √(k/BL)
    p = torch.tensor([prob, prob * 0.5]) * prob  # p_j·q
    mean, var = c.mean(0), c.var(0)
    # 6000 draws: the mean is within ±4·sqrt(var/6000), the variance within ±15 % (~5σ)
    assert torch.allclose(mean, 10 * p, atol=float(4 * torch.sqrt(10 * p / 6000).max()))
    assert torch.allclose(var, 10 * p * (1 - p), rtol=0.15)
    # shared row train: cov(c_0, c_1) = BL·p_0·p_1·q(1 − q) > 0 (independent devices: 0);
    # the sample covariance of 6000 draws has a relative std of ~10 %: ±30 % is 3σ
    cov = float(((c[:, 0] - mean[0]) * (c[:, 1] - mean[1])).mean())
    q = prob
    expected = 10 * prob * (prob * 0.5) * q * (1 - q)
    assert cov == pytest.approx(expected, rel=0.3)


def test_sign_convention_positive_product_means_down_pulses() -> None:
    x = torch.tensor([[0.8, -0.8]])
    d = torch.tensor([[0.5], [-0.5]]).T  # (1, 2)
    n_up, n_down = coincidence_counts(x, d, 0.1, EPS, UpdateParameters(), torch.Generator())
    # rows: d = +0.5, −0.5; cols: x = +0.8, −0.8; sign(x·d) > 0 → down
    assert n_down[0, 0] > 0 and n_up[0, 0] == 0
    assert n_up[0, 1] > 0 and n_down[0, 1] == 0
    assert n_up[1, 0] > 0 and n_down[1, 0] == 0
    assert n_down[1, 1] > 0 and n_up[1, 1] == 0


def test_update_management_clips_large_gradients_at_bl() -> None:
    """k > desired_bl: the largest coincidence count is exactly BL (the gradient is clipped)."""
    x = torch.tensor([[1.0, 0.1]])
    d = torch.tensor([[2.0, 0.5]])
    lr = 1.0  # k = 1·1·2/0.01 = 200 > 31
    n_up, n_down = coincidence_counts(x, d, lr, EPS, UpdateParameters(), torch.Generator())
    assert float(n_down[0, 0]) == 31.0  # both lines fire in every slot
    assert float(n_down.max()) <= 31.0 and float(n_up.sum()) == 0.0


def test_bl_management_uses_ceil_k_slots() -> None:
    """Small k: BL = ⌈k⌉, so no device gets more than ⌈k⌉ pulses from one sample."""
    x, d = torch.ones(1, 400), torch.ones(1, 400)
    lr = 2.5 * EPS  # k = 2.5 → BL = 3, p = q = √(2.5/3)
    n_up, n_down = coincidence_counts(x, d, lr, EPS, UpdateParameters(), torch.Generator())
    counts = n_down + n_up
    assert float(counts.max()) == 3.0
    # p·q = 2.5/3 per slot: mean count 2.5; the grand mean over 160,000 devices (sharing 400
    # row and 400 column trains) has a relative std of ~1.3 %: ±5 % is ~4σ
    assert float(counts.mean()) == pytest.approx(2.5, rel=0.05)


def test_mean_count_pulse_type_gives_expected_counts() -> None:
    x = torch.tensor([[0.6, -0.3]])
    d = torch.tensor([[0.2]])
    xs, ds = _repeat(x, d, 2000)
    up = UpdateParameters(pulse_type="mean-count")
    n_up, n_down = coincidence_counts(xs, ds, 0.1, EPS, up, torch.Generator())
    want = 0.1 * d.T @ x / EPS * 2000
    assert torch.allclose(n_down - n_up, want, atol=1.0)  # stochastic rounding: ±1 pulse


def test_zero_learning_rate_or_zero_inputs_give_no_pulses() -> None:
    x, d = torch.rand(4, 5), torch.rand(4, 3)
    for lr, xx in ((0.0, x), (0.1, torch.zeros_like(x))):
        n_up, n_down = coincidence_counts(xx, d, lr, EPS, UpdateParameters(), None)
        assert float(n_up.sum() + n_down.sum()) == 0.0


def test_update_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="pulse_type"):
        UpdateParameters(pulse_type="magic")
    with pytest.raises(ValueError, match="desired_bl"):
        UpdateParameters(desired_bl=0)


def test_gpu_code_paths_agree_with_the_cpu_ones(monkeypatch) -> None:
    """The torch random stream and the float count product (used on CUDA), run on CPU."""
    from simulator import update
    from simulator.random_streams import make_generator, uniform16

    gen = torch.Generator().manual_seed(0)
    for source in (make_generator("cpu", 0), gen):  # numpy SFC64 bulk stream, torch stream
        v = uniform16(200_000, source, torch.device("cpu")).float()
        # uniform on [−32768, 32767]: mean −0.5, std 18918.6; 200k draws: ±0.5 % of the std
        assert abs(float(v.mean()) + 0.5) < 200 and float(v.std()) == pytest.approx(
            18918.6, rel=0.01
        )
    a = torch.randint(-1, 2, (7, 300), dtype=torch.int8, generator=gen)
    b = torch.randint(-1, 2, (300, 5), dtype=torch.int8, generator=gen)
    exact = (a.int() @ b.int()).float()
    torch.testing.assert_close(update._count_matmul(a, b).float(), exact)
    monkeypatch.setitem(update._INT_MM_OK, "cpu", False)  # force the float32 product
    torch.testing.assert_close(update._count_matmul(a, b), exact)
