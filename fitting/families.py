"""Fit parametrizations of the pulsed-device families, attached to the catalogue by name.

The family itself (aihwkit class and fields, equations, sampler, preset, export) is defined
once in :mod:`simulator.devices.families`; this module only says, per family, which
quantities are fitted, how they feed the shared step equations, their start guesses, how the
fitted shape maps back to aihwkit's fields, and which simpler families it reduces to. Each
family is one :class:`FamilyModel` in :data:`FAMILY_MODELS`; nothing else in ``fitting``
branches on a family name.

Internal units: the fitter works in *normalized weight* ``w = (G − g0)/scale`` (dimension-
less, span about 1). Every family has four per-device parameters: the step sizes Δ⁺, Δ⁻
(``delta_up``, ``delta_down``, as aihwkit defines them after device-to-device sampling) and
the device's own bounds b⁺ > b⁻ (``b_max``, ``b_min``). Shape parameters are either shared by
all devices (aihwkit has no device-to-device spread for them: exp-step's A and γ,
piecewise-step's nodes) or vary per device around a population mean (linear-step's γ,
pow-step's exponents; aihwkit's ``gamma_*_dtod``, ``pow_*_dtod``).

Parametrizations chosen for identifiability (aihwkit's whole parameter space):

* linear-step: ``kappa_up`` = γ⁺/w_max and ``kappa_down`` = γ⁻/|w_min| (γ and the mean
  reference bound only enter as their ratio, ``mean_bound_reference``); γ follows once the
  population bounds are known. κ of either sign (negative: ``allow_increasing``).
* exp-step: with z = 2a·w/(b⁺ − b⁻) + b the step is Δ⁺(1 − A⁺e^{γ⁺b}·e^{2aγ⁺w/R}) up and
  Δ⁻(1 − A⁻e^{−γ⁻b}·e^{−2aγ⁻w/R}) down, so only A⁺e^{γ⁺b}, A⁻e^{−γ⁻b}, a·γ⁺ and a·γ⁻ are
  identifiable. ``a`` and ``b`` are therefore held at aihwkit's defaults (a₀, b₀) and
  ``gamma_up``, ``gamma_down`` and the signed decays ``decay_up`` = A⁺e^{γ⁺(a₀ + b₀)},
  ``decay_down`` = A⁻e^{−γ⁻(b₀ − a₀)} are fitted (the relative step decrease at w = ±R/2;
  either sign: A < 0 makes steps grow towards the bound; O(1) values condition the fit
  better than A itself, which spans decades). Any aihwkit device (A, γ, a, b) is the same device
  as (A', γ', a₀, b₀) with γ' = γ·a/a₀ and A'⁺ = A⁺e^{γ⁺b − γ'⁺b₀}, A'⁻ = A⁻e^{−γ⁻b + γ'⁻b₀}:
  the exported fields are this representative, and the preset says that a, b are not
  identified.
* pow-step: ``log γ⁺``, ``log γ⁻`` (exponents stay positive); ``pow_up_down`` follows from
  their ratio as aihwkit samples it.
* piecewise-step: node values; the middle node of each direction is fixed to 1 so that Δ±
  is the step at the middle of the device's range (aihwkit's granularity convention). Any
  node count (:func:`piecewise_model`); the count is read from the value names; 3, 5 and 9
  nodes (nested) compete by BIC.

Known limit (issue 13): the hard clip of the clipping families (constant-, linear-, exp-,
piecewise-step) is evaluated at the noisy earlier read, so near a bound the predicted
increment is biased by read noise (errors in variables at the kink; the instruments only
remove this bias for steps affine in w). On aihwkit's linear-step traces with γ 0.3/0.7
whose devices dwell at their hard bounds (σ_read 0.012, dw_min 0.01) the shared fit gave
γ⁺/w_max = 0.73 instead of 0.50. The shared shape of the hard-bound families is therefore
fitted on the pairs clear of the read plateaus (:func:`fitting.gmm.clear_of_bounds`; now
0.47). The per-device stage and the J statistics of model selection use every pair; what
made ``auto`` prefer piecewise-step there was the per-device solve, which left bounds beyond
the level where the device sits (:func:`fitting.family_fit._solve_from_bound_levels`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitting.population import moment_random_effect, pair_population
from simulator.devices.families import FAMILIES, device_family
from simulator.devices.response import expected_step

__all__ = [
    "DEVICE_PARAMS",
    "EXP_STEP_FIXED",
    "FAMILY_MODELS",
    "FamilyModel",
    "ShapeStart",
    "TraceParam",
    "exp_step_representative",
    "family_model",
    "piecewise_model",
    "piecewise_nodes",
    "population_step",
]

#: Per-device parameters every family has (normalized units).
DEVICE_PARAMS = ("delta_up", "delta_down", "b_max", "b_min")

#: aihwkit ExpStepDevice defaults of the parameters that cannot be identified (a, b).
EXP_STEP_FIXED = {
    k: v for k, v in device_family("exp-step").aihwkit_defaults().items() if k in ("a", "b")
}

PIECEWISE_NODES = 5
PIECEWISE_ALTERNATIVES = (3, 9)  # node counts also tried (any count works: piecewise_model)


@dataclass
class ShapeStart:
    """What start guesses may use: per-device linear IV fits per pulse and the plateaus."""

    c_up: np.ndarray  # step at w = 0 of the linear fit, per pulse (up, signed)
    s_up: np.ndarray  # slope of the step in w (up)
    c_down: np.ndarray
    s_down: np.ndarray
    hi: np.ndarray  # upper read plateau per device (normalized)
    lo: np.ndarray

    @property
    def span(self) -> np.ndarray:
        return np.maximum(self.hi - self.lo, 1e-9)


Values = Mapping[str, Any]


def population_step(p: Values, up: bool) -> float:
    """A preset's mean step Δ⁺ (``up``) or Δ⁻ at its reference: aihwkit's
    dw_min·(1 + up_down) or dw_min·(1 − up_down), the larger one dw_min."""
    beta = p["up_down"]
    return p["dw_min"] * (1 + min(beta, 0.0)) if up else p["dw_min"] * (1 - max(beta, 0.0))


def _no_step(v: Values) -> dict[str, Any]:
    return {}


def _no_start(model: FamilyModel, s: ShapeStart, vals: dict) -> list[dict]:
    return [{}]


def _no_population(ctx: dict) -> None:
    return None


def _no_reduction(shape: Values, near: Callable[[str, float], bool]) -> list[str]:
    return []


def _no_transform(j: Mapping[str, int], theta: np.ndarray, out: np.ndarray, delta: float) -> None:
    return None


@dataclass(frozen=True)
class TraceParam:
    """One shape parameter of the one-trace lmfit model (:mod:`fitting.lmfit_models`).

    Named as the argument of :func:`expected_step` it feeds (aihwkit's names), with the
    start value and the bounds lmfit uses; ``vary=False`` for values a trace cannot identify.
    """

    name: str
    value: float
    min: float = -np.inf
    max: float = np.inf
    vary: bool = True


def _no_trace_params(n_nodes: int) -> tuple[TraceParam, ...]:
    return ()


def _trace_values_as_preset(v: Values, se: Values, names: tuple[str, ...]) -> tuple[dict, dict]:
    return {k: v[k] for k in names}, {k: se[k] for k in names}


@dataclass(frozen=True)
class FamilyModel:
    """One family's fit parametrization: free quantities, starts, mapping back to aihwkit.

    Hooks (plain functions, one set per family):

    ``to_step(values)``: the family's extra arguments of :func:`expected_step`;
    ``starts(model, start, vals)``: candidate shared shapes (may refine ``vals`` in place);
    ``population(ctx)``: aihwkit population fields from the fitted shape (fills
    ``ctx["params"]``, ``ctx["uncertainty"]``, ``ctx["method"]``);
    ``reduces_to(shape, near)``: simpler families it equals at the fitted shape;
    ``transform(j, theta, out, delta)``: per-device values after moving the origin of w;
    ``from_preset(p, per_device, col)``: fit values of a preset (diagnostics);
    ``per_device(j, theta, se, unknown, bounds, out)``: per-device preset arrays.
    """

    name: str
    shape: tuple[str, ...] = ()  # shape parameters (shared in model selection)
    per_device_shape: tuple[str, ...] = ()  # of those, the ones aihwkit varies per device
    clip: bool = True  # the step is non-zero at the bounds, so clipping shapes the trace
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    decoupled: bool = False  # up and down share no parameter (direction-wise data allowed)
    bounds_by_direction: bool = False  # b_max only shapes up steps, b_min down steps
    closed_form: bool = False  # the linear IV fit is the exact estimator (same pulse counts)
    recenter: bool = True  # the origin of w can move (False: the shape fixes it)
    recenter_shape: tuple[str, ...] = ()  # shared values that change when the origin moves
    typical: Mapping[str, float] = field(default_factory=dict)  # scales of shape values
    relation: str = ""  # how it relates to the other families (model-selection table)
    alternatives: tuple[FamilyModel, ...] = ()  # other parametrizations scored against it
    # the bounds act only through the clip (not through the step's shape): a device that
    # never reaches its bound only bounds it (censored population estimate)
    bounds_only_by_clip: bool = False
    nonnegative_shape: tuple[str, ...] = ()  # shape values that must be >= 0 (e.g. nodes)
    # the shape carries each direction's step scale as freely as Δ± do (piecewise-step's
    # nodes): the split between them is chosen so that aihwkit's additive gain holds
    # (fitting.pulse_response._balanced_up_scale)
    free_direction_scale: bool = False
    # the shape at which the family equals a simpler one (pow-step: exponent 1, soft-bounds),
    # a start of the shape's efficient solve (fitting.selection.efficient_shape)
    nested_shape: Mapping[str, float] = field(default_factory=dict)
    shape_tries: tuple[Mapping[str, float], ...] = ()  # more starts of that solve
    # per-device values at the nested shape from the nested family's (names, theta, names)
    from_nested: Callable[..., np.ndarray | None] = lambda names, theta, base: None
    shape_text: Callable[[np.ndarray], str] = lambda phi: ""  # fitted shape, for notes
    # reported values stated at the midpoint of the mean bounds (or over their window): they
    # are conditional on both bounds, so a bound reported as a limit leaves them unidentified
    stated_at_reference: tuple[str, ...] = ("dw_min", "up_down")
    to_step: Callable[[Values], dict] = _no_step
    starts: Callable[..., list[dict]] = _no_start
    population: Callable[[dict], None] = _no_population
    reduces_to: Callable[..., list[str]] = _no_reduction
    transform: Callable[..., None] = _no_transform
    from_preset: Callable[..., dict] = lambda p, pd, col: {}
    per_device: Callable[..., None] = lambda j, theta, se, unknown, bounds, out: None
    equivalence_shape: Callable[..., None] = lambda shape, se, fit: None
    # one trace in data units (fitting.lmfit_models): shape parameters for n nodes, their
    # expected_step arguments (values also hold delta_*, w_max, w_min), preset fields
    trace_params: Callable[[int], tuple[TraceParam, ...]] = _no_trace_params
    trace_step: Callable[[Values], dict] = _no_step
    trace_preset: Callable[..., tuple[dict, dict]] = _trace_values_as_preset

    def step_params(self, values: Values) -> dict[str, Any]:
        """Arguments of :func:`expected_step` from fitted values (arrays broadcast)."""
        v = dict(self.fixed)
        v.update(values)
        p: dict[str, Any] = {k: v[k] for k in DEVICE_PARAMS}
        p.update(self.to_step(v))
        return p

    def step(self, w: np.ndarray, up: bool, values: Values) -> np.ndarray:
        """Expected signed step of one pulse at normalized state ``w``."""
        return expected_step(self.name, w, up, self.step_params(values))

    def trace_step_params(self, values: Values) -> dict[str, Any]:
        """Arguments of :func:`expected_step` from one trace's values (data units around
        ``g_ref``: ``w_max``, ``w_min`` are the device's own bounds)."""
        p: dict[str, Any] = {
            "delta_up": values["delta_up"],
            "delta_down": values["delta_down"],
            "b_max": values["w_max"],
            "b_min": values["w_min"],
        }
        p.update(self.trace_step(values))
        return p

    @property
    def n_shape(self) -> int:
        return len(self.shape)


# ============================================================================ soft-bounds
def _soft_bounds_start(model: FamilyModel, s: ShapeStart, vals: dict) -> list[dict]:
    span = s.span
    with np.errstate(all="ignore"):
        b_up, b_dn = -s.c_up / s.s_up, -s.c_down / s.s_down
    ok_up = np.isfinite(b_up) & (s.s_up < 0) & (b_up > s.lo) & (b_up < s.hi + 3 * span)
    ok_dn = np.isfinite(b_dn) & (s.s_down < 0) & (b_dn < s.hi) & (b_dn > s.lo - 3 * span)
    vals["b_max"] = np.where(ok_up, b_up, s.hi + 0.05 * span)
    vals["b_min"] = np.where(ok_dn, b_dn, s.lo - 0.05 * span)
    vals["delta_up"] = np.where(ok_up & (s.c_up > 0), s.c_up, vals["delta_up"])
    vals["delta_down"] = np.where(ok_dn & (-s.c_down > 0), -s.c_down, vals["delta_down"])
    return [{}]


def _soft_bounds_transform(j, theta, out, delta) -> None:
    # Δ(1 − w/b) with w = w' + δ: Δ' = Δ(b − δ)/b at the new origin
    out[:, j["delta_up"]] *= (theta[:, j["b_max"]] - delta) / theta[:, j["b_max"]]
    out[:, j["delta_down"]] *= (theta[:, j["b_min"]] - delta) / theta[:, j["b_min"]]


# ============================================================================ linear-step
def _linear_to_step(v: Values) -> dict:
    return {
        "gamma_up": v["kappa_up"],
        "gamma_down": v["kappa_down"],
        "ref_max": 1.0,
        "ref_min": -1.0,
    }


def _linear_start(model: FamilyModel, s: ShapeStart, vals: dict) -> list[dict]:
    with np.errstate(all="ignore"):
        k_up = np.nanmedian(np.clip(-s.s_up / np.abs(s.c_up), -5, 5))
        k_dn = np.nanmedian(np.clip(-s.s_down / np.abs(s.c_down), -5, 5))
    k_up = float(k_up) if np.isfinite(k_up) else 0.0
    k_dn = float(k_dn) if np.isfinite(k_dn) else 0.0
    # the IV slope (negative γ allowed: aihwkit's allow_increasing), a clipped one, none
    cands = [{"kappa_up": k_up, "kappa_down": k_dn}]
    if k_up < 0 or k_dn < 0:
        cands.append({"kappa_up": max(k_up, 0.0), "kappa_down": max(k_dn, 0.0)})
    cands.append({"kappa_up": 0.0, "kappa_down": 0.0})
    return cands


#: per-device γ pooled by moments with sandwich errors over devices (moment_random_effect)
MOMENTS_METHOD = "moments (sandwich over devices)"


def _linear_population(ctx: dict) -> None:
    params, unc, method = ctx["params"], ctx["uncertainty"], ctx["method"]
    j, theta, var = ctx["j"], ctx["theta"], ctx["var"]
    shared_names, phi, phi_cov = ctx["shared_names"], ctx["phi"], ctx["phi_cov"]
    for d in ("up", "down"):
        k = f"kappa_{d}"
        ref = ctx["mean_b"][d]
        if k in j:
            g = theta[:, j[k]] * ref
            se = np.sqrt(np.maximum(var[:, j[k]], 0.0)) * ref
            # moments, not the likelihood that takes the (noisy) per-device errors as exact
            eff = moment_random_effect(g, se)
            params[f"gamma_{d}"], unc[f"gamma_{d}"] = eff.mean, eff.mean_stderr
            params[f"gamma_{d}_dtod"] = eff.spread
            unc[f"gamma_{d}_dtod"] = eff.spread_stderr
            # (at τ = 0 too: its error there is √SE(τ²), not a bootstrap of a value at 0)
            method[f"gamma_{d}"] = method[f"gamma_{d}_dtod"] = MOMENTS_METHOD
            ctx["effects"][f"gamma_{d}"] = eff
        else:
            q = shared_names.index(k)
            params[f"gamma_{d}"] = float(phi[q]) * ref
            unc[f"gamma_{d}"] = float(np.sqrt(max(phi_cov[q, q], 0.0))) * ref or None
            params[f"gamma_{d}_dtod"], unc[f"gamma_{d}_dtod"] = 0.0, None
            method[f"gamma_{d}"] = "sandwich (devices)"
            method[f"gamma_{d}_dtod"] = "not identified per device"
    params["allow_increasing"] = bool(params["gamma_up"] < 0 or params["gamma_down"] < 0)
    unc["allow_increasing"] = None
    method["allow_increasing"] = "set when a fitted γ is negative"
    params["mean_bound_reference"] = True
    unc["mean_bound_reference"] = None
    method["mean_bound_reference"] = "fixed (γ is fitted relative to the mean bounds)"


def _linear_reduces(shape: Values, near) -> list[str]:
    out = []
    if near("gamma_up", 0.0) and near("gamma_down", 0.0):
        out.append("constant-step")
    if near("gamma_up", 1.0) and near("gamma_down", 1.0):
        out.append("soft-bounds")
    return out


def _linear_transform(j, theta, out, delta) -> None:
    if "kappa_up" not in j:
        return
    ku, kd = theta[:, j["kappa_up"]], theta[:, j["kappa_down"]]
    out[:, j["delta_up"]] *= 1.0 - ku * delta
    out[:, j["kappa_up"]] = ku / (1.0 - ku * delta)
    out[:, j["delta_down"]] *= 1.0 + kd * delta
    out[:, j["kappa_down"]] = kd / (1.0 + kd * delta)


def _linear_from_preset(p, pd, col) -> dict:
    vals = {}
    n = pd["delta_up"].size
    for d, ref in (("up", p["w_max"]), ("down", -p["w_min"])):
        g = pd.get(f"gamma_{d}", np.full(n, p[f"gamma_{d}"]))
        vals[f"kappa_{d}"] = col(g, p[f"gamma_{d}"]) / ref
    return vals


def _linear_per_device(j, theta, se, unknown, bounds, out) -> None:
    if "kappa_up" not in j:
        return
    for d, ref in (("up", "w_max"), ("down", "w_min")):
        b = bounds[ref]
        bad = unknown[:, j[f"kappa_{d}"]]
        out[f"gamma_{d}"] = np.where(bad, np.nan, theta[:, j[f"kappa_{d}"]] * b)
        out[f"gamma_{d}_se"] = np.where(bad, np.nan, se[:, j[f"kappa_{d}"]] * b)


def _linear_equivalence_shape(shape: dict, se: dict, fit) -> None:
    # γ = κ·(mean bound) in the normalized units of the fit
    for d, b in (("up", "b_max"), ("down", "b_min")):
        ref = float(np.median(np.abs(fit.theta[:, fit.names.index(b)])))
        if f"kappa_{d}" in shape:
            shape[f"gamma_{d}"] = shape[f"kappa_{d}"] * ref
            se[f"gamma_{d}"] = se[f"kappa_{d}"] * ref


def _linear_trace_params(n_nodes: int) -> tuple[TraceParam, ...]:
    # γ of either sign (aihwkit's allow_increasing), relative to the trace's own bounds
    return tuple(TraceParam(f"gamma_{d}", 0.5, -2.0, 5.0) for d in ("up", "down"))


def _linear_trace_step(v: Values) -> dict:
    # one device: its own bounds are the mean bounds (mean_bound_reference)
    return {
        "gamma_up": v["gamma_up"],
        "gamma_down": v["gamma_down"],
        "ref_max": v["w_max"],
        "ref_min": v["w_min"],
    }


# =============================================================================== exp-step
def exp_step_representative(fields: Values) -> dict[str, float]:
    """The device with a = a₀, b = b₀ (aihwkit's defaults) equal to an ExpStepDevice's fields.

    z = 2a·w/R + b enters only through γ·z, so (A, γ, a, b) and (A', γ', a₀, b₀) with
    γ' = γ·a/a₀, A'⁺ = A⁺e^{γ⁺b − γ'⁺b₀}, A'⁻ = A⁻e^{−γ⁻b + γ'⁻b₀} give the same step at every
    w and R: the fit reports this representative (the traces cannot separate a and b).
    """
    a0, b0 = EXP_STEP_FIXED["a"], EXP_STEP_FIXED["b"]
    a, b = float(fields["a"]), float(fields["b"])
    g_up, g_dn = float(fields["gamma_up"]) * a / a0, float(fields["gamma_down"]) * a / a0
    return {
        "A_up": float(fields["A_up"]) * np.exp(float(fields["gamma_up"]) * b - g_up * b0),
        "A_down": float(fields["A_down"]) * np.exp(-float(fields["gamma_down"]) * b + g_dn * b0),
        "gamma_up": g_up,
        "gamma_down": g_dn,
        "a": a0,
        "b": b0,
    }


def _exp_to_step(v: Values) -> dict:
    """A± from the fitted decays: decay⁺ = A⁺e^{γ⁺(a + b)}, decay⁻ = A⁻e^{−γ⁻(b − a)}."""
    a, b = v["a"], v["b"]
    return {
        "A_up": v["decay_up"] * np.exp(-v["gamma_up"] * (a + b)),
        "A_down": v["decay_down"] * np.exp(v["gamma_down"] * (b - a)),
        "gamma_up": v["gamma_up"],
        "gamma_down": v["gamma_down"],
        "a": a,
        "b": b,
    }


def _exp_start(model: FamilyModel, s: ShapeStart, vals: dict) -> list[dict]:
    """Shrinking (decay > 0) and growing (decay < 0: A < 0) steps, weak and strong.

    Besides symmetric guesses, each direction gets its own decay from the linear IV fit
    (1 − step at the far plateau / step at mid-range), so that a device whose up steps grow
    while its down steps shrink (A⁺ < 0 < A⁻) starts on the right side.
    """
    mid = 0.5 * (s.hi + s.lo)
    with np.errstate(all="ignore"):
        rel_up = np.nanmedian((s.c_up + s.s_up * s.hi) / (s.c_up + s.s_up * mid))
        rel_dn = np.nanmedian((s.c_down + s.s_down * s.lo) / (s.c_down + s.s_down * mid))
    own = [float(np.clip(1.0 - r, -3.0, 0.95)) if np.isfinite(r) else 0.4 for r in (rel_up, rel_dn)]
    cands = []
    for gamma in (12.0, 4.0):
        # decay = 1 − (step at the bound)/(step far from it), each direction on its own:
        # the IV estimate, shrinking, strongly shrinking and growing steps
        for up in (own[0], 0.4, 0.8, -0.6):
            for down in (own[1], 0.4, 0.8, -0.6):
                cands.append(
                    {"decay_up": up, "decay_down": down, "gamma_up": gamma, "gamma_down": gamma}
                )
    # weak nonlinearity of either sign at moderate γ (steps within ~10 % of constant): from
    # the starts above the joint solve ended in another basin on aihwkit's A± = −0.02,
    # γ = 4, a = 0.3, b = 0.1 (J 727, above constant-step's 703, which exp-step contains;
    # 590 from these)
    for gamma in (4.0, 2.0):
        for up in (0.1, -0.1):
            for down in (0.1, -0.1):
                cands.append(
                    {"decay_up": up, "decay_down": down, "gamma_up": gamma, "gamma_down": gamma}
                )
    return cands


def _exp_population(ctx: dict) -> None:
    """aihwkit's A±, γ± at a = a₀, b = b₀ (the identified combinations mapped back)."""
    params, unc, method = ctx["params"], ctx["uncertainty"], ctx["method"]
    phi, phi_cov = ctx["phi"], ctx["phi_cov"]
    q = {n: i for i, n in enumerate(ctx["shared_names"])}
    a, b = EXP_STEP_FIXED["a"], EXP_STEP_FIXED["b"]
    for d, ref in (("up", -(a + b)), ("down", b - a)):
        i, k = q[f"decay_{d}"], q[f"gamma_{d}"]
        decay, gamma = float(phi[i]), float(phi[k])
        factor = float(np.exp(gamma * ref))
        value = decay * factor
        # delta method: ∂A/∂decay = factor, ∂A/∂γ = A·ref
        grad = np.array([factor, value * ref])
        sub = np.array([[phi_cov[i, i], phi_cov[i, k]], [phi_cov[k, i], phi_cov[k, k]]])
        params[f"A_{d}"] = value
        unc[f"A_{d}"] = float(np.sqrt(max(grad @ sub @ grad, 0.0)))
        params[f"gamma_{d}"] = gamma
        unc[f"gamma_{d}"] = float(np.sqrt(max(phi_cov[k, k], 0.0)))
        method[f"A_{d}"] = method[f"gamma_{d}"] = "sandwich (devices)"
    note = device_family("exp-step").unidentifiable
    for k, v in EXP_STEP_FIXED.items():
        params[k], unc[k] = v, None
        method[k] = f"not identified: {note[k]}"


def _exp_from_preset(p, pd, col) -> dict:
    a, b = p["a"], p["b"]
    return {
        "decay_up": p["A_up"] * np.exp(p["gamma_up"] * (a + b)),
        "decay_down": p["A_down"] * np.exp(-p["gamma_down"] * (b - a)),
        "gamma_up": p["gamma_up"],
        "gamma_down": p["gamma_down"],
        "a": a,
        "b": b,
    }


def _exp_trace_params(n_nodes: int) -> tuple[TraceParam, ...]:
    # A of either sign (A < 0: steps grow towards the bound); a, b not identified by a
    # trace (only A·e^{±γb} and a·γ are): held at aihwkit's defaults, free on request
    out = [TraceParam(f"A_{d}", 0.1, -10.0, 10.0) for d in ("up", "down")]
    out += [TraceParam(f"gamma_{d}", 2.0, 0.0, 50.0) for d in ("up", "down")]
    out += [TraceParam(k, float(v), vary=False) for k, v in EXP_STEP_FIXED.items()]
    return tuple(out)


def _exp_trace_step(v: Values) -> dict:
    return {k: v[k] for k in ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b")}


# =============================================================================== pow-step
def _pow_to_step(v: Values) -> dict:
    return {
        "pow_gamma_up": np.exp(v["log_gamma_up"]),
        "pow_gamma_down": np.exp(v["log_gamma_down"]),
    }


def _pow_start(model: FamilyModel, s: ShapeStart, vals: dict) -> list[dict]:
    vals["b_max"] = s.hi + 0.02 * s.span
    vals["b_min"] = s.lo - 0.02 * s.span
    return [{"log_gamma_up": np.log(g), "log_gamma_down": np.log(g)} for g in (1.0, 2.0, 0.5)]


def _pow_population(ctx: dict) -> None:
    """γ, pow_up_down and their spreads, inverted from aihwkit's sampling of γ⁺, γ⁻."""
    params, unc, method = ctx["params"], ctx["uncertainty"], ctx["method"]
    j, theta, var, cov = ctx["j"], ctx["theta"], ctx["var"], ctx["cov"]
    shared_names, phi, phi_cov = ctx["shared_names"], ctx["phi"], ctx["phi_cov"]
    if "log_gamma_up" in j:
        g_up = np.exp(theta[:, j["log_gamma_up"]])
        g_dn = np.exp(theta[:, j["log_gamma_down"]])
        pp = pair_population(
            g_up,
            g_dn,
            g_up**2 * var[:, j["log_gamma_up"]],
            g_dn**2 * var[:, j["log_gamma_down"]],
            g_up * g_dn * cov[:, j["log_gamma_up"], j["log_gamma_down"]],
            estimator=ctx["estimator"],
        )
        params["pow_gamma"], unc["pow_gamma"] = pp.scale, pp.scale_stderr
        params["pow_up_down"], unc["pow_up_down"] = pp.asymmetry, pp.asymmetry_stderr
        params["pow_gamma_dtod"] = pp.gain.spread
        unc["pow_gamma_dtod"] = pp.gain.spread_stderr
        params["pow_up_down_dtod"] = pp.asym.spread
        unc["pow_up_down_dtod"] = pp.asym.spread_stderr
        method["pow_gamma"] = method["pow_up_down"] = "fisher"
        method["pow_gamma_dtod"] = ctx["fisher_or_boot"](pp.gain)
        method["pow_up_down_dtod"] = ctx["fisher_or_boot"](pp.asym)
        ctx["effects"]["pow"] = pp
        return
    qu, qd = shared_names.index("log_gamma_up"), shared_names.index("log_gamma_down")
    g_up, g_dn = float(np.exp(phi[qu])), float(np.exp(phi[qd]))
    se_up = g_up * float(np.sqrt(max(phi_cov[qu, qu], 0.0)))
    se_dn = g_dn * float(np.sqrt(max(phi_cov[qd, qd], 0.0)))
    # aihwkit: γ⁺ = γ(1 + min(β, 0)), γ⁻ = γ(1 − max(β, 0))
    if g_up >= g_dn:
        params["pow_gamma"], params["pow_up_down"] = g_up, 1.0 - g_dn / g_up
        unc["pow_gamma"] = se_up
        unc["pow_up_down"] = float(np.hypot(se_dn / g_up, g_dn * se_up / g_up**2))
    else:
        params["pow_gamma"], params["pow_up_down"] = g_dn, g_up / g_dn - 1.0
        unc["pow_gamma"] = se_dn
        unc["pow_up_down"] = float(np.hypot(se_up / g_dn, g_up * se_dn / g_dn**2))
    method["pow_gamma"] = method["pow_up_down"] = "sandwich (devices)"
    params["pow_gamma_dtod"] = params["pow_up_down_dtod"] = 0.0
    unc["pow_gamma_dtod"] = unc["pow_up_down_dtod"] = None
    method["pow_gamma_dtod"] = method["pow_up_down_dtod"] = "not identified per device"


def _pow_from_soft_bounds(
    names: list[str], theta: np.ndarray, base_names: list[str]
) -> np.ndarray | None:
    """Pow-step's per-device values at exponent 1 equal to soft-bounds' ``theta``:
    Δ⁺(1 − w/b⁺) = Δ⁺_p(b⁺ − w)/(b⁺ − b⁻) gives Δ⁺_p = Δ⁺(b⁺ − b⁻)/b⁺, and
    Δ⁻_p = Δ⁻(b⁺ − b⁻)/(−b⁻) (aihwkit's SoftBounds and PowStep rules)."""
    if sorted(names) != sorted(base_names):
        return None
    v = {n: theta[:, base_names.index(n)] for n in base_names}
    span = v["b_max"] - v["b_min"]
    v = {**v, "delta_up": v["delta_up"] * span / v["b_max"]}
    v["delta_down"] = v["delta_down"] * span / -v["b_min"]
    return np.stack([v[n] for n in names], axis=1)


def _pow_shape_text(phi: np.ndarray) -> str:
    return " (γ⁺ {:.3g}, γ⁻ {:.3g})".format(*np.exp(phi))


def _pow_reduces(shape: Values, near) -> list[str]:
    if near("log_gamma_up", 0.0) and near("log_gamma_down", 0.0):
        return ["soft-bounds"]
    return []


def _pow_factor(p: Values, direction: str) -> float:
    beta = p.get("pow_up_down", 0.0) or 0.0
    return (1 + min(beta, 0.0)) if direction == "up" else (1 - max(beta, 0.0))


def _pow_from_preset(p, pd, col) -> dict:
    vals = {}
    n = pd["delta_up"].size
    for d in ("up", "down"):
        default = p["pow_gamma"] * _pow_factor(p, d)
        g = pd.get(f"pow_gamma_{d}", np.full(n, default))
        vals[f"log_gamma_{d}"] = np.log(col(g, default))
    return vals


def _pow_per_device(j, theta, se, unknown, bounds, out) -> None:
    if "log_gamma_up" not in j:
        return
    for d in ("up", "down"):
        bad = unknown[:, j[f"log_gamma_{d}"]]
        g = np.exp(theta[:, j[f"log_gamma_{d}"]])
        out[f"pow_gamma_{d}"] = np.where(bad, np.nan, g)
        out[f"pow_gamma_{d}_se"] = np.where(bad, np.nan, g * se[:, j[f"log_gamma_{d}"]])


def _pow_trace_params(n_nodes: int) -> tuple[TraceParam, ...]:
    return tuple(TraceParam(f"pow_gamma_{d}", 1.0, 0.01, 20.0) for d in ("up", "down"))


def _pow_trace_step(v: Values) -> dict:
    return {"pow_gamma_up": v["pow_gamma_up"], "pow_gamma_down": v["pow_gamma_down"]}


# ========================================================================= piecewise-step
def _piecewise_shape(n_nodes: int) -> tuple[str, ...]:
    mid = n_nodes // 2
    names = [f"node_up_{j}" for j in range(n_nodes) if j != mid]
    names += [f"node_down_{j}" for j in range(n_nodes) if j != mid]
    return tuple(names)


def piecewise_nodes(values: Values, n_nodes: int | None = None) -> tuple[list, list]:
    """Node lists (up, down) with the fixed middle node 1, from fitted node values.

    ``n_nodes`` defaults to the count the value names imply (any node count).
    """
    if n_nodes is None:
        n_nodes = len([k for k in values if k.startswith("node_up_")]) + 1
    mid = n_nodes // 2
    up = [1.0 if j == mid else values[f"node_up_{j}"] for j in range(n_nodes)]
    down = [1.0 if j == mid else values[f"node_down_{j}"] for j in range(n_nodes)]
    return up, down


def _piecewise_to_step(v: Values) -> dict:
    up, down = piecewise_nodes(v)
    return {"piecewise_up": up, "piecewise_down": down}


def _piecewise_start(model: FamilyModel, s: ShapeStart, vals: dict) -> list[dict]:
    n_nodes = len(model.shape) // 2 + 1
    mid = n_nodes // 2
    flat = {n: 1.0 for n in model.shape}
    x = np.linspace(0.0, 1.0, n_nodes)
    lin = {}
    for d, c, sl in (("up", s.c_up, s.s_up), ("down", s.c_down, s.s_down)):
        w_nodes = s.lo[:, None] + x[None, :] * s.span[:, None]
        with np.errstate(all="ignore"):
            step = np.abs(c[:, None] + sl[:, None] * w_nodes)
            rel = np.nanmedian(step / step[:, mid : mid + 1], axis=0)
        rel = np.where(np.isfinite(rel), np.clip(rel, 0.0, 5.0), 1.0)
        for j in range(n_nodes):
            if j != mid:
                lin[f"node_{d}_{j}"] = float(rel[j])
    return [lin, flat]


def _piecewise_population(ctx: dict) -> None:
    params, unc, method = ctx["params"], ctx["uncertainty"], ctx["method"]
    phi, phi_cov, shared_names = ctx["phi"], ctx["phi_cov"], ctx["shared_names"]
    values = {n: float(phi[q]) for q, n in enumerate(shared_names)}
    ses = {n: float(np.sqrt(max(phi_cov[q, q], 0.0))) for q, n in enumerate(shared_names)}
    up, down = piecewise_nodes(values)
    up_se, down_se = piecewise_nodes(ses)
    mid = len(up) // 2
    up_se[mid] = down_se[mid] = 0.0
    # the up steps were scaled by c to balance the directions' gains: the nodes carry 1/c
    c = float(ctx.get("up_scale", 1.0))
    up, up_se = [v / c for v in up], [v / c for v in up_se]
    params["piecewise_up"], params["piecewise_down"] = up, down
    unc["piecewise_up"], unc["piecewise_down"] = up_se, down_se
    method["piecewise_up"] = method["piecewise_down"] = "sandwich (devices)"


def _piecewise_from_preset(p, pd, col) -> dict:
    # the fit's middle node is 1; a preset's may not be (its up nodes carry the balance of
    # the directions' scales, fitting.pulse_response._balanced_up_scale): the steps take it
    vals = {}
    mid = len(p["piecewise_up"]) // 2
    for d in ("up", "down"):
        nodes = p[f"piecewise_{d}"]
        m = float(nodes[mid])
        m = m if np.isfinite(m) and m > 0 else 1.0  # (a preset not written by the fitter)
        for j, v in enumerate(nodes):
            if j != mid:
                vals[f"node_{d}_{j}"] = float(v) / m
        if m != 1.0:
            vals[f"delta_{d}"] = col(pd[f"delta_{d}"], population_step(p, d == "up")) * m
    return vals


def _piecewise_trace_params(n_nodes: int) -> tuple[TraceParam, ...]:
    # every node a parameter; the middle one fixed at 1 (the steps carry the scale)
    mid = n_nodes // 2
    return tuple(
        TraceParam(f"node_{d}_{j}", 1.0, 0.0, 50.0, vary=j != mid)
        for d in ("up", "down")
        for j in range(n_nodes)
    )


def _piecewise_trace_step(v: Values) -> dict:
    n_nodes = len([k for k in v if k.startswith("node_up_")])
    up, down = piecewise_nodes(v, n_nodes)
    return {"piecewise_up": up, "piecewise_down": down}


def _piecewise_trace_preset(v: Values, se: Values, names: tuple[str, ...]) -> tuple[dict, dict]:
    n_nodes = len([k for k in names if k.startswith("node_up_")])
    up, down = piecewise_nodes(v, n_nodes)
    up_se, down_se = piecewise_nodes(se, n_nodes)
    up_se[n_nodes // 2] = down_se[n_nodes // 2] = None
    out = {"piecewise_up": up, "piecewise_down": down}
    return out, {"piecewise_up": up_se, "piecewise_down": down_se}


def piecewise_model(n_nodes: int = PIECEWISE_NODES) -> FamilyModel:
    """The piecewise-step fit model with ``n_nodes`` nodes per direction (≥ 2)."""
    if n_nodes < 2:
        raise ValueError(f"piecewise-step needs at least 2 nodes to fit, got {n_nodes}")
    return FamilyModel(
        "piecewise-step",
        shape=_piecewise_shape(n_nodes),
        clip=True,
        description=f"piecewise-linear step multiplier, {n_nodes} nodes (global)",
        relation="approximates any step shape with shared nodes",
        nonnegative_shape=_piecewise_shape(n_nodes),
        free_direction_scale=True,
        to_step=_piecewise_to_step,
        starts=_piecewise_start,
        population=_piecewise_population,
        from_preset=_piecewise_from_preset,
        trace_params=_piecewise_trace_params,
        trace_step=_piecewise_trace_step,
        trace_preset=_piecewise_trace_preset,
    )


FAMILY_MODELS: dict[str, FamilyModel] = {
    m.name: m
    for m in (
        FamilyModel(
            "constant-step",
            bounds_only_by_clip=True,
            stated_at_reference=(),  # the step does not depend on w
            relation="linear-step with γ = 0; piecewise-step with one node",
            clip=True,
            decoupled=True,
            description=device_family("constant-step").description,
        ),
        FamilyModel(
            "soft-bounds",
            relation="linear-step with γ = 1 and each device's own bounds as reference "
            "(aihwkit's SoftBoundsDevice); pow-step with exponent 1",
            clip=False,
            decoupled=True,
            bounds_by_direction=True,
            closed_form=True,
            starts=_soft_bounds_start,
            transform=_soft_bounds_transform,
            description=device_family("soft-bounds").description,
        ),
        FamilyModel(
            "linear-step",
            bounds_only_by_clip=True,
            relation="contains constant-step (γ = 0); soft-bounds up to the reference bounds",
            shape=("kappa_up", "kappa_down"),
            per_device_shape=("kappa_up", "kappa_down"),
            clip=True,
            decoupled=True,
            recenter_shape=("kappa_up", "kappa_down"),
            stated_at_reference=("dw_min", "up_down", "gamma_up", "gamma_down"),
            typical={"kappa_up": 0.1, "kappa_down": 0.1},
            to_step=_linear_to_step,
            starts=_linear_start,
            population=_linear_population,
            reduces_to=_linear_reduces,
            transform=_linear_transform,
            from_preset=_linear_from_preset,
            per_device=_linear_per_device,
            equivalence_shape=_linear_equivalence_shape,
            trace_params=_linear_trace_params,
            trace_step=_linear_trace_step,
            description=device_family("linear-step").description,
        ),
        FamilyModel(
            "exp-step",
            relation="contains constant-step (A → 0)",
            shape=("decay_up", "decay_down", "gamma_up", "gamma_down"),
            clip=True,
            fixed=dict(EXP_STEP_FIXED),
            recenter=False,  # z = 2a·w/R + b fixes the origin of w (a, b are not refitted)
            stated_at_reference=("dw_min", "up_down", "A_up", "A_down", "gamma_up", "gamma_down"),
            typical={"decay_up": 0.1, "decay_down": 0.1, "gamma_up": 1.0, "gamma_down": 1.0},
            to_step=_exp_to_step,
            starts=_exp_start,
            population=_exp_population,
            from_preset=_exp_from_preset,
            trace_params=_exp_trace_params,
            trace_step=_exp_trace_step,
            description=device_family("exp-step").description,
        ),
        FamilyModel(
            "pow-step",
            relation="contains soft-bounds (exponent 1)",
            shape=("log_gamma_up", "log_gamma_down"),
            per_device_shape=("log_gamma_up", "log_gamma_down"),
            clip=False,
            nested_shape={"log_gamma_up": 0.0, "log_gamma_down": 0.0},
            shape_tries=tuple(
                {"log_gamma_up": np.log(g), "log_gamma_down": np.log(g)} for g in (2.0, 0.5)
            ),
            shape_text=_pow_shape_text,
            from_nested=_pow_from_soft_bounds,
            typical={"log_gamma_up": 0.1, "log_gamma_down": 0.1},
            to_step=_pow_to_step,
            starts=_pow_start,
            population=_pow_population,
            reduces_to=_pow_reduces,
            from_preset=_pow_from_preset,
            per_device=_pow_per_device,
            trace_params=_pow_trace_params,
            trace_step=_pow_trace_step,
            description=device_family("pow-step").description,
        ),
        # node counts 3 ⊂ 5 ⊂ 9 (equally spaced nodes nest): BIC picks the smallest adequate
        dataclasses.replace(
            piecewise_model(PIECEWISE_NODES),
            alternatives=tuple(piecewise_model(n) for n in PIECEWISE_ALTERNATIVES),
        ),
    )
}
assert set(FAMILY_MODELS) == set(FAMILIES)

#: Families whose up and down steps share no parameter (direction-wise data can be fitted).
DECOUPLED = tuple(n for n, m in FAMILY_MODELS.items() if m.decoupled)


def family_model(name: str) -> FamilyModel:
    """The fit model of family ``name``."""
    try:
        return FAMILY_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown device family {name!r}; expected one of {FAMILIES}") from None
