"""Predictive check: simulate the preset's own campaign and compare it with the measurement.

The campaign the preset was fitted from is simulated with the preset alone, device by device
with the measured protocol, and both are summarized per step by the mean and the 5 % and
95 % quantiles across devices:

* pulse response (pulsed presets): every device starts at its measured first read and gets
  the measured pulse sequence (:func:`fitting.synthetic.simulate_preset`: the preset's
  family, device-to-device spreads, cycle-to-cycle, write and read noise, stuck devices);
* drift (PCM presets): every converged device is programmed to its measured target, drifts
  and is read ``n_avg`` times at the measured times (``t_inference`` = time since
  programming - t0, the simulator's convention), with the preset's PCM model.

Discrepancy score (one number): the mean over steps (and levels) of
(|Δ mean| + |Δ q05| + |Δ q95|) / 3, divided by the measured conductance span for pulsed
devices (:func:`fitting.diagnostics.measured_span`: median upper minus lower plateau of the
measured traces, so bounds that a fit extrapolates far beyond the data cannot shrink the
score) and by g_max for PCM. Its sampling floor is the same score between two random
halves of the measured devices, divided by √2 (two halves of n/2 devices differ by √2 times
more than n measured and n simulated devices would under a perfect model): a score near the
floor means the preset reproduces the campaign as well as the data can tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calib.errors import CalibError
from calib.io import read_campaign
from fitting.diagnostics import measured_span
from fitting.synthetic import simulate_preset
from fitting.window_offset import states_before_offsets
from simulator.presets import PresetError, pcm_noise_model

__all__ = [
    "PredictiveCheck",
    "campaign_file",
    "drift_check",
    "fit_status_warning",
    "pulse_response_check",
    "step_statistics",
]

QUANTILES = (0.05, 0.95)


@dataclass
class PredictiveCheck:
    """Measured and predicted per-step statistics of one campaign, and the score.

    ``measured`` and ``predicted`` map ``mean``, ``q05``, ``q95`` to arrays
    (n_groups, n_steps) in siemens; groups are target levels (drift) or one group of all
    devices (pulse response).
    """

    campaign: str
    source: str
    x: np.ndarray
    x_label: str
    groups: list[str]
    measured: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    score: float
    floor: float
    span_s: float
    n_devices: int
    excluded: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready record (arrays included, in siemens)."""
        return {
            "campaign": self.campaign,
            "source": self.source,
            "score": self.score,
            "sampling_floor": self.floor,
            "score_definition": "mean over steps of (|d mean| + |d q05| + |d q95|)/3 / span",
            "span_s": self.span_s,
            "n_devices": self.n_devices,
            "excluded_devices": self.excluded,
            "groups": self.groups,
            "x_label": self.x_label,
            "x": self.x.tolist(),
            "measured": {k: v.tolist() for k, v in self.measured.items()},
            "predicted": {k: v.tolist() for k, v in self.predicted.items()},
            "notes": self.notes,
        }


