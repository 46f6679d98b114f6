"""Fit pulse-response traces into a pulsed-device model (soft-bounds family).

Pipeline, vectorized over devices (no loop per device or per pulse):

1. per direction, closed-form instrumental-variable estimates of ΔG = c + s·G
   (:mod:`fitting.soft_bounds`) with their covariance;
2. unresponsive (stuck) devices and failed fits are excluded and counted;
3. per-device aihwkit parameters around a reference conductance ``g_offset_s`` (the
   midpoint of the median bounds): b⁺ = G_max − g₀, b⁻ = G_min − g₀, Δ⁺ = α⁺ b⁺,
   Δ⁻ = α⁻ |b⁻|, with delta-method standard errors;
4. population values by a random-effects fit (:mod:`fitting.population`): dw_min and up_down
   from the mean steps (aihwkit §1.3: Δ⁺ = dw_min (g + r + min(β, 0)),
   Δ⁻ = dw_min (g − r − max(β, 0))), relative spreads from τ;
5. noise separation from the residual increments (anchors.md §3 pitfall 2): the lag-1
   autocovariance is −σ_read², the variance is σ_c2c²·⟨step²⟩ + 2σ_read².
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fitting.population import RandomEffect, fit_random_effect
from fitting.soft_bounds import DirectionEstimate, estimate_direction
from fitting.traces import FitInputError, PulseTraces

__all__ = ["PulseResponseFit", "fit_pulse_response"]

SUPPORTED_MODELS = ("soft-bounds",)
STUCK_T_THRESHOLD = 10.0  # swing t statistic below this: the device does not switch


@dataclass
class PulseResponseFit:
    """Result of a pulse-response fit: population, per-device values, noise, exclusions."""

    model: str
    g_offset_s: float
    parameters: dict[str, float]
    uncertainty: dict[str, float]
    per_device: dict[str, np.ndarray]
    read_noise_s: float
    n_devices: int
    excluded: dict[str, int]
    diagnostics: dict[str, float] = field(default_factory=dict)

    def device_section(self) -> dict:
        """The preset's ``device`` section (siemens; aihwkit parameter names)."""
        units = {
            "dw_min": "S",
            "w_max": "S",
            "w_min": "S",
            "up_down": "1 (fraction of dw_min)",
            "dw_min_dtod": "1 (relative)",
            "up_down_dtod": "1 (units of dw_min)",
            "w_max_dtod": "1 (relative)",
            "w_min_dtod": "1 (relative)",
            "dw_min_std": "1 (relative)",
            "write_noise_std": "1 (units of dw_min)",
            "corrupt_devices_prob": "1",
            "g_offset_s": "S",
            "read_noise_s": "S",
        }
        return {
            "model": self.model,
            "parameters": dict(self.parameters),
            "uncertainty": dict(self.uncertainty),
            "units": units,
            "g_offset_s": self.g_offset_s,
            "read_noise_s": self.read_noise_s,
        }


def fit_pulse_response(traces: PulseTraces, model: str = "soft-bounds") -> PulseResponseFit:
    """Fit ``traces`` with ``model`` (currently ``soft-bounds``)."""
    if model not in SUPPORTED_MODELS:
        raise FitInputError(f"model {model!r} is not available yet; use one of {SUPPORTED_MODELS}")
    finite = np.all(np.isfinite(traces.conductance_s), axis=1)
    if not finite.any():
        raise FitInputError(f"{traces.source}: every device has non-finite (NaN/inf) reads")
    up = estimate_direction(traces, +1)
    down = estimate_direction(traces, -1)
    n_pulse = up.pulses_per_read

    alpha_up = _alpha(up.slope, n_pulse)
    alpha_down = _alpha(down.slope, n_pulse)
    with np.errstate(divide="ignore", invalid="ignore"):
        g_max = -up.intercept / up.slope
        g_min = -down.intercept / down.slope
    responsive = (up.swing_t > STUCK_T_THRESHOLD) & (down.swing_t > STUCK_T_THRESHOLD)
    responsive &= finite
    valid = (
        responsive
        & np.isfinite(g_max)
        & np.isfinite(g_min)
        & (alpha_up > 0)
        & (alpha_up < 1)
        & (alpha_down > 0)
        & (alpha_down < 1)
        & (g_max > g_min)
    )
    n_nonfinite = int(np.sum(~finite))
    n_stuck = int(np.sum(~responsive & finite))
    n_failed = int(np.sum(responsive & ~valid))
    if valid.sum() < 2:
        raise FitInputError(
            f"{traces.source}: only {int(valid.sum())} of {traces.n_devices} devices respond "
            "to pulses as a soft-bounds device; nothing to fit"
        )
    g0 = 0.5 * (float(np.median(g_max[valid])) + float(np.median(g_min[valid])))

    # Per-device aihwkit quantities (c, s are the IV intercept and slope per direction).
    # Δ⁺ = α⁺(G_max − g0) = c⁺ + s⁺ g0 (for n = 1),  b⁺ = −c⁺/s⁺ − g0; mirror for down.
    d_up, d_up_var = _linear_combo(up, 1.0, g0)
    d_down, d_down_var = _linear_combo(down, -1.0, g0)
    b_max, b_max_var = _bound(up, g0)
    b_min, b_min_var = _bound(down, g0)
    if n_pulse > 1:  # steps per single pulse: divide the n-pulse change by its gain
        for arr, alpha in ((d_up, alpha_up), (d_down, alpha_down)):
            with np.errstate(all="ignore"):
                arr *= alpha / (1 - (1 - alpha) ** n_pulse)

    v = valid
    eff = {
        "delta_up": fit_random_effect(d_up[v], np.sqrt(d_up_var[v])),
        "delta_down": fit_random_effect(d_down[v], np.sqrt(d_down_var[v])),
        "w_max": fit_random_effect(b_max[v], np.sqrt(b_max_var[v])),
        "w_min": fit_random_effect(b_min[v], np.sqrt(b_min_var[v])),
    }
    mean_up, mean_down = eff["delta_up"].mean, eff["delta_down"].mean
    if mean_up >= mean_down:
        dw_min, up_down = mean_up, 1.0 - mean_down / mean_up
    else:
        dw_min, up_down = mean_down, mean_up / mean_down - 1.0
    # Gain g and asymmetry r per device (aihwkit §1.3), then their spreads.
    gain = ((d_up + d_down) / dw_min + abs(up_down)) / 2.0
    gain_se = np.sqrt(d_up_var + d_down_var) / (2.0 * dw_min)
    asym = ((d_up - d_down) / dw_min - up_down) / 2.0
    eff["gain"] = fit_random_effect(gain[v], gain_se[v])
    eff["asym"] = fit_random_effect(asym[v], gain_se[v])

    read_var, c2c = _noise(up, down, v)
    params = {
        "dw_min": dw_min,
        "up_down": up_down,
        "w_max": eff["w_max"].mean,
        "w_min": eff["w_min"].mean,
        "dw_min_dtod": eff["gain"].spread,
        "up_down_dtod": eff["asym"].spread,
        "w_max_dtod": eff["w_max"].spread / abs(eff["w_max"].mean),
        "w_min_dtod": eff["w_min"].spread / abs(eff["w_min"].mean),
        "dw_min_std": c2c,
        "write_noise_std": 0.0,
        "corrupt_devices_prob": n_stuck / max(int(finite.sum()), 1),
    }
    uncertainty = _uncertainties(eff, dw_min, up_down)
    per_device = {
        "device_id": traces.device_ids[v],
        "delta_up": d_up[v],
        "delta_down": d_down[v],
        "w_max": b_max[v],
        "w_min": b_min[v],
    }
    diagnostics = {
        "naive_dw_min_dtod": eff["gain"].naive_spread,
        "naive_w_max_dtod": eff["w_max"].naive_spread / abs(eff["w_max"].mean),
        "pairs_per_device_up": float(up.n_pairs),
        "pairs_per_device_down": float(down.n_pairs),
    }
    return PulseResponseFit(
        model=model,
        g_offset_s=g0,
        parameters={k: float(val) for k, val in params.items()},
        uncertainty=uncertainty,
        per_device=per_device,
        read_noise_s=float(np.sqrt(read_var)),
        n_devices=traces.n_devices,
        excluded={"stuck": n_stuck, "fit_failed": n_failed, "non_finite": n_nonfinite},
        diagnostics=diagnostics,
    )


