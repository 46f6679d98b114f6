"""The device-family catalogue: the one place where a pulsed-device family is defined.

Each family is one :class:`DeviceFamily` object that owns

* its aihwkit class and every field of that class with aihwkit's default and meaning (read
  from aihwkit 1.2.0's ``src/aihwkit/simulator/configs/devices.py`` and the update rules in
  ``src/rpucuda/rpu_*step_device.cpp``; summary in REFERENCES.md [R2]-[R4]);
* its expected-step equations (the numpy/torch functions of
  :mod:`simulator.devices.response`) and, for the affine families, the closed-form
  coefficients;
* its device-to-device sampler: :func:`sample_population` is one implementation for numpy
  (fitting, synthetic data) and torch (simulator) alike, with the family adding its own draws;
* its preset fields (what a preset of the family must define) and its export mapping (which
  fields go to aihwkit, which are fixed, which aihwkit refuses).

Adding a family means adding one object to :data:`CATALOGUE` (and, for fitting, one fit
parametrization in :mod:`fitting.families`, attached by name). Nothing else in the code base
branches on a family name (``tests/fitting/test_family_catalogue.py`` checks this; the emulator,
``instruments/emulator``, is deliberately an independent implementation and exempt).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.devices import response as eq

__all__ = [
    "AFFINE_FAMILIES",
    "CATALOGUE",
    "CORRUPT_DEVICES_RANGE",
    "FAMILIES",
    "PULSED_FIELDS",
    "REFERENCE_FIELD",
    "AihwkitField",
    "DeviceFamily",
    "Draws",
    "NumpyDraws",
    "TorchDraws",
    "device_family",
    "sample_population",
]

Array = Any


@dataclass(frozen=True)
class AihwkitField:
    """One constructor field of an aihwkit device class.

    ``kind``: ``"conductance"`` (weight units in aihwkit, siemens around ``g_offset_s`` in a
    preset: divided by the scale on export), ``"relative"`` (dimensionless, exported as is),
    ``"flag"``, ``"nodes"`` (a list), or ``"not simulated"`` (exists in aihwkit, our
    simulator and fitter do not model it: a preset must leave it at aihwkit's default).
    """

    name: str
    default: Any
    meaning: str
    kind: str = "relative"


#: aihwkit's ``corrupt_devices_range`` (``PulsedDevice``): a corrupt device's stuck value is
#: drawn uniformly in ±range ∩ [b⁻, b⁺] (rpu_pulsed_device.cpp, ``populate``)
CORRUPT_DEVICES_RANGE = 0.1

#: Fields of aihwkit's ``PulsedDevice`` base class shared by every family (aihwkit 1.2.0).
PULSED_FIELDS: tuple[AihwkitField, ...] = (
    AihwkitField("dw_min", 0.001, "mean step size Δw_min", "conductance"),
    AihwkitField("dw_min_dtod", 0.3, "device-to-device spread of the step, relative"),
    AihwkitField("dw_min_dtod_log_normal", False, "log-normal gain exp(σξ), not 1 + σξ", "flag"),
    AihwkitField("dw_min_std", 0.3, "cycle-to-cycle noise of each step, relative"),
    AihwkitField("up_down", 0.0, "systematic up/down asymmetry β (Δ⁺ = Δw(g + r + min(β, 0)))"),
    AihwkitField("up_down_dtod", 0.01, "device-to-device spread of the asymmetry (units dw_min)"),
    AihwkitField("w_max", 0.6, "mean upper bound", "conductance"),
    AihwkitField("w_min", -0.6, "mean lower bound", "conductance"),
    AihwkitField("w_max_dtod", 0.3, "relative device-to-device spread of the upper bound"),
    AihwkitField("w_min_dtod", 0.3, "relative device-to-device spread of the lower bound"),
    AihwkitField("enforce_consistency", True, "|Δ±|, swap crossed bounds, b⁺ ≥ 0 ≥ b⁻", "flag"),
    AihwkitField("perfect_bias", False, "ideal bias column", "not simulated"),
    AihwkitField("corrupt_devices_prob", 0.0, "probability that a device is stuck"),
    AihwkitField(
        "corrupt_devices_range", CORRUPT_DEVICES_RANGE, "stuck values drawn in ±range ∩ [b⁻, b⁺]"
    ),
    AihwkitField("reset", 0.0, "reset target mean (additive)"),
    AihwkitField("reset_dtod", 0.0, "additive device-to-device spread of the reset target"),
    AihwkitField("reset_std", 0.01, "cycle-to-cycle spread of a reset"),
    AihwkitField("lifetime", 0.0, "decay lifetime in mini-batches (0: none)", "not simulated"),
    AihwkitField("lifetime_dtod", 0.0, "relative spread of the lifetime", "not simulated"),
    AihwkitField("diffusion", 0.0, "per-mini-batch diffusion std", "not simulated"),
    AihwkitField("diffusion_dtod", 0.0, "relative spread of the diffusion", "not simulated"),
    AihwkitField("construction_seed", 0, "fixed seed of the d2d sampling (0: none)", "flag"),
    AihwkitField("count_pulses", False, "GPU pulse counters", "not simulated"),
)

_WRITE_NOISE = (
    AihwkitField("write_noise_std", 0.0, "write noise of the apparent weight, units of dw_min"),
    AihwkitField("apply_write_noise_on_set", True, "write noise also on set_weights", "flag"),
)
_REVERSE = (
    AihwkitField("reverse_up", False, "up reference bound w_min − offset", "not simulated"),
    AihwkitField("reverse_down", False, "down reference bound w_max + offset", "not simulated"),
    AihwkitField("reverse_offset", 0.01, "offset of the reversed reference", "not simulated"),
)

#: The per-device reference offset (aihwkit's ``reference_std`` of ``SoftBoundsReferenceDevice``
#: and ``PowStepReferenceDevice``: a reference r ~ N(0, reference_std²) subtracted from each
#: device's weight, so its window is shifted by o = −r). A population field of every family
#: (conductance kind: siemens around ``g_offset_s`` in a preset); 0 or absent: no offset.
REFERENCE_FIELD = AihwkitField(
    "reference_std", 0.0, "d2d spread of a per-device reference offset of the window", "conductance"
)

#: The pulsed fields a preset of every family must define.
_REQUIRED = ("dw_min", "up_down", "w_max", "w_min")

#: Base fields exported to aihwkit for every family (the rest keep aihwkit's defaults).
_EXPORTED = (
    "dw_min",
    "dw_min_dtod",
    "dw_min_dtod_log_normal",
    "dw_min_std",
    "up_down",
    "up_down_dtod",
    "w_max",
    "w_max_dtod",
    "w_min",
    "w_min_dtod",
    "corrupt_devices_prob",
)


# ------------------------------------------------------------------------- random draws
class Draws:
    """Random draws for :func:`sample_population` (numpy or torch behind one interface)."""

    def normal(self) -> Array:  # pragma: no cover - interface
        raise NotImplementedError

    def uniform(self) -> Array:  # pragma: no cover - interface
        raise NotImplementedError

    def full(self, value: float) -> Array:  # pragma: no cover - interface
        raise NotImplementedError


class NumpyDraws(Draws):
    """Draws of ``n`` devices from a numpy ``Generator`` (float64)."""

    def __init__(self, rng: Any, n: int) -> None:
        import numpy

        self.xp, self.rng, self.shape = numpy, rng, (int(n),)

    def normal(self) -> Array:
        return self.rng.standard_normal(self.shape)

    def uniform(self) -> Array:
        return self.rng.random(self.shape)

    def full(self, value: float) -> Array:
        return self.xp.full(self.shape, float(value))


class TorchDraws(Draws):
    """Draws of a ``shape`` of devices from a torch ``Generator`` in ``dtype``."""

    def __init__(self, generator: Any, shape: tuple[int, ...], dtype: Any) -> None:
        import torch

        self.xp, self.generator, self.shape, self.dtype = torch, generator, tuple(shape), dtype

    def normal(self) -> Array:
        return self.xp.randn(self.shape, generator=self.generator, dtype=self.dtype)

    def uniform(self) -> Array:
        # the stuck mask is drawn in the default dtype, as the simulator always did
        return self.xp.rand(self.shape, generator=self.generator)

    def uniform_like(self) -> Array:
        return self.xp.rand(self.shape, generator=self.generator, dtype=self.dtype)

    def full(self, value: float) -> Array:
        return self.xp.full(self.shape, float(value), dtype=self.dtype)


def _get(p: Mapping[str, Any], name: str, default: Any = 0.0) -> Any:
    value = p.get(name, default)
    return default if value is None else value


# ----------------------------------------------------- family-specific d2d draws (aihwkit)
def _no_extra(p: Mapping[str, Any], draws: Draws, dev: dict[str, Any]) -> None:
    return None


def _linear_step_extra(p: Mapping[str, Any], draws: Draws, dev: dict[str, Any]) -> None:
    """γ' = γ + γ_dtod·ξ per device, |γ'| unless ``allow_increasing`` (rpu_linearstep_device.cpp);
    reference bounds: the mean bounds (``mean_bound_reference``) or each device's own."""
    xp = draws.xp
    for key in ("gamma_up", "gamma_down"):
        if key not in dev:
            g = float(_get(p, key)) + float(_get(p, key + "_dtod")) * draws.normal()
            dev[key] = g if _get(p, "allow_increasing", False) else xp.abs(g)
    if _get(p, "mean_bound_reference", True):
        dev["ref_max"], dev["ref_min"] = draws.full(p["w_max"]), draws.full(p["w_min"])
    else:
        dev["ref_max"], dev["ref_min"] = dev["b_max"], dev["b_min"]


def _exp_step_extra(p: Mapping[str, Any], draws: Draws, dev: dict[str, Any]) -> None:
    """A, γ, a, b are tile-global in aihwkit: no device-to-device spread."""
    for key in ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b"):
        dev[key] = float(p[key])


def _pow_step_extra(p: Mapping[str, Any], draws: Draws, dev: dict[str, Any]) -> None:
    """Exponents sampled as the steps: γ⁺ = γ(g + r + min(β_p, 0)), γ⁻ = γ(g − r − max(β_p, 0))."""
    if "pow_gamma_up" in dev:
        return
    xp = draws.xp
    gamma, beta = float(p["pow_gamma"]), float(_get(p, "pow_up_down"))
    g = 1.0 + float(_get(p, "pow_gamma_dtod")) * draws.normal()
    r = float(_get(p, "pow_up_down_dtod")) * draws.normal()
    dev["pow_gamma_up"] = xp.abs(gamma * (g + r + min(beta, 0.0)))
    dev["pow_gamma_down"] = xp.abs(gamma * (g - r - max(beta, 0.0)))


def _piecewise_extra(p: Mapping[str, Any], draws: Draws, dev: dict[str, Any]) -> None:
    """Node multipliers are tile-global (any node count, equal length up and down)."""
    dev["piecewise_up"] = [float(v) for v in p["piecewise_up"]]
    dev["piecewise_down"] = [float(v) for v in p["piecewise_down"]]


# ----------------------------------------------------------------------------- granularity
def _dw_min(p: Mapping[str, Any]) -> float:
    return float(p["dw_min"])


def _pow_granularity(p: Mapping[str, Any]) -> float:
    return float(p["dw_min"]) * 0.5 ** float(_get(p, "pow_gamma", 1.0))


def _piecewise_granularity(p: Mapping[str, Any]) -> float:
    nodes = _get(p, "piecewise_up", [1.0])
    return float(p["dw_min"]) * float(nodes[len(nodes) // 2])


# ------------------------------------------------------------------------------ the family
@dataclass(frozen=True)
class DeviceFamily:
    """One pulsed-device family: aihwkit class and fields, equations, sampler, preset, export.

    ``fields`` are the class's own fields beyond :data:`PULSED_FIELDS`. ``preset_required``
    are the fields a preset of the family must define, ``exported`` those written to aihwkit
    (conductance fields converted), ``export_fixed`` fields written with a fixed value and
    ``export_refused`` fields aihwkit refuses on this class (kept under ``not_exported`` when
    non-zero). ``unidentifiable`` names fields that pulse-response traces cannot identify
    (reported as such in a fitted preset, never silently fixed). ``reference_class`` is
    aihwkit's class of the same device with a per-device reference (:data:`REFERENCE_FIELD`),
    the export's class when a preset has an offset; None where aihwkit has none;
    ``reference_refused`` fields that class lacks (non-zero: the offset is not exported).
    """

    name: str
    aihwkit_class: str
    fields: tuple[AihwkitField, ...]
    step: Callable[..., Array]
    sample_extra: Callable[[Mapping[str, Any], Draws, dict[str, Any]], None]
    granularity: Callable[[Mapping[str, Any]], float] = _dw_min
    affine: Callable[[bool, Mapping[str, Array]], tuple[Array, Array]] | None = None
    preset_required: tuple[str, ...] = _REQUIRED
    exported: tuple[str, ...] = _EXPORTED
    export_fixed: Mapping[str, Any] = field(default_factory=dict)
    export_refused: tuple[str, ...] = ()
    unidentifiable: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    reference_class: str | None = None
    reference_refused: tuple[str, ...] = ()

    @property
    def all_fields(self) -> tuple[AihwkitField, ...]:
        """Every constructor field of the aihwkit class, base fields first."""
        return PULSED_FIELDS + self.fields

    def aihwkit_defaults(self) -> dict[str, Any]:
        """aihwkit's default value of every field of the class."""
        return {f.name: f.default for f in self.all_fields}

    def field_kind(self, name: str) -> str | None:
        for f in self.all_fields:
            if f.name == name:
                return f.kind
        return None


CATALOGUE: dict[str, DeviceFamily] = {
    f.name: f
    for f in (
        DeviceFamily(
            "constant-step",
            "ConstantStepDevice",
            fields=(),
            step=eq.constant_step,
            sample_extra=_no_extra,
            affine=eq.constant_step_affine,
            export_refused=("write_noise_std",),  # ConstantStep aborts on write noise
            description="constant step, hard bounds by clipping",
        ),
        DeviceFamily(
            "linear-step",
            "LinearStepDevice",
            fields=(
                AihwkitField("gamma_up", 0.0, "relative step decrease at the reference bound (up)"),
                AihwkitField("gamma_down", 0.0, "relative step decrease at the reference (down)"),
                AihwkitField("gamma_up_dtod", 0.05, "additive d2d spread of gamma_up"),
                AihwkitField("gamma_down_dtod", 0.05, "additive d2d spread of gamma_down"),
                AihwkitField("allow_increasing", False, "keep negative γ' (steps grow)", "flag"),
                AihwkitField("mean_bound_reference", True, "B± = mean bounds, else own", "flag"),
                AihwkitField("mult_noise", True, "c2c noise multiplies the whole step", "flag"),
                *_WRITE_NOISE,
                *_REVERSE,
            ),
            step=eq.linear_step,
            sample_extra=_linear_step_extra,
            affine=eq.linear_step_affine,
            preset_required=(*_REQUIRED, "gamma_up", "gamma_down"),
            exported=(
                *_EXPORTED,
                "write_noise_std",
                "gamma_up",
                "gamma_down",
                "gamma_up_dtod",
                "gamma_down_dtod",
                "allow_increasing",
                "mean_bound_reference",
                "mult_noise",
            ),
            export_fixed={"mean_bound_reference": True, "mult_noise": True},
            description="step linear in w relative to the mean bounds; hard bounds clip",
        ),
        DeviceFamily(
            "soft-bounds",
            "SoftBoundsDevice",
            fields=(
                AihwkitField("mult_noise", True, "c2c noise multiplies the whole step", "flag"),
                *_WRITE_NOISE,
                *_REVERSE,
            ),
            step=eq.soft_bounds_step,
            sample_extra=_no_extra,
            affine=eq.soft_bounds_affine,
            exported=(*_EXPORTED, "write_noise_std"),
            description="step shrinks linearly to zero at own bounds",
            reference_class="SoftBoundsReferenceDevice",
        ),
        DeviceFamily(
            "exp-step",
            "ExpStepDevice",
            fields=(
                AihwkitField("A_up", 0.00081, "amplitude of the up-step decrease (any sign)"),
                AihwkitField("A_down", 0.36833, "amplitude of the down-step decrease (any sign)"),
                AihwkitField("gamma_up", 12.44625, "exponent rate of the up step"),
                AihwkitField("gamma_down", 12.78785, "exponent rate of the down step"),
                AihwkitField("a", 0.244, "z = 2a·w/(b⁺ − b⁻) + b: slope"),
                AihwkitField("b", 0.2425, "z = 2a·w/(b⁺ − b⁻) + b: offset"),
                AihwkitField("dw_min_std_add", 0.0, "additive c2c noise term", "not simulated"),
                AihwkitField("dw_min_std_slope", 0.0, "|w|-proportional c2c term", "not simulated"),
                *_WRITE_NOISE,
            ),
            step=eq.exp_step,
            sample_extra=_exp_step_extra,
            preset_required=(*_REQUIRED, "A_up", "A_down", "gamma_up", "gamma_down", "a", "b"),
            exported=(
                *_EXPORTED,
                "write_noise_std",
                "A_up",
                "A_down",
                "gamma_up",
                "gamma_down",
                "a",
                "b",
            ),
            unidentifiable={
                "a": "only a·γ± and A±·e^{±γ±b} are identified by traces; a kept at aihwkit's "
                "default and γ±, A± rescaled to it (same device)",
                "b": "only A±·e^{±γ±b} is identified; b kept at aihwkit's default and A± "
                "rescaled to it (same device)",
            },
            description="exponential step shape (global), hard bounds clip",
        ),
        DeviceFamily(
            "pow-step",
            "PowStepDevice",
            fields=(
                AihwkitField("pow_gamma", 1.0, "exponent γ of the step"),
                AihwkitField("pow_gamma_dtod", 0.1, "relative d2d spread of the exponent"),
                AihwkitField("pow_up_down", 0.0, "up/down asymmetry of the exponent"),
                AihwkitField("pow_up_down_dtod", 0.0, "d2d spread of the exponent asymmetry"),
                *_WRITE_NOISE,
            ),
            step=eq.pow_step,
            sample_extra=_pow_step_extra,
            granularity=_pow_granularity,
            preset_required=(*_REQUIRED, "pow_gamma"),
            exported=(
                *_EXPORTED,
                "write_noise_std",
                "pow_gamma",
                "pow_gamma_dtod",
                "pow_up_down",
                "pow_up_down_dtod",
            ),
            description="step ∝ distance to the bound to a power",
            reference_class="PowStepReferenceDevice",
            reference_refused=("write_noise_std",),  # PowStepReferenceDevice has no write noise
        ),
        DeviceFamily(
            "piecewise-step",
            "PiecewiseStepDevice",
            fields=(
                AihwkitField("piecewise_up", [1.0], "up-step multipliers, nodes b⁻..b⁺", "nodes"),
                AihwkitField("piecewise_down", [1.0], "down-step multipliers", "nodes"),
                *_WRITE_NOISE,
            ),
            step=eq.piecewise_step,
            sample_extra=_piecewise_extra,
            granularity=_piecewise_granularity,
            preset_required=(*_REQUIRED, "piecewise_up", "piecewise_down"),
            exported=(*_EXPORTED, "write_noise_std", "piecewise_up", "piecewise_down"),
            description="piecewise-linear step multiplier over the device's range (global)",
        ),
    )
}

FAMILIES: tuple[str, ...] = tuple(CATALOGUE)

#: Families whose step is affine in ``w`` (step = c − a·w), so n pulses have a closed form.
AFFINE_FAMILIES: tuple[str, ...] = tuple(n for n, f in CATALOGUE.items() if f.affine is not None)


def device_family(name: str) -> DeviceFamily:
    """The catalogue entry of family ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return CATALOGUE[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown device family {name!r}; expected one of {FAMILIES}") from None


# --------------------------------------------------------------------- the one d2d sampler
def sample_population(
    family: str,
    params: Mapping[str, Any],
    draws: Draws,
    measured: Mapping[str, Array] | Callable[[], Mapping[str, Array]] | None = None,
    with_reset: bool = False,
) -> dict[str, Any]:
    """Per-device parameters drawn as aihwkit's ``PulsedRPUDevice::populate`` does.

    numpy and torch alike (``draws`` says which). ``params`` are population fields in weight
    (or any consistent) units; missing spreads count as zero. ``measured`` per-device arrays
    (already gathered to the population's shape, or a callable returning them, called after
    the bounds are drawn) replace the draws of the same name.
    Returns the step-function arguments plus ``stuck`` (boolean mask of corrupt devices),
    and ``reset_bias`` when ``with_reset``. Order of draws: gain, asymmetry, upper bound,
    lower bound, [reset], family draws, stuck mask, stuck values, [reference offset].

    With ``reference_std`` > 0 (:data:`REFERENCE_FIELD`) every device also gets
    ``reference``: an offset o ~ N(0, reference_std²) of its apparent state (reads are the
    physical state plus o; the bounds and steps act on the physical state), as aihwkit's
    reference devices subtract r = −o. It is drawn last, so the other draws are those of the
    same population without an offset; measured bounds (``measured``) are apparent windows
    already and get no drawn offset (a measured ``reference`` is used as given).
    """
    fam = device_family(family)
    xp = draws.xp
    dw_min, beta = float(params["dw_min"]), float(_get(params, "up_down"))
    spread = float(_get(params, "dw_min_dtod"))
    if _get(params, "dw_min_dtod_log_normal", False):
        gain = xp.exp(spread * draws.normal())
    else:
        gain = 1.0 + spread * draws.normal()
    asym = float(_get(params, "up_down_dtod")) * draws.normal()
    dev: dict[str, Any] = {
        "delta_up": xp.abs(dw_min * (gain + asym + min(beta, 0.0))),
        "delta_down": xp.abs(dw_min * (gain - asym - max(beta, 0.0))),
    }
    b_max = float(params["w_max"]) * (1.0 + float(_get(params, "w_max_dtod")) * draws.normal())
    b_min = float(params["w_min"]) * (1.0 + float(_get(params, "w_min_dtod")) * draws.normal())
    if callable(measured):
        measured = measured()
    for name, values in (measured or {}).items():
        if name == "b_max":
            b_max = values
        elif name == "b_min":
            b_min = values
        else:
            dev[name] = values
    # enforce_consistency: swap crossed bounds, then force b_max >= 0 >= b_min
    lo, hi = xp.minimum(b_min, b_max), xp.maximum(b_min, b_max)
    dev["b_max"], dev["b_min"] = xp.abs(hi), -xp.abs(lo)
    if with_reset:
        reset = float(_get(params, "reset")) + float(_get(params, "reset_dtod")) * draws.normal()
        dev["reset_bias"] = reset
    fam.sample_extra(params, draws, dev)
    stuck = draws.uniform() < float(_get(params, "corrupt_devices_prob"))
    if bool(stuck.any()):
        # aihwkit's default range where a preset leaves it out: the exported device is then
        # the simulated one (a fitted preset's corrupt devices spread over its whole window
        # made our re-simulation's device spread 1.48 of the measured, aihwkit's 1.01)
        limit = float(_get(params, "corrupt_devices_range", CORRUPT_DEVICES_RANGE))
        lo = xp.maximum(dev["b_min"], 0 * dev["b_min"] - limit)
        hi = xp.minimum(dev["b_max"], 0 * dev["b_max"] + limit)
        u = draws.uniform_like() if hasattr(draws, "uniform_like") else draws.uniform()
        value = lo + u * (hi - lo)
        for key in ("delta_up", "delta_down"):
            dev[key] = xp.where(stuck, 0 * dev[key], dev[key])
        dev["b_max"] = xp.where(stuck, value, dev["b_max"])
        dev["b_min"] = xp.where(stuck, value, dev["b_min"])
    dev["stuck"] = stuck
    ref_std = float(_get(params, REFERENCE_FIELD.name))
    if "reference" not in dev and ref_std > 0 and not {"b_max", "b_min"} & set(measured or {}):
        dev["reference"] = ref_std * draws.normal()
    return dev
