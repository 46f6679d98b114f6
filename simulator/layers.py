"""Torch layers whose weights live on analog tiles, the analog optimizer, and model conversion.

* :class:`AnalogLinear` and :class:`AnalogConv2d` (im2col onto the same tiles) keep their
  weight on one or more tiles of at most ``mapping.max_output_size x max_input_size``;
  the bias is digital. Forward and backward run through the tiles' periphery; the input
  and error of each mini-batch are kept for the pulsed update.
* :class:`AnalogSGD` applies those updates (the tile's algorithm decides how) and plain SGD to
  the digital parameters.
* :func:`convert_to_analog` swaps ``nn.Linear``/``nn.Conv2d`` of a model for analog layers.

Layers move with ``.to(device)``; each tile draws its noise from its own seeded generator on
that device.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from simulator.config import AnalogConfig
from simulator.devices.config import PulsedDeviceConfig
from simulator.tile import TileBase, check_matrix
from simulator.transfer import build_tile

__all__ = ["AnalogConv2d", "AnalogLayer", "AnalogLinear", "AnalogSGD", "convert_to_analog"]


def _as_config(config: AnalogConfig | PulsedDeviceConfig | None) -> AnalogConfig:
    if config is None:
        return AnalogConfig()
    if isinstance(config, PulsedDeviceConfig):
        return AnalogConfig(device=config)
    if isinstance(config, AnalogConfig):
        return config
    raise TypeError(f"expected an AnalogConfig or PulsedDeviceConfig, got {type(config).__name__}")


def _edges(size: int, limit: int) -> list[tuple[int, int]]:
    """Split ``range(size)`` into near-equal chunks of at most ``limit`` (0: no limit)."""
    if limit <= 0 or size <= limit:
        return [(0, size)]
    n = -(-size // limit)
    bounds = [round(k * size / n) for k in range(n + 1)]
    return list(itertools.pairwise(bounds))


class _AnalogFunction(torch.autograd.Function):
    """y = W·x on the tiles; backward is the tiles' backward MVM; x and d are kept."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, _ctx_tensor: torch.Tensor, layer: AnalogLayer):
        ctx.layer = layer
        return layer._tiles_forward(x)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        layer: AnalogLayer = ctx.layer
        layer._last_d = grad_y.detach()
        grad_x = layer._tiles_backward(grad_y) if ctx.needs_input_grad[0] else None
        return grad_x, None, None