def _alpha(slope: np.ndarray, n_pulse: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return 1.0 - (1.0 + slope) ** (1.0 / n_pulse)


def _linear_combo(est: DirectionEstimate, sign: float, g0: float) -> tuple[np.ndarray, np.ndarray]:
    """sign·(c + s·g0) and its variance from the (c, s) covariance."""
    value = sign * (est.intercept + est.slope * g0)
    var = est.cov[:, 0, 0] + g0**2 * est.cov[:, 1, 1] + 2 * g0 * est.cov[:, 0, 1]
    return value, np.maximum(var, 0.0)


def _bound(est: DirectionEstimate, g0: float) -> tuple[np.ndarray, np.ndarray]:
    """b = −c/s − g0 and its delta-method variance."""
    c, s = est.intercept, est.slope
    with np.errstate(all="ignore"):
        value = -c / s - g0
        dc, ds = -1.0 / s, c / s**2
        var = dc**2 * est.cov[:, 0, 0] + ds**2 * est.cov[:, 1, 1] + 2 * dc * ds * est.cov[:, 0, 1]
    return value, np.maximum(var, 0.0)  # the HAC sandwich can be slightly indefinite


def _noise(up: DirectionEstimate, down: DirectionEstimate, v: np.ndarray) -> tuple[float, float]:
    """(read-noise variance S², relative c2c step noise) from residual increments."""
    autocov = np.concatenate([up.residual_autocov[v], down.residual_autocov[v]])
    read_var = max(-float(np.mean(autocov)), 0.0)
    resid_var = np.concatenate([up.residual_var[v], down.residual_var[v]])
    step_sq = np.concatenate([up.mean_step_sq[v], down.mean_step_sq[v]])
    c2c_var = (float(np.mean(resid_var)) - 2.0 * read_var) / float(np.mean(step_sq))
    return read_var, float(np.sqrt(max(c2c_var, 0.0)))


def _uncertainties(eff: dict[str, RandomEffect], dw_min: float, up_down: float) -> dict[str, float]:
    """Standard errors of the population parameters (same units as the parameters)."""
    up, down = eff["delta_up"], eff["delta_down"]
    if up.mean >= down.mean:
        dw_se = up.mean_stderr
        ud_se = np.hypot(down.mean_stderr / up.mean, down.mean * up.mean_stderr / up.mean**2)
    else:
        dw_se = down.mean_stderr
        ud_se = np.hypot(up.mean_stderr / down.mean, up.mean * down.mean_stderr / down.mean**2)
    return {
        "dw_min": float(dw_se),
        "up_down": float(ud_se),
        "w_max": eff["w_max"].mean_stderr,
        "w_min": eff["w_min"].mean_stderr,
        "dw_min_dtod": eff["gain"].spread_stderr,
        "up_down_dtod": eff["asym"].spread_stderr,
        "w_max_dtod": eff["w_max"].spread_stderr / abs(eff["w_max"].mean),
        "w_min_dtod": eff["w_min"].spread_stderr / abs(eff["w_min"].mean),
    }
