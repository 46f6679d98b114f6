"""Synthetic PCM campaigns from the statistical model, independent of the emulator.

For tests and benchmarks on data this project's emulator did not make: any constants,
drift curves given as functions (not only the clipped-log form), either read-noise
conductance convention, a white read floor and stuck devices. Written directly from the
equations of ``datasets/PRESET.md`` (it shares no code with the fitter):

- g_prog = max(g_T + σ_prog(x_T)·ξ, 0), σ_prog = Σ c_k x_T^k; ν = |μ_ν(x_T) + σ_ν(x_T)·ξ|
  (or, ``signed``, ν = μ_ν(x_T) + σ_ν(x_T)·ξ: a conductance that may relax up);
- a read t s after programming: g_prog·(max(t, t0)/t0)^(−ν) plus Gaussian noise of std
  sqrt((g(t)·Q_s(x_ref)·sqrt(ln((t + t_read)/(2 t_read))))² + white²)/sqrt(n_avg),
  Q_s = min(a/max(x, x_floor)^b, c), x_ref = g_prog/g_max or g_T/g_max;
- every campaign programs its devices anew (independent realizations, as on hardware);
  stuck devices keep a random conductance and do not converge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fitting.pcm_data import DriftSample, ProgrammingSample, RepeatedReadSample

__all__ = ["SyntheticPcm", "clip_log", "synthetic_campaigns"]

Curve = Callable[[np.ndarray], np.ndarray]


def clip_log(a: float, b: float, lo: float, hi: float) -> Curve:
    """The curve x -> clip(a·ln x + b, lo, hi)."""
    return lambda x: np.clip(a * np.log(np.maximum(x, 1e-7)) + b, lo, hi)


PUBLISHED_MU_NU = clip_log(-0.0155, 0.0244, 0.049, 0.1)
PUBLISHED_SIGMA_NU = clip_log(-0.0125, -0.0059, 0.008, 0.045)


@dataclass
class SyntheticPcm:
    """Population of a synthetic PCM chip (SI units, x = g/g_max)."""

    g_max_s: float = 25e-6
    t0_s: float = 20.0
    t_read_s: float = 250e-9
    prog_coefficients_s: tuple[float, ...] = (0.26348e-6, 1.9650e-6, -1.1731e-6)
    mu_nu: Curve = PUBLISHED_MU_NU
    sigma_nu: Curve = PUBLISHED_SIGMA_NU
    q_a: float = 0.0088
    q_b: float = 0.65
    q_c: float = 0.2
    x_floor: float = 1e-3
    white_s: float = 0.0
    conductance: str = "g_prog"
    stuck_fraction: float = 0.0
    signed: bool = False  # ν = μ_ν + σ_ν·ξ (may be < 0: upward relaxation) instead of |·|

    def sigma_prog(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(sum(c * x**k for k, c in enumerate(self.prog_coefficients_s)), 0.0)

    def q_s(self, x: np.ndarray) -> np.ndarray:
        return np.minimum(self.q_a / np.maximum(x, self.x_floor) ** self.q_b, self.q_c)


def _program(m: SyntheticPcm, g_t: np.ndarray, rng: np.random.Generator):
    x = g_t / m.g_max_s
    g_prog = np.maximum(g_t + m.sigma_prog(x) * rng.standard_normal(g_t.size), 0.0)
    nu = m.mu_nu(x) + m.sigma_nu(x) * rng.standard_normal(g_t.size)
    nu = nu if m.signed else np.abs(nu)
    stuck = rng.random(g_t.size) < m.stuck_fraction
    g_prog = np.where(stuck, rng.uniform(0, m.g_max_s, g_t.size), g_prog)
    nu = np.where(stuck, 0.0, nu)
    return g_prog, nu, ~stuck


def _reads(m, g_prog, nu, g_t, t, n_avg, rng):
    """Reads at times ``t`` (broadcast against (devices, 1)) after programming."""
    g = g_prog[:, None] * (np.maximum(t, m.t0_s) / m.t0_s) ** (-nu[:, None])
    x_ref = (g_prog if m.conductance == "g_prog" else g_t) / m.g_max_s
    f = np.sqrt(np.maximum(np.log((t + m.t_read_s) / (2 * m.t_read_s)), 0.0))
    sd = np.sqrt((g * m.q_s(x_ref)[:, None] * f) ** 2 + m.white_s**2) / np.sqrt(n_avg)
    return g + sd * rng.standard_normal(g.shape)


def synthetic_campaigns(
    model: SyntheticPcm,
    levels_s: np.ndarray,
    devices_per_level: int,
    seed: int,
    times_s: np.ndarray | None = None,
    drift_n_avg: int = 4,
    prog_read_time_s: float | None = None,
    n_reads: int = 200,
    read_delay_s: float = 100.0,
    read_spacing_s: float = 1e-5,
) -> tuple[ProgrammingSample, DriftSample, RepeatedReadSample]:
    """Programming, drift and read-noise campaigns of ``devices_per_level`` per level."""
    rng = np.random.default_rng(seed)
    g_t = np.repeat(np.asarray(levels_s, dtype=float), devices_per_level)
    n = g_t.size
    ids = np.arange(n)
    times = np.geomspace(model.t0_s, 1e5, 40) if times_s is None else np.asarray(times_s)
    t_p = model.t0_s if prog_read_time_s is None else prog_read_time_s

    g_prog, nu, ok = _program(model, g_t, rng)
    g1 = _reads(model, g_prog, nu, g_t, np.array([t_p]), 1, rng)[:, 0]
    prog = ProgrammingSample(g_t, g1, t_p, 1, ok, ids, "synthetic programming")

    g_prog, nu, ok = _program(model, g_t, rng)
    g_d = _reads(model, g_prog, nu, g_t, times[None, :], drift_n_avg, rng)
    drift = DriftSample(g_t, times, g_d, drift_n_avg, ok, ids, "synthetic drift")

    g_prog, nu, ok = _program(model, g_t, rng)
    t_r = read_delay_s + read_spacing_s * np.arange(n_reads)
    g_r = _reads(model, g_prog, nu, g_t, t_r[None, :], 1, rng)
    reads = RepeatedReadSample(
        np.broadcast_to(t_r, g_r.shape), g_r, g_t, 1, ok, ids, "synthetic read_noise"
    )
    return prog, drift, reads