class AnalogLayer(nn.Module):
    """An (out_features x in_features) weight on a grid of tiles, with a digital bias."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        config: AnalogConfig | PulsedDeviceConfig | None,
        bias: bool,
        seed: int,
        device: torch.device | str | None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"layer sizes must be positive, got {in_features}x{out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.config = _as_config(config)
        self.seed = int(seed)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        mapping = self.config.mapping
        self.in_edges = _edges(self.in_features, mapping.max_input_size)
        self.out_edges = _edges(self.out_features, mapping.max_output_size)
        self.tiles: list[list[TileBase]] = [
            [
                build_tile(o1 - o0, i1 - i0, self.config, self._tile_seed(r, c), dev)
                for c, (i0, i1) in enumerate(self.in_edges)
            ]
            for r, (o0, o1) in enumerate(self.out_edges)
        ]
        default_scale = float(mapping.out_scale)
        self.scales = [[default_scale for _ in self.in_edges] for _ in self.out_edges]
        self.bias = nn.Parameter(torch.zeros(self.out_features, device=dev)) if bias else None
        self._last_x: torch.Tensor | None = None
        self._last_d: torch.Tensor | None = None

    def _tile_seed(self, r: int, c: int) -> int:
        return self.seed * 10007 + r * 101 + c

    # ------------------------------------------------------------------ tiles
    def analog_tiles(self) -> Iterator[TileBase]:
        for row in self.tiles:
            yield from row

    @property
    def device(self) -> torch.device:
        return self.tiles[0][0].device

    def get_weights(self) -> torch.Tensor:
        """The realized weight matrix (out_features, in_features), digital scales applied."""
        rows = [
            torch.cat([t.get_weights() * s for t, s in zip(row, srow, strict=True)], dim=1)
            for row, srow in zip(self.tiles, self.scales, strict=True)
        ]
        return torch.cat(rows, dim=0)

    def set_weights(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Program ``weight`` (out, in); with ω > 0 each tile stores W/s, s = max|W|/ω."""
        check_matrix(weight, (self.out_features, self.in_features), "weight")
        omega = self.config.mapping.weight_scaling_omega
        weight = weight.detach().to(self.device, torch.float32)
        for r, (o0, o1) in enumerate(self.out_edges):
            for c, (i0, i1) in enumerate(self.in_edges):
                block = weight[o0:o1, i0:i1]
                if omega > 0:
                    amax = float(block.abs().max())
                    scale = amax / omega if amax > 0 else 1.0
                else:
                    scale = self.config.mapping.out_scale
                self.scales[r][c] = scale
                self.tiles[r][c].set_weights(block / scale)
        if bias is not None:
            if self.bias is None:
                raise ValueError("this layer has no bias")
            with torch.no_grad():
                self.bias.copy_(bias.detach().to(self.bias.device))

    def _tiles_forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for row, srow in zip(self.tiles, self.scales, strict=True):
            acc = None
            for tile, scale, (i0, i1) in zip(row, srow, self.in_edges, strict=True):
                y = tile.forward(x[:, i0:i1]) * scale
                acc = y if acc is None else acc + y
            outs.append(acc)
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def _tiles_backward(self, d: torch.Tensor) -> torch.Tensor:
        cols = []
        for c in range(len(self.in_edges)):
            acc = None
            for r, (o0, o1) in enumerate(self.out_edges):
                g = self.tiles[r][c].backward(d[:, o0:o1]) * self.scales[r][c]
                acc = g if acc is None else acc + g
            cols.append(acc)
        return cols[0] if len(cols) == 1 else torch.cat(cols, dim=1)

    def analog_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """W·x for a 2-D batch through the tiles (keeps x and the error for the update)."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"analog layer expects inputs (batch, {self.in_features}), got {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("input contains NaN or inf")
        x = x.to(torch.float32)
        if self.training and torch.is_grad_enabled():
            self._last_x = x.detach()
            ctx_tensor = torch.zeros((), device=x.device, requires_grad=True)
            return _AnalogFunction.apply(x, ctx_tensor, self)
        return self._tiles_forward(x)

    def analog_update(self, lr: float) -> None:
        """Apply the last mini-batch's update to every tile, then forget x and d."""
        x, d = self._last_x, self._last_d
        self._last_x = self._last_d = None
        if x is None or d is None:
            return
        if x.shape[0] != d.shape[0]:
            raise ValueError("stored input and error batches differ; call forward once per step")
        for r, (o0, o1) in enumerate(self.out_edges):
            for c, (i0, i1) in enumerate(self.in_edges):
                scale = self.scales[r][c]
                self.tiles[r][c].update(x[:, i0:i1], d[:, o0:o1] / scale, lr)

    # ------------------------------------------------------------------ module
    def get_extra_state(self) -> dict[str, Any]:
        """For ``state_dict``: the realized weights and the digital scales.

        Device parameters are re-drawn from the layer's seed; loading programs the weights
        (a transfer tile puts them all on C), so construct the layer with the same seed.
        """
        return {"weights": self.get_weights().cpu(), "scales": copy.deepcopy(self.scales)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.scales = copy.deepcopy(state["scales"])
        weights = state["weights"].to(self.device)
        for r, (o0, o1) in enumerate(self.out_edges):
            for c, (i0, i1) in enumerate(self.in_edges):
                block = weights[o0:o1, i0:i1] / self.scales[r][c]
                self.tiles[r][c].set_weights(block)

    def train(self, mode: bool = True) -> AnalogLayer:
        super().train(mode)
        for tile in self.analog_tiles():
            tile.training = mode
        return self

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        target = fn(torch.empty(0)).device
        for tile in self.analog_tiles():
            tile.to(target)
        for name in ("_last_x", "_last_d"):
            setattr(self, name, None)
        return self

    def extra_repr(self) -> str:
        algo = type(self.config.algorithm).__name__
        dev = self.config.device.family if self.config.device is not None else "floating-point"
        grid = f"{len(self.out_edges)}x{len(self.in_edges)}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, device={dev}, algorithm={algo}, tiles={grid}"
        )


