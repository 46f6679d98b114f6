"""Our simulator against aihwkit on the same device, inputs and data (issue 13, item 4).

    /work/aihwkit-venv/bin/python benchmarks/aihwkit_parity.py tile  [--json F]
    /work/aihwkit-venv/bin/python benchmarks/aihwkit_parity.py train [--seeds 8] [--epochs 15]
        [--configs a,b] [--json F]

Needs aihwkit (1.2.0, MIT) and runs both sides in the same process on the same machine;
our package is imported from this checkout. Each part prints Markdown for
``benchmarks/RESULTS.md`` and (``--json``) writes the numbers of both sides;
``tests/fixtures/aihwkit/parity.json`` is that file, which
``tests/simulator/test_aihwkit_parity.py`` checks our side against without aihwkit.

``tile``: a 256x256 tile of each device (:data:`DEVICES`), with aihwkit's spreads and without
d2d spreads, the same starting weights and the same mini-batch updates (:data:`SCENARIOS`),
aihwkit's default ``UpdateParameters`` (stochastic compressed trains, BL 31, update and BL
management); the weight change ΔW is compared by its mean (or mean |ΔW|) and its spread
(std over the tile's devices). Repeated ``--repeats`` times per side with different d2d
draws (aihwkit seeds its cycle-to-cycle and pulse generators from the clock, so its runs
differ anyway; ours from the seed); differences with their Welch 95 % intervals.

``train``: digits (8x8, scikit-learn) MLP 64-32-10, tanh, in-memory SGD, 15 epochs, batch 16,
lr 0.1, aihwkit's default periphery (``IOParameters()`` forward and backward) and update.
Both sides start from the same initial weights (nn.Linear's init from the seed) and see the
same mini-batch order; test accuracy after the last epoch is compared as distributions
(mean difference and its 95 % interval, Welch).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import (  # noqa: E402
    AnalogConfig,
    PulsedDeviceConfig,
    TikiTaka,
    UpdateParameters,
)
from simulator.layers import AnalogSGD as OurSGD  # noqa: E402
from simulator.periphery import IOParameters  # noqa: E402
from simulator.tile import AnalogTile  # noqa: E402
from simulator.training import analog_mlp, evaluate_accuracy  # noqa: E402

PARITY_JSON = ROOT / "tests" / "fixtures" / "aihwkit" / "parity.json"

#: name -> (our family, aihwkit class, fields set; every other field at aihwkit's default)
DEVICES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "soft-bounds": ("soft-bounds", "SoftBoundsDevice", {}),
    "soft-bounds up_down 0.2": ("soft-bounds", "SoftBoundsDevice", {"up_down": 0.2}),
    "constant-step dw_min 0.05": ("constant-step", "ConstantStepDevice", {"dw_min": 0.05}),
}
NO_SPREAD = {
    "dw_min_dtod": 0.0,
    "up_down_dtod": 0.0,
    "w_max_dtod": 0.0,
    "w_min_dtod": 0.0,
}

#: training configurations: name -> (device, algorithm)
TRAIN_CONFIGS = {
    "soft-bounds up_down 0.2": ("soft-bounds up_down 0.2", "sgd"),
    "constant-step dw_min 0.05": ("constant-step dw_min 0.05", "sgd"),
    "soft-bounds": ("soft-bounds", "sgd"),
    "soft-bounds Tiki-Taka": ("soft-bounds", "tiki-taka"),
}


def header(title: str) -> None:
    import aihwkit

    load = os.getloadavg()[0]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\n### {title}\n")
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()}-core, load {load:.1f}, "
        f"{stamp}; aihwkit {aihwkit.__version__} (CPU), torch {torch.__version__}, "
        f"Python {platform.python_version()}\n"
    )


# ------------------------------------------------------------------------ configurations
def aihwkit_device(name: str, **overrides: Any):
    from aihwkit.simulator.configs import devices

    _, cls, fields = DEVICES[name]
    return getattr(devices, cls)(**{**fields, **overrides})


def our_device(name: str, **overrides: Any) -> PulsedDeviceConfig:
    family, _, fields = DEVICES[name]
    return PulsedDeviceConfig(family=family, **{**fields, **overrides})


def aihwkit_rpu_config(device_name: str, algorithm: str = "sgd", **overrides: Any):
    """aihwkit's RPUConfig: default periphery and update; TTv1 spelled out field by field."""
    from aihwkit.simulator.configs import SingleRPUConfig, UnitCellRPUConfig
    from aihwkit.simulator.configs.compounds import TransferCompound
    from aihwkit.simulator.parameters import IOParameters as AIOParameters
    from aihwkit.simulator.parameters import UpdateParameters as AUpdateParameters
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

    if algorithm == "sgd":
        return SingleRPUConfig(device=aihwkit_device(device_name, **overrides))
    return UnitCellRPUConfig(
        device=TransferCompound(
            unit_cell_devices=[
                aihwkit_device(device_name, **overrides),
                aihwkit_device(device_name, **overrides),
            ],
            gamma=0.0,
            transfer_every=1.0,
            units_in_mbatch=True,
            n_reads_per_transfer=1,
            fast_lr=1.0,
            scale_fast_lr=True,
            transfer_lr=1.0,
            scale_transfer_lr=True,
            transfer_forward=AIOParameters(
                noise_management=NoiseManagementType.NONE,
                bound_management=BoundManagementType.NONE,
            ),
            transfer_update=AUpdateParameters(),
        )
    )


