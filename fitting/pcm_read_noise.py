"""Read (1/f) noise: Q_s(x) = min(a / max(x, x_floor)^b, c) from repeated reads.

Model of one read t seconds after programming (datasets/PRESET.md):
σ² = (g(t)·Q_s(x)·f(t))² + w², f(t) = sqrt(ln((t + t_read)/(2 t_read))), w a small white
floor of the read circuit, x the normalized conductance named by the convention (``g_prog``:
the device's conductance at t0, as aihwkit's code; ``g_T``: its target, as aihwkit's docs).

Per device a sample variance s² with ``dof`` degrees of freedom is formed, with known
multipliers so that E[s²] = h²·Q_s(x)² + k²·w²:

- :func:`repeated_read_stats` (read-noise campaign): reads detrended for drift by a line
  in ln t, s² in S², h² = mean(ĝ(t)²·f(t)²), k² = 1; x_prog is the trend value brought back
  to t0 with the drift model's mean exponent;
- :func:`drift_residual_stats` (drift campaign, when no read-noise campaign exists): the
  weighted residual variance φ of the per-device ln G fit, h² = 1/n_avg,
  k² = mean(1/(ĝ²f²))/n_avg; x_prog from the fitted conductance at t0.

:func:`fit_read_noise` maximizes the χ² (gamma) likelihood of all devices' s² for
(a, b, [c], w), once per conductance convention; the convention with the higher likelihood
is chosen (``g_prog`` on a tie). The saturation c is fitted only when the data reach it
(AICc, and the cap active for >= 5 % of the devices); otherwise it is not identified and
set to max(published 0.2, Q_s at the lowest observed level), i.e. inactive in the observed
range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special

from fitting.pcm_data import DriftSample, Levels, RepeatedReadSample
from fitting.pcm_drift import DeviceDrift
from fitting.pcm_model import PUBLISHED, min_power_q, read_time_factor
from fitting.pcm_stats import aicc, chi2_variance_nll, numerical_covariance

__all__ = [
    "QFit",
    "ReadNoiseFit",
    "ReadNoiseStats",
    "drift_residual_stats",
    "fit_read_noise",
    "repeated_read_stats",
]

X_FLOOR = PUBLISHED["read_q"]["x_floor"]
OUTLIER_Z = 6.0
#: the saturation c counts as identified only if the capped model wins by this much AICc
#: and the cap is active for at least this fraction of the devices
CAP_AICC_MARGIN = 10.0
CAP_MIN_FRACTION = 0.05
#: a convention must be better by this much log-likelihood to replace g_prog
CONVENTION_MARGIN = 2.0
#: usable devices the variance fit needs by default, and at least (a, b, white + 1)
MIN_DEVICES = 10
MIN_FIT_DEVICES = 4


@dataclass
class ReadNoiseStats:
    """Per-device variance statistics for the Q_s fit (see the module docstring)."""

    s2: np.ndarray
    dof: np.ndarray
    h2: np.ndarray
    k2: np.ndarray
    x_prog: np.ndarray
    x_target: np.ndarray | None
    keep: np.ndarray
    origin: str  # "read_noise campaign" or "drift residuals"
    t_range_s: tuple[float, float]

    def subset(self, mask: np.ndarray) -> ReadNoiseStats:
        xt = None if self.x_target is None else self.x_target[mask]
        return ReadNoiseStats(
            self.s2[mask],
            self.dof[mask],
            self.h2[mask],
            self.k2[mask],
            self.x_prog[mask],
            xt,
            self.keep[mask],
            self.origin,
            self.t_range_s,
        )


def repeated_read_stats(
    sample: RepeatedReadSample,
    keep: np.ndarray,
    g_max_s: float,
    t0_s: float,
    t_read_s: float,
    mu_nu: Callable[[np.ndarray], np.ndarray],
) -> ReadNoiseStats:
    """Detrended variance of each device's repeated reads; see the module docstring."""
    g, t = sample.conductance_s, sample.time_s
    use = np.isfinite(g) & keep[:, None]
    n = use.sum(axis=1)
    ln_t = np.where(use, np.log(np.where(use, t, 1.0)), 0.0)
    n_safe = np.maximum(n, 1)
    u_mean = ln_t.sum(axis=1) / n_safe
    u = np.where(use, ln_t - u_mean[:, None], 0.0)
    y = np.where(use, g, 0.0)
    y_mean = y.sum(axis=1) / n_safe
    suu = (u * u).sum(axis=1)
    sloped = suu > 1e-18 * np.maximum(n, 1)  # reads span a time range: detrend with a line
    slope = np.where(sloped, (u * (y - y_mean[:, None])).sum(axis=1) / np.where(sloped, suu, 1), 0)
    trend = y_mean[:, None] + slope[:, None] * u
    resid = np.where(use, y - trend, 0.0)
    dof = np.maximum(n - np.where(sloped, 2, 1), 1).astype(float)
    s2 = (resid * resid).sum(axis=1) / dof
    f2 = read_time_factor(np.where(use, t, 1.0), t_read_s) ** 2
    h2 = np.where(use, trend * trend * f2, 0.0).sum(axis=1) / n_safe / sample.n_avg
    t_mean = np.exp(u_mean)
    g_mean = np.maximum(y_mean, 1e-30)
    x_ref = g_mean / g_max_s if sample.target_s is None else sample.target_s / g_max_s
    back = np.where(t_mean > t0_s, (t_mean / t0_s) ** mu_nu(x_ref), 1.0)
    x_prog = g_mean * back / g_max_s
    x_target = None if sample.target_s is None else sample.target_s / g_max_s
    t_used = t[use]
    t_range = (float(t_used.min()), float(t_used.max())) if t_used.size else (0.0, 0.0)
    return ReadNoiseStats(
        s2,
        dof,
        h2,
        np.full(s2.shape, 1.0 / sample.n_avg),
        x_prog,
        x_target,
        keep & (n >= 3),
        "read_noise campaign",
        t_range,
    )