class AnalogLinear(AnalogLayer):
    """``y = W x + b`` with ``W`` on analog tiles (weight units) and a digital bias.

    ``config`` is an :class:`~simulator.config.AnalogConfig` (or just a
    :class:`~simulator.devices.config.PulsedDeviceConfig`, used with default periphery). The
    weight starts uniform in ±init_scale·√(3/in_features).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        config: AnalogConfig | PulsedDeviceConfig | None = None,
        seed: int = 0,
        bias: bool = True,
        init_scale: float = 0.5,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_features, out_features, config, bias, seed, device)
        gen = torch.Generator().manual_seed(self.seed + 7)
        bound = init_scale * (3.0 / in_features) ** 0.5
        init = (torch.rand(out_features, in_features, generator=gen) * 2 - 1) * bound
        self.set_weights(init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input has {x.shape[-1]} features, layer expects {self.in_features}")
        lead = x.shape[:-1]
        y = self.analog_matmul(x.reshape(-1, self.in_features))
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)


class AnalogConv2d(AnalogLayer):
    """2-D convolution (groups = 1) as im2col patches times an analog weight matrix.

    The weight (out_channels, in_channels·kh·kw) is updated with one rank-one term per output
    position and sample, as aihwkit does.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        config: AnalogConfig | PulsedDeviceConfig | None = None,
        seed: int = 0,
        bias: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        pair = nn.modules.utils._pair
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.dilation = pair(padding), pair(dilation)
        n_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        super().__init__(n_in, out_channels, config, bias, seed, device)
        gen = torch.Generator().manual_seed(self.seed + 7)
        bound = (1.0 / n_in) ** 0.5
        self.set_weights((torch.rand(out_channels, n_in, generator=gen) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"conv input must be (batch, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        batch, _, h, w = x.shape
        kh, kw = self.kernel_size
        h_out = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        w_out = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        if h_out < 1 or w_out < 1:
            raise ValueError(f"conv input {h}x{w} is smaller than the kernel {kh}x{kw}")
        cols = nn.functional.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        patches = cols.transpose(1, 2).reshape(-1, self.in_features)
        y = self.analog_matmul(patches)
        if self.bias is not None:
            y = y + self.bias
        return (
            y.reshape(batch, h_out * w_out, self.out_features)
            .transpose(1, 2)
            .reshape(batch, self.out_features, h_out, w_out)
        )


class AnalogSGD:
    """Pulsed updates for analog layers (their algorithm), plain SGD for digital parameters.

    ``lr`` may be changed between steps (e.g. by a schedule); ``digital_momentum`` only
    affects digital parameters.
    """

    def __init__(self, model: nn.Module, lr: float, digital_momentum: float = 0.0) -> None:
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.model = model
        self.lr = float(lr)
        self.layers = [m for m in model.modules() if isinstance(m, AnalogLayer)]
        digital = [p for p in model.parameters() if p.requires_grad]
        self.digital = (
            torch.optim.SGD(digital, lr=lr, momentum=digital_momentum) if digital else None
        )

    def zero_grad(self) -> None:
        if self.digital is not None:
            self.digital.zero_grad()

    def step(self) -> None:
        for layer in self.layers:
            layer.analog_update(self.lr)
        if self.digital is not None:
            for group in self.digital.param_groups:
                group["lr"] = self.lr
            self.digital.step()


def convert_to_analog(
    model: nn.Module,
    config: AnalogConfig | PulsedDeviceConfig | Mapping[str, Any],
    seed: int = 0,
    **preset_options: Any,
) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` and ``nn.Conv2d`` (groups 1) on tiles.

    ``config`` may be a preset document (dict), read with
    :func:`simulator.presets.analog_config` and ``preset_options``. Weights and biases are
    copied (programmed onto the devices, so they are clipped to what the devices hold).
    """
    if isinstance(config, Mapping):
        from simulator.presets import analog_config

        config = analog_config(config, **preset_options)
    elif preset_options:
        raise TypeError("preset options need a preset document as config")
    config = _as_config(config)
    model = copy.deepcopy(model)
    counter = [0]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))

    def swap(module: nn.Module) -> nn.Module:
        layer_seed = seed * 1000 + counter[0]
        if isinstance(module, nn.Linear):
            counter[0] += 1
            new = AnalogLinear(
                module.in_features,
                module.out_features,
                config,
                seed=layer_seed,
                bias=module.bias is not None,
                device=device,
            )
            new.set_weights(module.weight, module.bias)
            return new
        if isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros":
            if isinstance(module.padding, str):
                raise ValueError("convert_to_analog needs numeric Conv2d padding")
            counter[0] += 1
            new = AnalogConv2d(
                module.in_channels,
                module.out_channels,
                module.kernel_size,
                module.stride,
                module.padding,
                module.dilation,
                config,
                seed=layer_seed,
                bias=module.bias is not None,
                device=device,
            )
            new.set_weights(module.weight.reshape(module.out_channels, -1), module.bias)
            return new
        for name, child in list(module.named_children()):
            setattr(module, name, swap(child))
        return module

    return swap(model)