def our_config(device_name: str, algorithm: str = "sgd", **overrides: Any) -> AnalogConfig:
    """Our AnalogConfig with the same settings as :func:`aihwkit_rpu_config`."""
    device = our_device(device_name, **overrides)
    if algorithm == "sgd":
        return AnalogConfig(device=device)
    algo = TikiTaka(
        gamma=0.0,
        transfer_every=1.0,
        units_in_mbatch=True,
        n_reads_per_transfer=1,
        fast_lr=1.0,
        scale_fast_lr=True,
        transfer_lr=1.0,
        scale_transfer_lr=True,
        transfer_forward=IOParameters(noise_management="none", bound_management="none"),
        transfer_update=UpdateParameters(),
    )
    return AnalogConfig(device=device, algorithm=algo)


# ------------------------------------------------------------------------ tile part
TILE = 256


@dataclass(frozen=True)
class Scenario:
    """Inputs of the tile check: ``n_updates`` mini-batches of ``batch`` rank-one terms."""

    n_updates: int
    batch: int
    lr: float
    w0: str  # "uniform" (±0.2) or "bounds" (every weight clipped to one of its bounds)
    d_mean: float
    d_std: float
    x_signed: bool
    metric: str  # the statistic compared besides the spread: "mean" or "mean_abs"


#: "drift": x ≥ 0 and d with a positive mean, so ΔW has a clear mean (batch 8, 100 updates);
#: "bounds": weights start at their bounds and get mixed-sign pulses within each batch of 16,
#: which exercises the clipping order inside a batch.
SCENARIOS = {
    "drift": Scenario(100, 8, 0.01, "uniform", 0.03, 0.1, False, "mean"),
    "bounds": Scenario(50, 16, 0.1, "bounds", 0.0, 0.05, True, "mean_abs"),
}


