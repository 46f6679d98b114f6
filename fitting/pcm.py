"""Fit the statistical PCM inference-noise model from whatever campaigns are present.

:func:`fit_pcm` runs, in this order (each step uses the previous ones):

1. drift (:mod:`fitting.pcm_drift`) from a :class:`DriftSample`: per-device ν, then
   μ_ν(g_T), σ_ν(g_T) in the published clipped-log form and as a smooth table;
2. read noise (:mod:`fitting.pcm_read_noise`) from a :class:`RepeatedReadSample`, or, without
   one, from the residuals of the drift fits;
3. programming noise (:mod:`fitting.pcm_programming`) from a :class:`ProgrammingSample`
   (achieved minus target at the read after programming) and/or the drift campaign's
   per-device conductance at t0 (its first read with the read noise of all its reads averaged
   out by the drift fit), minus the remaining read noise. With both, they are pooled when
   they agree (χ² test per level) and are independent realizations; if they are the same
   realization (errors of shared devices correlated), the less noisy one is used; if they
   disagree, the programming campaign is used. Each choice is written to the notes.

A part whose data are missing is not fitted: the preset section then carries the published
constants for it (so that it can still be simulated) and ``not_fitted`` says why. The
reference conductance g_max defaults to the published 25 µS when every target lies below it,
else to the largest target; t0 defaults to the first read time of the drift campaign.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitting.pcm_data import (
    DriftSample,
    ProgrammingSample,
    RepeatedReadSample,
    group_levels,
    screen_devices,
)
from fitting.pcm_drift import DriftFit, fit_drift
from fitting.pcm_model import PUBLISHED, clipped_log, evaluate_section, min_power_q
from fitting.pcm_programming import (
    LevelErrors,
    ProgNoiseFit,
    fit_prog_noise,
    level_errors,
    source_consistency,
)
from fitting.pcm_read_noise import (
    ReadNoiseFit,
    drift_residual_stats,
    fit_read_noise,
    repeated_read_stats,
)
from fitting.read_noise_spectrum import is_long_record, spectral_read_noise_fit
from fitting.traces import FitInputError
from simulator.devices.pcm_equations import PUBLISHED_PCM_SECTION

__all__ = ["PcmFit", "PcmFitOptions", "fit_pcm", "published_section"]

#: the programming and drift campaigns are pooled for σ_prog when their per-level estimates
#: agree at this significance level (χ² test)
POOL_P_VALUE = 0.01
#: above this correlation of the errors of shared devices, the two campaigns are one
#: programming realization measured twice, not independent data
SHARED_CORRELATION = 0.5

UNITS = {
    "g_max_s": "S",
    "t0_s": "s",
    "t_read_s": "s",
    "prog_noise.coefficients_s": "S (coefficient of x^k, x = g_T/g_max)",
    "drift.mu_nu": "dimensionless (exponent of t/t0)",
    "drift.sigma_nu": "dimensionless",
    "read_noise.a": "dimensionless (relative read noise per unit time factor)",
    "read_noise.b": "dimensionless",
    "read_noise.c": "dimensionless",
    "read_noise.white_s": "S",
}


@dataclass
class PcmFitOptions:
    """Settings of :func:`fit_pcm` (SI units; None: chosen from the data)."""

    g_max_s: float | None = None
    t0_s: float | None = None
    t_read_s: float = PUBLISHED["t_read_s"]
    prog_degree: int | None = None
    prog_from: str = "auto"  # auto, programming, drift, both
    read_noise_conductance: str = "auto"  # auto, g_prog, g_T
    min_devices_per_level: int = 8
    #: auto: per-device spectra when every record is long and evenly sampled and fewer
    #: than min_devices_per_level devices are usable; variance: pooled over devices;
    #: spectrum: per-device Welch fits (fitting.read_noise_spectrum)
    read_noise_method: str = "auto"


def published_section() -> dict[str, Any]:
    """The published constants (REFERENCES.md [R8]) in the preset ``pcm`` layout (a copy)."""
    return copy.deepcopy(PUBLISHED_PCM_SECTION)


@dataclass
class PcmFit:
    """The fitted PCM model: parts, exclusions, and what could not be fitted."""

    g_max_s: float
    t0_s: float
    t_read_s: float
    drift: DriftFit | None
    read_noise: ReadNoiseFit | None
    prog: ProgNoiseFit | None
    prog_cross_check: ProgNoiseFit | None
    not_fitted: dict[str, str]
    excluded: dict[str, dict[str, int]]
    excluded_levels: dict[str, dict[str, str]]
    n_devices: dict[str, int]
    notes: list[str] = field(default_factory=list)
    drift_sample: DriftSample | None = None

    def valid_range(self) -> dict[str, float]:
        g_levels = [
            part
            for part in (
                None if self.prog is None else self.prog.level_g_s,
                None if self.drift is None else self.drift.levels.g_target_s,
                None
                if self.read_noise is None
                else np.array(self.read_noise.x_range) * self.g_max_s,
            )
            if part is not None and part.size
        ]
        g = np.concatenate(g_levels) if g_levels else np.array([0.0, self.g_max_s])
        if self.drift is not None:
            t_max = self.drift.t_max_s
        elif self.read_noise is not None:
            t_max = self.read_noise.t_range_s[1]
        else:
            t_max = self.t0_s
        return {
            "g_min_s": float(g.min()),
            "g_max_s": float(g.max()),
            "t_min_s": self.t0_s,
            "t_max_s": float(max(t_max, self.t0_s)),
        }

    def section(self) -> dict[str, Any]:
        """The preset ``pcm`` section (datasets/PRESET.md)."""
        pub = published_section()
        out: dict[str, Any] = {
            "g_max_s": self.g_max_s,
            "t0_s": self.t0_s,
            "t_read_s": self.t_read_s,
        }
        uncertainty: dict[str, Any] = {}
        levels: dict[str, Any] = {}
        if self.prog is not None:
            out["prog_noise"] = self.prog.section()
            uncertainty.update(self.prog.uncertainty())
            levels["prog_noise"] = {
                "g_target_s": self.prog.level_g_s.tolist(),
                "sigma_prog_s": self.prog.level_sigma_s.tolist(),
                "sigma_prog_se_s": self.prog.level_sigma_se_s.tolist(),
                "sigma_prog_ci95_s": (
                    []
                    if self.prog.level_sigma_ci_s is None
                    else self.prog.level_sigma_ci_s.tolist()
                ),
                "bias_s": self.prog.level_bias_s.tolist(),
                "bias_se_s": self.prog.level_bias_se_s.tolist(),
                "read_noise_removed_s": self.prog.level_read_s.tolist(),
            }
        else:
            out["prog_noise"] = {**pub["prog_noise"], "fitted_from": "published default"}
            out["prog_noise"]["coefficients_s"] = [
                c * self.g_max_s / PUBLISHED["g_max_s"] for c in PUBLISHED["prog_coefficients_s"]
            ]
        if self.drift is not None:
            out["drift"] = self.drift.section()
            uncertainty.update(self.drift.uncertainty())
            d = self.drift
            levels["drift"] = {
                "g_target_s": d.levels.g_target_s.tolist(),
                "n_devices": d.levels.n_devices.tolist(),
                "mu_nu": d.level_mu.tolist(),
                "mu_nu_se": d.level_mu_se.tolist(),
                "sigma_nu": d.level_sigma.tolist(),
                "sigma_nu_se": d.level_sigma_se.tolist(),
                "mu_nu_ci95": d.level_mu_ci.tolist(),
                "sigma_nu_ci95": d.level_sigma_ci.tolist(),
                "nu_estimate_error_rms": d.level_error_rms.tolist(),
            }
        else:
            out["drift"] = self._published_drift()
        if self.read_noise is not None:
            out["read_noise"] = self.read_noise.section()
            uncertainty.update(self.read_noise.uncertainty())
            r = self.read_noise
            levels["read_noise"] = {
                "x": r.level_x.tolist(),
                "q_s": r.level_q.tolist(),
                "q_s_se": r.level_q_se.tolist(),
            }
        else:
            q = PUBLISHED["read_q"]
            a = q["a"] * (self.g_max_s / PUBLISHED["g_max_s"]) ** q["b"]
            out["read_noise"] = {**pub["read_noise"], "a": a, "fitted_from": "published default"}
        out["uncertainty"] = uncertainty
        out["units"] = dict(UNITS)
        out["valid_range"] = self.valid_range()
        out["levels"] = levels
        out["not_fitted"] = dict(self.not_fitted)
        out["excluded_devices"] = {k: dict(v) for k, v in self.excluded.items()}
        out["excluded_levels"] = {k: dict(v) for k, v in self.excluded_levels.items()}
        out["n_devices"] = dict(self.n_devices)
        out["notes"] = list(self.notes)
        out["time_origin"] = "end of each device's programming (t0 = first read time)"
        return out

    def at_levels(self) -> dict[str, np.ndarray]:
        """The fitted section at the fitted target levels (what the report's table shows).

        ``g_target_s`` (S, the programming and drift levels) and σ_prog (S), μ_ν, σ_ν and
        Q_s there (:func:`fitting.pcm_model.evaluate_section` of :meth:`section`).
        """
        levels = [self.prog.level_g_s] if self.prog is not None else []
        if self.drift is not None:
            levels.append(self.drift.levels.g_target_s)
        g = np.unique(np.concatenate(levels)) if levels else np.array([])
        return {"g_target_s": g, **evaluate_section(self.section(), g)}

    def _published_drift(self) -> dict[str, Any]:
        """Published clipped-log drift re-expressed for this g_max (b shifts by a·ln ratio)."""
        shift = np.log(self.g_max_s / PUBLISHED["g_max_s"])
        block: dict[str, Any] = {"form": "clipped-log", "fitted_from": "published default"}
        for name in ("mu_nu", "sigma_nu"):
            p = dict(PUBLISHED[name])
            p["b"] = p["b"] + p["a"] * shift
            block[name] = p
        return block

    def summary(self) -> list[str]:
        """Human-readable lines: what was fitted from what, exclusions, not fitted parts."""
        lines = []
        if self.prog is not None:
            lines.append(
                f"programming noise: degree-{self.prog.degree} polynomial from "
                f"{' + '.join(self.prog.sources)} ({self.prog.level_g_s.size} levels)"
            )
        if self.drift is not None:
            c = self.drift.comparison
            lines.append(
                f"drift: {self.drift.levels.n_levels} levels, form {self.drift.form} "
                f"(better fit by leave-one-level-out: {c.get('better')}), exponent "
                f"{self.drift.sign}: {self.drift.sign_selection.get('reason', '')}"
            )
        if self.read_noise is not None:
            lines.append(
                f"read noise: Q_s from {self.read_noise.origin}, x from "
                f"{self.read_noise.conductance}"
            )
        for part, why in self.not_fitted.items():
            lines.append(f"NOT FITTED {part}: {why}")
        for src, reasons in self.excluded.items():
            for reason, count in reasons.items():
                lines.append(f"excluded from {src}: {count} device(s): {reason}")
        for src, lv in self.excluded_levels.items():
            for level, why in lv.items():
                lines.append(f"excluded level {level} from {src}: {why}")
        lines.extend(self.notes)
        return lines


def _auto_g_max(*targets: np.ndarray | None) -> float:
    t = [np.asarray(x, dtype=float) for x in targets if x is not None and np.size(x)]
    top = max(float(np.max(x)) for x in t)
    return PUBLISHED["g_max_s"] if top <= PUBLISHED["g_max_s"] else top


def fit_pcm(
    programming: ProgrammingSample | None = None,
    drift: DriftSample | None = None,
    read_noise: RepeatedReadSample | None = None,
    options: PcmFitOptions | None = None,
) -> PcmFit:
    """Fit the PCM model from any of the three campaigns (see the module docstring)."""
    opt = options or PcmFitOptions()
    if programming is None and drift is None and read_noise is None:
        raise FitInputError("no programming, drift or read-noise data to fit")
    if opt.prog_from not in ("auto", "programming", "drift", "both"):
        raise FitInputError(
            f"prog_from must be auto, programming, drift or both, not {opt.prog_from}"
        )
    g_max = opt.g_max_s or _auto_g_max(
        None if programming is None else programming.target_s,
        None if drift is None else drift.target_s,
        None if read_noise is None else read_noise.target_s,
        None
        if read_noise is None or read_noise.target_s is not None
        else np.nanmax(read_noise.conductance_s),
    )
    if not g_max > 0:
        raise FitInputError(f"g_max must be > 0 S, got {g_max}")
    notes: list[str] = []
    not_fitted: dict[str, str] = {}
    excluded: dict[str, dict[str, int]] = {}
    excluded_levels: dict[str, dict[str, str]] = {}
    n_devices: dict[str, int] = {}
    if opt.t0_s is not None:
        t0 = float(opt.t0_s)
    elif drift is not None:
        t0 = drift.first_read_time()
    elif programming is not None and programming.read_time_s is not None:
        t0 = float(programming.read_time_s)
    else:
        t0 = PUBLISHED["t0_s"]
        notes.append(f"t0 = {t0:g} s (published value): no drift campaign or read time given")
    if not t0 > 0:
        raise FitInputError(f"t0 must be > 0 s, got {t0}")

    # 1. drift
    drift_fit = None
    if drift is not None:
        try:
            drift_fit = fit_drift(drift, g_max, opt.t_read_s, t0, opt.min_devices_per_level)
        except FitInputError as exc:  # what is present is fitted; this part is reported
            if not _too_little(exc):
                raise  # invalid data (negative reads, bad times) stay a refusal
            not_fitted["drift"] = f"{exc} (published drift constants used)"
    if drift is not None and drift_fit is not None:
        excluded[drift.source] = drift_fit.screening.excluded
        excluded_levels[drift.source] = drift_fit.levels.excluded_levels
        n_devices[drift.source] = drift.n_devices
        notes.extend(drift_fit.notes)
    elif drift is None:
        not_fitted["drift"] = "no drift campaign (published drift constants used)"

    def mu_nu(x: np.ndarray) -> np.ndarray:
        if drift_fit is not None:
            return drift_fit.mu_nu(x)
        m = PUBLISHED["mu_nu"]
        return clipped_log(x * g_max / PUBLISHED["g_max_s"], m["a"], m["b"], m["lo"], m["hi"])

    # 2. read noise
    rn_fit = None
    if read_noise is not None:
        scr = screen_devices(
            read_noise.conductance_s, read_noise.converged, 3, source=read_noise.source
        )
        if _spectral_read_noise(opt, read_noise, scr.keep):
            rn_fit = spectral_read_noise_fit(
                read_noise, scr.keep, g_max, opt.read_noise_conductance
            )
            notes.extend(rn_fit.notes)
        else:
            lv = None
            if read_noise.target_s is not None:
                lv = group_levels(read_noise.target_s, scr.keep, opt.min_devices_per_level)
                excluded_levels[read_noise.source] = lv.excluded_levels
            stats = repeated_read_stats(read_noise, scr.keep, g_max, t0, opt.t_read_s, mu_nu)
            rn_fit = fit_read_noise(
                stats, lv, opt.read_noise_conductance, opt.min_devices_per_level
            )
            notes.extend(rn_fit.notes)
        excluded[read_noise.source] = {**scr.excluded, **rn_fit.excluded}
        n_devices[read_noise.source] = read_noise.n_devices
        if drift_fit is None and rn_fit.spectra is None:
            notes.append("read noise: x_prog brought back to t0 with the published mean drift")
    elif drift_fit is not None:
        stats = drift_residual_stats(
            drift_fit.device, drift, drift_fit.screening.keep, g_max, t0, opt.t_read_s
        )
        rn_fit = fit_read_noise(
            stats, drift_fit.levels, opt.read_noise_conductance, opt.min_devices_per_level
        )
        excluded[f"{drift.source} (read noise)"] = rn_fit.excluded
        notes.append(
            "read noise fitted from the residuals of the drift fits (no read-noise campaign)"
        )
    else:
        not_fitted["read_noise"] = "no read-noise or drift campaign (published Q_s used)"

    # 3. programming noise
    try:
        prog_fit, cross = _fit_programming(
            programming, drift, drift_fit, rn_fit, g_max, t0, opt, excluded, excluded_levels, notes
        )
    except FitInputError as exc:
        if not _too_little(exc):
            raise  # an explicit source that is not there, invalid data: the user's error
        prog_fit, cross = None, None
        not_fitted["prog_noise"] = f"{exc} (published polynomial used)"
    if programming is not None:
        n_devices[programming.source] = programming.n_devices
    if prog_fit is None and "prog_noise" not in not_fitted:
        not_fitted["prog_noise"] = "no programming or drift campaign (published polynomial used)"
    if drift_fit is None and rn_fit is None and prog_fit is None:
        given = {"drift": drift, "read_noise": read_noise, "prog_noise": programming}
        why = {k: v for k, v in not_fitted.items() if given.get(k) is not None} or not_fitted
        reasons = "; ".join(f"{k}: {v.split(' (published')[0]}" for k, v in why.items())
        raise FitInputError(f"nothing could be fitted: {reasons}")
    return PcmFit(
        g_max,
        t0,
        opt.t_read_s,
        drift_fit,
        rn_fit,
        prog_fit,
        cross,
        not_fitted,
        excluded,
        excluded_levels,
        n_devices,
        notes,
        drift,
    )


def _spectral_read_noise(opt: PcmFitOptions, sample: RepeatedReadSample, keep: np.ndarray) -> bool:
    """Whether the read-noise campaign is fitted per device from its spectra."""
    if opt.read_noise_method not in ("auto", "variance", "spectrum"):
        raise FitInputError(
            f"read-noise method must be auto, variance or spectrum, not {opt.read_noise_method}"
        )
    if opt.read_noise_method != "auto":
        return opt.read_noise_method == "spectrum"
    return int(keep.sum()) < opt.min_devices_per_level and is_long_record(sample, keep)


#: what a campaign that is valid but cannot inform a part says (fitted: the other parts)
TOO_LITTLE = ("needs at least", "is positive over the target levels")


def _too_little(exc: FitInputError) -> bool:
    """Whether ``exc`` says the data are too few or too noisy for a part (not invalid)."""
    text = str(exc)
    return any(phrase in text for phrase in TOO_LITTLE)


def _read_variance(rn_fit: ReadNoiseFit | None, g_max: float, t_read: float):
    """Read variance (S²) of an n_avg average at time t of devices at target g."""
    if rn_fit is not None:
        return lambda g, t, n_avg: rn_fit.read_variance(g, t, t_read, n_avg, g_max)
    q = PUBLISHED["read_q"]
    a = q["a"] * (g_max / PUBLISHED["g_max_s"]) ** q["b"]

    def published(g: np.ndarray, t: float, n_avg: int) -> np.ndarray:
        f2 = np.log((t + t_read) / (2 * t_read))
        return (g * min_power_q(g / g_max, a, q["b"], q["c"], q["x_floor"])) ** 2 * f2 / n_avg

    return published


def _fit_programming(
    programming: ProgrammingSample | None,
    drift: DriftSample | None,
    drift_fit: DriftFit | None,
    rn_fit: ReadNoiseFit | None,
    g_max: float,
    t0: float,
    opt: PcmFitOptions,
    excluded: dict[str, dict[str, int]],
    excluded_levels: dict[str, dict[str, str]],
    notes: list[str],
) -> tuple[ProgNoiseFit | None, ProgNoiseFit | None]:
    """Programming-noise fit from the chosen sources, plus the other source as a cross-check."""
    read_var = _read_variance(rn_fit, g_max, opt.t_read_s)
    if rn_fit is None and programming is not None:
        notes.append(
            "programming noise: the read noise of the programming read was removed with the "
            "published Q_s (no read-noise or drift campaign to measure it)"
        )
    sources: dict[str, list[LevelErrors]] = {}
    shifted: dict[str, list[LevelErrors]] = {}
    rel = _read_noise_rel_se(rn_fit)
    if programming is not None:
        st = _programming_errors(programming, drift_fit, read_var, t0, opt, notes)
        if st is not None:
            stats, scr, lv = st
            sources["programming"] = [stats]
            shifted["programming"] = [_shift(stats, rel)]
            excluded[programming.source] = scr.excluded
            excluded_levels[programming.source] = lv.excluded_levels
    if drift is not None and drift_fit is not None:
        stats = _drift_t0_errors(drift, drift_fit)
        sources["drift"] = [stats]
        shifted["drift"] = [_shift(stats, rel)]
    if not sources:
        return None, None
    mode = opt.prog_from
    consistency = None
    if len(sources) == 2:
        consistency = source_consistency(sources["programming"][0], sources["drift"][0])
    if mode == "auto":
        use = [next(iter(sources))]
        if consistency is not None:
            use = _choose_prog_sources(
                consistency, sources, programming, drift, drift_fit, t0, notes
            )
    elif mode == "both":
        use = [s for s in ("programming", "drift") if s in sources]
    else:
        if mode not in sources:
            raise FitInputError(f"programming noise from {mode} requested, but no such campaign")
        use = [mode]
    main = fit_prog_noise(
        [s for u in use for s in sources[u]],
        g_max,
        opt.prog_degree,
        [s for u in use for s in shifted[u]] if rel > 0 else None,
    )
    notes.extend(main.notes)
    if consistency is not None:
        main.consistency = {**consistency, "pooled": len(use) == 2}
    others = [u for u in sources if u not in use]
    cross = None
    if others:
        cross = fit_prog_noise(sources[others[0]], g_max, main.degree)
    return main, cross


def _choose_prog_sources(
    consistency: dict[str, Any],
    sources: dict[str, list[LevelErrors]],
    programming: ProgrammingSample,
    drift: DriftSample,
    drift_fit: DriftFit,
    t0: float,
    notes: list[str],
) -> list[str]:
    """Pool both campaigns when they agree and are independent; see :func:`fit_pcm`."""
    if (consistency["p_value"] or 0.0) < POOL_P_VALUE:
        notes.append(
            "programming noise: the programming and drift campaigns disagree "
            f"(chi2 = {consistency['chi2']:.1f} on {consistency['dof']} levels, "
            f"p = {consistency['p_value']:.2g}); only the programming campaign is used"
        )
        return ["programming"]
    corr = _shared_realization(programming, drift, drift_fit, t0)
    consistency["error_correlation"] = corr
    if corr is None or corr < SHARED_CORRELATION:
        return ["programming", "drift"]

    # the same realization seen twice: keep the one less contaminated by read noise
    def contamination(st: LevelErrors) -> float:
        return float(np.mean(st.read_var_s2 / np.maximum(st.total_var, 1e-300)))

    best = min(sources, key=lambda k: contamination(sources[k][0]))
    notes.append(
        f"programming noise: both campaigns saw the same programming realization (error "
        f"correlation {corr:.2f}); using the {sources[best][0].source} (less read noise)"
    )
    return [best]


def _read_noise_rel_se(rn_fit: ReadNoiseFit | None) -> float:
    """Relative standard error of the read-noise variance (0 when unknown)."""
    if rn_fit is None:
        return 0.0
    se_a = rn_fit.q.se.get("a", np.nan) / rn_fit.q.a
    return float(2 * se_a) if np.isfinite(se_a) else 0.0


def _shift(stats: LevelErrors, rel: float) -> LevelErrors:
    return LevelErrors(
        stats.source,
        stats.g_target_s,
        stats.n,
        stats.mean_s,
        stats.ss_s2,
        stats.read_var_s2 * (1 + rel),
    )


def _programming_errors(
    sample: ProgrammingSample,
    drift_fit: DriftFit | None,
    read_var,
    t0: float,
    opt: PcmFitOptions,
    notes: list[str],
):
    t_p = t0 if sample.read_time_s is None else float(sample.read_time_s)
    if t_p < t0 * (1 - 1e-6):
        notes.append(
            f"programming campaign read at {t_p:g} s, before t0 = {t0:g} s (outside the drift "
            "model's window): not used for programming noise"
        )
        return None
    scr = screen_devices(sample.conductance_s, sample.converged, 1, source=sample.source)
    lv = group_levels(sample.target_s, scr.keep, opt.min_devices_per_level)
    if lv.n_levels < 2:
        raise FitInputError(
            f"{sample.source}: programming noise needs at least 2 target levels with >= "
            f"{opt.min_devices_per_level} usable devices, got {lv.n_levels}"
        )
    back = None
    if t_p > t0 * (1 + 1e-6):
        ln_ratio = np.log(t_p / t0)
        if drift_fit is None:
            raise FitInputError(
                f"{sample.source}: read {t_p:g} s after programming, later than t0 = {t0:g} s; "
                "a drift campaign (or --t0) is needed to bring it back to t0"
            )

        def back(g_level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = g_level / drift_fit.g_max_s
            factor = np.exp(drift_fit.mu_nu(x) * ln_ratio)
            return factor, (g_level * drift_fit.sigma_nu(x) * ln_ratio) ** 2

        notes.append(
            f"programming reads at {t_p:g} s brought back to t0 = {t0:g} s with the drift fit"
        )
    stats = level_errors(
        "programming",
        sample.target_s,
        sample.conductance_s,
        lv,
        lambda g: read_var(g, t_p, sample.n_avg),
        back,
    )
    return stats, scr, lv


def _drift_t0_errors(drift: DriftSample, drift_fit: DriftFit) -> LevelErrors:
    """Errors of each drift device's fitted conductance at t0 (its reads averaged by the fit).

    The remaining read-noise variance of that estimate is g0²·Var(ln G0), per level the mean
    over its devices.
    """
    g0 = np.exp(drift_fit.device.log_g0)
    var_dev = g0**2 * drift_fit.device.log_g0_se**2
    idx = drift_fit.levels.index
    use = idx >= 0
    n_lv = drift_fit.levels.n_levels
    counts = np.maximum(np.bincount(idx[use], minlength=n_lv), 1)
    var_level = np.bincount(idx[use], weights=var_dev[use], minlength=n_lv) / counts
    return level_errors(
        "drift fit at t0",
        drift.target_s,
        np.where(use, g0, 0.0),
        drift_fit.levels,
        lambda gl: var_level,
    )


def _shared_realization(
    prog: ProgrammingSample, drift: DriftSample, drift_fit: DriftFit, t0: float
) -> float | None:
    """Correlation of the programming errors of devices measured by both campaigns.

    Independent programming events give ~0; a value near 1 means both campaigns saw the
    same programming realization (e.g. an emulator run twice with the same seed), so they
    cannot be pooled as independent data. None when too few devices are shared.
    """
    _, ip, idr = np.intersect1d(prog.device_ids, drift.device_ids, return_indices=True)
    ok = (drift_fit.levels.index[idr] >= 0) & np.isclose(
        prog.target_s[ip], drift.target_s[idr], rtol=1e-6
    )
    if ok.sum() < 30:
        return None
    ep = prog.conductance_s[ip][ok] - prog.target_s[ip][ok]
    ed = np.exp(drift_fit.device.log_g0[idr][ok]) - drift.target_s[idr][ok]
    lv = drift_fit.levels.index[idr][ok]
    for e in (ep, ed):
        e -= (np.bincount(lv, weights=e) / np.maximum(np.bincount(lv), 1))[lv]
    return float(np.corrcoef(ep, ed)[0, 1])
