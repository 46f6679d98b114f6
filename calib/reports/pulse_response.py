"""Report of a pulse-response fit: PNG plots, ``summary.md`` and ``summary.json``.

Plots (matplotlib, Agg backend):

``mean_trace.png``           measured mean trace ± device-to-device spread, and the same for
                             a simulation of the fitted preset (full sequence, then the
                             average branch of each direction vs pulse number)
``step_vs_conductance.png``  step per pulse vs conductance for up and down pulses: measured
                             (binned by the instrument read, free of regression to the mean),
                             simulated from the preset (binned the same way), and the model
                             curve of the median device with the 10-90 % device band
``residuals.png``            standardized residuals (histogram vs N(0,1)), their
                             autocorrelation by lag, and the mean residual vs conductance
``parameters.png``           per-device parameter histograms with the fitted population
``model_selection.png``      ΔBIC of every family (``--model auto`` only)

The report only renders: the traces shown, their simulation, the pairs, residuals and step
curves are the fit's own :class:`~fitting.diagnostics.PulseFitFigures` (``fit.figures``,
made by :func:`fitting.diagnostics.report_material`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from calib.reports.figures import save_figure
from calib.runtime.json_values import plain_json
from fitting.diagnostics import PulseFitFigures
from fitting.families import population_step
from fitting.pulse_response import PulseResponseFit

__all__ = ["write_pulse_response_report"]

UP_COLOR, DOWN_COLOR, MODEL_COLOR = "#1f77b4", "#d62728", "#2ca02c"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": 110})
    return plt


def write_pulse_response_report(
    report_dir: str | Path,
    fit: PulseResponseFit,
    preset: dict[str, Any],
    figures_sample: str | None = None,
) -> list[Path]:
    """Write the plots and summaries of ``fit`` to ``report_dir``; returns the files.

    ``fit.figures`` must hold what the plots show (:func:`fitting.diagnostics.report_material`);
    ``figures_sample`` says which devices they come from when not from every fitted device
    (a large file: a sample of it), stated in the summaries.
    """
    figures = fit.figures
    if figures is None:
        raise ValueError(
            "the fit carries no report figures: set fit.figures = "
            "fitting.diagnostics.report_material(traces, fit, seed) first"
        )
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    unit, scale = _unit(fit)
    files = [
        _mean_trace(out, figures, unit, scale, fit.n_fitted),
        _steps(out, fit, figures, unit, scale),
        _residuals(out, figures, unit, scale),
        _parameters(out, fit, unit, scale),
    ]
    if len(fit.model_selection) > 1:
        files.append(_model_selection(out, fit))
    files += _summaries(out, fit, preset, files, figures_sample)
    return files


def _unit(fit: PulseResponseFit) -> tuple[str, float]:
    if fit.conductance_unit != "S":
        return fit.conductance_unit, 1.0
    span = abs(fit.parameters["w_max"]) + abs(fit.g_offset_s)
    for name, factor in (("mS", 1e-3), ("µS", 1e-6), ("nS", 1e-9)):
        if span >= factor:
            return name, factor
    return "S", 1.0


# ------------------------------------------------------------------------------ branches
def _shown(n_shown: int, n_fitted: int) -> str:
    """``"125 fitted devices"``, or ``"512 of 4096 fitted devices (evenly spaced subsample)"``."""
    if n_shown >= n_fitted:
        return f"{n_shown} fitted devices"
    return f"{n_shown} of {n_fitted} fitted devices (evenly spaced subsample)"


def _branches(pulses: np.ndarray, sign: int) -> list[tuple[int, int]]:
    """(start read, end read) of every run of pulses of ``sign`` (start = read before)."""
    out = []
    k, n = 1, pulses.size
    while k < n:
        if np.sign(pulses[k]) == sign:
            end = k
            while end + 1 < n and np.sign(pulses[end + 1]) == sign:
                end += 1
            out.append((k - 1, end))
            k = end + 1
        else:
            k += 1
    return out


def _branch_stack(g: np.ndarray, pulses: np.ndarray, sign: int) -> np.ndarray:
    """Reads of every branch of ``sign`` of every row, aligned at the branch start."""
    segs = []
    for r in range(g.shape[0]):
        p = pulses if pulses.ndim == 1 else pulses[r]
        for a, b in _branches(p, sign):
            segs.append(g[r, a : b + 1])
    if not segs:
        return np.zeros((0, 0))
    width = max(s.size for s in segs)
    out = np.full((len(segs), width), np.nan)
    for i, s in enumerate(segs):
        out[i, : s.size] = s
    return out


def _band(ax, x, data, color, label, style="-"):
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, sd = np.nanmean(data, axis=0), np.nanstd(data, axis=0)
    ax.plot(x, mean, style, color=color, lw=1.6, label=label)
    ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.18, lw=0)


def _mean_trace(out, figures: PulseFitFigures, unit, scale, n_fitted) -> Path:
    measured, simulated, n_shown = figures.measured, figures.simulated, figures.n_shown
    plt = _plt()
    fig = plt.figure(figsize=(11, 7.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.1, 1])
    ax = fig.add_subplot(grid[0, :])
    x = np.arange(measured.shape[1])
    if figures.shared_pulses:
        _band(ax, x, measured / scale, "black", "measured mean ± 1 sd (devices)")
        _band(ax, x, simulated / scale, MODEL_COLOR, "fitted preset, simulated", "--")
        for a, b in _branches(figures.pulses, 1):
            ax.axvspan(a, b, color=UP_COLOR, alpha=0.05, lw=0)
        for a, b in _branches(figures.pulses, -1):
            ax.axvspan(a, b, color=DOWN_COLOR, alpha=0.05, lw=0)
        ax.set_title(
            f"Mean trace of {_shown(n_shown, n_fitted)} (blue: up pulses, red: down pulses)"
        )
    else:  # every device has its own sequence: show a few traces and their simulations
        pick = np.unique(np.linspace(0, n_shown - 1, min(n_shown, 12)).astype(int))
        for n, i in enumerate(pick):
            ax.plot(
                x,
                measured[i] / scale,
                "-",
                color="black",
                lw=1,
                label="measured" if n == 0 else None,
            )
            ax.plot(
                x,
                simulated[i] / scale,
                "--",
                color=MODEL_COLOR,
                lw=1,
                label="fitted preset, simulated" if n == 0 else None,
            )
        ax.set_title(f"{pick.size} of {n_shown} traces (each device has its own pulse sequence)")
    ax.set_xlabel("read index")
    ax.set_ylabel(f"conductance ({unit})")
    ax.legend(loc="best", fontsize=9)
    pulses = figures.pulses
    for col, (sign, name, color) in enumerate(((1, "up", UP_COLOR), (-1, "down", DOWN_COLOR))):
        axd = fig.add_subplot(grid[1, col])
        meas = _branch_stack(measured, pulses, sign)
        sim = _branch_stack(simulated, pulses, sign)
        if meas.size:
            xb = np.arange(meas.shape[1])
            _band(axd, xb, meas / scale, color, "measured ± 1 sd")
            if sim.size:
                _band(axd, np.arange(sim.shape[1]), sim / scale, MODEL_COLOR, "fitted preset", "--")
        axd.set_xlabel(f"pulses into the {name} branch")
        axd.set_ylabel(f"conductance ({unit})")
        axd.set_title(f"{name} branches, all devices and cycles")
        axd.legend(loc="best", fontsize=9)
    fig.tight_layout()
    path = out / "mean_trace.png"
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def _binned(z, y0, inc, valid, n_bins=24):
    zv, yv, iv = z[valid], y0[valid], inc[valid]
    if zv.size < 10:
        return None
    edges = np.unique(np.quantile(zv, np.linspace(0, 1, n_bins + 1)))
    idx = np.clip(np.searchsorted(edges, zv, side="right") - 1, 0, edges.size - 2)
    cnt = np.bincount(idx, minlength=edges.size - 1)
    keep = cnt >= 5
    mx = np.bincount(idx, yv, edges.size - 1)[keep] / cnt[keep]
    my = np.bincount(idx, iv, edges.size - 1)[keep] / cnt[keep]
    var = np.bincount(idx, iv**2, edges.size - 1)[keep] / cnt[keep] - my**2
    return mx, my, np.sqrt(np.maximum(var, 0) / cnt[keep])


def _steps(out, fit, figures: PulseFitFigures, unit, scale) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (sign, name, color) in zip(
        axes, ((1, "up", UP_COLOR), (-1, "down", DOWN_COLOR)), strict=True
    ):
        for source, label, mk, col in (  # simulated first: the measured points stay on top
            ("simulated", "simulated preset", "s", MODEL_COLOR),
            ("measured", "measured", "o", color),
        ):
            b = figures.step_pairs[source][sign]
            res = _binned(b.z, b.y0, b.increment, b.valid)
            if res is not None:
                mx, my, se = res
                ax.errorbar(
                    mx / scale,
                    my / scale,
                    yerr=se / scale,
                    fmt=mk,
                    ms=3.5 if label == "measured" else 5,
                    mfc=col if label == "measured" else "none",
                    color=col,
                    label=f"{label} (binned by instrument read)",
                    alpha=0.9,
                    zorder=3 if label == "measured" else 2,
                )
        curve = figures.step_curves[sign]
        g, q50, q10, q90 = curve.conductance, curve.median, curve.q10, curve.q90
        ax.plot(g / scale, q50 / scale, "-", color="black", lw=1.4, label="model, median device")
        ax.fill_between(
            g / scale,
            q10 / scale,
            q90 / scale,
            color="gray",
            alpha=0.2,
            lw=0,
            label="model, 10-90 % of devices",
        )
        ax.set_xlabel(f"conductance before the pulse ({unit})")
        ax.set_ylabel(f"|step| per pulse ({unit})")
        ax.set_title(f"{name} pulses: step vs conductance ({fit.model})")
        ax.set_ylim(bottom=0)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(_shown(figures.n_shown, fit.n_fitted), fontsize=10)
    fig.tight_layout()
    path = out / "step_vs_conductance.png"
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def _residuals(out, figures: PulseFitFigures, unit, scale) -> Path:
    plt = _plt()
    res = figures.residuals
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    std = np.concatenate([r.standardized[r.valid] for r in res])
    std = std[np.isfinite(std)]
    ax = axes[0]
    if std.size:
        lim = max(4.0, float(np.quantile(np.abs(std), 0.999)))
        ax.hist(
            std,
            bins=80,
            range=(-lim, lim),
            density=True,
            color="gray",
            alpha=0.7,
            label="residuals / model std",
        )
        x = np.linspace(-lim, lim, 200)
        ax.plot(
            x, np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi), color="black", lw=1.2, label="N(0, 1)"
        )
        ax.set_title(f"Standardized residuals (sd {np.std(std):.2f})")
    ax.set_xlabel("standardized residual")
    ax.set_ylabel("probability density")
    ax.legend(fontsize=8)
    ax = axes[1]
    lags = np.arange(0, 6)
    for r, color, name in ((res[0], UP_COLOR, "up"), (res[1], DOWN_COLOR, "down")):
        u = np.where(r.valid, r.residual, np.nan)
        acf = []
        for lag in lags:
            a, b = u[:, : u.shape[1] - lag], u[:, lag:]
            with np.errstate(all="ignore"):
                acf.append(np.nanmean(a * b) / np.nanmean(u * u))
        ax.plot(lags, acf, "o-", color=color, label=name)
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(-0.5, color="gray", lw=0.8, ls=":", label="−0.5: read noise only")
    ax.set_xlabel("lag (pairs)")
    ax.set_ylabel("autocorrelation of residuals")
    ax.set_title("Residual autocorrelation (lag 1 < 0: read noise)")
    ax.legend(fontsize=8)
    ax = axes[2]
    for r, color, name in ((res[0], UP_COLOR, "up"), (res[1], DOWN_COLOR, "down")):
        binned = _binned(r.z, r.y0, r.residual, r.valid)
        if binned is not None:
            mx, my, se = binned
            ax.errorbar(
                mx / scale, my / scale, yerr=se / scale, fmt="o-", ms=3, color=color, label=name
            )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel(f"conductance ({unit})")
    ax.set_ylabel(f"mean residual ({unit})")
    ax.set_title("Mean residual vs conductance (±1 SE)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "residuals.png"
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def _parameters(out, fit, unit, scale) -> Path:
    plt = _plt()
    pd, p = fit.per_device, fit.parameters
    panels = [
        ("delta_up", "Δ⁺ (step at g_offset)", unit, scale, None),
        ("delta_down", "Δ⁻ (step at g_offset)", unit, scale, None),
        ("w_max", "b⁺ (upper bound − g_offset)", unit, scale, ("w_max", "w_max_dtod", True)),
        ("w_min", "b⁻ (lower bound − g_offset)", unit, scale, ("w_min", "w_min_dtod", True)),
    ]
    for extra in ("gamma_up", "gamma_down", "pow_gamma_up", "pow_gamma_down"):
        if extra in pd:
            panels.append((extra, extra, "1", 1.0, None))
    cols = 3 if len(panels) > 4 else 2
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    steps_mean = {"delta_up": population_step(p, True), "delta_down": population_step(p, False)}
    for ax, (key, title, u, sc, pop) in zip(axes.flat, panels, strict=False):
        x = np.asarray(pd[key], dtype=float)
        x = x[np.isfinite(x)]
        if x.size == 0:
            ax.set_visible(False)
            continue
        ax.hist(
            x / sc,
            bins=max(10, min(60, x.size // 4)),
            density=True,
            color="gray",
            alpha=0.7,
            label=f"{x.size} devices",
        )
        mu = sd = None
        if key in steps_mean:
            mu = steps_mean[key]
            sd = p["dw_min"] * math.hypot(p["dw_min_dtod"], p.get("up_down_dtod", 0.0))
        elif pop is not None and fit.estimates[pop[0]].method != "not identified":
            mu, sd = p[pop[0]], abs(p[pop[0]]) * p[pop[1]]
        if mu is not None and sd and sd > 0:
            grid = np.linspace(x.min(), x.max(), 200)
            dens = np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
            ax.plot(
                grid / sc, dens * sc, color=MODEL_COLOR, lw=1.6, label="population (noise removed)"
            )
        ax.set_title(title)
        ax.set_xlabel(u)
        ax.set_ylabel("devices (density)" if u == "1" else f"devices (density, 1/{u})")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Per-device estimates and the fitted population (device-to-device spread)")
    fig.tight_layout()
    path = out / "parameters.png"
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def _model_selection(out, fit) -> Path:
    plt = _plt()
    rows = [
        r for r in fit.model_selection if r.get("bic") is not None and np.isfinite(r["delta_bic"])
    ]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [r["family"] for r in rows]
    vals = [max(r["delta_bic"], 0.0) + 1.0 for r in rows]
    colors = [MODEL_COLOR if r["family"] == fit.model else "gray" for r in rows]
    ax.barh(names[::-1], vals[::-1], color=colors[::-1])
    ax.set_xscale("log")
    ax.axvline(11.0, color="black", ls=":", lw=1, label="ΔBIC = 10")
    ax.set_xlabel("ΔBIC + 1 (GMM criterion; lower is better)")
    ax.set_title(f"Model selection: {fit.model} chosen")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "model_selection.png"
    path = save_figure(fig, path)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ summaries
def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    return f"{value:.4g}"


def _interval(interval: Any) -> str:
    """A 95 % interval as "lower-upper" ("lower-∞" unbounded above; "" where the standard
    error's symmetric interval applies)."""
    if not interval:
        return ""
    low, high = interval
    return f"{low:.4g}-{'∞' if high is None else format(high, '.4g')}"


def _summaries(
    out: Path,
    fit: PulseResponseFit,
    preset: dict,
    figures: list[Path],
    figures_sample: str | None = None,
) -> list[Path]:
    units = fit.units()
    lines = [
        f"# Pulse-response fit: {fit.model}",
        "",
        f"- input: `{preset['provenance'].get('input_file')}` "
        f"(sha256 `{str(preset['provenance'].get('input_sha256'))[:16]}…`)",
        f"- devices: {fit.n_devices} in the file, {fit.n_fitted} fitted; excluded: "
        + (", ".join(f"{v} {k.replace('_', ' ')}" for k, v in fit.excluded.items()) or "none"),
        f"- reference conductance g_offset_s = {fit.g_offset_s:.6g} {fit.conductance_unit}; "
        f"read noise {fit.read_noise_s:.3g} {fit.conductance_unit}",
        f"- software {preset['provenance'].get('software_version')}, "
        f"{preset['provenance'].get('created')}",
        "",
        "## Population parameters (aihwkit names)",
        "",
        "| parameter | value | std. error | 95 % interval | method | unit |",
        "|---|---|---|---|---|---|",
    ]
    for name, est in fit.estimates.items():
        lines.append(
            f"| `{name}` | {_fmt(est.value)} | {_fmt(est.stderr)} | {_interval(est.interval)} | "
            f"{est.method} | {units.get(name, '')} |"
        )
    lines += ["", "## Noise", ""]
    for k, v in fit.noise.items():
        lines.append(f"- {k}: {_fmt(v) if not isinstance(v, bool) else v}")
    if fit.predictive:
        pr = fit.predictive
        lines += [
            "",
            "## Posterior predictive check (simulation of this preset)",
            "",
            f"- largest deviation of the mean trace: {pr['mean_error_of_span']:.1%} of the "
            f"measured conductance span (rms {pr['mean_rms_error_of_span']:.1%})",
        ]
        if fit.fit_status:
            st = fit.fit_status
            lines.append(f"- verdict: **{st['status'].replace('_', ' ')}**: {st['reason']}")
            if st.get("suggestion"):
                lines.append(f"- what to do: {st['suggestion']}")
        if "spread_ratio" in pr:
            lines.append(
                f"- device-to-device spread, simulated / measured: {pr['spread_ratio']:.2f}"
            )
    if fit.model_selection:
        lines += [
            "",
            "## Model selection (GMM information criteria, lowest BIC first)",
            "",
            "| family | J | dof | ΔAIC | ΔBIC | equivalent here to | note | relation |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in fit.model_selection:
            lines.append(
                f"| {r['family']} | {_fmt(r['j_statistic'])} | {r['degrees_of_freedom']} | "
                f"{_fmt(r['delta_aic'])} | {_fmt(r['delta_bic'])} | "
                f"{', '.join(r['equivalent_to']) or ''} | {r['note']} | {r.get('relation', '')} |"
            )
    if fit.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in fit.notes]
    lines += ["", "## Figures", ""]
    if figures_sample:
        lines += [f"Traces and residuals of {figures_sample}.", ""]
    lines += [f"![{f.stem}]({f.name})" for f in figures]
    md = out / "summary.md"
    md.write_text("\n".join(lines) + "\n")
    doc = {
        "model": fit.model,
        "parameters": dict(fit.parameters),  # the estimates in the preset's layout
        "uncertainty": dict(fit.uncertainty),
        "uncertainty_method": dict(fit.uncertainty_method),
        "interval95": dict(fit.intervals),
        "units": units,
        "g_offset_s": fit.g_offset_s,
        "read_noise_s": fit.read_noise_s,
        "noise": fit.noise,
        "n_devices": fit.n_devices,
        "n_fitted": fit.n_fitted,
        "excluded": fit.excluded,
        "model_selection": fit.model_selection,
        "predictive": fit.predictive,
        "fit_status": fit.fit_status,
        "diagnostics": fit.diagnostics,
        "notes": fit.notes,
        "figures": [f.name for f in figures],
        "figures_sample": figures_sample,
        "provenance": preset.get("provenance", {}),
    }
    js = out / "summary.json"
    js.write_text(json.dumps(plain_json(doc), indent=2, allow_nan=False) + "\n")
    return [md, js]
