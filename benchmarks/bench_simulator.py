"""Simulator benchmarks (issue 7): fidelity, digits training and PCM inference, speed.

    .venv/bin/python benchmarks/bench_simulator.py fidelity
    .venv/bin/python benchmarks/bench_simulator.py training [--seeds 5] [--epochs 20]
    .venv/bin/python benchmarks/bench_simulator.py inference [--seeds 5] [--draws 25]
    .venv/bin/python benchmarks/bench_simulator.py mvm-error
    .venv/bin/python benchmarks/bench_simulator.py cpu
    /work/aihwkit-venv/bin/python benchmarks/bench_simulator.py peer [--epochs 2] [--repeats 2]
    .venv/bin/python benchmarks/bench_simulator.py gpu      # needs a CUDA GPU

Each part prints Markdown rows for benchmarks/RESULTS.md. The emulator's true devices come
from ``instruments.emulator.physics`` (benchmarks may import instruments; the simulator
does not).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import (  # noqa: E402
    SGD,
    AnalogConfig,
    ChoppedTTv2,
    IOParameters,
    MappingParameters,
    PulsedDeviceConfig,
    TikiTaka,
    UpdateParameters,
    WeightModifier,
    analog_config,
    drift_analog_weights,
    inference_config,
    program_analog_weights,
    ttv2,
)
from simulator.devices.response import FAMILIES  # noqa: E402
from simulator.inference import analog_tiles, drift_tile, program_tile  # noqa: E402
from simulator.tile import AnalogTile  # noqa: E402
from simulator.training import analog_mlp, evaluate_accuracy, train_classifier  # noqa: E402


def header(title: str) -> None:
    load = os.getloadavg()[0]
    print(f"\n### {title}\n")
    print(
        f"machine: {platform.machine()} {os.cpu_count()}-core, Python {platform.python_version()},"
        f" torch {torch.__version__}, threads {torch.get_num_threads()}, load {load:.2f},"
        f" {time.strftime('%Y-%m-%d %H:%M')}\n"
    )


# ---------------------------------------------------------------------------------- truths
def reram_truth_preset() -> dict:
    """The emulator's ``reram`` chip truth as a preset dict (its own conversion)."""
    from instruments.emulator.physics import PulsedDeviceArray, chip_truth

    return PulsedDeviceArray(chip_truth("reram"), (1, 1), seed=0).truth_preset()


def pcm_truth_preset() -> dict:
    """The emulator's ``pcm`` chip truth (the published PCM model constants)."""
    from instruments.emulator.physics import chip_truth

    return {"pcm": chip_truth("pcm").preset_section()}


