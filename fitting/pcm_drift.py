"""Conductance drift: per-device exponents ν and their state dependence μ_ν(g_T), σ_ν(g_T).

1. Per device (vectorized over all devices): weighted least squares of
   ln G = ln G0 − ν·ln(t/t0) over the reads at t0 <= t (t0 = first read time, the model is
   not extrapolated below it), weights 1/f(t)² with f(t) = sqrt(ln((t + t_read)/(2 t_read)))
   because the read noise grows with that factor. A second pass removes the bias of ln G
   from read noise (E[ln G] = ln g − Var/2, Var ∝ f(t)²) with the device's own residual
   variance. The intercept ln G0 is the device's conductance at t0 with the read noise of
   all its reads averaged out (used for programming noise). The residual variance
   φ = Σ w r²/(n − 2) estimates Q_s²/n_avg (relative read noise per unit f²), and the
   slope's standard error is sqrt(φ·S0/D).
2. Per target level: maximum likelihood of ν ~ |N(μ_ν, σ_ν)| seen through the slope's
   estimation noise (variance = the level's mean squared standard error), so that σ_ν is
   corrected for read noise (REFERENCES.md [R17], [R18]). Exponent outliers (more than
   6 robust standard deviations from the level median) are excluded and counted. A level
   has few devices (16 in a typical campaign), so its 95 % intervals are small-sample
   ones (:mod:`fitting.pcm_stats`): σ_ν from the adjusted profile likelihood (estimate
   and asymmetric likelihood-ratio interval, ``level_sigma_ci``), μ_ν ± t(n − 1)·SE
   (``level_mu_ci``); the Wald σ̂ ± 1.96 SE covered 91.6 % (benchmarks/RESULTS.md).
3. Population curves: the published clipped-log form and a smoothing-spline table
   (:mod:`fitting.pcm_curves`), compared by leave-one-level-out predictive misfit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from fitting.pcm_curves import (
    ClippedLogFit,
    SmoothTable,
    fit_clipped_log,
    fit_smooth_table,
    leave_one_out_score,
)
from fitting.pcm_data import DriftSample, Levels, Screening, group_levels, screen_devices
from fitting.pcm_model import read_time_factor
from fitting.pcm_stats import chi2_variance_nll, fit_folded_normal, fit_signed_normal
from fitting.population import Z95
from fitting.traces import FitInputError

__all__ = ["DeviceDrift", "DriftFit", "fit_device_drift", "fit_drift"]

MIN_TIMES = 3
OUTLIER_MADS = 6.0
#: the table form must beat the clipped-log form by this much leave-one-out χ² to be chosen
TABLE_MARGIN = 2.0
#: the signed exponent (ν may be negative: upward relaxation) must beat aihwkit's |N(μ, σ)|
#: by this much log-likelihood, summed over levels, to be chosen (same number of parameters)
SIGNED_MARGIN = 2.0
DRIFT_SIGNS = ("absolute", "signed")


@dataclass
class DeviceDrift:
    """Per-device drift fits (devices,); ``ok`` marks devices with a valid fit."""

    nu: np.ndarray
    nu_se: np.ndarray
    log_g0: np.ndarray  # ln of the fitted conductance at t0 (S)
    log_g0_se: np.ndarray  # its standard error (read noise only)
    phi: np.ndarray  # weighted residual variance of ln G per unit f(t)²
    dof: np.ndarray  # residual degrees of freedom
    ok: np.ndarray


def fit_device_drift(
    conductance_s: np.ndarray,
    time_s: np.ndarray,
    t0_s: float,
    t_read_s: float,
    keep: np.ndarray | None = None,
) -> DeviceDrift:
    """Power-law drift fit of every device at once; see the module docstring.

    ``conductance_s`` and ``time_s`` are (devices, times) (NaN: missing read); reads before
    ``t0_s`` are not used.
    """
    g = np.asarray(conductance_s, dtype=float)
    t = np.asarray(time_s, dtype=float)
    use = np.isfinite(g) & (g > 0) & (t >= t0_s * (1 - 1e-9))
    if keep is not None:
        use &= keep[:, None]
    f2 = np.where(use, read_time_factor(np.where(use, t, t0_s), t_read_s) ** 2, 1.0)
    f2 = np.maximum(f2, 1e-12)
    w = np.where(use, 1.0 / f2, 0.0)
    x = np.where(use, np.log(np.where(use, t, t0_s) / t0_s), 0.0)
    y = np.where(use, np.log(np.where(use, g, 1.0)), 0.0)
    n = use.sum(axis=1)
    s0 = w.sum(axis=1)
    sx = (w * x).sum(axis=1)
    sxx = (w * x * x).sum(axis=1)
    d = s0 * sxx - sx * sx
    ok = (n >= MIN_TIMES) & (d > 1e-12 * np.maximum(s0 * sxx, 1e-300))
    d_safe = np.where(ok, d, 1.0)
    dof = np.maximum(n - 2, 1)

    def solve(yy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sy = (w * yy).sum(axis=1)
        sxy = (w * x * yy).sum(axis=1)
        slope = (s0 * sxy - sx * sy) / d_safe
        icpt = (sxx * sy - sx * sxy) / d_safe
        resid = np.where(use, yy - icpt[:, None] - slope[:, None] * x, 0.0)
        return slope, icpt, (w * resid * resid).sum(axis=1) / dof

    slope, icpt, phi = solve(y)
    # E[ln G] = ln g - Var(ln G)/2 with Var(ln G) ≈ φ·f(t)²: undo that time-dependent bias
    slope, icpt, phi = solve(np.where(use, y + 0.5 * phi[:, None] * f2, 0.0))
    nu_se = np.sqrt(np.maximum(phi * s0 / d_safe, 0.0))
    g0_se = np.sqrt(np.maximum(phi * sxx / d_safe, 0.0))
    nan = np.where(ok, 1.0, np.nan)
    return DeviceDrift(-slope * nan, nu_se * nan, icpt * nan, g0_se * nan, phi * nan, dof, ok)


@dataclass
class DriftFit:
    """Drift model fitted from a drift campaign."""

    t0_s: float
    t_max_s: float
    g_max_s: float
    device: DeviceDrift
    levels: Levels
    screening: Screening
    level_mu: np.ndarray
    level_sigma: np.ndarray
    level_mu_se: np.ndarray
    level_sigma_se: np.ndarray
    level_error_rms: np.ndarray  # rms standard error of the per-device ν at each level
    level_mu_ci: np.ndarray  # (levels, 2) 95 % interval of μ_ν (Student t)
    level_sigma_ci: np.ndarray  # (levels, 2) 95 % likelihood-ratio interval of σ_ν
    mu_fit: ClippedLogFit
    sigma_fit: ClippedLogFit
    mu_table: SmoothTable
    sigma_table: SmoothTable
    comparison: dict[str, Any]
    form: str
    notes: list[str] = field(default_factory=list)
    sign: str = "absolute"  # ν ~ |N(μ_ν, σ_ν)| (aihwkit) or "signed": ν ~ N(μ_ν, σ_ν)
    sign_selection: dict[str, Any] = field(default_factory=dict)

    @property
    def level_x(self) -> np.ndarray:
        return self.levels.g_target_s / self.g_max_s

    def mu_nu(self, x: np.ndarray) -> np.ndarray:
        """Fitted μ_ν(x) in the chosen form."""
        return self.mu_fit(x) if self.form == "clipped-log" else self.mu_table(x)

    def sigma_nu(self, x: np.ndarray) -> np.ndarray:
        return self.sigma_fit(x) if self.form == "clipped-log" else self.sigma_table(x)

    def section(self) -> dict[str, Any]:
        """The preset ``drift`` block (datasets/PRESET.md) with both forms and their comparison."""
        clipped = {
            "form": "clipped-log",
            "mu_nu": self.mu_fit.as_dict(),
            "sigma_nu": self.sigma_fit.as_dict(),
            "identified": {"mu_nu": self.mu_fit.identified, "sigma_nu": self.sigma_fit.identified},
        }
        table = {
            "form": "table",
            "x": self.mu_table.x.tolist(),
            "mu_nu": self.mu_table.y.tolist(),
            "sigma_nu": self.sigma_table(self.mu_table.x).tolist(),
        }
        main, other = (clipped, table) if self.form == "clipped-log" else (table, clipped)
        sign = {"sign": self.sign, "sign_selection": self.sign_selection}
        return {
            **main,
            **sign,
            "alternative": {**other, "sign": self.sign},
            "comparison": self.comparison,
        }

    def uncertainty(self) -> dict[str, Any]:
        """Standard errors of the clipped-log coefficients (``drift.mu_nu.a`` ...), their
        covariance matrices (``drift.mu_nu.covariance``: identified coefficients in the
        order a, b, lo, hi, the order of the standard errors) and the curves' one-SE bands
        at the levels (``drift.mu_nu.band``, per ``levels.drift.g_target_s``: over the clip
        choices, which the chosen coefficients' covariance alone leaves out)."""
        out: dict[str, Any] = {}
        bands = self.curve_bands(self.level_x)
        for (name, fit), band in zip(
            (("mu_nu", self.mu_fit), ("sigma_nu", self.sigma_fit)), bands, strict=True
        ):
            for key, se in fit.se.items():
                out[f"drift.{name}.{key}"] = se
            if np.all(np.isfinite(fit.covariance)):
                out[f"drift.{name}.covariance"] = fit.covariance.tolist()
            if np.all(np.isfinite(band)):
                out[f"drift.{name}.band"] = band.tolist()
        return out

    def curve_bands(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One-SE bands of the clipped-log μ_ν(x) and σ_ν(x) (the published form; the
        smoothing-spline table has none)."""
        return self.mu_fit.band(x), self.sigma_fit.band(x)


def _level_populations(
    nu: np.ndarray, nu_se: np.ndarray, levels: Levels, screening: Screening
) -> tuple[np.ndarray, ...]:
    """Per level: (μ, σ, their errors, rms ν error, μ and σ intervals) of |N| and of N, and
    both −log L.

    Returns ``(absolute, signed, nll)``: two 7-tuples of arrays and a dict of summed −log L.
    """
    n_lv = levels.n_levels
    mu, sig, mu_se, sig_se, err = (np.full(n_lv, np.nan) for _ in range(5))
    mu_ci, sig_ci = np.full((n_lv, 2), np.nan), np.full((n_lv, 2), np.nan)
    signed = [np.full(n_lv, np.nan) for _ in range(4)]
    signed_ci = [np.full((n_lv, 2), np.nan), np.full((n_lv, 2), np.nan)]
    nll = {"absolute": 0.0, "signed": 0.0}
    n_negative = 0
    n_total = 0
    for k in range(n_lv):
        members = np.flatnonzero(levels.index == k)
        v = nu[members]
        med = np.median(v)
        mad = 1.4826 * np.median(np.abs(v - med))
        if mad > 0:
            out = np.abs(v - med) > OUTLIER_MADS * mad
            if out.any():
                mask = np.zeros(nu.size, dtype=bool)
                mask[members[out]] = True
                screening.exclude(mask, "drift exponent outlier (> 6 robust SD from level median)")
                levels.index[members[out]] = -1
                members, v = members[~out], v[~out]
        e2 = float(np.mean(nu_se[members] ** 2))
        fit = fit_folded_normal(v, e2)
        mu[k], sig[k], mu_se[k], sig_se[k] = fit.mu, fit.sigma, fit.mu_se, fit.sigma_se
        mu_ci[k], sig_ci[k] = fit.mu_ci, fit.sigma_ci
        # Fewer than 3 devices give no interval (and can leave the numerical covariance
        # undefined); fall back to the normal-theory errors of a mean and an SD.
        spread = np.sqrt(fit.sigma**2 + e2)
        if not np.isfinite(mu_se[k]) or mu_se[k] <= 0:
            mu_se[k] = spread / np.sqrt(members.size)
        if not np.isfinite(sig_se[k]) or sig_se[k] <= 0:
            sig_se[k] = spread / np.sqrt(2.0 * max(members.size - 1, 1))
        err[k] = np.sqrt(e2)
        levels.n_devices[k] = members.size
        sfit = fit_signed_normal(v, e2)
        signed[0][k], signed[1][k], signed[2][k], signed[3][k] = (
            sfit.mu,
            sfit.sigma,
            sfit.mu_se,
            sfit.sigma_se,
        )
        signed_ci[0][k], signed_ci[1][k] = sfit.mu_ci, sfit.sigma_ci
        nll["absolute"] += fit.nll
        nll["signed"] += sfit.nll
        n_negative += int(np.sum(v < 0))
        n_total += int(v.size)
    nll["fraction_negative_estimates"] = n_negative / max(n_total, 1)
    return (mu, sig, mu_se, sig_se, err, mu_ci, sig_ci), (*signed, err, *signed_ci), nll


def spread_growth(
    g: np.ndarray, t: np.ndarray, level_index: np.ndarray, min_devices: int = 8
) -> dict[str, Any] | None:
    """How the spread of ln G(t)/G(t0) across a level's devices grows with L = ln(t/t0).

    Per level and read time, the sample variance v of ln(g(t)/g(t0)) (t0 = the first read
    time, devices with both reads) is compared with V = s²·L² + r (an exponent per device:
    the power law's spread, linear in L) and with V = s²·L + r (a random walk in log time,
    the spread growing as √L), r ≥ 0 the read noise of the two reads, by the likelihood of
    sample variances (:func:`fitting.pcm_stats.chi2_variance_nll`), summed over levels.
    ``level_index`` is the level of each device (-1: not used). None without two levels.
    """
    times = np.broadcast_to(t, g.shape)
    ok = np.isfinite(times) & np.isfinite(g) & (g > 0)
    grid = np.unique(times[ok])
    if grid.size < 3:
        return None
    table = np.full((g.shape[0], grid.size), np.nan)
    table[np.nonzero(ok)[0], np.searchsorted(grid, times[ok])] = g[ok]
    big_l = np.log(grid[1:] / grid[0])
    total = {"linear": 0.0, "sqrt": 0.0}
    n_levels = 0
    for k in range(int(level_index.max()) + 1 if level_index.size else 0):
        rows = level_index == k
        if rows.sum() < min_devices:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.log(table[rows][:, 1:] / table[rows][:, :1])
        n = np.sum(np.isfinite(y), axis=0)
        use = n >= 4
        if use.sum() < 3:
            continue
        v = np.array([np.var(col[np.isfinite(col)], ddof=1) for col in y[:, use].T])
        dof = n[use] - 1
        for law, f in (("linear", big_l[use] ** 2), ("sqrt", big_l[use])):
            total[law] += _variance_law_nll(v, dof, f)
        n_levels += 1
    if n_levels < 2:
        return None
    gain = total["linear"] - total["sqrt"]  # log-likelihood gained by the √L law
    return {
        "criterion": "likelihood of the per-level variances of ln G(t)/G(t0), summed over levels",
        "nll_spread_linear_in_log_t": float(total["linear"]),
        "nll_spread_sqrt_log_t": float(total["sqrt"]),
        "levels": n_levels,
        "better": "sqrt" if gain > SIGNED_MARGIN else "linear",
    }


def _variance_law_nll(v: np.ndarray, dof: np.ndarray, f: np.ndarray) -> float:
    """Least −log L of sample variances ``v`` under V = s²·f + r (s², r > 0)."""

    def nll(p: np.ndarray) -> float:
        return chi2_variance_nll(v, dof, np.exp(p[0]) * f + np.exp(p[1]))

    starts = ([np.log(v.max() / f.max()), np.log(v.min() / 2)], [np.log(1e-4)] * 2)
    return min(
        float(optimize.minimize(nll, np.array(x0), method="Nelder-Mead").fun) for x0 in starts
    )


def _choose_sign(nll: dict[str, float]) -> tuple[str, dict[str, Any]]:
    """aihwkit's |N(μ, σ)| unless the signed exponent is clearly more likely (with the reason)."""
    gain = nll["absolute"] - nll["signed"]  # log-likelihood gained by allowing ν < 0
    chosen = "signed" if gain > SIGNED_MARGIN else "absolute"
    frac = nll["fraction_negative_estimates"]
    if chosen == "signed":
        reason = (
            f"{frac:.0%} of the per-device exponents are negative (conductance relaxing up); "
            f"a signed exponent ν ~ N(μ_ν, σ_ν) is more likely than |N(μ_ν, σ_ν)| by "
            f"Δ log L = {gain:.1f} (> {SIGNED_MARGIN:g}, same number of parameters)"
        )
    else:
        reason = (
            f"|N(μ_ν, σ_ν)| (aihwkit's PCM drift) is not worse than a signed exponent "
            f"(Δ log L of the signed model {gain:.1f} <= {SIGNED_MARGIN:g})"
        )
    return chosen, {
        "criterion": "maximum likelihood of the per-device exponents, summed over levels",
        "nll_absolute": float(nll["absolute"]),
        "nll_signed": float(nll["signed"]),
        "fraction_negative_estimates": float(frac),
        "chosen": chosen,
        "reason": reason,
    }


def fit_drift(
    sample: DriftSample,
    g_max_s: float,
    t_read_s: float,
    t0_s: float | None = None,
    min_devices: int = 8,
) -> DriftFit:
    """Fit per-device exponents and μ_ν(g_T), σ_ν(g_T) from a drift campaign.

    ``t0_s`` defaults to the first read time; reads before it are not used.
    """
    src = sample.source
    t0 = sample.first_read_time() if t0_s is None else float(t0_s)
    notes: list[str] = []
    g, t = sample.conductance_s, sample.time_s
    in_window = np.isfinite(g) & (t >= t0 * (1 - 1e-9))
    n_before = int((np.isfinite(g) & ~in_window).sum())
    if n_before:
        notes.append(f"{n_before} reads before t0 = {t0:g} s not used (outside the drift window)")
    screening = screen_devices(
        np.where(in_window, g, np.nan), sample.converged, MIN_TIMES, positive=True, source=src
    )
    screening.exclude(sample.target_s <= 0, "target 0 S (ln g_T undefined for the drift curves)")
    dev = fit_device_drift(g, t, t0, t_read_s, screening.keep)
    screening.exclude(~dev.ok, "degenerate drift fit (read times do not span a range)")
    levels = group_levels(sample.target_s, screening.keep, min_devices)
    if levels.n_levels < 3:
        raise FitInputError(
            f"{src}: drift needs at least 3 target levels with >= {min_devices} usable devices, "
            f"got {levels.n_levels} (excluded levels: {levels.excluded_levels or 'none'})"
        )
    absolute, signed, nll = _level_populations(dev.nu, dev.nu_se, levels, screening)
    sign, sign_selection = _choose_sign(nll)
    growth = spread_growth(np.where(in_window, g, np.nan), t, levels.index, min_devices)
    if growth is not None:
        sign_selection["spread_growth"] = growth
        if growth["better"] == "sqrt":
            notes.append(
                "drift: the spread of ln G(t)/G(t0) grows like sqrt(ln(t/t0)) (a random walk in "
                "log time) rather than like ln(t/t0), which a per-device exponent implies: the "
                "fitted σ_ν is a compromise over the measured times (see "
                "drift.sign_selection.spread_growth)"
            )
    mu, sig, mu_se, sig_se, err, mu_ci, sig_ci = signed if sign == "signed" else absolute
    if sign == "signed":
        notes.append(f"drift: signed exponent ({sign_selection['reason']})")
    x = levels.g_target_s / g_max_s
    # each level by its own 95 % interval (Student t for μ_ν, the asymmetric likelihood-
    # ratio interval for σ_ν, half-widths / 1.96): with σ_ν's symmetric width/3.92 the
    # curve leant to the low estimates (their errors are the smaller) and its band covered
    # 82 % of the true σ_ν at the levels (benchmarks/RESULTS.md, "PCM curves")
    mu_lo, mu_hi = _side_errors(mu, mu_se, mu_ci)
    sig_lo, sig_hi = _side_errors(sig, sig_se, sig_ci)
    mu_fit = fit_clipped_log(x, mu, mu_lo, mu_hi)
    sigma_fit = fit_clipped_log(x, sig, sig_lo, sig_hi)
    sigma_fit.lo = max(sigma_fit.lo, 0.0)
    mu_table = fit_smooth_table(x, mu, mu_se)
    sigma_table = fit_smooth_table(x, sig, sig_se, floor=0.0)
    comparison = _compare_forms(x, mu, mu_se, sig, sig_se, mu_fit, sigma_fit)
    form = comparison["chosen"]
    t_max = float(np.max(np.where(in_window, t, -np.inf)))
    return DriftFit(
        t0,
        t_max,
        g_max_s,
        dev,
        levels,
        screening,
        mu,
        sig,
        mu_se,
        sig_se,
        err,
        mu_ci,
        sig_ci,
        mu_fit,
        sigma_fit,
        mu_table,
        sigma_table,
        comparison,
        form,
        notes,
        sign,
        sign_selection,
    )


def _side_errors(
    value: np.ndarray, se: np.ndarray, ci: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lower- and upper-side errors of level estimates: their 95 % interval's half-widths
    / 1.96, each at least a tenth of the symmetric ``se`` (an estimate at 0 has no lower
    side); ``se`` where a level has no interval."""
    lo = (value - ci[:, 0]) / Z95
    hi = (ci[:, 1] - value) / Z95
    ok = np.isfinite(lo) & np.isfinite(hi)
    lo = np.where(ok, np.maximum(lo, 0.1 * se), se)
    hi = np.where(ok, np.maximum(hi, 0.1 * se), se)
    return lo, hi


def _compare_forms(
    x: np.ndarray,
    mu: np.ndarray,
    mu_se: np.ndarray,
    sig: np.ndarray,
    sig_se: np.ndarray,
    mu_fit: ClippedLogFit,
    sigma_fit: ClippedLogFit,
) -> dict[str, Any]:
    """χ² and leave-one-level-out scores of both forms; the chosen form for the preset."""
    out: dict[str, Any] = {"criterion": "leave-one-level-out chi2 (mu_nu + sigma_nu)"}
    if x.size < 4:
        out.update(chosen="clipped-log", better="undecided (fewer than 4 levels)")
        return out
    scores = {}
    for form, fitter in (("clipped-log", fit_clipped_log), ("table", fit_smooth_table)):
        scores[form] = sum(
            leave_one_out_score(fitter, x, y, se) for y, se in ((mu, mu_se), (sig, sig_se))
        )
    better = min(scores, key=scores.__getitem__)
    chosen = "table" if scores["table"] < scores["clipped-log"] - TABLE_MARGIN else "clipped-log"
    out.update(
        loo_chi2={k: float(v) for k, v in scores.items()},
        chi2_clipped_log={"mu_nu": mu_fit.chi2, "sigma_nu": sigma_fit.chi2},
        dof_clipped_log={"mu_nu": mu_fit.dof, "sigma_nu": sigma_fit.dof},
        n_levels=int(x.size),
        better=better,
        chosen=chosen,
    )
    return out
