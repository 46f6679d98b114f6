"""Report of a PCM noise-model fit: PNG plots and ``summary.md``.

Plots (matplotlib, Agg backend), conductances in µS:

``prog_noise.png``    σ_prog per target level (± standard error) and the fitted polynomial
                      with its one-standard-error band; the read noise removed at each level
                      and the published curve for reference
``drift_nu.png``      per-device drift exponents ν vs target, the per-level μ_ν ± σ_ν
                      (corrected for estimation noise), and both fitted forms (clipped-log
                      and smooth table) as μ_ν(g) with μ_ν ± σ_ν bands
``read_noise.png``    per-device Q_s vs normalized conductance, per-level rms values and the
                      fitted min(a/x^b, c), log-log
``drift_traces.png``  measured G(t)/G(t0) of a few devices per level with their per-device
                      power laws, and the population μ_ν and 10-90 % band of ν of the model
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calib.reports.figures import save_figure
from fitting.pcm import PcmFit, published_section
from fitting.pcm_model import evaluate_section, polynomial_sigma
from fitting.pcm_read_noise import X_FLOOR

__all__ = ["write_pcm_report"]

MAX_SCATTER = 20000
TRACE_LEVELS = 4
TRACES_PER_LEVEL = 4
FIT_COLOR, ALT_COLOR, DATA_COLOR, PUB_COLOR = "#2ca02c", "#9467bd", "#1f77b4", "#7f7f7f"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": 110})
    return plt


def _count(n_shown: int, n_total: int) -> str:
    """Legend text: ``"1024 devices"`` or ``"20000 of 65536 devices (random subsample)"``."""
    if n_shown >= n_total:
        return f"{n_total} devices"
    return f"{n_shown} of {n_total} devices (random subsample)"


def _subsample(n: int, k: int, seed: int = 0) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def write_pcm_report(fit: PcmFit, report_dir: str | Path) -> list[Path]:
    """Write the plots and ``summary.md`` of ``fit`` to ``report_dir``; returns the files."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    files = []
    for name, draw in (
        ("prog_noise.png", _prog_noise),
        ("drift_nu.png", _drift_nu),
        ("read_noise.png", _read_noise),
        ("drift_traces.png", _drift_traces),
    ):
        fig = draw(plt, fit)
        if fig is None:
            continue
        fig.tight_layout()
        files.append(save_figure(fig, out / name))
        plt.close(fig)
    summary = out / "summary.md"
    summary.write_text(_summary(fit))
    files.append(summary)
    return files


def _prog_noise(plt, fit: PcmFit):
    p = fit.prog
    if p is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    g = np.linspace(0, max(p.level_g_s.max(), fit.g_max_s), 200)
    sig, band = p.sigma(g), p.band(g)
    ax.fill_between(g * 1e6, (sig - band) * 1e6, (sig + band) * 1e6, color=FIT_COLOR, alpha=0.25)
    ax.plot(g * 1e6, sig * 1e6, color=FIT_COLOR, label=f"fit, degree {p.degree} (±1 SE)")
    ax.errorbar(
        p.level_g_s * 1e6,
        p.level_sigma_s * 1e6,
        yerr=p.level_sigma_se_s * 1e6,
        fmt="o",
        color=DATA_COLOR,
        ms=4,
        label="per level (read noise removed)",
    )
    ax.plot(p.level_g_s * 1e6, p.level_read_s * 1e6, ":", color="k", label="read noise removed")
    pub = polynomial_sigma(np.array(published_section()["prog_noise"]["coefficients_s"]), g / 25e-6)
    ax.plot(g * 1e6, pub * 1e6, "--", color=PUB_COLOR, label="published (aihwkit)")
    ax.set(
        xlabel="target conductance g_T (µS)",
        ylabel="σ_prog (µS)",
        title=f"Programming noise ({' + '.join(p.sources)})",
    )
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig


def _drift_nu(plt, fit: PcmFit):
    d = fit.drift
    if d is None:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    use = np.flatnonzero(d.levels.index >= 0)
    sel = use[_subsample(use.size, MAX_SCATTER)]
    g_dev = d.levels.g_target_s[d.levels.index[sel]]
    jitter = 1 + 0.015 * np.random.default_rng(1).standard_normal(sel.size)
    ax.plot(
        g_dev * jitter * 1e6,
        d.device.nu[sel],
        ".",
        ms=1.5,
        alpha=0.25,
        color=DATA_COLOR,
        label=f"{_count(sel.size, use.size)} (ν estimates)",
    )
    gl = d.levels.g_target_s
    ax.errorbar(
        gl * 1e6,
        d.level_mu,
        yerr=d.level_sigma,
        fmt="o",
        color="k",
        ms=4,
        capsize=3,
        label="per level μ_ν ± σ_ν (deconvolved)",
    )
    g = np.geomspace(gl.min(), gl.max(), 200)
    x = g / d.g_max_s
    for name, mu_f, sig_f, color in (
        ("clipped-log", d.mu_fit, d.sigma_fit, FIT_COLOR),
        ("table", d.mu_table, d.sigma_table, ALT_COLOR),
    ):
        chosen = " (preset)" if name == d.form else ""
        mu, sig = mu_f(x), sig_f(x)
        ax.plot(g * 1e6, mu, color=color, label=f"{name}{chosen}: μ_ν")
        ax.fill_between(g * 1e6, mu - sig, mu + sig, color=color, alpha=0.15)
    ax.set(
        xscale="log",
        xlabel="target conductance g_T (µS)",
        ylabel="drift exponent ν",
        title=f"Drift exponent (better by leave-one-level-out: {d.comparison.get('better')})",
    )
    ax.legend(fontsize=8)
    return fig