# ---------------------------------------------------------------------------------- fidelity
def run_fidelity(_: argparse.Namespace) -> None:
    """400-pulse response of 1,000 devices vs the per-pulse reference kept in the tests."""
    spec = importlib.util.spec_from_file_location(
        "fidelity", ROOT / "tests" / "simulator" / "test_pulse_kernel_fidelity.py"
    )
    fid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fid)
    header("Fidelity: 400-pulse response, 1,000 devices, vs per-pulse reference")
    print("| family | single pulses: max Δmean / Δstd (% of range) | 31-pulse trains | "
          "mixed ± trains (random order) |")  # fmt: skip
    print("|---|---|---|---|")
    for family in FAMILIES:
        cfg, params = fid._population(family)
        span = cfg.w_max - cfg.w_min
        signs = np.repeat(np.r_[np.ones(200), -np.ones(200)][:, None], fid.N_DEVICES, axis=1)
        ref = fid._reference_trace(family, params, signs, cfg.dw_min_std, seed=1)
        cells = []
        for chunk in (1, 31):
            tile = fid._tile(cfg)
            sim, k = {}, 0
            while k < 400:
                n = min(chunk, 200 - k % 200)
                counts = torch.full((1, fid.N_DEVICES), int(n * signs[k, 0]), dtype=torch.int32)
                tile.apply_pulses(counts)
                k += n
                sim[k - 1] = tile.w[0].double().numpy().copy()
            m, s = fid._compare(sim, ref, span)
            cells.append(f"{100 * m:.2f} / {100 * s:.2f}")
        rng = np.random.default_rng(5)
        base = np.where(rng.random(400) < np.r_[np.full(200, 0.75), np.full(200, 0.25)], 1.0, -1.0)
        edges = [*range(0, 400, 31), 400]
        mixed = np.empty((400, fid.N_DEVICES))
        for a, b in itertools.pairwise(edges):
            mixed[a:b] = rng.permuted(np.repeat(base[a:b, None], fid.N_DEVICES, axis=1), axis=0)
        ref = fid._reference_trace(family, params, mixed, cfg.dw_min_std, seed=2)
        tile, sim = fid._tile(cfg), {}
        for a, b in itertools.pairwise(edges):
            n_up = torch.tensor((mixed[a:b] > 0).sum(0), dtype=torch.float32)[None]
            n_down = torch.tensor((mixed[a:b] < 0).sum(0), dtype=torch.float32)[None]
            tile.apply_pulse_counts(n_up, n_down)
            sim[b - 1] = tile.w[0].double().numpy().copy()
        m, s = fid._compare(sim, ref, span)
        cells.append(f"{100 * m:.2f} / {100 * s:.2f}")
        print(f"| {family} | " + " | ".join(cells) + " |")


# ---------------------------------------------------------------------------------- training
def digits(seed: int):
    from calib.validate.in_memory_training import load_digits_split

    return load_digits_split(seed)


def training_configs(preset: dict) -> dict[str, AnalogConfig | None]:
    """The algorithms compared on the reram truth (default aihwkit periphery)."""
    return {
        "floating-point SGD": None,
        "analog SGD": analog_config(preset, SGD()),
        "Tiki-Taka": analog_config(preset, TikiTaka()),
        "TTv2": analog_config(preset, ttv2(fast_lr=3.0, transfer_lr=0.3)),
        "chopped TTv2": analog_config(
            preset, ChoppedTTv2(fast_lr=3.0, transfer_lr=0.3, in_chop_prob=0.02)
        ),
    }


def train_mlp(config: AnalogConfig | None, seed: int, args: argparse.Namespace):
    """A 64-hidden-10 MLP trained on the digits split of ``seed``; (model, split, result)."""
    split = digits(seed)
    model = analog_mlp([64, args.hidden, 10], config, seed=seed)
    result = train_classifier(
        model, split.x_train, split.y_train, split.x_test, split.y_test,
        epochs=args.epochs, lr=args.lr, batch_size=args.batch, seed=seed,
    )  # fmt: skip
    return model, split, result