def drift_residual_stats(
    device: DeviceDrift,
    sample: DriftSample,
    keep: np.ndarray,
    g_max_s: float,
    t0_s: float,
    t_read_s: float,
) -> ReadNoiseStats:
    """Read-noise statistics from the residuals of the per-device drift fits."""
    t = sample.time_s
    use = np.isfinite(sample.conductance_s) & (t >= t0_s * (1 - 1e-9)) & keep[:, None]
    f2 = np.maximum(read_time_factor(np.where(use, t, t0_s), t_read_s) ** 2, 1e-12)
    g_fit = np.exp(
        device.log_g0[:, None] - device.nu[:, None] * np.log(np.where(use, t, t0_s) / t0_s)
    )
    n = np.maximum(use.sum(axis=1), 1)
    k2 = np.where(use, 1.0 / (g_fit**2 * f2), 0.0).sum(axis=1) / n / sample.n_avg
    h2 = np.full(k2.shape, 1.0 / sample.n_avg)
    x_prog = np.exp(device.log_g0) / g_max_s
    t_used = t[use]
    return ReadNoiseStats(
        np.where(keep, device.phi, 1.0),
        device.dof.astype(float),
        h2,
        np.where(keep, k2, 0.0),
        np.where(keep, x_prog, 1.0),
        sample.target_s / g_max_s,
        keep & device.ok,
        "drift residuals",
        (float(t_used.min()), float(t_used.max())) if t_used.size else (0.0, 0.0),
    )


@dataclass
class QFit:
    """Q_s parameters for one conductance convention."""

    a: float
    b: float
    c: float
    white_s: float
    c_identified: bool
    se: dict[str, float]
    nll: float
    n_devices: int


