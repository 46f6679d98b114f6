"""Periphery of the analog MVM: DAC/ADC quantization, noise, noise and bound management."""

from __future__ import annotations

import math

import pytest
import torch

from simulator.periphery import IOParameters, analog_mvm


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_perfect_io_is_the_exact_matrix_product() -> None:
    x, w = torch.randn(5, 7), torch.randn(3, 7)
    torch.testing.assert_close(analog_mvm(x, w, IOParameters.perfect(), None), x @ w.T)


def test_input_dac_quantizes_to_the_resolution_of_the_managed_input() -> None:
    io = IOParameters(out_noise=0.0, out_res=0.0, inp_res=1 / 126)
    x = torch.linspace(-0.5, 0.5, 101)[None]
    y = analog_mvm(x, torch.eye(101), io, _gen())  # y = Q(x/α)·α with α = max|x| = 0.5
    levels = y / 0.5 / (2.0 / 126)
    torch.testing.assert_close(levels, torch.round(levels), atol=1e-4, rtol=0)
    assert float((y - x).abs().max()) <= 0.5 * (2.0 / 126) * 0.5 + 1e-6


def test_output_noise_has_the_configured_std_and_adc_quantizes() -> None:
    io = IOParameters(out_noise=0.06, out_res=0.0, noise_management="none")
    x, w = torch.zeros(2000, 4), torch.zeros(50, 4)
    y = analog_mvm(x, w, io, _gen())
    # 100,000 samples: the sample std estimates 0.06 to within ~0.3 %; ±3 % is generous
    assert float(y.std()) == pytest.approx(0.06, rel=0.03)
    io_q = IOParameters(out_noise=0.0, out_res=1 / 510, noise_management="none")
    y = analog_mvm(torch.rand(20, 8), torch.rand(6, 8) * 0.1, io_q, _gen())
    step = 24.0 / 510
    torch.testing.assert_close(y / step, torch.round(y / step), atol=1e-3, rtol=0)


def test_bound_management_recovers_outputs_beyond_the_adc_range() -> None:
    w = torch.full((3, 64), 0.5)
    x = torch.ones(4, 64)  # W·x = 32 > out_bound 12
    base = dict(out_noise=0.0, inp_res=0.0, out_res=0.0, noise_management="none")
    clipped = analog_mvm(x, w, IOParameters(bound_management="none", **base), _gen())
    managed = analog_mvm(x, w, IOParameters(bound_management="iterative", **base), _gen())
    assert float(clipped.max()) == 12.0
    torch.testing.assert_close(managed, x @ w.T)  # β = 4: 32/4 = 8 < 12 fits


def test_noise_management_keeps_small_inputs_above_the_dac_step() -> None:
    w = torch.randn(5, 10) * 0.3
    x = 1e-3 * torch.rand(8, 10)  # below half a DAC step (1/126) without scaling
    base = dict(out_noise=0.0, out_res=0.0)
    lost = analog_mvm(x, w, IOParameters(noise_management="none", **base), _gen())
    kept = analog_mvm(x, w, IOParameters(noise_management="abs-max", **base), _gen())
    assert float(lost.abs().max()) == 0.0
    rel = float(torch.linalg.norm(kept - x @ w.T) / torch.linalg.norm(x @ w.T))
    assert rel < 0.02  # 7-bit DAC on the managed input: ~1 % error


def test_weight_read_noise_std_follows_its_type() -> None:
    x = torch.full((4000, 16), 0.5)
    w = torch.rand(1, 16)
    base = dict(out_noise=0.0, out_res=0.0, inp_res=0.0, noise_management="none")
    add = IOParameters(w_noise=0.02, w_noise_type="additive-constant", **base)
    pcm = IOParameters(w_noise=0.02, w_noise_type="pcm-read", **base)
    exact = float((x @ w.T)[0, 0])
    y_add = analog_mvm(x, w, add, _gen(1)) - exact
    y_pcm = analog_mvm(x, w, pcm, _gen(2)) - exact
    # 4000 samples: sample std within ~1.1 %; ±5 % tolerance
    assert float(y_add.std()) == pytest.approx(0.02 * math.sqrt(16 * 0.25), rel=0.05)
    assert float(y_pcm.std()) == pytest.approx(0.02 * math.sqrt(float(w.sum()) * 0.25), rel=0.05)


def test_input_noise_propagates_through_the_weights() -> None:
    w = torch.tensor([[0.3, -0.4, 0.0, 0.5]])
    io = IOParameters(inp_noise=0.05, out_noise=0.0, out_res=0.0, inp_res=0.0,
                      noise_management="none")  # fmt: skip
    y = analog_mvm(torch.zeros(5000, 4), w, io, _gen())
    assert float(y.std()) == pytest.approx(0.05 * float(w.norm()), rel=0.05)


def test_invalid_io_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="noise_management"):
        IOParameters(noise_management="sometimes")
    with pytest.raises(ValueError, match="nm_thres"):
        IOParameters(noise_management="constant")
    with pytest.raises(ValueError, match="w_noise_type"):
        IOParameters(w_noise_type="pink")