def step_statistics(g: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, 5 % and 95 % quantiles across devices (axis 0) of (devices, steps)."""
    q05, q95 = np.nanquantile(g, QUANTILES, axis=0)
    return {"mean": np.nanmean(g, axis=0), "q05": q05, "q95": q95}


def _distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(np.nanmean([np.abs(a[k] - b[k]) for k in ("mean", "q05", "q95")]))


def _score(measured: list[np.ndarray], predicted: list[np.ndarray], span: float, seed: int):
    """(score, floor, stacked measured stats, stacked predicted stats) over groups."""
    rng = np.random.default_rng(seed)
    m_stats = [step_statistics(g) for g in measured]
    p_stats = [step_statistics(g) for g in predicted]
    score = np.mean([_distance(m, p) for m, p in zip(m_stats, p_stats, strict=True)]) / span
    halves = []
    for g in measured:
        if g.shape[0] < 4:
            continue
        order = rng.permutation(g.shape[0])
        a, b = g[order[: g.shape[0] // 2]], g[order[g.shape[0] // 2 :]]
        halves.append(_distance(step_statistics(a), step_statistics(b)))
    floor = float(np.mean(halves)) / np.sqrt(2.0) / span if halves else float("nan")

    def stack(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.stack([s[k] for s in stats]) for k in ("mean", "q05", "q95")}

    return float(score), floor, stack(m_stats), stack(p_stats)


def pulse_response_check(
    preset: Mapping[str, Any], path: str | Path, seed: int = 0, max_devices: int = 1024
) -> PredictiveCheck:
    """Predictive check of a pulsed preset against its pulse-response campaign."""
    from calib.io.pulse_source import sample_complete_traces

    # a sample of complete traces; an HDF5 file is read a chunk of devices at a time
    g, ids, pulses, units, excluded = sample_complete_traces(path, max_devices, seed)
    device = preset.get("device") or {}
    if units != "S":
        raise CalibError(f"{path}: the predictive check needs conductances in siemens")
    if g.shape[0] == 0:
        raise CalibError(f"{path}: no device with a complete pulse-response trace")
    with np.errstate(invalid="ignore", divide="ignore"):  # stuck devices: zero-width range
        # per-device window offsets: start as the fit's own check does
        start, physical = states_before_offsets(
            preset.get("per_device") or {}, g[:, 0].astype(float), ids
        )
        simulated = simulate_preset(device, pulses, start, seed=seed + 1, physical_start=physical)
    span = measured_span(g)  # the data's span: extrapolated bounds must not shrink the score
    if not span > 0:
        raise CalibError(f"{path}: the measured traces have no conductance span to compare")
    score, floor, m, p = _score([g], [simulated], span, seed + 2)
    return PredictiveCheck(
        "pulse_response",
        str(path),
        np.arange(pulses.size, dtype=float),
        "read (after the pulses of the protocol)",
        ["all devices"],
        m,
        p,
        score,
        floor,
        span,
        int(g.shape[0]),
        excluded,
    )


def drift_check(
    preset: Mapping[str, Any], path: str | Path, seed: int = 0, max_devices: int = 4096
) -> PredictiveCheck:
    """Predictive check of a PCM preset against its drift campaign (per target level)."""
    data = read_campaign(path, "drift")
    if data.units.get("conductance") != "S":
        raise CalibError(f"{path}: the predictive check needs conductances in siemens")
    try:
        model = pcm_noise_model(preset)
    except PresetError as exc:
        raise CalibError(str(exc)) from None
    g = np.asarray(data["conductance"], dtype=float)
    target = np.asarray(data["target"], dtype=float)
    times = np.asarray(data["time"], dtype=float)
    if times.ndim != 1:  # per-device times (e.g. an imported CSV with missing reads)
        g, times = _common_time_grid(g, times, path)
    ok = np.asarray(data.arrays.get("converged", np.ones(target.size, bool)), dtype=bool)
    excluded = {"program-and-verify did not converge": int((~ok).sum())} if (~ok).any() else {}
    few = ok & (np.sum(np.isfinite(g), axis=1) < 2)
    if few.any():
        excluded["fewer than 2 reads"] = int(few.sum())
    ok &= ~few
    g, target = g[ok], target[ok]
    rng = np.random.default_rng(seed)
    if target.size > max_devices:
        pick = np.sort(rng.choice(target.size, max_devices, replace=False))
        g, target = g[pick], target[pick]
    n_avg = int(data.attrs.get("n_avg", 1) or 1)
    notes = []
    if np.any(times < model.t0_s):
        notes.append(f"reads before t0 = {model.t0_s:g} s are compared with the model at t0")
    gen = torch.Generator().manual_seed(seed + 1)
    g_target = torch.as_tensor(target, dtype=torch.float64)
    g_prog, nu = model.program(g_target, gen)
    sim = np.empty_like(g)
    for k, t in enumerate(times):
        t_inference = max(float(t) - model.t0_s, 0.0)
        reads = [model.at_time(g_prog, nu, g_target, t_inference, gen) for _ in range(n_avg)]
        sim[:, k] = torch.stack(reads).mean(dim=0).numpy()
    sim = np.where(np.isfinite(g), sim, np.nan)  # compare the reads that were measured
    levels, level_of = np.unique(np.round(target * 1e12) / 1e12, return_inverse=True)
    groups = [level_of == k for k in range(levels.size)]
    score, floor, m, p = _score(
        [g[s] for s in groups], [sim[s] for s in groups], model.g_max_s, seed + 2
    )
    return PredictiveCheck(
        "drift",
        str(path),
        times,
        "time after programming (s)",
        [f"{level * 1e6:.3g} uS" for level in levels],
        m,
        p,
        score,
        floor,
        model.g_max_s,
        int(target.size),
        excluded,
        notes,
    )


MAX_TIME_POINTS = 200  # distinct read times of per-device schedules put on one grid


def _common_time_grid(
    g: np.ndarray, times: np.ndarray, path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Per-device read times on the grid of their distinct values (NaN where not read)."""
    finite = np.isfinite(times) & np.isfinite(g)
    grid = np.unique(times[finite])
    if grid.size > MAX_TIME_POINTS:
        raise CalibError(
            f"{path}: the devices' drift read times are not on a common schedule "
            f"({grid.size} distinct times); the predictive check needs shared time points"
        )
    out = np.full((g.shape[0], grid.size), np.nan)
    rows = np.nonzero(finite)[0]
    out[rows, np.searchsorted(grid, times[finite])] = g[finite]
    return out, grid


def fit_status_warning(preset: Mapping[str, Any]) -> str:
    """A one-line warning when the preset's fit says its family does not fit the data, else ''.

    ``device.fit_status`` is written by the pulse-response fit (posterior predictive check);
    a ``does_not_fit`` preset predicts accuracies of a device that was not measured.
    """
    status = (preset.get("device") or {}).get("fit_status") or {}
    if status.get("status") != "does_not_fit":
        return ""
    return (
        f"WARNING: this preset does not fit its measurements ({status.get('reason', '')}); "
        f"accuracies below describe the fitted model, not the device. "
        f"{status.get('suggestion', '')}"
    ).strip()


def campaign_file(preset: Mapping[str, Any], preset_path: str | Path, kind: str) -> Path | None:
    """The campaign file the preset was fitted from, if it can be found.

    The provenance's input path is tried as written (relative to the working directory)
    and relative to the preset's folder. PCM presets look for their drift campaign.
    """
    prov = preset.get("provenance") or {}
    candidates: list[str] = []
    if kind == "pcm":
        for item in prov.get("inputs") or []:
            if "drift" in (item.get("campaigns") or []):
                candidates.append(str(item.get("path")))
    elif prov.get("input_file"):
        candidates.append(str(prov["input_file"]))
    for name in candidates:
        for path in (Path(name), Path(preset_path).parent / name):
            if path.is_file():
                return path
    return None
