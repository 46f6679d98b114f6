"""A network whose matrix-vector products run on the chip: weight mapping and tile placement.

Every ``nn.Linear``/``nn.Conv2d`` of a float network is split into tiles exactly as the
simulator splits it (:func:`tile_edges`, the rule of :class:`simulator.layers.AnalogLayer`),
and each tile is placed on its own rectangular block of the chip: inputs on the block's rows,
outputs on its columns. Two weight-to-conductance mappings:

``pcm-pair`` (PCM inference; the simulator's :func:`simulator.inference.program_tile`)
    per tile s = g_max / max|W| (siemens per weight unit); two columns per output,
    G⁺ = clip(s·W, 0, g_max) on the first ``n_out`` columns of the block and
    G⁻ = clip(-s·W, 0, g_max) on the next ``n_out``; z = (I⁺ - I⁻) / (v·s).
``reference`` (pulsed devices; the simulator's single cell against a zero reference)
    one device per weight, G = g_ref + scale·W with the preset's reference conductance
    g_ref = ``g_offset_s`` and scale = max(w_max, -w_min) (the weight units the network was
    trained in), targets clipped to the preset's mean bounds; the reference current
    g_ref·ΣV is subtracted digitally: z = (I - g_ref·ΣV) / (v·scale).

Inputs become row voltages V = x̂·v with v = ``read_voltage_v`` / ``inp_bound`` (x̂ the
DAC output, |x̂| ≤ inp_bound), so |V| never exceeds the read voltage. Everything digital
(noise and bound management, DAC/ADC quantization, output noise, the digital bias, global
drift compensation, activations, pooling) runs in torch (:func:`simulator.periphery.periphery_mvm`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from calib.errors import CalibError
from calib.validate.networks import matrix_layers
from instruments.chip import BlockSelection, ChipInterface
from simulator.periphery import IOParameters, periphery_mvm

__all__ = [
    "PRUNE_FRACTION",
    "ChipLayer",
    "ChipMapping",
    "ChipTile",
    "chip_network",
    "chip_tiles",
    "place_tiles",
    "tile_edges",
]

MAX_VALUES_PER_MVM = 1 << 20  # voltages or currents per MEAS:MVM? round trip (4 MiB float32)
#: a device that failed programming is cancelled when its error exceeds this fraction of its
#: target weight (it is then more wrong than right); the simulated sources use the same rule
PRUNE_FRACTION = 0.5


def tile_edges(size: int, limit: int) -> list[tuple[int, int]]:
    """Split ``range(size)`` into near-equal chunks of at most ``limit`` (0: no limit).

    The same rule as the simulator's layers, so that chip tiles and simulated tiles hold the
    same weights (and get the same per-tile scale and drift compensation).
    """
    if limit <= 0 or size <= limit:
        return [(0, size)]
    n = -(-size // limit)
    bounds = [round(k * size / n) for k in range(n + 1)]
    return list(itertools.pairwise(bounds))


@dataclass(frozen=True)
class ChipMapping:
    """How weights become conductances (see the module docstring); siemens and volts."""

    kind: str  # "pcm-pair" | "reference"
    read_voltage_v: float = 0.2
    g_max_s: float = 25e-6  # pcm-pair: largest target
    g_ref_s: float = 0.0  # reference: reference conductance
    scale_s: float = 1.0  # reference: siemens per weight unit
    g_low_s: float = 0.0  # reference: lowest target
    g_high_s: float = 1.0  # reference: highest target
    max_inputs: int = 128  # tile rows
    max_outputs: int = 64  # tile outputs

    def __post_init__(self) -> None:
        if self.kind not in ("pcm-pair", "reference"):
            raise ValueError(f"unknown mapping {self.kind!r}")
        if not self.read_voltage_v > 0:
            raise CalibError(f"read voltage must be > 0 V, got {self.read_voltage_v}")

    @property
    def columns_per_output(self) -> int:
        return 2 if self.kind == "pcm-pair" else 1


@dataclass
class ChipTile:
    """One tile of a layer on one block of the chip."""

    layer: str
    in_range: tuple[int, int]
    out_range: tuple[int, int]
    row0: int = 0
    col0: int = 0
    weights: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (n_out, n_in)
    scale_s: float = 1.0  # siemens per weight unit
    alpha: float = 1.0  # global drift compensation factor
    baseline: float | None = None
    correction_s: np.ndarray | None = None  # (n_in, n_cols) conductance cancelled digitally

    @property
    def n_in(self) -> int:
        return self.in_range[1] - self.in_range[0]

    @property
    def n_out(self) -> int:
        return self.out_range[1] - self.out_range[0]

    def block(self, mapping: ChipMapping) -> BlockSelection:
        return BlockSelection(
            self.row0, self.col0, self.n_in, self.n_out * mapping.columns_per_output
        )

    def prune_defects(
        self, mapping: ChipMapping, verify_s: np.ndarray, converged: np.ndarray, tol_s: float
    ) -> int:
        """Cancel, digitally, the devices that failed programming and are more wrong than right.

        ``verify_s``/``converged`` are the block's final verify reads and flags (row-major).
        A device that did not converge and whose read misses its target by more than half
        the target's distance from zero weight (G_target - g_ref, or G_target for a PCM pair)
        is cancelled: its read conductance (minus g_ref) is subtracted from every MVM, so its
        weight becomes 0. Near misses (a device held at its bound, a PCM device that cannot
        quite reach g_max) stay. Returns how many were cancelled.
        """
        target = self.targets(mapping)
        g = np.asarray(verify_s, dtype=float).reshape(target.shape)
        ok = np.asarray(converged, dtype=bool).reshape(target.shape)
        zero = mapping.g_ref_s if mapping.kind == "reference" else 0.0
        error = np.abs(g - target)
        bad = ~ok & (error > tol_s) & (error > PRUNE_FRACTION * np.abs(target - zero))
        self.correction_s = np.where(bad, g - zero, 0.0) if bad.any() else None
        return int(bad.sum())

    def targets(self, mapping: ChipMapping) -> np.ndarray:
        """Target conductances of the block, (n_in, n_cols) in the block's row-major order."""
        w = self.weights.double().T.numpy()  # (n_in, n_out): rows are inputs
        if mapping.kind == "pcm-pair":
            plus = np.clip(self.scale_s * w, 0.0, mapping.g_max_s)
            minus = np.clip(-self.scale_s * w, 0.0, mapping.g_max_s)
            return np.concatenate([plus, minus], axis=1)
        g = mapping.g_ref_s + self.scale_s * w
        return np.clip(g, max(mapping.g_low_s, 0.0), mapping.g_high_s)

    def core(self, chip: ChipInterface, mapping: ChipMapping, inp_bound: float):
        """The analog core for :func:`periphery_mvm`: x̂ (B, n_in) -> z (B, n_out)."""
        volts_per_unit = mapping.read_voltage_v / inp_bound
        sel = self.block(mapping)

        def run(xq: torch.Tensor) -> torch.Tensor:
            v = xq.double().numpy() * volts_per_unit
            currents = _mvm_chunked(chip, sel, v)
            if self.correction_s is not None:  # defective devices, cancelled digitally
                currents = currents - v @ self.correction_s
            if mapping.kind == "pcm-pair":
                n = self.n_out
                signal = currents[:, :n] - currents[:, n:]
            else:
                signal = currents - mapping.g_ref_s * v.sum(axis=1, keepdims=True)
            z = signal / (volts_per_unit * self.scale_s)
            return torch.as_tensor(z, dtype=torch.float32)

        return run