def run_training(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    preset = reram_truth_preset()
    header(
        f"Digits MLP 64-{args.hidden}-10, reram truth, {args.epochs} epochs, batch "
        f"{args.batch}, lr {args.lr}, {args.seeds} seeds"
    )
    results: dict[str, list[float]] = {}
    times: dict[str, float] = {}
    for name, config in training_configs(preset).items():
        accs = []
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            accs.append(100 * train_mlp(config, seed, args)[2].final_accuracy)
        results[name] = accs
        times[name] = (time.perf_counter() - t0) / args.seeds
        print(f"  {name}: {[round(a, 2) for a in accs]}", file=sys.stderr, flush=True)
    fp = statistics.mean(results["floating-point SGD"])
    print(f"| algorithm | test accuracy % (mean ± std, {args.seeds} seeds) | gap to FP SGD (pp) | "
          "s/run |")  # fmt: skip
    print("|---|---|---|---|")
    for name, accs in results.items():
        mean, std = statistics.mean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0
        gap = "-" if name == "floating-point SGD" else f"{mean - fp:+.2f}"
        print(f"| {name} | {mean:.2f} ± {std:.2f} | {gap} | {times[name]:.1f} |")


# ---------------------------------------------------------------------------------- inference
T_INFERENCE = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 year": 365 * 86400.0}


def hwa_config(preset: dict, std_dev: float) -> AnalogConfig:
    modifier = WeightModifier("add-normal", std_dev) if std_dev > 0 else WeightModifier()
    return inference_config(preset, forward=IOParameters(), modifier=modifier)


def run_inference(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    preset = pcm_truth_preset()
    header(
        f"PCM inference, digits MLP 64-{args.hidden}-10 (emulator pcm truth), "
        f"{args.seeds} seeds x {args.draws} programming draws"
    )
    variants = {"HWA (add-normal 0.06)": 0.06, "no HWA": 0.0}
    rows = []
    for label, std in variants.items():
        per_seed: dict[tuple[str, bool], list[float]] = {}
        clean = []
        for seed in range(args.seeds):
            model, split, _ = train_mlp(hwa_config(preset, std), seed, args)
            clean.append(100 * evaluate_accuracy(model, split.x_test, split.y_test))
            model.eval()
            draws: dict[tuple[str, bool], list[float]] = {}
            for draw in range(args.draws):
                program_analog_weights(model, seed=seed * 1000 + draw)
                for t_name, t in T_INFERENCE.items():
                    drift_analog_weights(model, t, seed=seed * 1000 + draw, compensate=True)
                    acc_gdc = _eval(model, split)
                    for tile in analog_tiles(model):
                        tile.inference.alpha = 1.0
                    acc_raw = _eval(model, split)
                    draws.setdefault((t_name, True), []).append(acc_gdc)
                    draws.setdefault((t_name, False), []).append(acc_raw)
            for key, values in draws.items():
                per_seed.setdefault(key, []).append(statistics.mean(values))
        rows.append((label, clean, per_seed))
    print("| training | t after programming | with GDC: acc % | without GDC: acc % |")
    print("|---|---|---|---|")
    for label, clean, per_seed in rows:
        print(f"| {label} | (no PCM noise) | {_ms(clean)} | |")
        for t_name in T_INFERENCE:
            print(f"| {label} | {t_name} | {_ms(per_seed[(t_name, True)])} | "
                  f"{_ms(per_seed[(t_name, False)])} |")  # fmt: skip


AIHWKIT_MVM_ERROR = {  # REFERENCES.md [R12]: (PCM only GDC, PCM only raw, PCM + IO GDC)
    "1 s": (14.0, 14.8, 15.3),
    "1 h": (16.4, 27.2, 18.8),
    "1 day": (18.3, 36.9, 22.8),
    "30 days": (21.5, 46.3, 28.1),
    "1 year": (23.2, 52.3, 32.6),
}


def run_mvm_error(_: argparse.Namespace) -> None:
    """The MVM error of REFERENCES.md [R12], reproduced (512x512, W ~ N(0, 0.1²))."""
    from simulator.presets import pcm_noise_model

    torch.set_num_threads(1)
    model = pcm_noise_model(pcm_truth_preset())
    header("PCM MVM error vs aihwkit's measurement (512x512, 1000 inputs, 3 layers)")
    times = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "30 days": 30 * 86400.0,
             "1 year": 365 * 86400.0}  # fmt: skip
    cases = {"pcm": IOParameters.perfect(), "pcm+io": IOParameters()}
    err = {(c, t, g): [] for c in cases for t in times for g in (True, False)}
    for rep in range(3):
        gen = torch.Generator().manual_seed(rep)
        w = torch.randn(512, 512, generator=gen) * 0.1
        x = torch.rand(1000, 512, generator=gen) * 2 - 1
        ideal = x @ w.T
        for case, io in cases.items():
            tile = AnalogTile(512, 512, AnalogConfig(device=None, forward=io, noise_model=model),
                              seed=rep)  # fmt: skip
            tile.set_weights(w)
            tile.training = False
            program_tile(tile, model)
            for t_name, t in times.items():
                for gdc in (True, False):
                    drift_tile(tile, t, model, compensate=gdc)
                    e = torch.linalg.norm(tile.forward(x) - ideal) / torch.linalg.norm(ideal)
                    err[(case, t_name, gdc)].append(100 * float(e))
    print("| t | PCM only, GDC: ours / aihwkit | PCM only, no comp.: ours / aihwkit | "
          "PCM + default IO, GDC: ours / aihwkit |")  # fmt: skip
    print("|---|---|---|---|")
    for t_name in times:
        ref = AIHWKIT_MVM_ERROR[t_name]
        keys = (("pcm", t_name, True), ("pcm", t_name, False), ("pcm+io", t_name, True))
        ours = [statistics.mean(err[k]) for k in keys]
        cells = [f"{o:.1f} % / {r:.1f} %" for o, r in zip(ours, ref, strict=True)]
        print(f"| {t_name} | " + " | ".join(cells) + " |")


def _eval(model: nn.Module, split) -> float:
    with torch.no_grad():
        pred = model(split.x_test).argmax(dim=1)
    return 100 * float((pred == split.y_test).float().mean())


def _ms(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"


# ---------------------------------------------------------------------------------- speed
def soft_bounds_config(bl: int = 31) -> AnalogConfig:
    device = PulsedDeviceConfig(family="soft-bounds", dw_min=0.001, up_down=0.0)
    return AnalogConfig(device=device, update=UpdateParameters(desired_bl=bl),
                        mapping=MappingParameters(max_input_size=0, max_output_size=0))  # fmt: skip


def step_inputs(size: int, batch: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, size, generator=gen) * 2 - 1).to(device)
    d = (torch.randn(batch, size, generator=gen) * 0.1).to(device)
    return x, d


def time_it(fn, repeats: int, sync=None, best: bool = False) -> float:
    """Median (or best) seconds of ``fn()`` over ``repeats`` runs, after 3 warm-ups."""
    for _ in range(3):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(time.perf_counter() - t0)
    return min(samples) if best else statistics.median(samples)


def training_step(tile: AnalogTile, x: torch.Tensor, d: torch.Tensor, lr: float):
    def step() -> None:
        tile.forward(x)
        tile.backward(d)
        tile.update(x, d, lr)

    return step


def pcm_forward_tile(size: int, device: torch.device) -> AnalogTile:
    """A programmed PCM tile (drifted to 1 h) with default periphery and PCM read noise."""
    from simulator.presets import pcm_noise_model

    model = pcm_noise_model(pcm_truth_preset())
    io = IOParameters(w_noise=0.0175, w_noise_type="pcm-read")
    cfg = AnalogConfig(device=None, forward=io, noise_model=model,
                       mapping=MappingParameters(max_input_size=0, max_output_size=0))  # fmt: skip
    tile = AnalogTile(size, size, cfg, seed=0, device=device)
    tile.set_weights(torch.randn(size, size, generator=torch.Generator().manual_seed(1)) * 0.1)
    tile.training = False
    program_tile(tile, model)
    drift_tile(tile, 3600.0, model)
    return tile


def run_cpu(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    header(f"CPU speed: {args.size}x{args.size} tile, batch {args.batch}, soft bounds, BL 31")
    tile = AnalogTile(args.size, args.size, soft_bounds_config(), seed=0, device=cpu)
    x, d = step_inputs(args.size, args.batch, cpu)
    # k = lr·max|x|·max|d|/dw_min ≈ 0.2·1·0.3/0.001 ≈ 60 > 31: every sample uses all 31 slots
    lr = 0.2
    timings = {}
    for label, fn in (
        ("step", training_step(tile, x, d, lr)),
        ("fwd", lambda: tile.forward(x)),
        ("bwd", lambda: tile.backward(d)),
        ("upd", lambda: tile.update(x, d, lr)),
    ):
        timings[label] = (time_it(fn, args.repeats), time_it(fn, args.repeats, best=True))
    pcm_tile = pcm_forward_tile(args.size, cpu)
    fwd_pcm = lambda: pcm_tile.forward(x)  # noqa: E731
    timings["pcm"] = (time_it(fwd_pcm, args.repeats), time_it(fwd_pcm, args.repeats, best=True))
    from simulator.update import _probabilities, coincidence_counts

    bl, _, _ = _probabilities(x, d, lr, tile.granularity, tile.config.update)
    nu, nd = coincidence_counts(x, d, lr, tile.granularity, tile.config.update, tile.generator)
    n_up, n_down = float(nu.mean()), float(nd.mean())
    print("| measurement | ms median / best | aihwkit C++ CPU (issue) | ratio (median) | target |")
    print("|---|---|---|---|---|")
    rows = (
        ("training step (forward + backward + pulsed update)", "step", 8e-3, "≤ 1.5x"),
        ("forward, PCM weights + IO non-idealities", "pcm", 1e-3, "≤ 2x"),
        ("(forward only, pulsed tile)", "fwd", None, ""),
        ("(backward only)", "bwd", None, ""),
        ("(pulsed update only)", "upd", None, ""),
    )
    for label, key, ref, target in rows:
        med, best = timings[key]
        ref_cells = f"{1e3 * ref:.0f} | {med / ref:.2f}x" if ref else " | "
        print(f"| {label} | {1e3 * med:.2f} / {1e3 * best:.2f} | {ref_cells} | {target} |")
    print(f"\nBL used per sample: min {int(bl.min())}, max {int(bl.max())}; mean pulses per "
          f"device per step: {n_up:.2f} up + {n_down:.2f} down")  # fmt: skip


def _parity_module():
    """benchmarks/aihwkit_parity.py (the parity scenarios and both sides' runs)."""
    if "aihwkit_parity" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "aihwkit_parity", ROOT / "benchmarks" / "aihwkit_parity.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["aihwkit_parity"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["aihwkit_parity"]


def _wall_cpu(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_peer(args: argparse.Namespace) -> None:
    """Pulsed updates where the sample order matters, and the digits MLP, against aihwkit.

    The 256x256 tile scenarios of ``benchmarks/aihwkit_parity.py`` (a batch's samples in
    order: *bounds* puts every device at a bound) and its digits MLP configurations, both
    sides single-threaded in this process (aihwkit when importable, e.g. with
    ``/work/aihwkit-venv/bin/python``), alternating, best of ``--repeats`` (wall / CPU
    seconds of the process; tile set-up included, as in the parity table).
    """
    torch.set_num_threads(1)
    parity = _parity_module()
    peer = importlib.util.find_spec("aihwkit") is not None
    header("Pulsed update at the bounds and digits MLP, ours vs aihwkit (1 thread)")
    print("| workload | ours ms, wall / CPU | aihwkit ms, wall / CPU | ours / aihwkit (CPU) |")
    print("|---|---|---|---|")
    rounds = max(1, min(args.repeats, 3))

    def row(label: str, ours, ref, per: float) -> None:
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "ref": []}
        for _ in range(rounds):
            runs["ours"].append(_wall_cpu(ours))
            if peer:
                runs["ref"].append(_wall_cpu(ref))
        best = {k: (min(w for w, _ in v) / per, min(c for _, c in v) / per)
                for k, v in runs.items() if v}  # fmt: skip
        o = best["ours"]
        r = best.get("ref")
        ref_cell = f"{1e3 * r[0]:.1f} / {1e3 * r[1]:.1f}" if r else "(aihwkit not installed)"
        ratio = f"{o[1] / r[1]:.2f}x" if r else ""
        print(f"| {label} | {1e3 * o[0]:.1f} / {1e3 * o[1]:.1f} | {ref_cell} | {ratio} |",
              flush=True)  # fmt: skip

    for sc_name, sc in parity.SCENARIOS.items():
        for name in parity.DEVICES:

            def ours(name=name, sc=sc) -> None:
                parity.our_tile_change(name, {}, sc, 0)

            def ref(name=name, sc=sc) -> None:
                parity.aihwkit_tile_change(name, {}, sc, 0)

            label = f"{sc_name}: {name}, {sc.n_updates} updates of {sc.batch} (per update)"
            row(label, ours, ref, sc.n_updates)
    sizes = [64, 32, 10]
    parity.our_run("soft-bounds", 0, 1, sizes)  # warm-up: data set, imports
    for config in parity.TRAIN_CONFIGS:

        def ours_mlp(config=config) -> None:
            parity.our_run(config, 0, args.epochs, sizes)

        def ref_mlp(config=config) -> None:
            parity.aihwkit_run(config, 0, args.epochs, sizes)

        row(f"digits MLP 64-32-10, {config} (per epoch)", ours_mlp, ref_mlp, args.epochs)


def run_gpu(args: argparse.Namespace) -> None:
    """GPU vs CPU on one large tile (``--gpu-device cpu`` smoke-tests this code on a CPU)."""
    accel = torch.device(args.gpu_device)
    if accel.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU: GPU benchmark pending (run this part on a machine with a GPU)")
        return
    name = torch.cuda.get_device_name(accel) if accel.type == "cuda" else str(accel)
    header(f"GPU speed ({name}): {args.gpu_size}x{args.gpu_size}, batch {args.batch}, BL 31")
    cuda = accel

    def sync() -> None:
        if accel.type == "cuda":
            torch.cuda.synchronize(accel)

    lr = 0.2  # every sample uses all 31 slots (see run_cpu)
    rows = []
    for device, repeats in ((cuda, 20), (torch.device("cpu"), 3)):
        tile = AnalogTile(args.gpu_size, args.gpu_size, soft_bounds_config(), 0, device)
        x, d = step_inputs(args.gpu_size, args.batch, device)
        wait = sync if device == accel else None
        t_step = time_it(training_step(tile, x, d, lr), repeats, wait)
        t_upd = time_it(lambda tile=tile, x=x, d=d: tile.update(x, d, lr), repeats, wait)
        rows.append((t_step, t_upd))
    (t_gpu, u_gpu), (t_cpu, u_cpu) = rows
    n = args.gpu_size**2
    rate = n / u_gpu
    bw = args.bandwidth_tb_s * 1e12
    print("| device | step ms | update ms | device-updates/s (update) |")
    print("|---|---|---|---|")
    print(f"| {accel} | {1e3 * t_gpu:.2f} | {1e3 * u_gpu:.2f} | {rate:.3g} |")
    print(f"| CPU ({torch.get_num_threads()} threads) | {1e3 * t_cpu:.1f} | {1e3 * u_cpu:.1f} | "
          f"{n / u_cpu:.3g} |")  # fmt: skip
    print(f"\nspeed-up of the step: {t_cpu / t_gpu:.1f}x (target ≥ 10x)")
    print(f"bandwidth bound (REFERENCES.md [R21]) at {args.bandwidth_tb_s} TB/s: fused 24 B/device "
          f"{bw / 24:.3g}/s, unfused ~100 B/device {bw / 100:.3g}/s; measured {rate:.3g}/s = "
          f"{100 * rate / (bw / 24):.1f} % of the fused bound")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "part", choices=["fidelity", "training", "inference", "mvm-error", "cpu", "peer", "gpu"]
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--draws", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--gpu-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--bandwidth-tb-s", type=float, default=3.35)
    parser.add_argument("--gpu-device", default="cuda")
    args = parser.parse_args()
    if args.batch is None:
        args.batch = 64 if args.part in ("cpu", "gpu") else 16
    {"fidelity": run_fidelity, "training": run_training, "inference": run_inference,
     "mvm-error": run_mvm_error, "cpu": run_cpu, "peer": run_peer,
     "gpu": run_gpu}[args.part](args)  # fmt: skip


if __name__ == "__main__":
    main()
