"""Figures of a validation report (PNG, matplotlib's object API: no global backend change).

``accuracy_vs_time.png``  left: test accuracy (%) against time after programming for each
                          source, mean and a ±1 standard-deviation band over repeats; right:
                          the gaps fitted - truth and fitted - chip (percentage points) with
                          95 % confidence bars and the target bands (±1 pp, ±2 pp)
``predictive_check.png``  the preset's own campaign, measured (solid, 5-95 % band) against
                          simulated from the preset (dashed, hatched band), with the
                          discrepancy score: conductance vs read for a pulse response, vs
                          time after programming per target level for a PCM drift campaign
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calib.reports.figures import save_figure
from calib.validate.predictive import PredictiveCheck

__all__ = ["format_time", "plot_accuracy", "plot_predictive"]

COLORS = {"fitted": "#1f77b4", "truth": "#2ca02c", "chip": "#d62728"}
LABELS = {"fitted": "simulated, fitted preset", "truth": "simulated, true device", "chip": "chip"}
GAP_COLORS = {"fitted - truth": "#2ca02c", "fitted - chip": "#d62728"}
DPI = 120


def format_time(t: float) -> str:
    """A short human label for a time in seconds (``1 s``, ``1 h``, ``1 d``, ``1 y``)."""
    for unit, seconds in (("y", 365 * 86400.0), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t >= seconds:
            return f"{t / seconds:.3g} {unit}"
    return f"{t:.3g} s"


def _time_axis(ax: Any, times: Sequence[float]) -> None:
    if min(times) > 0:
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xticks(list(times))
    ax.set_xticklabels([format_time(t) for t in times])
    ax.minorticks_off()
    ax.set_xlabel("time after programming (t_inference)")
    ax.grid(True, alpha=0.3)


def _save(fig: Figure, path: str | Path) -> Path:
    """Save as ``path`` in the current figure format (:mod:`calib.reports.figures`)."""
    FigureCanvasAgg(fig)
    return save_figure(fig, path, dpi=DPI, bbox_inches="tight")


def plot_accuracy(report: Mapping[str, Any], path: str | Path) -> Path:
    """``accuracy_vs_time.png`` from a report document (see :mod:`calib.validate.report`)."""
    times = [float(t) for t in report["times_s"]]
    fig = Figure(figsize=(11.5, 4.6))
    ax, gx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.35, 1.0]})
    for name, res in report["sources"].items():
        mean, std = np.asarray(res["mean"]) * 100, np.asarray(res["std"]) * 100
        color = COLORS.get(name, "k")
        ax.plot(times, mean, "o-", color=color, lw=2, label=f"{LABELS.get(name, name)}")
        ax.fill_between(times, mean - std, mean + std, color=color, alpha=0.10, lw=0)
        for edge in (mean - std, mean + std):  # band edges keep overlapping bands apart
            ax.plot(times, edge, color=color, lw=0.8, ls="--", alpha=0.7)
    clean = report["network"].get("float_test_accuracy")
    if clean is not None:
        ax.axhline(100 * clean, color="0.4", ls=":", lw=1.2, label="float weights, no noise")
    _time_axis(ax, times)
    ax.set_ylabel("test accuracy (%)")
    net = report["network"]
    ax.set_title(
        f"{net['kind'].upper()} on {net['dataset']}: mean, ±1 std band (dashed) of "
        f"{report['options']['repeats']} repeats"
    )
    ax.legend(loc="lower left", fontsize=9)
    targets = report.get("targets", {})
    for name, gap in report["gaps_pp"].items():
        color = GAP_COLORS.get(name, "k")
        gx.errorbar(
            times,
            gap["mean"],
            yerr=1.96 * np.asarray(gap["standard_error"]),
            fmt="o-",
            color=color,
            capsize=4,
            lw=2,
            label=name,
        )
        limit = targets.get(name, {}).get("limit_pp")
        if limit is not None:
            gx.axhspan(-limit, limit, color=color, alpha=0.08, lw=0)
            gx.axhline(limit, color=color, ls="--", lw=0.8)
            gx.axhline(-limit, color=color, ls="--", lw=0.8)
    gx.axhline(0.0, color="0.3", lw=0.8)
    _time_axis(gx, times)
    gx.set_ylabel("accuracy gap (percentage points)")
    gx.set_title("gaps, 95 % confidence; dashed: targets (1 pp, 2 pp)")
    if report["gaps_pp"]:
        gx.legend(loc="best", fontsize=9)
    else:
        gx.text(0.5, 0.5, "no truth or chip: no gap", ha="center", transform=gx.transAxes)
    fig.tight_layout()
    return _save(fig, path)


def _band(ax: Any, x: np.ndarray, stats: Mapping[str, np.ndarray], i: int, **style: Any) -> None:
    us = 1e6
    predicted = style.pop("predicted")
    color = style["color"]
    ax.plot(x, stats["mean"][i] * us, ls="--" if predicted else "-", lw=1.8, **style)
    if predicted:
        ax.fill_between(
            x, stats["q05"][i] * us, stats["q95"][i] * us, facecolor="none",
            edgecolor=color, hatch="///", lw=0.0, alpha=0.55,
        )  # fmt: skip
    else:
        ax.fill_between(x, stats["q05"][i] * us, stats["q95"][i] * us, color=color, alpha=0.2)


def plot_predictive(check: PredictiveCheck, path: str | Path, max_levels: int = 6) -> Path:
    """``predictive_check.png``: measured vs predicted campaign (see the module doc)."""
    fig = Figure(figsize=(11.5, 6.4))
    ax, dx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    x = np.asarray(check.x, dtype=float)
    n = len(check.groups)
    shown = np.unique(np.linspace(0, n - 1, min(n, max_levels)).round().astype(int))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf"]
    for k, i in enumerate(shown):
        if n == 1:  # one group: measured and predicted in two colours
            c_meas, c_pred, level = palette[0], palette[1], ""
        else:
            c_meas = c_pred = palette[k % len(palette)]
            level = f" {check.groups[i].replace('uS', 'µS')}"
        _band(ax, x, check.measured, i, color=c_meas, predicted=False, label=f"measured{level}")
        _band(ax, x, check.predicted, i, color=c_pred, predicted=True, label=f"predicted{level}")
        stats = ("mean", "q05", "q95") if n == 1 else ("mean",)
        for stat, style in zip(stats, ("-", ":", "--"), strict=False):
            diff = (check.predicted[stat][i] - check.measured[stat][i]) / check.span_s * 100
            label = f"{stat}" if n == 1 else None
            dx.plot(x, diff, ls=style, color=c_pred, lw=1.2, label=label)
    dx.axhline(0.0, color="0.3", lw=0.8)
    dx.set_ylabel("predicted - measured\n(% of span)")
    if n == 1:
        dx.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    else:
        dx.set_title("difference of the level means", fontsize=9)
    if check.campaign == "drift":
        ax.set_xscale("log")
    dx.set_xlabel(check.x_label)
    ax.set_ylabel("conductance (µS)")
    floor = "" if not np.isfinite(check.floor) else f" (sampling floor {check.floor:.2%})"
    ax.set_title(
        f"predictive check, {check.campaign.replace('_', ' ')} of {check.n_devices} devices: "
        f"discrepancy {check.score:.2%} of the span{floor}\n"
        "lines: mean; bands: 5-95 % of devices (solid: measured, hatched: predicted)"
    )
    for a in (ax, dx):
        a.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, path)