def _q_model(theta: np.ndarray, x: np.ndarray, capped: bool) -> np.ndarray:
    a, b = np.exp(theta[0]), theta[1]
    q = a / np.maximum(x, X_FLOOR) ** b
    return np.minimum(q, np.exp(theta[2])) if capped else q


def _fit_q(st: ReadNoiseStats, x: np.ndarray, capped: bool, w_ref: float, theta0: np.ndarray):
    k = 3 if capped else 2

    def nll(p: np.ndarray) -> float:
        # steps far from the optimum (line search, finite differences) overflow to inf: a
        # rejected step, not an error worth a warning
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            q = _q_model(p, x, capped)
            var = st.h2 * q * q + st.k2 * (p[k] * w_ref) ** 2
            return chi2_variance_nll(st.s2, st.dof, np.maximum(var, 1e-300))

    bounds = [(None, None), (-3.0, 3.0)] + ([(None, None)] if capped else []) + [(0.0, 10.0)]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # scipy's differences
        res = optimize.minimize(nll, theta0, method="L-BFGS-B", bounds=bounds)
    return res.x, float(res.fun), nll


def _fit_convention(st: ReadNoiseStats, x: np.ndarray, x_low: float) -> tuple[QFit, np.ndarray]:
    """Fit Q_s(x) (with and without saturation) to devices ``st`` at normalized ``x``.

    ``x_low`` is the lower end of the observed range (the lowest level): an unidentified
    saturation is placed where it is inactive down to there.
    """
    x = np.maximum(x, X_FLOOR)
    q_dev = np.sqrt(np.maximum(st.s2 / st.h2, 1e-30))
    # start: a line in log-log through the per-device values
    b0, ln_a0 = np.polyfit(-np.log(x), np.log(q_dev), 1)
    w_ref = float(np.sqrt(np.median(st.s2 / np.maximum(st.k2, 1e-300))))
    theta0 = np.array([ln_a0, float(np.clip(b0, -2.9, 2.9)), 0.01])
    p2, nll2, f2 = _fit_q(st, x, False, w_ref, theta0)
    n = st.s2.size
    q_max = float(np.max(_q_model(p2, x, False)))
    p3 = nll3 = f3 = None
    if n > 10:
        theta3 = np.array([p2[0], p2[1], np.log(0.8 * q_max), p2[2]])
        p3, nll3, f3 = _fit_q(st, x, True, w_ref, theta3)
    capped = False
    if p3 is not None and aicc(nll3, 4, n) < aicc(nll2, 3, n) - CAP_AICC_MARGIN:
        # the saturation must hold for a real share of devices, not only for the extreme
        # tail (whose x estimates are biased low by selection)
        capped = float(np.mean(_q_model(p3, x, False) > np.exp(p3[2]))) >= CAP_MIN_FRACTION
    p, nll, f = (p3, nll3, f3) if capped else (p2, nll2, f2)
    cov = numerical_covariance(f, p, rel_step=1e-4)
    sd = np.sqrt(np.diag(cov))
    a = float(np.exp(p[0]))
    k = 3 if capped else 2
    se = {"a": a * float(sd[0]), "b": float(sd[1]), "white_s": float(sd[k] * w_ref)}
    if capped:
        c = float(np.exp(p[2]))
        se["c"] = c * float(sd[2])
    else:
        c = max(PUBLISHED["read_q"]["c"], float(a / max(x_low, X_FLOOR) ** p[1]))
    fit = QFit(a, float(p[1]), c, float(p[k] * w_ref), bool(capped), se, float(nll), n)
    var = st.h2 * min_power_q(x, fit.a, fit.b, fit.c, X_FLOOR) ** 2 + st.k2 * fit.white_s**2
    return fit, var