def tile_inputs(sc: Scenario, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if sc.w0 == "uniform":
        w0 = (torch.rand(TILE, TILE, generator=gen) * 2 - 1) * 0.2
    else:  # ±1 is clipped to the device's own bound by set_weights on both sides
        w0 = torch.sign(torch.rand(TILE, TILE, generator=gen) - 0.5)
    x = torch.rand(sc.n_updates, sc.batch, TILE, generator=gen)
    if sc.x_signed:
        x = 2 * x - 1
    d = sc.d_mean + sc.d_std * torch.randn(sc.n_updates, sc.batch, TILE, generator=gen)
    return w0, x, d


def aihwkit_tile_change(
    name: str, overrides: dict[str, Any], sc: Scenario, seed: int
) -> torch.Tensor:
    """ΔW of an aihwkit tile (d2d from ``construction_seed`` = 1000 + seed)."""
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.tiles import AnalogTile as ATile

    w0, x, d = tile_inputs(sc)
    device = aihwkit_device(name, **overrides)
    device.construction_seed = 1000 + seed
    tile = ATile(TILE, TILE, SingleRPUConfig(device=device))
    tile.set_learning_rate(sc.lr)
    tile.set_weights(w0)
    start = tile.get_weights()[0].clone()
    for k in range(sc.n_updates):
        tile.update(x[k], d[k])
    return tile.get_weights()[0] - start


def our_tile_change(name: str, overrides: dict[str, Any], sc: Scenario, seed: int) -> torch.Tensor:
    """ΔW of our tile, same device fields and inputs (d2d from seed 1000 + seed: a stream
    other than the inputs')."""
    w0, x, d = tile_inputs(sc)
    config = AnalogConfig(device=our_device(name, **overrides))
    tile = AnalogTile(TILE, TILE, config, seed=1000 + seed)
    tile.set_weights(w0)
    start = tile.get_weights()
    for k in range(sc.n_updates):
        tile.update(x[k], d[k], sc.lr)
    return tile.get_weights() - start


def change_stats(dw: torch.Tensor) -> dict[str, float]:
    return {"mean": float(dw.mean()), "mean_abs": float(dw.abs().mean()), "std": float(dw.std())}


def tile_part(repeats: int) -> dict[str, Any]:
    header(f"Tile-level parity: {TILE}x{TILE} tiles, {repeats} runs per side")
    print(
        "| scenario | device | spreads | statistic: ours / aihwkit | diff (95 % CI) | "
        "std ΔW: ours / aihwkit | diff (95 % CI) | ms/update ours / aihwkit |"
    )
    print("|---|---|---|---|---|---|---|---|")
    out = {}
    for sc_name, sc in SCENARIOS.items():
        for name in DEVICES:
            for label, overrides in (("aihwkit defaults", {}), ("no d2d", NO_SPREAD)):
                ours, ref = [], []
                times = {"ours": 0.0, "ref": 0.0}
                for r in range(repeats):
                    t0 = time.perf_counter()
                    ours.append(change_stats(our_tile_change(name, overrides, sc, seed=r)))
                    times["ours"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    ref.append(change_stats(aihwkit_tile_change(name, overrides, sc, seed=r)))
                    times["ref"] += time.perf_counter() - t0
                row: dict[str, Any] = {"ours": ours, "aihwkit": ref}
                cells = []
                for what in (sc.metric, "std"):
                    a, b = [v[what] for v in ours], [v[what] for v in ref]
                    diff, half, p = welch(a, b)
                    scale = abs(statistics.fmean(b))
                    row[what] = {"rel_diff": diff / scale, "rel_ci95": half / scale, "p": p}
                    lo, hi = (diff - half) / scale, (diff + half) / scale
                    cells.append(
                        f"{statistics.fmean(a):.4g} / {statistics.fmean(b):.4g} | "
                        f"{diff / scale:+.1%} ({lo:+.1%} to {hi:+.1%})"
                    )
                ms = {k: 1e3 * v / (repeats * sc.n_updates) for k, v in times.items()}
                print(
                    f"| {sc_name} | {name} | {label} | {sc.metric} ΔW: {cells[0]} | {cells[1]} | "
                    f"{ms['ours']:.1f} / {ms['ref']:.1f} |",
                    flush=True,
                )
                out[f"{sc_name} | {name} | {label}"] = row
    return out


# ------------------------------------------------------------------------ training part
def digits(seed: int):
    from calib.validate.in_memory_training import load_digits_split

    return load_digits_split(seed)


def initial_weights(seed: int, sizes: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """nn.Linear's default initialization (what aihwkit's AnalogLinear uses), from ``seed``."""
    torch.manual_seed(seed)
    out = []
    for n_in, n_out in itertools.pairwise(sizes):
        lin = nn.Linear(n_in, n_out)
        out.append((lin.weight.detach().clone(), lin.bias.detach().clone()))
    return out


def train_loop(model, opt, split, epochs: int, batch_size: int, seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(split.x_train), generator=gen)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(split.x_train[batch]), split.y_train[batch])
            loss.backward()
            opt.step()
    return evaluate_accuracy(model, split.x_test, split.y_test)


def aihwkit_run(config_name: str, seed: int, epochs: int, sizes: list[int]) -> float:
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.optim import AnalogSGD

    device_name, algorithm = TRAIN_CONFIGS[config_name]
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(initial_weights(seed, sizes)):
        layer = AnalogLinear(
            w.shape[1], w.shape[0], bias=True, rpu_config=aihwkit_rpu_config(device_name, algorithm)
        )
        layer.set_weights(w, b)
        layers.append(layer)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    model = AnalogSequential(*layers)
    opt = AnalogSGD(model.parameters(), lr=0.1)
    opt.regroup_param_groups(model)
    return train_loop(model, opt, digits(seed), epochs, 16, seed)


def our_run(config_name: str, seed: int, epochs: int, sizes: list[int]) -> float:
    device_name, algorithm = TRAIN_CONFIGS[config_name]
    model = analog_mlp(sizes, our_config(device_name, algorithm), seed=seed)
    analog = [m for m in model if hasattr(m, "set_weights")]
    for layer, (w, b) in zip(analog, initial_weights(seed, sizes), strict=True):
        layer.set_weights(w, b)
    opt = OurSGD(model, 0.1)
    return train_loop(model, opt, digits(seed), epochs, 16, seed)


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean difference a − b, its 95 % half-width (Welch, t quantile) and the p-value."""
    from scipy import stats

    ma, mb = statistics.fmean(a), statistics.fmean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else 1.0
    half = float(stats.t.ppf(0.975, dof)) * se
    p = float(2 * stats.t.sf(abs(ma - mb) / se, dof)) if se > 0 else 1.0
    return ma - mb, half, p


def train_part(seeds: int, epochs: int, configs: list[str]) -> dict[str, Any]:
    sizes = [64, 32, 10]
    header(
        f"Training parity: digits MLP 64-32-10, {epochs} epochs, batch 16, lr 0.1, "
        f"{seeds} seeds per side, default periphery"
    )
    print(
        "| configuration | ours: accuracy % (mean ± sd) | aihwkit | difference, pp (95 % CI) "
        "| p | s/run ours / aihwkit |"
    )
    print("|---|---|---|---|---|---|")
    out = {}
    torch.set_num_threads(1)
    for name in configs:
        ours, ref, t_ours, t_ref = [], [], 0.0, 0.0
        for seed in range(seeds):
            t0 = time.perf_counter()
            ours.append(100 * our_run(name, seed, epochs, sizes))
            t_ours += time.perf_counter() - t0
            t0 = time.perf_counter()
            ref.append(100 * aihwkit_run(name, seed, epochs, sizes))
            t_ref += time.perf_counter() - t0
        diff, half, p = welch(ours, ref)
        print(
            f"| {name} | {statistics.fmean(ours):.1f} ± {statistics.stdev(ours):.1f} | "
            f"{statistics.fmean(ref):.1f} ± {statistics.stdev(ref):.1f} | "
            f"{diff:+.1f} ({diff - half:+.1f} to {diff + half:+.1f}) | {p:.2f} | "
            f"{t_ours / seeds:.0f} / {t_ref / seeds:.0f} |",
            flush=True,
        )
        out[name] = {
            "ours": ours,
            "aihwkit": ref,
            "diff_pp": diff,
            "ci95_pp": half,
            "p": p,
            "epochs": epochs,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("tile", "train"))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default="", help="comma-separated training configurations")
    parser.add_argument("--json", type=Path, help="merge the numbers into this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # both sides single-threaded (aihwkit's CPU tile is)
    if args.part == "tile":
        result = {"tile": tile_part(args.repeats)}
    else:
        configs = [c for c in args.configs.split(",") if c] or list(TRAIN_CONFIGS)
        unknown = set(configs) - set(TRAIN_CONFIGS)
        if unknown:
            raise SystemExit(f"unknown configurations {sorted(unknown)}; use {list(TRAIN_CONFIGS)}")
        result = {"train": train_part(args.seeds, args.epochs, configs)}
    if args.json is not None:
        old = json.loads(args.json.read_text()) if args.json.is_file() else {}
        for part, values in result.items():
            old.setdefault(part, {}).update(values)
        args.json.write_text(json.dumps(old, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