def _read_noise(plt, fit: PcmFit):
    r = fit.read_noise
    if r is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    shown = np.flatnonzero(r.device_x >= X_FLOOR)  # below the floor x has no meaning
    sel = shown[_subsample(shown.size, MAX_SCATTER)]
    ax.plot(
        r.device_x[sel],
        r.device_q[sel],
        ".",
        ms=1.5,
        alpha=0.25,
        color=DATA_COLOR,
        label=f"{_count(sel.size, shown.size)} ({r.origin})",
    )
    ax.errorbar(
        r.level_x, r.level_q, yerr=r.level_q_se, fmt="o", color="k", ms=4, label="per level (rms)"
    )
    lo = float(np.min(r.device_x[sel])) if sel.size else X_FLOOR
    x = np.geomspace(max(lo, X_FLOOR), max(1.0, float(r.device_x.max())), 200)
    ax.plot(x, r.q_s(x), color=FIT_COLOR, label=f"fit: a={r.q.a:.4g}, b={r.q.b:.3g}, c={r.q.c:.3g}")
    pub = evaluate_section(published_section(), x * 25e-6)["q_s"]
    ax.plot(x, pub, "--", color=PUB_COLOR, label="published (aihwkit)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=f"x = {r.conductance} / g_max",
        ylabel="Q_s (relative read noise per time factor)",
        title="Read noise",
    )
    ax.legend(fontsize=8)
    return fig


def _drift_traces(plt, fit: PcmFit):
    d, sample = fit.drift, fit.drift_sample
    if d is None or sample is None:
        return None
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    n_lv = d.levels.n_levels
    picks = np.unique(np.linspace(0, n_lv - 1, min(TRACE_LEVELS, n_lv)).astype(int))
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, picks.size))
    t_grid = np.geomspace(d.t0_s, d.t_max_s, 100)
    for color, k in zip(colors, picks, strict=True):
        members = np.flatnonzero(d.levels.index == k)[:TRACES_PER_LEVEL]
        for i in members:
            g, t = sample.conductance_s[i], sample.time_s[i]
            ok = np.isfinite(g) & (t >= d.t0_s)
            g0 = np.exp(d.device.log_g0[i])
            ax.plot(t[ok], g[ok] / g0, ".", ms=3, color=color, alpha=0.6)
            ax.plot(t_grid, (t_grid / d.t0_s) ** (-d.device.nu[i]), "-", lw=0.7, color=color)
        x = d.levels.g_target_s[k] / d.g_max_s
        mu, sig = float(d.mu_nu(np.array([x]))[0]), float(d.sigma_nu(np.array([x]))[0])
        lo, hi = np.abs(mu + sig * np.array([-1.2816, 1.2816]))
        ax.fill_between(
            t_grid,
            (t_grid / d.t0_s) ** (-hi),
            (t_grid / d.t0_s) ** (-lo),
            color=color,
            alpha=0.12,
        )
        ax.plot(
            t_grid,
            (t_grid / d.t0_s) ** (-mu),
            "--",
            color=color,
            label=f"{d.levels.g_target_s[k] * 1e6:.3g} µS",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="time since programming t (s)",
        ylabel="G(t) / G(t0)",
        title=f"Drift traces: {TRACES_PER_LEVEL} devices at each of {picks.size} of the {n_lv} "
        "levels\n(dots: reads; thin lines: per-device fits)",
    )
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.1f"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(
        title="target g_T (dashed: model μ_ν,\nband: 10-90 % of ν)",
        title_fontsize=7,
        fontsize=7,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
    )
    return fig


def _summary(fit: PcmFit) -> str:
    sec = fit.section()
    lines = ["# PCM noise-model fit", ""]
    lines += [f"- {line}" for line in fit.summary()]
    lines += [
        "",
        f"g_max = {fit.g_max_s * 1e6:.4g} µS, t0 = {fit.t0_s:g} s, t_read = {fit.t_read_s:g} s",
        f"valid range: {sec['valid_range']}",
        "",
        "| g_T (µS) | σ_prog (µS) | μ_ν | σ_ν | Q_s |",
        "|---|---|---|---|---|",
    ]
    ev = fit.at_levels()
    for k, gk in enumerate(ev["g_target_s"]):
        lines.append(
            f"| {gk * 1e6:.4g} | {ev['sigma_prog_s'][k] * 1e6:.4g} | {ev['mu_nu'][k]:.4g} | "
            f"{ev['sigma_nu'][k]:.4g} | {ev['q_s'][k]:.4g} |"
        )
    return "\n".join(lines) + "\n"