def _mvm_chunked(chip: ChipInterface, sel: BlockSelection, v: np.ndarray) -> np.ndarray:
    """``chip.mvm`` over (n_vec, n_rows) voltages, in round trips of bounded size."""
    per_call = max(1, MAX_VALUES_PER_MVM // max(sel.n_rows, sel.n_cols))
    out = np.empty((v.shape[0], sel.n_cols))
    for first in range(0, v.shape[0], per_call):
        out[first : first + per_call] = chip.mvm(sel, v[first : first + per_call])
    return out


def chip_tiles(
    model: nn.Module, mapping: ChipMapping, scales: dict | None = None
) -> list[ChipTile]:
    """The tiles of every matrix layer of ``model`` with their weights and scales.

    PCM pairs get s = g_max / max|W_tile| (as the simulator); the reference mapping uses the
    preset's scale for every tile.
    """
    tiles = []
    for name, layer in matrix_layers(model):
        w = layer.weight.detach().reshape(layer.weight.shape[0], -1).float()
        for o0, o1 in tile_edges(w.shape[0], mapping.max_outputs):
            for i0, i1 in tile_edges(w.shape[1], mapping.max_inputs):
                block = w[o0:o1, i0:i1].clone()
                if mapping.kind == "pcm-pair":
                    scale = mapping.g_max_s / max(float(block.abs().max()), 1e-7)
                else:
                    scale = mapping.scale_s
                tiles.append(ChipTile(name, (i0, i1), (o0, o1), weights=block, scale_s=scale))
    return tiles


def place_tiles(
    tiles: list[ChipTile],
    shape: tuple[int, int],
    mapping: ChipMapping,
    offset_seed: int | None = None,
) -> None:
    """Give every tile its own block of the ``shape`` chip (shelves, left to right).

    With ``offset_seed`` the whole layout is shifted by a random offset that keeps it on
    the array, so that repeats with different seeds use different devices (as the simulated
    sources draw a new device population per repeat). A :class:`CalibError` names the
    shortfall when the network does not fit.
    """
    n_rows, n_cols = shape
    row, col, shelf = 0, 0, 0
    for tile in tiles:
        height, width = tile.n_in, tile.n_out * mapping.columns_per_output
        if height > n_rows or width > n_cols:
            raise CalibError(
                f"a {height}x{width} tile of layer {tile.layer!r} does not fit the chip's "
                f"{n_rows}x{n_cols} array; use a smaller tile size"
            )
        if col + width > n_cols:
            row, col, shelf = row + shelf, 0, 0
        if row + height > n_rows:
            need = sum(t.n_in * t.n_out * mapping.columns_per_output for t in tiles)
            raise CalibError(
                f"the network needs {need} devices in {len(tiles)} tiles, more than fit on "
                f"the chip's {n_rows}x{n_cols} array"
            )
        tile.row0, tile.col0 = row, col
        col += width
        shelf = max(shelf, height)
    if offset_seed is not None and tiles:
        height = max(t.row0 + t.n_in for t in tiles)
        width = max(t.col0 + t.n_out * mapping.columns_per_output for t in tiles)
        rng = np.random.default_rng(offset_seed)
        dr, dc = rng.integers(0, n_rows - height + 1), rng.integers(0, n_cols - width + 1)
        for tile in tiles:
            tile.row0 += int(dr)
            tile.col0 += int(dc)


class ChipLayer(nn.Module):
    """A linear or convolution layer whose W·x runs on the chip's tiles; digital bias."""

    def __init__(
        self,
        layer: nn.Module,
        tiles: list[ChipTile],
        chip: ChipInterface,
        mapping: ChipMapping,
        io: IOParameters,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.is_conv = isinstance(layer, nn.Conv2d)
        self.out_features = int(layer.weight.shape[0])
        if self.is_conv:
            self.conv = {
                "kernel_size": layer.kernel_size,
                "dilation": layer.dilation,
                "padding": layer.padding,
                "stride": layer.stride,
            }
        bias = layer.bias.detach().clone() if layer.bias is not None else None
        self.register_buffer("bias", bias)
        self.tiles = tiles
        self.cores = [t.core(chip, mapping, io.inp_bound) for t in tiles]
        self.io = io
        self.generator = generator

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """W·x (B, in) -> (B, out) through the tiles, periphery and drift compensation."""
        y = torch.zeros(x.shape[0], self.out_features)
        for tile, core in zip(self.tiles, self.cores, strict=True):
            i0, i1 = tile.in_range
            o0, o1 = tile.out_range
            y[:, o0:o1] += tile.alpha * periphery_mvm(x[:, i0:i1], core, self.io, self.generator)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.is_conv:
            y = self.matmul(x.reshape(-1, x.shape[-1]).float())
            return y + self.bias if self.bias is not None else y
        batch, _, h, w = x.shape
        c = self.conv
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            c["kernel_size"],
            c["stride"],
            c["padding"],
            c["dilation"],
        )
        h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        cols = nn.functional.unfold(x, **c)
        y = self.matmul(cols.transpose(1, 2).reshape(batch * h_out * w_out, -1).float())
        if self.bias is not None:
            y = y + self.bias
        return (
            y.reshape(batch, h_out * w_out, self.out_features)
            .transpose(1, 2)
            .reshape(batch, self.out_features, h_out, w_out)
        )

    def readout(self, tile_index: int) -> float:
        """mean|W·e_i| over one-hot inputs through the periphery (drift compensation)."""
        tile, core = self.tiles[tile_index], self.cores[tile_index]
        eye = torch.eye(tile.n_in)
        y = periphery_mvm(eye, core, self.io, self.generator)
        return max(float(y.abs().mean()), 1e-4)


def chip_network(
    model: nn.Sequential,
    tiles: list[ChipTile],
    chip: ChipInterface,
    mapping: ChipMapping,
    io: IOParameters,
    generator: torch.Generator,
) -> nn.Sequential:
    """A copy of ``model`` whose matrix layers compute on the (programmed) chip tiles."""
    import copy

    out = copy.deepcopy(model)
    for name, layer in matrix_layers(model):
        mine = [t for t in tiles if t.layer == name]
        parent_name, _, attr = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, attr, ChipLayer(layer, mine, chip, mapping, io, generator))
    out.eval()
    return out
