"""What every emulated device array shares: programming times, noise streams, verify loop.

A device array holds the hidden state of ``n_rows x n_cols`` two-terminal devices. Chip
kinds differ in how a pulse changes a device (``_pulse``) and in what a read sees
(``_mean_conductance``, ``_read_sigma``); the rest lives here:

- every device remembers the chip time of its last programming event (``t_prog``); reads
  are evaluated at an explicit chip time ``t`` (the crossbar's clock), so a drift read at
  10^5 s costs the same as one at 1 s;
- two random streams: the *device* stream draws device-to-device parameters once at
  construction; the *noise* stream draws cycle-to-cycle, read and programming noise and can
  be reseeded (``reseed_noise``) without touching any device state;
- the on-chip program-and-verify loop (``verify_loop``), vectorized over the selection.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

__all__ = ["DeviceArray", "VerifyOutcome", "VerifySettings"]

#: Salt of the noise stream, so that ``reseed_noise(s)`` and chip seed ``s`` never coincide.
NOISE_STREAM = 1
RESEED_STREAM = 2


@dataclass(frozen=True)
class VerifySettings:
    """Parameters of one program-and-verify run (SI units).

    ``amplitude_v``/``width_s`` define the potentiating pulse; depressing pulses use
    ``-amplitude_v``. ``tol_s`` is the acceptance band on the verify read.
    """

    tol_s: float
    max_iter: int
    amplitude_v: float
    width_s: float
    n_avg: int = 1
    pulse_overhead_s: float = 1e-6
    read_aperture_s: float = 10e-6
    min_width_fraction: float = 1.0 / 256.0


@dataclass
class VerifyOutcome:
    """Result of :meth:`DeviceArray.verify_loop` for each selected device."""

    conductance_s: np.ndarray  # final verify read (S)
    iterations: np.ndarray  # int32, pulses applied
    converged: np.ndarray  # bool
    time_s: np.ndarray  # chip time of the device's last programming pulse
    duration_s: float  # chip time the whole run took


class DeviceArray(abc.ABC):
    """Base of the emulated device arrays; subclasses define the device physics."""

    #: chip kinds whose on-chip verify loop starts with a RESET (PCM erases history first)
    verify_starts_with_reset = False

    def __init__(self, shape: tuple[int, int], seed: int) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.n = self.shape[0] * self.shape[1]
        self.seed = int(seed)
        self.t_prog = np.zeros(self.n)  # chip time of each device's last programming event
        self.t_last = 0.0  # latest chip time seen, the default for reads without a time
        self.noise = np.random.default_rng([self.seed, NOISE_STREAM])

    # ------------------------------------------------------------------ physics (subclass)
    def strength(self, amplitude_v: float, width_s: float) -> float:
        """Relative step multiplier of a pulse: 1 for the nominal pulse, 0 below threshold.

        ``(width/W_nom)·exp((|V| - V_nom)/slope)`` with the truth's ``pulse_amplitude_v``,
        ``pulse_width_s``, ``threshold_v`` and ``amplitude_slope_v``.
        """
        t = self.truth
        if abs(amplitude_v) < t.threshold_v or width_s <= 0:
            return 0.0
        return (width_s / t.pulse_width_s) * float(
            np.exp((abs(amplitude_v) - t.pulse_amplitude_v) / t.amplitude_slope_v)
        )

    @abc.abstractmethod
    def _pulse(self, idx: np.ndarray, up: bool, strength: np.ndarray | float, t: float) -> None:
        """Apply one pulse to devices ``idx`` (strength per device or scalar) at chip time t."""

    @abc.abstractmethod
    def _mean_conductance(self, idx: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """Noise-free conductance (S) of devices ``idx``, ``dt`` s after their programming."""

    @abc.abstractmethod
    def _read_sigma(self, idx: np.ndarray, dt: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Standard deviation (S) of one read of devices ``idx`` with mean ``g``."""

    def _programmed(self, idx: np.ndarray, x_target: np.ndarray | None = None) -> None:  # noqa: B027
        """Hook after a programming event on ``idx`` (PCM draws drift and relaxation)."""

    def _before_verify(self, idx: np.ndarray, targets_s: np.ndarray, s: VerifySettings) -> None:  # noqa: B027
        """Hook before the verify loop (PCM prepares its relaxation calibration)."""

    def _after_verify(self, idx: np.ndarray, targets_s: np.ndarray, s: VerifySettings) -> None:
        """Hook after the verify loop; by default a normal programming event."""
        self._programmed(idx)

    # ------------------------------------------------------------------ noise
    def reseed_noise(self, seed: int) -> None:
        """Restart the noise stream (c2c, read, programming noise); device states stay."""
        self.noise = np.random.default_rng([int(seed), RESEED_STREAM])

    def _normal(self, size: int) -> np.ndarray:
        return self.noise.standard_normal(size)

    # ------------------------------------------------------------------ reads
    def _time(self, t: float | None) -> float:
        if t is None:
            return self.t_last
        self.t_last = max(self.t_last, float(t))
        return float(t)

    def conductance(self, idx: np.ndarray, t: float | None = None) -> np.ndarray:
        """Noise-free conductance (S) at chip time ``t``."""
        t = self._time(t)
        return self._mean_conductance(idx, t - self.t_prog[idx])

    def read_sigma(self, idx: np.ndarray, t: float | None = None) -> np.ndarray:
        """Read-noise standard deviation (S) of one read at chip time ``t``."""
        t = self._time(t)
        dt = t - self.t_prog[idx]
        return self._read_sigma(idx, dt, self._mean_conductance(idx, dt))

    def read(self, idx: np.ndarray, n_avg: int = 1, t: float | None = None) -> np.ndarray:
        """Measured conductance (S) of devices ``idx`` at chip time ``t``, ``n_avg`` averaged."""
        t = self._time(t)
        dt = t - self.t_prog[idx]
        g = self._mean_conductance(idx, dt)
        sigma = self._read_sigma(idx, dt, g)
        return g + self._normal(idx.size) * (sigma / np.sqrt(n_avg))

    def read_after_programming(
        self, idx: np.ndarray, times_s: np.ndarray, n_avg: int = 1
    ) -> np.ndarray:
        """Reads ``times_s[k]`` s after each device's last programming event.

        Shape ``(n_times, n_sel)``. The caller checks that those times lie in the future.
        """
        out = np.empty((len(times_s), idx.size), dtype=np.float64)
        for k, dt_k in enumerate(times_s):
            dt = np.full(idx.size, float(dt_k))
            g = self._mean_conductance(idx, dt)
            sigma = self._read_sigma(idx, dt, g)
            out[k] = g + self._normal(idx.size) * (sigma / np.sqrt(n_avg))
        if len(times_s):
            self._time(float(np.max(self.t_prog[idx]) + times_s[-1]))
        return out

    # ------------------------------------------------------------------ pulses
    def apply_pulses(
        self,
        idx: np.ndarray,
        amplitude_v: float,
        width_s: float,
        n: int,
        t: float | None = None,
        pulse_period_s: float = 0.0,
    ) -> None:
        """Apply ``n`` identical pulses (polarity = sign of the amplitude) from chip time t."""
        t = self._time(t)
        s = self.strength(amplitude_v, width_s)
        if s == 0.0 or n <= 0:
            return
        period = max(pulse_period_s, width_s)
        for k in range(n):
            self._pulse(idx, amplitude_v > 0, s, t + k * period)
        self.t_prog[idx] = t + (n - 1) * period + width_s
        self._time(float(self.t_prog[idx].max()) if idx.size else t)
        self._programmed(idx)

    def pulse_train(
        self,
        idx: np.ndarray,
        n_up: int,
        n_down: int,
        cycles: int,
        read_every: int,
        up: tuple[float, float],
        down: tuple[float, float],
        t: float | None = None,
        step_s: float = 0.0,
        read_delay_s: float = 0.0,
    ) -> np.ndarray:
        """Pulse train with reads; ``up``/``down`` are (amplitude V, width s).

        ``step_s`` is the chip time per pulse and ``read_delay_s`` the time from a pulse to
        the read after it. Returns float32 conductances, shape
        ``(1 + cycles*(n_up+n_down)//read_every, n_sel)``.
        """
        t = self._time(t)
        n_reads = 1 + cycles * (n_up + n_down) // read_every
        out = np.empty((n_reads, idx.size), dtype=np.float32)
        out[0] = self.read(idx, 1, t)
        row = 1
        s_up = self.strength(*up)
        s_down = self.strength(*down)
        for _ in range(cycles):
            for n, s, polarity in ((n_up, s_up, up[0] > 0), (n_down, s_down, down[0] > 0)):
                for _ in range(n // read_every):
                    for _ in range(read_every):
                        if s > 0:
                            self._pulse(idx, polarity, s, t)
                            self.t_prog[idx] = t
                        t += step_s
                    out[row] = self.read(idx, 1, t + read_delay_s)
                    row += 1
        self._programmed(idx)
        return out

    # ------------------------------------------------------------------ program and verify
    def verify_loop(
        self, idx: np.ndarray, targets_s: np.ndarray, s: VerifySettings, t: float | None = None
    ) -> VerifyOutcome:
        """On-chip program-and-verify of devices ``idx`` to ``targets_s`` (S) from chip time t.

        Algorithm (all selected devices in parallel; one iteration = one pulse per active
        device + one verify read): a device whose read lies within ``tol_s`` of its target
        stops; otherwise it gets a pulse whose polarity is the sign of the error and whose
        width is proportional to the error: ``width_s·clip(0.7·|err|/k, min_width_fraction,
        1)``, where k is the device's gain per unit width, learned from the reads before
        and after its previous pulses (full width until a first response is seen; k grows
        by 1.5x after an overshoot). Chip kinds with ``verify_starts_with_reset`` (PCM)
        first RESET every selected device; their depressing pulse is a RESET. A pulse's
        strength is proportional to its width (both device models).
        """
        t = self._time(t)
        t_start = t
        targets = np.asarray(targets_s, dtype=np.float64)
        self._before_verify(idx, targets, s)
        n = idx.size
        iterations = np.zeros(n, dtype=np.int32)
        t_done = self.t_prog[idx].copy()
        gain = np.full(n, np.nan)  # learned conductance change per unit width fraction
        last_sign = np.zeros(n, dtype=np.int8)
        s_up = self.strength(abs(s.amplitude_v), s.width_s)
        s_down = self.strength(-abs(s.amplitude_v), s.width_s)
        read_time = s.read_aperture_s * s.n_avg
        if self.verify_starts_with_reset and s_down > 0:
            self._pulse(idx, False, s_down, t)
            self.t_prog[idx] = t_done = np.full(n, t + s.width_s)
            t += s.width_s + s.pulse_overhead_s
        g = self.read(idx, s.n_avg, t)
        t += read_time
        active = np.ones(n, dtype=bool)
        for _ in range(s.max_iter):
            err = targets - g
            active &= np.abs(err) > s.tol_s
            if not active.any() or s_up == 0.0:
                break
            act = np.flatnonzero(active)
            sign = np.where(err[act] > 0, 1, -1).astype(np.int8)
            overshoot = (last_sign[act] != 0) & (sign != last_sign[act])
            gain[act[overshoot]] *= 1.5
            last_sign[act] = sign
            k = gain[act]
            scale = np.where(
                np.isfinite(k),
                np.clip(0.7 * np.abs(err[act]) / np.where(np.isfinite(k), k, 1.0), 0, 1),
                1.0,
            )
            scale = np.maximum(scale, s.min_width_fraction)
            for polarity in (True, False):
                mask = (sign > 0) == polarity
                if mask.any():
                    strength = (s_up if polarity else s_down) * scale[mask]
                    self._pulse(idx[act[mask]], polarity, strength, t)
            self.t_prog[idx[act]] = t + s.width_s * scale
            t_done[act] = self.t_prog[idx[act]]
            iterations[act] += 1
            t += s.width_s * float(scale.max()) + s.pulse_overhead_s
            g_before = g[act]
            g[act] = self.read(idx[act], s.n_avg, t)
            t += read_time
            # learn the gain from responses in the pulse direction (not from PCM RESETs)
            response = (g[act] - g_before) * sign / scale
            learn = response > 0
            if self.verify_starts_with_reset:
                learn &= sign > 0
            old = gain[act[learn]]
            gain[act[learn]] = np.where(
                np.isfinite(old), 0.5 * (old + response[learn]), response[learn]
            )
        converged = np.abs(targets - g) <= s.tol_s
        self._after_verify(idx, targets, s)
        self._time(t)
        return VerifyOutcome(g, iterations, converged, t_done, t - t_start)

    # ------------------------------------------------------------------ ground truth
    @abc.abstractmethod
    def per_device_truth(self) -> dict[str, np.ndarray]:
        """Per-device hidden parameters, flat device order."""

    @abc.abstractmethod
    def truth_preset(self) -> dict:
        """The population truth as a preset-shaped document."""
