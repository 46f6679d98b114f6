"""Analog layers: exact with ideal settings, tile splitting, conv, conversion, seeds, devices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simulator import (
    AnalogConfig,
    AnalogConv2d,
    AnalogLinear,
    AnalogSGD,
    IOParameters,
    MappingParameters,
    PulsedDeviceConfig,
    convert_to_analog,
)

EXACT = IOParameters.perfect()


def _ideal(max_in: int = 512, max_out: int = 512, omega: float = 0.0) -> AnalogConfig:
    """Floating-point device and exact periphery: the layer must behave like torch."""
    mapping = MappingParameters(max_in, max_out, weight_scaling_omega=omega)
    return AnalogConfig(device=None, forward=EXACT, backward=EXACT, mapping=mapping)


def _pair(seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    return nn.Linear(13, 7), torch.randn(5, 13), torch.randint(0, 7, (5,))


@pytest.mark.parametrize(
    ("max_in", "max_out", "omega"), [(512, 512, 0.0), (4, 3, 0.0), (5, 2, 0.8)]
)
def test_ideal_analog_linear_trains_exactly_like_torch(max_in, max_out, omega) -> None:
    ref, x, y = _pair()
    layer = convert_to_analog(nn.Sequential(ref), _ideal(max_in, max_out, omega))[0]
    assert len(layer.tiles) == -(-7 // max_out) and len(layer.tiles[0]) == -(-13 // max_in)
    torch.testing.assert_close(layer.get_weights(), ref.weight.detach())
    x_ref, x_an = x.clone().requires_grad_(), x.clone().requires_grad_()
    loss_fn = nn.CrossEntropyLoss()
    loss_ref = loss_fn(ref(x_ref), y)
    loss_an = loss_fn(layer(x_an), y)
    torch.testing.assert_close(loss_an, loss_ref)
    loss_ref.backward()
    loss_an.backward()
    torch.testing.assert_close(x_an.grad, x_ref.grad)
    torch.optim.SGD(ref.parameters(), lr=0.5).step()
    AnalogSGD(layer, lr=0.5).step()
    torch.testing.assert_close(layer.get_weights(), ref.weight.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(layer.bias, ref.bias)


def test_ideal_analog_conv2d_matches_torch_conv_and_its_weight_gradient() -> None:
    torch.manual_seed(1)
    ref = nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
    layer = convert_to_analog(nn.Sequential(ref), _ideal(max_in=10))[0]
    assert isinstance(layer, AnalogConv2d) and len(layer.tiles[0]) == 3  # 27 inputs: 3 tiles
    x = torch.randn(2, 3, 9, 9)
    out_ref, out_an = ref(x), layer(x)
    torch.testing.assert_close(out_an, out_ref, atol=1e-5, rtol=1e-5)
    out_ref.square().sum().backward()
    out_an.square().sum().backward()
    AnalogSGD(layer, lr=0.01).step()
    expected = ref.weight.detach() - 0.01 * ref.weight.grad
    torch.testing.assert_close(layer.get_weights(), expected.reshape(4, -1), atol=1e-5, rtol=1e-4)


def test_layers_are_reproducible_from_their_seed() -> None:
    cfg = AnalogConfig(device=PulsedDeviceConfig(dw_min=0.01))

    def run(seed: int) -> torch.Tensor:
        layer = AnalogLinear(10, 6, cfg, seed=seed)
        opt = AnalogSGD(layer, lr=0.1)
        x = torch.rand(8, 10, generator=torch.Generator().manual_seed(0))
        for _ in range(3):
            opt.zero_grad()
            layer(x).square().sum().backward()
            opt.step()
        return layer.get_weights()

    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert not torch.allclose(run(3), run(4))


def test_convert_to_analog_reads_a_preset_and_keeps_other_modules() -> None:
    preset = {"device": {"model": "soft-bounds", "g_offset_s": 6e-5,
                         "parameters": {"dw_min": 8e-7, "w_max": 4e-5, "w_min": -4e-5,
                                        "up_down": 0.1}}}  # fmt: skip
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    analog = convert_to_analog(model, preset, seed=2)
    kinds = [type(m).__name__ for m in analog]
    assert kinds == ["AnalogConv2d", "ReLU", "Flatten", "AnalogLinear"]
    assert analog[3].config.device.dw_min == pytest.approx(0.02)  # 0.8 µS / 40 µS
    assert isinstance(model[0], nn.Conv2d)  # the original is untouched
    y = analog(torch.rand(4, 1, 4, 4))
    assert y.shape == (4, 3) and torch.isfinite(y).all()


def test_bad_inputs_give_clear_errors() -> None:
    layer = AnalogLinear(4, 3, PulsedDeviceConfig(), seed=0)
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match="features"):
        layer(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="does not match"):
        layer.set_weights(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        layer.set_weights(torch.full((3, 4), float("inf")))
    conv = AnalogConv2d(2, 2, 3, config=_ideal())
    with pytest.raises(ValueError, match="conv input"):
        conv(torch.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match="learning rate"):
        AnalogSGD(layer, lr=0.0)


def test_eval_mode_and_no_grad_skip_the_update_bookkeeping() -> None:
    layer = AnalogLinear(4, 3, _ideal(), seed=0)
    layer.eval()
    with torch.no_grad():
        layer(torch.rand(2, 4))
    assert layer._last_x is None
    assert all(not t.training for t in layer.analog_tiles())


def test_layers_move_between_devices() -> None:
    layer = AnalogLinear(4, 3, PulsedDeviceConfig(), seed=0).to("cpu")
    assert layer.device.type == "cpu"
    if torch.cuda.is_available():  # exercised on machines with a GPU
        layer = layer.to("cuda")
        y = layer(torch.rand(2, 4, device="cuda"))
        y.sum().backward()
        AnalogSGD(layer, lr=0.1).step()
        assert y.device.type == "cuda" and layer.get_weights().device.type == "cuda"


def test_state_dict_round_trip_keeps_the_analog_weights() -> None:
    cfg = AnalogConfig(device=PulsedDeviceConfig(dw_min=0.01), forward=EXACT, backward=EXACT,
                       mapping=MappingParameters(3, 2, weight_scaling_omega=0.5))  # fmt: skip
    layer = AnalogLinear(5, 4, cfg, seed=7)
    layer(torch.rand(6, 5)).sum().backward()
    AnalogSGD(layer, lr=0.2).step()
    state = layer.state_dict()
    twin = AnalogLinear(5, 4, cfg, seed=7)
    twin.load_state_dict(state)
    torch.testing.assert_close(twin.get_weights(), layer.get_weights(), atol=1e-6, rtol=0)
    torch.testing.assert_close(twin.bias, layer.bias)
