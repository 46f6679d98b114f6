"""Phase-change memory physics of the emulated chip: gradual SET, abrupt RESET, drift, noise.

The hidden truth follows the statistical PCM model of ``datasets/PRESET.md`` (``pcm``
section; aihwkit's PCMLikeNoiseModel constants, REFERENCES.md [R8]), with x = g/g_max:

- programming noise at t0: g_prog = g_T + N(0, σ_prog(x_T)), σ_prog = Σ c_k x_T^k;
- drift: g(t) = g_prog·(t/t0)^(−ν) for t > t0 (g_prog for t ≤ t0), ν ~ |N(μ_ν(x_T), σ_ν(x_T))|
  drawn per device at each programming event, μ_ν/σ_ν = clip(a·ln x + b, lo, hi);
- read noise of one read: σ = g(t)·Q_s(x_prog)·sqrt(ln((t + t_read)/(2 t_read))),
  Q_s(x) = min(a/max(x, x_floor)^b, c), x_prog = g_prog/g_max (aihwkit's code), plus a tiny
  white floor ``read_noise_white_s`` from the read circuit. Reads are independent draws.

Time t is the chip time since the device's last programming pulse (``t_prog``).

How the programming noise *emerges*. The chip programs by iterative program-and-verify
(:meth:`DeviceArray.verify_loop`): RESET, then gradual SET pulses with a verify read after
each, until the read lies within the tolerance. A SET pulse of strength s moves the
conductance by ``set_step·s·((g_sat − g)/g_sat)^p·(1 + σ_c2c ξ)`` (per-device ``set_step``
and ``g_sat``; not an aihwkit family); RESET is abrupt (to ``g_reset``). The verify reads
are taken microseconds after the pulse, with the read noise of that instant. When the loop
has finished, the device undergoes a stochastic post-programming relaxation δ that
completes within ``t_relax_s`` (1 ms): g_prog = g_v + δ, where g_v is the conductance the
loop left. The loop's own final error e_v = g_v − g_T has a mean m(x_T) and variance
v(x_T) set by the tolerance, the SET step statistics and the verify read noise; the chip
calibrates them once per set of loop settings by running the *same* loop on a
noise-independent virtual population (21 target levels x 512 devices, its own seed), and
draws δ ~ N(−m, sqrt(σ_prog² − v)). Hence Var(g_prog − g_T) = σ_prog(x_T)² exactly (up to the
≈1 % Monte-Carlo error of v, which is a fraction of σ_prog²) and the truth's polynomial is
what an ideal fit of "first read at t0 minus target" (after removing read noise) finds,
whatever the tolerance, as long as v ≤ σ_prog² (tolerance ≲ 0.4 µS; looser tolerances make
the error exceed the datasheet precision, which the chip then reports as-is). Open-loop
pulses (pulse trains, ``PULS:APPL``) relax with δ ~ N(0, σ_prog(x_v)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instruments.emulator.device_array import DeviceArray, VerifySettings

__all__ = ["PcmDeviceArray", "PcmTruth"]

CALIBRATION_LEVELS = 21
CALIBRATION_DEVICES = 512


@dataclass(frozen=True)
class PcmTruth:
    """Population parameters of a PCM chip (SI units; x = g/g_max, natural logs)."""

    g_max_s: float = 25e-6
    t0_s: float = 20.0
    t_read_s: float = 250e-9
    prog_coefficients_s: tuple[float, ...] = (0.26348e-6, 1.9650e-6, -1.1731e-6)
    mu_nu: tuple[float, float, float, float] = (-0.0155, 0.0244, 0.049, 0.1)  # a, b, lo, hi
    sigma_nu: tuple[float, float, float, float] = (-0.0125, -0.0059, 0.008, 0.045)
    read_q: tuple[float, float, float] = (0.0088, 0.65, 0.2)  # a, b, c of Q_s
    read_x_floor: float = 1e-3
    read_noise_white_s: float = 1e-8
    t_relax_s: float = 1e-3
    # gradual SET / abrupt RESET (the device response; not an aihwkit family)
    set_step_s: float = 2e-6
    set_step_dtod: float = 0.2
    set_step_std: float = 0.4
    g_sat_s: float = 30e-6
    g_sat_dtod: float = 0.05
    set_exponent: float = 1.5
    g_reset_s: float = 0.05e-6
    g_reset_dtod: float = 0.3
    stuck_fraction: float = 0.01
    pulse_amplitude_v: float = 1.0
    pulse_width_s: float = 100e-9
    threshold_v: float = 0.5
    amplitude_slope_v: float = 0.3

    def __post_init__(self) -> None:
        for name in ("prog_coefficients_s", "mu_nu", "sigma_nu", "read_q"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if len(self.mu_nu) != 4 or len(self.sigma_nu) != 4 or len(self.read_q) != 3:
            raise ValueError("mu_nu and sigma_nu need (a, b, lo, hi); read_q needs (a, b, c)")
        for name in ("g_max_s", "t0_s", "t_read_s", "set_step_s", "g_sat_s", "pulse_width_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if not 0 <= self.stuck_fraction < 1:
            raise ValueError("stuck_fraction must be in [0, 1)")

    # -- the published model, as functions of x
    def sigma_prog(self, x: np.ndarray) -> np.ndarray:
        """Programming-noise std (S) at normalized target ``x``."""
        x = np.asarray(x, dtype=float)
        s = np.zeros_like(x)
        for k, c in enumerate(self.prog_coefficients_s):
            s = s + c * x**k
        return np.maximum(s, 0.0)

    @staticmethod
    def _clipped_log(x: np.ndarray, p: tuple[float, float, float, float]) -> np.ndarray:
        a, b, lo, hi = p
        return np.clip(a * np.log(np.maximum(np.asarray(x, dtype=float), 1e-7)) + b, lo, hi)

    def nu_mean(self, x: np.ndarray) -> np.ndarray:
        return self._clipped_log(x, self.mu_nu)

    def nu_std(self, x: np.ndarray) -> np.ndarray:
        return self._clipped_log(x, self.sigma_nu)

    def q_s(self, x: np.ndarray) -> np.ndarray:
        a, b, c = self.read_q
        return np.minimum(a / np.maximum(np.asarray(x, dtype=float), self.read_x_floor) ** b, c)

    def time_factor(self, dt: np.ndarray) -> np.ndarray:
        """sqrt(ln((t + t_read)/(2 t_read))), 0 where the log is negative."""
        dt = np.maximum(np.asarray(dt, dtype=float), 0.0)
        return np.sqrt(np.maximum(np.log((dt + self.t_read_s) / (2 * self.t_read_s)), 0.0))

    def preset_section(self) -> dict:
        """The ``pcm`` section of a preset (datasets/PRESET.md)."""
        a, b, lo, hi = self.mu_nu
        sa, sb, slo, shi = self.sigma_nu
        qa, qb, qc = self.read_q
        return {
            "g_max_s": self.g_max_s,
            "t0_s": self.t0_s,
            "t_read_s": self.t_read_s,
            "prog_noise": {"form": "polynomial", "coefficients_s": list(self.prog_coefficients_s)},
            "drift": {
                "form": "clipped-log",
                "mu_nu": {"a": a, "b": b, "lo": lo, "hi": hi},
                "sigma_nu": {"a": sa, "b": sb, "lo": slo, "hi": shi},
            },
            "read_noise": {
                "form": "min-power",
                "a": qa,
                "b": qb,
                "c": qc,
                "x_floor": self.read_x_floor,
                "conductance": "g_prog",
                "white_s": self.read_noise_white_s,
            },
            "valid_range": {
                "g_min_s": 0.0,
                "g_max_s": self.g_max_s,
                "t_min_s": self.t0_s,
                "t_max_s": 1.0e5,
            },
            "time_origin": "last programming pulse of each device",
        }


class PcmDeviceArray(DeviceArray):
    """An array of PCM devices: gradual SET, abrupt RESET, relaxation, drift, 1/f reads."""

    verify_starts_with_reset = True

    def __init__(
        self, truth: PcmTruth, shape: tuple[int, int], seed: int, calibrating: bool = False
    ) -> None:
        super().__init__(shape, seed)
        self.truth = truth
        self.calibrating = calibrating
        t = truth
        n = self.n
        rng = np.random.default_rng([self.seed, 0])  # device-to-device draws
        xi = rng.standard_normal((3, n))
        self.set_step = t.set_step_s * np.abs(1.0 + t.set_step_dtod * xi[0])
        self.g_sat = t.g_sat_s * np.abs(1.0 + t.g_sat_dtod * xi[1])
        self.g_reset = t.g_reset_s * np.abs(1.0 + t.g_reset_dtod * xi[2])
        self.stuck = rng.random(n) < t.stuck_fraction
        self.g_stuck = rng.uniform(0.0, t.g_max_s, n)
        self.g_v = rng.uniform(self.g_reset, t.g_max_s)  # as delivered: unknown states
        self.delta = np.zeros(n)  # post-programming relaxation
        self.nu = np.zeros(n)
        self.g_target = np.full(n, np.nan)  # target of the last program-and-verify
        self._calibration: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._draw_drift(np.arange(n), self.g_v / t.g_max_s, rng)

    # -- pulses

    def _pulse(self, idx: np.ndarray, up: bool, strength: np.ndarray | float, t: float) -> None:
        tr = self.truth
        g_now = self._mean_conductance(idx, t - self.t_prog[idx])  # relaxed and drifted state
        if up:
            room = np.maximum(self.g_sat[idx] - g_now, 0.0) / self.g_sat[idx]
            step = self.set_step[idx] * strength * room**tr.set_exponent
            step *= 1.0 + tr.set_step_std * self._normal(idx.size)
            g_new = np.clip(g_now + step, 0.0, self.g_sat[idx])
        else:
            g_new = self.g_reset[idx] * np.abs(1.0 + 0.1 * self._normal(idx.size))
        ok = ~self.stuck[idx]
        self.g_v[idx[ok]] = g_new[ok]
        self.delta[idx[ok]] = 0.0

    # -- state
    def _relaxed(self, idx: np.ndarray) -> np.ndarray:
        return np.maximum(self.g_v[idx] + self.delta[idx], 0.0)

    def _mean_conductance(self, idx: np.ndarray, dt: np.ndarray) -> np.ndarray:
        tr = self.truth
        dt = np.asarray(dt, dtype=float)
        factor = (np.maximum(dt, tr.t0_s) / tr.t0_s) ** (-self.nu[idx])
        g = np.where(dt >= tr.t_relax_s, self._relaxed(idx) * factor, self.g_v[idx])
        return np.where(self.stuck[idx], self.g_stuck[idx], g)

    def _read_sigma(self, idx: np.ndarray, dt: np.ndarray, g: np.ndarray) -> np.ndarray:
        tr = self.truth
        dt = np.asarray(dt, dtype=float)
        g_ref = np.where(dt >= tr.t_relax_s, self._relaxed(idx), self.g_v[idx])
        g_ref = np.where(self.stuck[idx], self.g_stuck[idx], g_ref)
        sigma_1f = g * tr.q_s(g_ref / tr.g_max_s) * tr.time_factor(dt)
        return np.sqrt(sigma_1f**2 + tr.read_noise_white_s**2)

    def _draw_drift(self, idx: np.ndarray, x: np.ndarray, gen: np.random.Generator) -> None:
        tr = self.truth
        self.nu[idx] = np.abs(tr.nu_mean(x) + tr.nu_std(x) * gen.standard_normal(idx.size))

    def _programmed(self, idx: np.ndarray, x_target: np.ndarray | None = None) -> None:
        tr = self.truth
        ok = idx[~self.stuck[idx]]
        x = self.g_v[ok] / tr.g_max_s
        self._draw_drift(ok, x, self.noise)
        self.delta[ok] = tr.sigma_prog(x) * self._normal(ok.size)

    # -- program and verify
    def _before_verify(self, idx: np.ndarray, targets_s: np.ndarray, s: VerifySettings) -> None:
        if not self.calibrating:
            self._loop_error_table(s)

    def _after_verify(self, idx: np.ndarray, targets_s: np.ndarray, s: VerifySettings) -> None:
        if self.calibrating:
            return
        tr = self.truth
        ok = ~self.stuck[idx]
        dev = idx[ok]
        x = np.clip(targets_s[ok] / tr.g_max_s, 0.0, None)
        grid, (mean, var) = self._grid(), self._loop_error_table(s)
        m = np.interp(x, grid, mean)
        v = np.interp(x, grid, var)
        s_relax = np.sqrt(np.maximum(tr.sigma_prog(x) ** 2 - v, 0.0))
        self.delta[dev] = -m + s_relax * self._normal(dev.size)
        self._draw_drift(dev, x, self.noise)
        self.g_target[dev] = targets_s[ok]

    @staticmethod
    def _grid() -> np.ndarray:
        return np.linspace(0.0, 1.0, CALIBRATION_LEVELS)

    def _loop_error_table(self, s: VerifySettings) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance (S, S²) of the loop's final error e_v per grid level.

        Measured once per loop setting on a virtual population with the same physics but its
        own seeds (so it never consumes this chip's noise stream).
        """
        key = (s.tol_s, s.max_iter, s.amplitude_v, s.width_s, s.n_avg, s.read_aperture_s)
        if key not in self._calibration:
            from dataclasses import replace

            virtual = PcmDeviceArray(
                replace(self.truth, stuck_fraction=0.0),
                (CALIBRATION_LEVELS, CALIBRATION_DEVICES),
                seed=self.seed + 7919,
                calibrating=True,
            )
            targets = np.repeat(self._grid() * self.truth.g_max_s, CALIBRATION_DEVICES)
            out = virtual.verify_loop(np.arange(virtual.n), targets, s, t=0.0)
            err = (virtual.g_v - targets).reshape(CALIBRATION_LEVELS, -1)
            ok = out.converged.reshape(CALIBRATION_LEVELS, -1)
            pairs = list(zip(err, ok, strict=True))
            mean = np.array([e[k].mean() if k.any() else 0.0 for e, k in pairs])
            var = np.array([e[k].var() if k.sum() > 1 else 0.0 for e, k in pairs])
            self._calibration[key] = (mean, var)
        return self._calibration[key]

    # -- ground truth
    def per_device_truth(self) -> dict[str, np.ndarray]:
        return {
            "nu": self.nu.copy(),
            "g_prog": np.where(self.stuck, self.g_stuck, np.maximum(self.g_v + self.delta, 0.0)),
            "g_target": self.g_target.copy(),
            "set_step": self.set_step.copy(),
            "g_sat": self.g_sat.copy(),
            "g_reset": self.g_reset.copy(),
            "stuck": self.stuck.astype(np.float64),
            "t_prog": self.t_prog.copy(),
        }

    def truth_preset(self) -> dict:
        t = self.truth
        device = {
            "model": "none",
            "emulator_response": "pcm-gradual-set",
            "parameters": {
                "set_step_s": t.set_step_s,
                "set_step_dtod": t.set_step_dtod,
                "set_step_std": t.set_step_std,
                "g_sat_s": t.g_sat_s,
                "g_sat_dtod": t.g_sat_dtod,
                "set_exponent": t.set_exponent,
                "g_reset_s": t.g_reset_s,
                "corrupt_devices_prob": t.stuck_fraction,
            },
            "g_offset_s": t.g_reset_s,
            "read_noise_s": t.read_noise_white_s,
        }
        return {"device": device, "pcm": t.preset_section(), "truth": True}