@dataclass
class ReadNoiseFit:
    """Fitted Q_s model, the chosen convention, and per-level Q_s estimates."""

    q: QFit
    conductance: str  # "g_prog" or "g_T"
    alternatives: dict[str, QFit]
    origin: str
    t_range_s: tuple[float, float]
    x_range: tuple[float, float]  # normalized targets (or conductances) the fit saw
    level_x: np.ndarray
    level_q: np.ndarray
    level_q_se: np.ndarray
    device_x: np.ndarray
    device_q: np.ndarray
    excluded: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: per-device spectral fits (:mod:`fitting.read_noise_spectrum`) when fitted from them
    spectra: list[dict[str, Any]] | None = None

    def q_s(self, x: np.ndarray) -> np.ndarray:
        return min_power_q(x, self.q.a, self.q.b, self.q.c, X_FLOOR)

    def read_variance(
        self, g_s: np.ndarray, t_s: float, t_read_s: float, n_avg: int, g_max_s: float
    ) -> np.ndarray:
        """Variance (S²) of an ``n_avg``-read average at ``t_s`` of devices at ``g_s``."""
        f = float(read_time_factor(np.array([t_s]), t_read_s)[0])
        q = self.q_s(np.asarray(g_s) / g_max_s)
        return ((np.asarray(g_s) * q * f) ** 2 + self.q.white_s**2) / n_avg

    def section(self) -> dict[str, Any]:
        """The preset ``read_noise`` block."""
        nll = {k: v.nll for k, v in self.alternatives.items()}
        return {
            "form": "min-power",
            "a": self.q.a,
            "b": self.q.b,
            "c": self.q.c,
            "x_floor": X_FLOOR,
            "conductance": self.conductance,
            "white_s": self.q.white_s,
            "c_identified": self.q.c_identified,
            "fitted_from": self.origin,
            "convention_nll": nll,
            **({} if self.spectra is None else {"spectra": self.spectra}),
        }

    def uncertainty(self) -> dict[str, float]:
        return {f"read_noise.{k}": v for k, v in self.q.se.items()}


