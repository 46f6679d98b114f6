"""Hidden ground-truth physics of the emulated crossbar, vectorized over devices with numpy.

This is the emulator's own, independent implementation of device behaviour: the fitting
code must recover its parameters from measurements, so nothing here is imported by
``fitting`` or ``simulator``.

Pulsed devices are parametrized like aihwkit's pulsed devices (Δw_min, up/down asymmetry,
bounds, device-to-device and cycle-to-cycle variation) but in siemens, around a reference
conductance ``g_offset_s``: the "weight" of a device is ``w = G - g_offset_s``.

Response kinds:

``soft-bounds``
    up:   ΔG = +Δ⁺ (1 - w/b⁺)(1 + σξ);  down: ΔG = -Δ⁻ (1 - w/b⁻)(1 + σξ)
``quadratic-saturation`` (deliberately *not* one of the fit families)
    up:   ΔG = +Δ⁺ (1 - c·((w - b⁻)/(b⁺ - b⁻))²)(1 + σξ)
    down: ΔG = -Δ⁻ (1 - c·((b⁺ - w)/(b⁺ - b⁻))²)(1 + σξ)

After every pulse ``w`` is clipped to the device's bounds [b⁻, b⁺]. Reads add white
Gaussian noise of std ``read_noise_s``; ``write_noise_std`` (in units of Δw_min) adds a
non-accumulating offset redrawn after every pulse.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["CHIP_KINDS", "PulsedDeviceArray", "PulsedTruth", "chip_truth"]

RESPONSES = ("soft-bounds", "quadratic-saturation")


@dataclass(frozen=True)
class PulsedTruth:
    """Population parameters of a pulsed-device chip, siemens unless stated."""

    response: str = "soft-bounds"
    g_offset_s: float = 60e-6
    dw_min: float = 0.8e-6
    up_down: float = 0.1
    w_max: float = 40e-6
    w_min: float = -40e-6
    dw_min_dtod: float = 0.2  # relative
    up_down_dtod: float = 0.03  # in units of dw_min
    w_max_dtod: float = 0.08  # relative
    w_min_dtod: float = 0.08  # relative
    dw_min_std: float = 0.3  # relative cycle-to-cycle step noise
    write_noise_std: float = 0.0  # units of dw_min, non-accumulating
    read_noise_s: float = 0.25e-6  # absolute read noise std
    stuck_fraction: float = 0.02
    curvature: float = 0.0  # quadratic-saturation only
    pulse_amplitude_v: float = 1.2  # nominal pulse: strength 1
    pulse_width_s: float = 1e-6
    threshold_v: float = 0.6  # |V| below this does not switch
    amplitude_slope_v: float = 0.25  # strength = (width/nominal) * exp((|V| - V_nom)/slope)

    def __post_init__(self) -> None:
        if self.response not in RESPONSES:
            raise ValueError(f"unknown response {self.response!r}; expected one of {RESPONSES}")
        if not (self.w_min < 0 < self.w_max):
            raise ValueError("w_min < 0 < w_max is required (bounds are relative to g_offset_s)")
        if self.g_offset_s + self.w_min * (1 + 3 * self.w_min_dtod) <= 0:
            raise ValueError("lower conductance bound would be negative for some devices")

    def family(self) -> str:
        """The fit family this response belongs to, or ``"none"``."""
        return "soft-bounds" if self.response == "soft-bounds" else "none"


CHIP_KINDS: dict[str, PulsedTruth] = {
    # Bidirectional filamentary ReRAM: soft bounds with up/down asymmetry.
    "reram": PulsedTruth(),
    # ECRAM: near-linear, saturating only close to the bounds, not an exact fit family.
    "ecram": PulsedTruth(
        response="quadratic-saturation",
        g_offset_s=5e-6,
        dw_min=0.02e-6,
        up_down=-0.05,
        w_max=4e-6,
        w_min=-4e-6,
        dw_min_dtod=0.1,
        up_down_dtod=0.02,
        w_max_dtod=0.05,
        w_min_dtod=0.05,
        dw_min_std=0.15,
        read_noise_s=0.004e-6,
        stuck_fraction=0.01,
        curvature=0.6,
        pulse_amplitude_v=3.0,
        pulse_width_s=10e-3,
        threshold_v=1.0,
        amplitude_slope_v=0.5,
    ),
}


def chip_truth(kind: str, **overrides: float | str) -> PulsedTruth:
    """Ground truth of a named chip kind, with optional parameter overrides."""
    if kind not in CHIP_KINDS:
        raise ValueError(f"unknown chip kind {kind!r}; expected one of {sorted(CHIP_KINDS)}")
    return dataclasses.replace(CHIP_KINDS[kind], **overrides)


class PulsedDeviceArray:
    """State and per-device parameters of an ``n_rows x n_cols`` array of pulsed devices."""

    def __init__(self, truth: PulsedTruth, shape: tuple[int, int], seed: int) -> None:
        self.truth = truth
        self.shape = shape
        self.seed = seed
        n = shape[0] * shape[1]
        rng = np.random.default_rng([seed, 0])  # device-to-device draws
        t = truth
        xi = rng.standard_normal((5, n))
        gain = 1.0 + t.dw_min_dtod * xi[0]
        asym = t.up_down_dtod * xi[1]
        self.b_max = t.w_max * (1.0 + t.w_max_dtod * xi[2])
        # Conductance stays positive: bounds beyond 95 % of g_offset_s are clipped (>3 sigma).
        self.b_min = np.maximum(t.w_min * (1.0 + t.w_min_dtod * xi[3]), -0.95 * t.g_offset_s)
        self.delta_up = np.abs(t.dw_min * (gain + asym + min(t.up_down, 0.0)))
        self.delta_down = np.abs(t.dw_min * (gain - asym - max(t.up_down, 0.0)))
        self.stuck = rng.random(n) < t.stuck_fraction
        self.delta_up[self.stuck] = 0.0
        self.delta_down[self.stuck] = 0.0
        # Initial state: uniform in the middle half of each device's range.
        u = rng.uniform(0.25, 0.75, n)
        self.w = self.b_min + u * (self.b_max - self.b_min)
        self.write_offset = np.zeros(n)
        self.noise = np.random.default_rng([seed, 1])  # cycle-to-cycle and read noise

    # -- pulses
    def strength(self, amplitude_v: float, width_s: float) -> float:
        """Relative step multiplier of a pulse (1 for the nominal pulse)."""
        t = self.truth
        if abs(amplitude_v) < t.threshold_v:
            return 0.0
        return (width_s / t.pulse_width_s) * float(
            np.exp((abs(amplitude_v) - t.pulse_amplitude_v) / t.amplitude_slope_v)
        )

    def _step(self, idx: np.ndarray, w: np.ndarray, up: bool, strength: float) -> np.ndarray:
        t = self.truth
        b_max, b_min = self.b_max[idx], self.b_min[idx]
        if t.response == "soft-bounds":
            if up:
                mean = self.delta_up[idx] * (1.0 - w / b_max)
            else:
                mean = -self.delta_down[idx] * (1.0 - w / b_min)
        else:  # quadratic-saturation
            span = b_max - b_min
            if up:
                mean = self.delta_up[idx] * (1.0 - t.curvature * ((w - b_min) / span) ** 2)
            else:
                mean = -self.delta_down[idx] * (1.0 - t.curvature * ((b_max - w) / span) ** 2)
        mean *= strength
        if t.dw_min_std > 0:
            mean *= 1.0 + t.dw_min_std * self.noise.standard_normal(idx.size)
        return mean

    def apply_pulses(self, idx: np.ndarray, amplitude_v: float, width_s: float, n: int) -> None:
        """Apply ``n`` pulses (polarity = sign of amplitude) to the devices ``idx``."""
        s = self.strength(amplitude_v, width_s)
        if s == 0.0 or n <= 0:
            return
        w = self.w[idx]
        lo, hi = self.b_min[idx], self.b_max[idx]
        for _ in range(n):
            w = np.clip(w + self._step(idx, w, amplitude_v > 0, s), lo, hi)
        self.w[idx] = w
        self._redraw_write_noise(idx)

    def _redraw_write_noise(self, idx: np.ndarray) -> None:
        t = self.truth
        if t.write_noise_std > 0:
            self.write_offset[idx] = (
                t.write_noise_std * t.dw_min * self.noise.standard_normal(idx.size)
            )

    # -- reads
    def read(self, idx: np.ndarray, n_avg: int = 1) -> np.ndarray:
        """Measured conductance (S) of devices ``idx``, averaging ``n_avg`` reads."""
        g = self.truth.g_offset_s + self.w[idx] + self.write_offset[idx]
        noise = self.noise.standard_normal(idx.size) * (self.truth.read_noise_s / np.sqrt(n_avg))
        return g + noise

    def pulse_train(
        self,
        idx: np.ndarray,
        n_up: int,
        n_down: int,
        cycles: int,
        read_every: int,
        up: tuple[float, float],
        down: tuple[float, float],
    ) -> np.ndarray:
        """Pulse train with reads; ``up``/``down`` are (amplitude V, width s).

        Returns float32 conductances, shape ``(1 + cycles*(n_up+n_down)//read_every, n_sel)``.
        """
        n_reads = 1 + cycles * (n_up + n_down) // read_every
        out = np.empty((n_reads, idx.size), dtype=np.float32)
        out[0] = self.read(idx)
        row = 1
        for _ in range(cycles):
            for n, (amp, width) in ((n_up, up), (n_down, down)):
                for _ in range(n // read_every):
                    self.apply_pulses(idx, amp, width, read_every)
                    out[row] = self.read(idx)
                    row += 1
        return out

    # -- ground truth
    def per_device_truth(self) -> dict[str, np.ndarray]:
        """Per-device parameters in aihwkit naming (siemens), flat device order."""
        return {
            "delta_up": self.delta_up.copy(),
            "delta_down": self.delta_down.copy(),
            "w_max": self.b_max.copy(),
            "w_min": self.b_min.copy(),
            "stuck": self.stuck.astype(np.float64),
        }

    def truth_preset(self) -> dict:
        """The ground truth as a preset document (see ``calib/presets.py``)."""
        t = self.truth
        params = {
            "dw_min": t.dw_min,
            "up_down": t.up_down,
            "w_max": t.w_max,
            "w_min": t.w_min,
            "dw_min_dtod": t.dw_min_dtod,
            "up_down_dtod": t.up_down_dtod,
            "w_max_dtod": t.w_max_dtod,
            "w_min_dtod": t.w_min_dtod,
            "dw_min_std": t.dw_min_std,
            "write_noise_std": t.write_noise_std,
            "corrupt_devices_prob": t.stuck_fraction,
        }
        device = {
            "model": t.family(),
            "emulator_response": t.response,
            "parameters": params,
            "g_offset_s": t.g_offset_s,
            "read_noise_s": t.read_noise_s,
        }
        if t.response == "quadratic-saturation":
            device["curvature"] = t.curvature
        return {"device": device, "truth": True}
