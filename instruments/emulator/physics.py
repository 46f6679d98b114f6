"""Hidden ground-truth physics of the emulated crossbar, vectorized over devices with numpy.

This is the emulator's own, independent implementation of device behaviour: the fitting
code must recover its parameters from measurements, so nothing here is imported by
``fitting`` or ``simulator`` (and nothing here imports them).

Pulsed devices are parametrized like aihwkit's pulsed devices (Δw_min, up/down asymmetry,
bounds, device-to-device and cycle-to-cycle variation) but in siemens, around a reference
conductance ``g_offset_s``: the "weight" of a device is ``w = G - g_offset_s``.
Device-to-device draws follow aihwkit's construction (bounds ``w_max(1 + w_max_dtod ξ)``,
gain ``1 + dw_min_dtod ξ``, asymmetry ``up_down_dtod ξ``, Δ⁺ = Δw_min(g + r + min(β, 0)),
Δ⁻ = Δw_min(g − r − max(β, 0))); a fraction ``stuck_fraction`` of devices does not respond.

Responses (expected signed step of one pulse of strength 1; ×(1 + σξ) for cycle-to-cycle
noise, σ = ``dw_min_std``; then ``w`` is clipped to the device's bounds [b⁻, b⁺]):

``constant-step``           up ``+Δ⁺``; down ``−Δ⁻``
``linear-step``             up ``+Δ⁺(1 − γ'⁺ w / w_max)``; down ``−Δ⁻(1 − γ'⁻ w / w_min)``,
                            γ'± = |γ± + γ±_dtod ξ| per device, population bounds as reference
``soft-bounds``             up ``+Δ⁺(1 − w/b⁺)``; down ``−Δ⁻(1 − w/b⁻)`` (the ``reram`` kind)
``pow-step``                up ``+Δ⁺((b⁺ − w)/R)^γ⁺``; down ``−Δ⁻((w − b⁻)/R)^γ⁻``, R = b⁺ − b⁻,
                            γ± sampled per device like the steps (``pow_gamma``,
                            ``pow_gamma_dtod``, ``pow_up_down``, ``pow_up_down_dtod``)
``exp-step``                z = 2a·w/R + b; up ``+Δ⁺·max(1 − A⁺e^{γ⁺z}, 0)``;
                            down ``−Δ⁻·max(1 − A⁻e^{−γ⁻z}, 0)``
``quadratic-saturation``    up ``+Δ⁺(1 − c·u²)``, u = (w − b⁻)/R; down ``−Δ⁻(1 − c·(1 − u)²)``:
                            the ``ecram`` kind, deliberately *not* one of the fit families
                            (near-linear, saturating only close to the bounds)

A pulse of amplitude V and width W has strength ``(W/W_nom)·exp((|V| − V_nom)/slope)``
(zero below ``threshold_v``); its sign is the polarity. Reads add white Gaussian noise of
std ``read_noise_s``; ``write_noise_std`` (units of Δw_min) adds a non-accumulating offset
redrawn after every pulse. PCM lives in :mod:`instruments.emulator.pcm`.

A ``custom`` chip is a JSON parameter file (:func:`load_truth_file`)::

    {"base": "reram", "response": "pow-step", "parameters": {"pow_gamma": 1.6, ...}}

where ``base`` is a built-in kind whose parameters are overridden (any field of
:class:`PulsedTruth`, or of :class:`~instruments.emulator.pcm.PcmTruth` for ``pcm``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instruments.emulator.device_array import DeviceArray
from instruments.emulator.pcm import PcmDeviceArray, PcmTruth

__all__ = [
    "CHIP_KINDS",
    "RESPONSES",
    "DeviceArray",
    "PcmDeviceArray",
    "PcmTruth",
    "PulsedDeviceArray",
    "PulsedTruth",
    "chip_truth",
    "load_truth_file",
    "make_device_array",
]

RESPONSES = (
    "constant-step",
    "linear-step",
    "soft-bounds",
    "pow-step",
    "exp-step",
    "quadratic-saturation",
)

#: devices per independent noise stream in the batched kernel (fixed, so results do not
#: depend on the number of threads)
SHARD_DEVICES = 16384

_EXP_STEP_DEFAULT_GAMMA = (12.44625, 12.78785)


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
    # linear-step (aihwkit LinearStepDevice; exp-step reuses gamma_up/gamma_down)
    gamma_up: float | None = None
    gamma_down: float | None = None
    gamma_up_dtod: float = 0.05
    gamma_down_dtod: float = 0.05
    # pow-step (aihwkit PowStepDevice)
    pow_gamma: float = 1.0
    pow_gamma_dtod: float = 0.1
    pow_up_down: float = 0.0
    pow_up_down_dtod: float = 0.0
    # exp-step (aihwkit ExpStepDevice)
    A_up: float = 0.00081
    A_down: float = 0.36833
    a: float = 0.244
    b: float = 0.2425
    # pulse -> strength law
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
        if self.gamma_up is None or self.gamma_down is None:
            up, down = _EXP_STEP_DEFAULT_GAMMA if self.response == "exp-step" else (0.0, 0.0)
            object.__setattr__(self, "gamma_up", up if self.gamma_up is None else self.gamma_up)
            object.__setattr__(
                self, "gamma_down", down if self.gamma_down is None else self.gamma_down
            )
        for name in ("dw_min", "read_noise_s", "pulse_width_s", "amplitude_slope_v"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if not 0 <= self.stuck_fraction < 1:
            raise ValueError("stuck_fraction must be in [0, 1)")

    def family(self) -> str:
        """The fit family this response belongs to, or ``"none"``."""
        return "none" if self.response == "quadratic-saturation" else self.response

    def family_parameters(self) -> dict[str, float]:
        """aihwkit-named population parameters of the family (siemens for conductances)."""
        params = {
            "dw_min": self.dw_min,
            "up_down": self.up_down,
            "w_max": self.w_max,
            "w_min": self.w_min,
            "dw_min_dtod": self.dw_min_dtod,
            "up_down_dtod": self.up_down_dtod,
            "w_max_dtod": self.w_max_dtod,
            "w_min_dtod": self.w_min_dtod,
            "dw_min_std": self.dw_min_std,
            "write_noise_std": self.write_noise_std,
            "corrupt_devices_prob": self.stuck_fraction,
        }
        if self.response == "linear-step":
            params.update(
                gamma_up=self.gamma_up,
                gamma_down=self.gamma_down,
                gamma_up_dtod=self.gamma_up_dtod,
                gamma_down_dtod=self.gamma_down_dtod,
            )
        elif self.response == "pow-step":
            params.update(
                pow_gamma=self.pow_gamma,
                pow_gamma_dtod=self.pow_gamma_dtod,
                pow_up_down=self.pow_up_down,
                pow_up_down_dtod=self.pow_up_down_dtod,
            )
        elif self.response == "exp-step":
            params.update(
                A_up=self.A_up,
                A_down=self.A_down,
                gamma_up=self.gamma_up,
                gamma_down=self.gamma_down,
                a=self.a,
                b=self.b,
            )
        elif self.response == "quadratic-saturation":
            params["curvature"] = self.curvature
        return params


CHIP_KINDS: dict[str, PulsedTruth | PcmTruth] = {
    # Bidirectional filamentary ReRAM: soft bounds with up/down asymmetry (exactly aihwkit's
    # SoftBoundsDevice, so a fit can be scored against its truth).
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
    # Phase-change memory: gradual SET, abrupt RESET, drift, 1/f read noise (pcm.py).
    "pcm": PcmTruth(),
}


def chip_truth(kind: str, **overrides: float | str) -> PulsedTruth | PcmTruth:
    """Ground truth of a named chip kind, with optional parameter overrides."""
    if kind not in CHIP_KINDS:
        raise ValueError(f"unknown chip kind {kind!r}; expected one of {sorted(CHIP_KINDS)}")
    base = CHIP_KINDS[kind]
    names = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown parameter(s) for chip kind {kind!r}: {', '.join(unknown)}")
    return dataclasses.replace(base, **overrides)


def load_truth_file(path: str | Path) -> PulsedTruth | PcmTruth:
    """Truth of a ``custom`` chip from a JSON parameter file (see the module docstring)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object")
    base = doc.get("base", "reram")
    params = dict(doc.get("parameters", {}))
    if "response" in doc:
        params["response"] = doc["response"]
    extra = sorted(set(doc) - {"base", "response", "parameters", "description"})
    if extra:
        raise ValueError(f"{path}: unknown key(s) {', '.join(extra)}")
    try:
        defaults = CHIP_KINDS.get(base)
        if defaults is not None:
            params = {k: _typed_parameter(defaults, k, v) for k, v in params.items()}
        return chip_truth(base, **params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def _typed_parameter(defaults: PulsedTruth | PcmTruth, name: str, value: object) -> object:
    """``value`` of a truth-file parameter in its field's type (a list becomes a tuple);
    ``ValueError`` naming the field when the type is wrong (unknown names pass through)."""
    if not hasattr(defaults, name):
        return value
    default = getattr(defaults, name)

    def number(x: object) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    if isinstance(default, tuple):
        if not isinstance(value, list) or not value or not all(map(number, value)):
            raise ValueError(
                f"parameter {name!r} must be a list of numbers like {list(default)}, got {value!r}"
            )
        return tuple(float(x) for x in value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"parameter {name!r} must be a string, got {value!r}")
        return value
    if number(default) and not number(value):
        raise ValueError(f"parameter {name!r} must be a number, got {value!r}")
    return value


def make_device_array(
    truth: PulsedTruth | PcmTruth, shape: tuple[int, int], seed: int
) -> DeviceArray:
    """The device array that realizes ``truth`` on an ``n_rows x n_cols`` chip."""
    if isinstance(truth, PcmTruth):
        return PcmDeviceArray(truth, shape, seed)
    return PulsedDeviceArray(truth, shape, seed)


# --------------------------------------------------------------------------- step kernels
class _StepKernel:
    """Expected step of one pulse for fixed devices and polarity, in a fixed float dtype."""

    def __init__(
        self,
        arr: PulsedDeviceArray,
        idx: np.ndarray,
        up: bool,
        strength: np.ndarray | float,
        dtype: type = np.float64,
    ) -> None:
        t = arr.truth
        self.response = t.response
        self.up = up
        delta = (arr.delta_up if up else arr.delta_down)[idx] * strength
        b_max, b_min = arr.b_max[idx], arr.b_min[idx]

        def cast(x: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(x, dtype=dtype)

        if t.response in ("constant-step", "soft-bounds", "linear-step"):
            # affine in w: step = a + k·w
            if t.response == "constant-step":
                k = np.zeros_like(delta)
            elif t.response == "soft-bounds":
                k = -delta / b_max if up else delta / b_min
            elif up:
                k = -delta * arr.gamma_up_dev[idx] / t.w_max
            else:
                k = delta * arr.gamma_down_dev[idx] / t.w_min
            self.a = cast(delta if up else -delta)
            self.k = cast(k)
        elif t.response == "quadratic-saturation":
            span = b_max - b_min
            self.delta = cast(delta if up else -delta)
            self.inv_span = cast(1.0 / span)
            self.origin = cast(b_min if up else b_max)
            self.c = dtype(t.curvature)
        elif t.response == "pow-step":
            span = b_max - b_min
            self.delta = cast(delta if up else -delta)
            self.inv_span = cast(1.0 / span)
            self.origin = cast(b_max if up else b_min)
            self.gamma = cast(arr.pow_gamma_up[idx] if up else arr.pow_gamma_down[idx])
        else:  # exp-step
            span = b_max - b_min
            self.delta = cast(delta if up else -delta)
            self.z_scale = cast(2.0 * t.a / span)
            self.z_offset = dtype(t.b)
            self.A = dtype(t.A_up if up else t.A_down)
            self.g = dtype(t.gamma_up if up else -t.gamma_down)

    def mean(self, w: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the expected signed step at state ``w`` into ``out``."""
        r = self.response
        if r in ("constant-step", "soft-bounds", "linear-step"):
            np.multiply(self.k, w, out=out)
            out += self.a
        elif r == "quadratic-saturation":
            # up: u = (w - b-)/R, 1 - c u²; down: u = (b+ - w)/R
            np.subtract(w, self.origin, out=out)
            out *= self.inv_span
            np.square(out, out=out)
            out *= -self.c
            out += 1.0
            out *= self.delta
        elif r == "pow-step":
            # up: ((b+ - w)/R)^γ⁺; down: ((w - b-)/R)^γ⁻
            if self.up:
                np.subtract(self.origin, w, out=out)
            else:
                np.subtract(w, self.origin, out=out)
            out *= self.inv_span
            np.maximum(out, 0.0, out=out)
            np.power(out, self.gamma, out=out)
            out *= self.delta
        else:  # exp-step
            np.multiply(w, self.z_scale, out=out)
            out += self.z_offset
            out *= self.g
            np.exp(out, out=out)
            out *= -self.A
            out += 1.0
            np.maximum(out, 0.0, out=out)
            out *= self.delta
        return out


def _worker_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class PulsedDeviceArray(DeviceArray):
    """State and per-device parameters of an ``n_rows x n_cols`` array of pulsed devices."""

    def __init__(self, truth: PulsedTruth, shape: tuple[int, int], seed: int) -> None:
        super().__init__(shape, seed)
        self.truth = truth
        n = self.n
        t = truth
        rng = np.random.default_rng([self.seed, 0])  # device-to-device draws
        xi = rng.standard_normal((5, n))
        gain = 1.0 + t.dw_min_dtod * xi[0]
        asym = t.up_down_dtod * xi[1]
        self.b_max = t.w_max * (1.0 + t.w_max_dtod * xi[2])
        # Conductance stays positive: bounds beyond 95 % of g_offset_s are clipped (>3 sigma).
        self.b_min = np.maximum(t.w_min * (1.0 + t.w_min_dtod * xi[3]), -0.95 * t.g_offset_s)
        # aihwkit's enforce_consistency: bounds keep their signs
        self.b_max = np.abs(self.b_max)
        self.b_min = -np.abs(self.b_min)
        self.delta_up = np.abs(t.dw_min * (gain + asym + min(t.up_down, 0.0)))
        self.delta_down = np.abs(t.dw_min * (gain - asym - max(t.up_down, 0.0)))
        self.stuck = rng.random(n) < t.stuck_fraction
        self.delta_up[self.stuck] = 0.0
        self.delta_down[self.stuck] = 0.0
        # Initial state: uniform in the middle half of each device's range.
        u = rng.uniform(0.25, 0.75, n)
        self.w = self.b_min + u * (self.b_max - self.b_min)
        self.write_offset = np.zeros(n)
        # Family-specific draws come from their own stream so that adding a family never
        # changes the devices of the existing kinds.
        fam = np.random.default_rng([self.seed, 3])
        zeta = fam.standard_normal((4, n))
        self.gamma_up_dev = np.abs(t.gamma_up + t.gamma_up_dtod * zeta[0])
        self.gamma_down_dev = np.abs(t.gamma_down + t.gamma_down_dtod * zeta[1])
        pg = 1.0 + t.pow_gamma_dtod * zeta[2]
        pr = t.pow_up_down_dtod * zeta[3]
        self.pow_gamma_up = np.abs(t.pow_gamma * (pg + pr + min(t.pow_up_down, 0.0)))
        self.pow_gamma_down = np.abs(t.pow_gamma * (pg - pr - max(t.pow_up_down, 0.0)))

    # -- pulses

    def _pulse(self, idx: np.ndarray, up: bool, strength: np.ndarray | float, t: float) -> None:
        kernel = _StepKernel(self, idx, up, strength)
        w = self.w[idx]
        step = kernel.mean(w, np.empty_like(w))
        if self.truth.dw_min_std > 0:
            step *= 1.0 + self.truth.dw_min_std * self._normal(idx.size)
        self.w[idx] = np.clip(w + step, self.b_min[idx], self.b_max[idx])
        self._redraw_write_noise(idx, self.noise)

    def _redraw_write_noise(self, idx: np.ndarray, gen: np.random.Generator) -> None:
        t = self.truth
        if t.write_noise_std > 0:
            self.write_offset[idx] = t.write_noise_std * t.dw_min * gen.standard_normal(idx.size)

    # -- reads
    def _mean_conductance(self, idx: np.ndarray, dt: np.ndarray) -> np.ndarray:
        return self.truth.g_offset_s + self.w[idx] + self.write_offset[idx]

    def _read_sigma(self, idx: np.ndarray, dt: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.full(idx.size, self.truth.read_noise_s)

    # -- batched kernel (float32, sharded over devices, threads)
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
        self._run_plan(idx, [(amplitude_v > 0, s, n, False)], 0)
        self.t_prog[idx] = t + (n - 1) * period + width_s
        self._time(t + (n - 1) * period + width_s)

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

        Returns float32 conductances, shape ``(1 + cycles*(n_up+n_down)//read_every, n_sel)``.
        """
        t = self._time(t)
        n_reads = 1 + cycles * (n_up + n_down) // read_every
        s_up, s_down = self.strength(*up), self.strength(*down)
        plan: list[tuple[bool, float, int, bool]] = []
        for _ in range(cycles):
            for n, s, polarity in ((n_up, s_up, up[0] > 0), (n_down, s_down, down[0] > 0)):
                plan.extend([(polarity, s, read_every, True)] * (n // read_every))
        out = self._run_plan(idx, plan, n_reads)
        n_pulses = cycles * (n_up + n_down)
        if (s_up > 0 and n_up) or (s_down > 0 and n_down):
            self.t_prog[idx] = t + (n_pulses - 1) * step_s
        self._time(t + n_pulses * step_s + read_delay_s)
        return out

    def _run_plan(
        self, idx: np.ndarray, plan: list[tuple[bool, float, int, bool]], n_reads: int
    ) -> np.ndarray:
        """Run ``plan`` = [(up, strength, n_pulses, read_after), ...] on ``idx``.

        ``n_reads > 0`` adds an initial read. Devices are split into fixed shards of
        :data:`SHARD_DEVICES`, each with its own noise stream, run on a thread pool (numpy
        releases the GIL in its loops); results do not depend on the number of threads.
        """
        n = idx.size
        out = np.empty((n_reads, n), dtype=np.float32) if n_reads else np.empty((0, n))
        shards = [slice(a, min(a + SHARD_DEVICES, n)) for a in range(0, n, SHARD_DEVICES)]
        seeds = self.noise.integers(0, 2**63, size=len(shards))

        def run(k: int) -> None:
            sub = idx[shards[k]]
            rows = out[:, shards[k]] if n_reads else None
            self._run_shard(sub, plan, rows, np.random.default_rng(seeds[k]))

        workers = min(len(shards), _worker_count())
        if workers <= 1:
            for k in range(len(shards)):
                run(k)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run, range(len(shards))))
        return out

    def _run_shard(
        self,
        sub: np.ndarray,
        plan: list[tuple[bool, float, int, bool]],
        rows: np.ndarray | None,
        gen: np.random.Generator,
    ) -> None:
        t = self.truth
        f32 = np.float32
        m = sub.size
        w = self.w[sub].astype(f32)
        lo = self.b_min[sub].astype(f32)
        hi = self.b_max[sub].astype(f32)
        offset = (t.g_offset_s + self.write_offset[sub]).astype(f32)
        read_sigma = f32(t.read_noise_s)
        write_sigma = f32(t.write_noise_std * t.dw_min)
        c2c = f32(t.dw_min_std)
        kernels: dict[tuple[bool, float], _StepKernel] = {}
        step = np.empty(m, dtype=f32)
        xi = np.empty(m, dtype=f32)
        row = 0

        def read() -> None:
            nonlocal row
            target = rows[row]
            gen.standard_normal(dtype=f32, out=xi)
            np.multiply(xi, read_sigma, out=xi)
            np.add(xi, w, out=xi)
            np.add(xi, offset, out=target)
            row += 1

        if rows is not None and rows.shape[0]:
            read()
        for up, strength, n_pulses, read_after in plan:
            if strength > 0:
                key = (up, strength)
                if key not in kernels:
                    kernels[key] = _StepKernel(self, sub, up, strength, f32)
                kernel = kernels[key]
                for _ in range(n_pulses):
                    kernel.mean(w, step)
                    if c2c > 0:
                        gen.standard_normal(dtype=f32, out=xi)
                        xi *= c2c
                        xi += 1.0
                        step *= xi
                    w += step
                    np.minimum(w, hi, out=w)
                    np.maximum(w, lo, out=w)
                if write_sigma > 0:
                    # non-accumulating: only the draw after the last pulse is visible
                    gen.standard_normal(dtype=f32, out=offset)
                    offset *= write_sigma
                    offset += f32(t.g_offset_s)
            if read_after:
                read()
        responsive = ~self.stuck[sub]  # stuck devices keep their exact (float64) state
        self.w[sub[responsive]] = w[responsive]
        if write_sigma > 0:
            self.write_offset[sub] = offset.astype(np.float64) - t.g_offset_s

    # -- ground truth
    def per_device_truth(self) -> dict[str, np.ndarray]:
        """Per-device parameters in aihwkit naming (siemens), flat device order."""
        table = {
            "delta_up": self.delta_up.copy(),
            "delta_down": self.delta_down.copy(),
            "w_max": self.b_max.copy(),
            "w_min": self.b_min.copy(),
            "stuck": self.stuck.astype(np.float64),
            "conductance": self.truth.g_offset_s + self.w + self.write_offset,
            "t_prog": self.t_prog.copy(),
        }
        if self.truth.response == "linear-step":
            table["gamma_up"] = self.gamma_up_dev.copy()
            table["gamma_down"] = self.gamma_down_dev.copy()
        elif self.truth.response == "pow-step":
            table["pow_gamma_up"] = self.pow_gamma_up.copy()
            table["pow_gamma_down"] = self.pow_gamma_down.copy()
        return table

    def truth_preset(self) -> dict:
        """The ground truth as a preset-shaped document (see ``datasets/PRESET.md``)."""
        t = self.truth
        device = {
            "model": t.family(),
            "emulator_response": t.response,
            "parameters": t.family_parameters(),
            "g_offset_s": t.g_offset_s,
            "read_noise_s": t.read_noise_s,
        }
        if t.response == "quadratic-saturation":
            device["curvature"] = t.curvature
        return {"device": device, "truth": True}