def fit_read_noise(
    stats: ReadNoiseStats,
    levels: Levels | None,
    convention: str = "auto",
    min_devices: int = MIN_DEVICES,
) -> ReadNoiseFit:
    """Fit Q_s from per-device variance statistics; ``convention``: auto, g_prog or g_T.

    Needs ``min_devices`` usable devices (at least :data:`MIN_FIT_DEVICES`, one more than
    the parameters a, b, white); a few long records are fitted per device by
    :mod:`fitting.read_noise_spectrum` instead.
    """
    from fitting.traces import FitInputError

    if convention not in ("auto", "g_prog", "g_T"):
        raise FitInputError(f"read-noise conductance must be auto, g_prog or g_T, not {convention}")
    keep = stats.keep & np.isfinite(stats.s2) & (stats.s2 > 0) & (stats.h2 > 0)
    excluded: dict[str, int] = {}
    if int((stats.keep & ~keep).sum()):
        excluded["zero read variance"] = int((stats.keep & ~keep).sum())
    need = max(int(min_devices), MIN_FIT_DEVICES)
    if keep.sum() < need:
        raise FitInputError(
            f"read noise needs at least {need} usable devices with repeated reads, got "
            f"{keep.sum()} (--min-devices; a few long evenly sampled records: "
            "--read-noise-method spectrum)"
        )
    conventions = ["g_prog", "g_T"] if convention == "auto" else [convention]
    if stats.x_target is None:
        if convention == "g_T":
            raise FitInputError("read noise with the g_T convention needs target conductances")
        conventions = ["g_prog"]
    fits: dict[str, QFit] = {}
    kept: dict[str, np.ndarray] = {}
    notes: list[str] = []
    x_ref = stats.x_target if stats.x_target is not None else stats.x_prog
    x_low = (
        float(np.min(x_ref[keep]))
        if stats.x_target is not None
        else float(np.quantile(x_ref[keep], 0.05))
    )
    for conv in conventions:
        x_all = stats.x_prog if conv == "g_prog" else stats.x_target
        mask = keep.copy()
        st = stats.subset(mask)
        fit, var = _fit_convention(st, x_all[mask], x_low)
        # exclude devices whose variance is wildly off the model (random telegraph noise, ...)
        kappa = special.digamma(st.dof / 2) - np.log(st.dof / 2)
        z = (np.log(st.s2 / var) - kappa) / np.sqrt(special.polygamma(1, st.dof / 2))
        out = np.abs(z) > OUTLIER_Z
        if out.any() and int((~out).sum()) < need:
            # excluding them would leave too few: the variance model (pooled over devices)
            # misses these devices beyond their sampling error, e.g. long 1/f records
            notes.append(
                f"read noise: {int(out.sum())} of {out.size} devices lie > {OUTLIER_Z:g} SD "
                f"from the pooled {conv} model but are kept (excluding them leaves fewer than "
                f"{need}); long evenly sampled records are better fitted per device "
                "(--read-noise-method spectrum)"
            )
        elif out.any():
            idx = np.flatnonzero(mask)
            mask[idx[out]] = False
            fit, _ = _fit_convention(stats.subset(mask), x_all[mask], x_low)
        fits[conv], kept[conv] = fit, mask
    chosen = "g_prog" if "g_prog" in fits else conventions[0]
    if "g_T" in fits and "g_prog" in fits:
        # compare on the devices both kept
        both = kept["g_prog"] & kept["g_T"]
        ll = {}
        for conv in ("g_prog", "g_T"):
            x_all = stats.x_prog if conv == "g_prog" else stats.x_target
            f = fits[conv]
            st = stats.subset(both)
            q = min_power_q(x_all[both], f.a, f.b, f.c, X_FLOOR)
            ll[conv] = chi2_variance_nll(st.s2, st.dof, st.h2 * q * q + st.k2 * f.white_s**2)
        if ll["g_T"] < ll["g_prog"] - CONVENTION_MARGIN:
            chosen = "g_T"
        for conv in ll:
            fits[conv].nll = ll[conv]
    mask = kept[chosen]
    n_out = int((keep & ~mask).sum())
    if n_out:
        excluded["read-noise outlier (> 6 SD from the model)"] = n_out
    x_dev = (stats.x_prog if chosen == "g_prog" else stats.x_target)[mask]
    st = stats.subset(mask)
    q_dev = np.sqrt(np.maximum((st.s2 - st.k2 * fits[chosen].white_s ** 2) / st.h2, 0.0))
    lx, lq, lse = _level_table(q_dev, x_dev, mask, levels)
    return ReadNoiseFit(
        fits[chosen],
        chosen,
        fits,
        stats.origin,
        stats.t_range_s,
        (x_low, float(np.max(x_ref[mask]))),
        lx,
        lq,
        lse,
        x_dev,
        q_dev,
        excluded,
        notes,
    )


def _level_table(
    q_dev: np.ndarray, x_dev: np.ndarray, mask: np.ndarray, levels: Levels | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-level rms Q_s of the devices (level = target level, or x quantile bins)."""
    if levels is not None:
        idx = levels.index[mask]
        n_lv = levels.n_levels
    else:
        n_lv = int(min(16, max(1, q_dev.size // 20)))
        edges = np.quantile(x_dev, np.linspace(0, 1, n_lv + 1))
        idx = np.clip(np.searchsorted(edges, x_dev, side="right") - 1, 0, n_lv - 1)
    lx, lq, lse = (np.full(n_lv, np.nan) for _ in range(3))
    for k in range(n_lv):
        sel = idx == k
        if sel.sum() < 2:
            continue
        q2 = q_dev[sel] ** 2
        lx[k] = float(np.exp(np.mean(np.log(x_dev[sel]))))
        lq[k] = float(np.sqrt(q2.mean()))
        lse[k] = float(q2.std(ddof=1) / np.sqrt(sel.sum()) / (2 * max(lq[k], 1e-30)))
    good = np.isfinite(lq)
    return lx[good], lq[good], lse[good]
