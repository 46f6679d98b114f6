"""Diagnostics of a finished fit in data units: residuals, step curves, simulated traces.

These functions only read a :class:`~fitting.pulse_response.PulseResponseFit` and the
traces. :func:`report_material` gathers everything the fit report shows into one
:class:`PulseFitFigures` record (the fit carries it as ``fit.figures``), so that the report
(``calib/reports/pulse_response.py``) only renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fitting.families import family_model, population_step
from fitting.noise import pair_statistics
from fitting.pairs import build_pairs
from fitting.pulse_response import PulseResponseFit
from fitting.synthetic import simulate_preset
from fitting.traces import PulseTraces
from fitting.window_offset import states_before_offsets

__all__ = [
    "MAX_SHOWN_DEVICES",
    "PairResiduals",
    "PulseFitFigures",
    "StepCurve",
    "StepPairs",
    "device_values",
    "measured_span",
    "pair_residuals",
    "report_material",
    "simulate_like",
    "step_curve",
]

#: percentiles of a device's reads taken as its lower and upper plateau (as in screening)
PLATEAU_PERCENTILES = (3.0, 97.0)

#: fitted devices whose traces a report shows (evenly spaced over the fitted ones)
MAX_SHOWN_DEVICES = 512


def measured_span(conductance: np.ndarray) -> float:
    """Measured conductance span of traces (devices, reads), data units.

    The median over devices of the upper plateau (97th percentile of a device's reads) minus
    the median of the lower plateau (3rd percentile): a property of the data alone, so a
    score divided by it does not depend on the bounds a fit extrapolates. NaN reads are
    ignored; NaN when no device has two reads.
    """
    g = np.asarray(conductance, dtype=float)
    g = g[np.sum(np.isfinite(g), axis=1) >= 2]
    if g.shape[0] == 0:
        return float("nan")
    lo, hi = np.nanpercentile(g, PLATEAU_PERCENTILES, axis=1)
    return float(np.median(hi) - np.median(lo))


def device_values(fit: PulseResponseFit) -> dict[str, Any]:
    """Per-device model values in data units around ``g_offset_s``, shaped (n, 1)."""
    pd, p = fit.per_device, fit.parameters

    def col(values: Any, fill: float) -> np.ndarray:  # unidentified entries: population value
        a = np.asarray(values, dtype=float)
        return np.where(np.isfinite(a), a, fill)[:, None]

    vals: dict[str, Any] = {
        "delta_up": col(pd["delta_up"], population_step(p, True)),
        "delta_down": col(pd["delta_down"], population_step(p, False)),
        "b_max": col(pd["w_max"], p["w_max"]),
        "b_min": col(pd["w_min"], p["w_min"]),
    }
    fm = family_model(fit.model)
    vals.update(fm.fixed)
    vals.update(fm.from_preset(p, pd, col))  # the family's shape values
    return vals


@dataclass
class PairResiduals:
    """Pairs of one direction of the fitted devices, data units."""

    direction: int
    y0: np.ndarray  # read before the pulses
    z: np.ndarray  # instrument read
    increment: np.ndarray  # per pulse
    residual: np.ndarray
    standardized: np.ndarray  # residual / model std
    valid: np.ndarray
    contiguous: np.ndarray


def pair_residuals(traces: PulseTraces, fit: PulseResponseFit) -> list[PairResiduals]:
    """Residuals of the fitted devices' pairs under the fitted model (up, down)."""
    order = np.argsort(traces.device_ids)
    rows = order[np.searchsorted(traces.device_ids[order], fit.per_device["device_id"])]
    g = traces.conductance_s[rows].astype(np.float64) - fit.g_offset_s
    pulses = traces.pulses_of(rows)
    vals = device_values(fit)
    fm = family_model(fit.model)
    c2c = float(fit.parameters.get("dw_min_std", 0.0))
    na2 = float(fit.noise.get("non_accumulating", fit.read_noise_s)) ** 2
    out = []
    for direction in (1, -1):
        block = build_pairs(g, pulses, direction)
        st = pair_statistics(fm, block, vals, h=1e-6 * max(abs(fit.parameters["w_max"]), 1e-30))
        var = c2c**2 * st.v + na2 * (1.0 + st.a**2)
        with np.errstate(all="ignore"):
            std = np.where(st.valid, st.u / np.sqrt(var), 0.0)
        out.append(
            PairResiduals(
                direction,
                block.y0 + fit.g_offset_s,
                block.z + fit.g_offset_s,
                (block.y1 - block.y0) / block.n,
                st.u,
                std,
                st.valid,
                block.contiguous,
            )
        )
    return out


def step_curve(fit: PulseResponseFit, up: bool, n_points: int = 200) -> tuple[np.ndarray, ...]:
    """Expected step of the population's median device vs conductance, with 10/90 % devices.

    Returns (conductance, median-device step, 10th-percentile step, 90th-percentile step),
    each over the conductance range of the median device.
    """
    vals = device_values(fit)
    fm = family_model(fit.model)
    lo = float(np.median(vals["b_min"]))
    hi = float(np.median(vals["b_max"]))
    w = np.linspace(lo, hi, n_points)
    steps = fm.step(w[None, :], up, vals)
    steps = np.abs(np.broadcast_to(steps, (vals["delta_up"].shape[0], n_points)))
    q10, q50, q90 = np.percentile(steps, [10, 50, 90], axis=0)
    return w + fit.g_offset_s, q50, q10, q90


def simulate_like(
    traces: PulseTraces, fit: PulseResponseFit, rows: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Simulated reads of the fitted preset with the pulses and starting reads of ``rows``.

    Responsive devices only (no stuck devices), to compare with the fitted devices. NaN where
    the data has no read (so the same statistics apply to both).
    """
    g = traces.conductance_s[rows].astype(np.float64)
    first = np.array([r[np.isfinite(r)][0] if np.isfinite(r).any() else np.nan for r in g])
    out = np.full_like(g, np.nan)
    section = fit.device_section()
    # windows shifted by per-device offsets: start each simulated device in the measured
    # device's state without its own offset (its read would lie outside most drawn windows)
    first, physical = states_before_offsets(fit.per_device, first, traces.device_ids[rows])
    if traces.shared_pulses:
        ok = np.isfinite(first)
        out[ok] = simulate_preset(
            section, traces.pulses, first[ok], seed=seed, with_stuck=False, physical_start=physical
        )
    else:
        pulses = traces.pulses[rows]
        keys = {}
        for i, seq in enumerate(pulses):
            keys.setdefault(seq.tobytes(), []).append(i)
        for k, (_, members) in enumerate(keys.items()):
            idx = np.array([m for m in members if np.isfinite(first[m])])
            if idx.size:
                out[idx] = simulate_preset(
                    section,
                    pulses[idx[0]],
                    first[idx],
                    seed=seed + k,
                    with_stuck=False,
                    physical_start=physical,
                )
    return np.where(np.isfinite(g), out, np.nan)


@dataclass
class StepPairs:
    """Pairs of one direction of the shown traces (data units): what a step plot bins."""

    z: np.ndarray  # instrument read (regression-free abscissa)
    y0: np.ndarray  # read before the pulses
    increment: np.ndarray  # |y1 - y0| / pulses, per pulse
    valid: np.ndarray  # a usable pair


@dataclass
class StepCurve:
    """Expected |step| of the median device vs conductance, with the 10-90 % device band."""

    conductance: np.ndarray  # data units (g_offset included)
    median: np.ndarray
    q10: np.ndarray
    q90: np.ndarray


@dataclass
class PulseFitFigures:
    """What the report of a pulse-response fit shows, in data units.

    ``rows`` are the shown devices' rows in the traces (at most :data:`MAX_SHOWN_DEVICES`
    fitted devices, evenly spaced), ``measured`` their reads and ``simulated`` the fitted
    preset simulated from their first reads with their pulses (``pulses``: 1-d when every
    device shares the sequence, else one row per shown device). ``step_pairs`` maps
    ``"measured"``/``"simulated"`` and the direction (+1 up, -1 down) to the pairs of the
    shown traces; ``step_curves`` the direction to the model's step curve; ``residuals``
    are the pair residuals of every fitted device (up, then down).
    """

    rows: np.ndarray
    measured: np.ndarray
    simulated: np.ndarray
    pulses: np.ndarray
    shared_pulses: bool
    step_pairs: dict[str, dict[int, StepPairs]]
    step_curves: dict[int, StepCurve]
    residuals: list[PairResiduals]

    @property
    def n_shown(self) -> int:
        return int(self.rows.size)


def shown_rows(traces: PulseTraces, fit: PulseResponseFit, max_devices: int) -> np.ndarray:
    """Rows of at most ``max_devices`` fitted devices, evenly spaced over the fitted ones."""
    order = np.argsort(traces.device_ids)
    pos = order[np.searchsorted(traces.device_ids[order], fit.per_device["device_id"])]
    pick = np.unique(np.linspace(0, pos.size - 1, min(pos.size, max_devices)).astype(int))
    return pos[pick]


def report_material(
    traces: PulseTraces,
    fit: PulseResponseFit,
    seed: int = 0,
    max_devices: int = MAX_SHOWN_DEVICES,
) -> PulseFitFigures:
    """Everything the fit report shows: shown traces and their simulation, pairs, curves.

    ``seed`` seeds the simulation (the report's ``seed``; the preset is simulated with
    ``seed + 11``).
    """
    rows = shown_rows(traces, fit, max_devices)
    measured = traces.conductance_s[rows].astype(np.float64)
    simulated = simulate_like(traces, fit, rows, seed=seed + 11)
    pulses = traces.pulses_of(rows)
    step_pairs: dict[str, dict[int, StepPairs]] = {}
    for name, data in (("measured", measured), ("simulated", simulated)):
        step_pairs[name] = {}
        for sign in (1, -1):
            b = build_pairs(data, pulses, sign)
            inc = np.abs((b.y1 - b.y0) / b.n)
            step_pairs[name][sign] = StepPairs(b.z, b.y0, inc, b.weight > 0)
    curves = {sign: StepCurve(*step_curve(fit, sign > 0)) for sign in (1, -1)}
    return PulseFitFigures(
        rows,
        measured,
        simulated,
        pulses,
        bool(traces.shared_pulses),
        step_pairs,
        curves,
        pair_residuals(traces, fit),
    )
