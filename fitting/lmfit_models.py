"""Every pulsed-device family as an :class:`lmfit.Model` of one pulse-response trace.

For a notebook, one trace, or a handful of devices: the model is the family's expected
(noise-free) trajectory, started at the first read and driven by the measured pulse
sequence, with the same response functions as the simulator
(:func:`simulator.devices.response.expected_step`). lmfit gives the least-squares values, a
per-trace covariance, ``fit_report()``, and lets a user fix (``vary=False``), bound or
constrain (``expr``) any parameter. Each family's shape parameters, start values and bounds
come from its fit parametrization in :mod:`fitting.families` (the catalogue's fit side).
The vectorized engine (:mod:`fitting.pulse_response`) stays the tool for populations.

Parameters (data units around the fixed reference ``g_ref``, like a preset's
``g_offset_s``): ``delta_up``, ``delta_down`` (step at ``w = 0``), ``w_max`` > 0 > ``w_min``
(the device's bounds relative to ``g_ref``) and the family's shape:

* linear-step: ``gamma_up``, ``gamma_down`` (aihwkit's γ, relative to the bounds);
* exp-step: ``A_up``, ``A_down`` (either sign), ``gamma_up``, ``gamma_down``; ``a``, ``b``
  fixed at aihwkit's defaults (only A·e^{±γb} and a·γ are identified by a trace);
* pow-step: ``pow_gamma_up``, ``pow_gamma_down``;
* piecewise-step: ``node_up_0..n-1``, ``node_down_0..n-1`` (multipliers of the steps; the
  middle node is fixed at 1, the steps carry the scale).

The covariance assumes independent residuals (read noise). Cycle-to-cycle noise accumulates
along a trace and makes neighbouring residuals correlated, so with strong step noise the
standard errors are a lower bound: compare them with the population engine's, or refit
halves of the trace. A bound that the trajectory reaches in a finite number of pulses
(pow-step with γ < 1, constant-step) is clipped there: the least-squares surface has a kink,
local optima are possible and the linearized error of that bound is optimistic.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import lmfit
import numpy as np

from fitting.families import EXP_STEP_FIXED, PIECEWISE_NODES, FamilyModel, family_model
from simulator.devices.response import FAMILIES, expected_step

__all__ = [
    "EXP_STEP_DEFAULTS",
    "PIECEWISE_NODES",
    "fit_trace",
    "pulse_trace_model",
    "to_preset_parameters",
    "trajectory",
]

#: aihwkit's ExpStepDevice defaults of the parameters a trace cannot identify
EXP_STEP_DEFAULTS = dict(EXP_STEP_FIXED)

#: Parameters of every family's trace model (data units), before the family's shape.
COMMON = ("g_start", "g_ref", "delta_up", "delta_down", "w_max", "w_min")


def _model(family: str) -> FamilyModel:
    """The family's fit parametrization (ValueError naming the known families)."""
    return family_model(family)


def trajectory(
    family: str,
    pulses: np.ndarray,
    g_start: float,
    g_ref: float,
    values: dict[str, float],
    n_nodes: int = PIECEWISE_NODES,
) -> np.ndarray:
    """Expected reads (data units) of one device: ``pulses[k]`` signed pulses before read k.

    ``n_nodes`` is kept for compatibility; the node count is read from the value names.
    """
    fm = _model(family)
    p = fm.trace_step_params(values)
    lo, hi = values["w_min"], values["w_max"]
    w = float(g_start - g_ref)  # not clipped: a start beyond a bound keeps its derivative
    out = np.empty(len(pulses))
    for k, n in enumerate(np.asarray(pulses, dtype=np.int64)):
        up = n > 0
        for _ in range(abs(int(n))):
            w = min(max(w + float(expected_step(fm.name, w, up, p)), lo), hi)
        out[k] = w
    return out + g_ref


def pulse_trace_model(family: str, n_nodes: int = PIECEWISE_NODES) -> lmfit.Model:
    """An :class:`lmfit.Model` of one trace of ``family``; independent variable ``pulses``.

    The shape parameters, their start values and bounds come from the family's fit
    parametrization (:attr:`fitting.families.FamilyModel.trace_params`). ``g_start`` (the
    state before the first read) and ``g_ref`` are parameters too, with ``g_ref`` fixed by
    default. Use :func:`fit_trace`, which sets starting values from the trace.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown device family {family!r}; expected one of {FAMILIES}")
    fm = _model(family)
    shape = fm.trace_params(n_nodes)
    names = [*COMMON, *(t.name for t in shape)]

    def func(pulses: np.ndarray, **kw: float) -> np.ndarray:
        values = {k: float(kw[k]) for k in names}
        return trajectory(family, pulses, values["g_start"], values["g_ref"], values)

    # lmfit reads the parameter names from the signature: give func an explicit one
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    func.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("pulses", kind)] + [inspect.Parameter(n, kind) for n in names]
    )
    func.__name__ = f"{family.replace('-', '_')}_trace"
    model = lmfit.Model(
        func,
        independent_vars=["pulses"],
        param_names=names,
        name=f"pulse trace ({family})",
    )
    model.set_param_hint("g_ref", vary=False)
    # no bounds on the data-unit parameters: lmfit's bound transform is not scale-free
    # (it would ruin the covariance of values ~1e-6 S); the signs are checked by fit_trace
    for t in shape:
        model.set_param_hint(t.name, value=t.value, min=t.min, max=t.max, vary=t.vary)
    return model


def _start(g: np.ndarray, pulses: np.ndarray) -> dict[str, float]:
    """Starting values from the trace: plateaus, reference at their midpoint, mean steps."""
    ok = np.isfinite(g)
    lo, hi = np.percentile(g[ok], [3.0, 97.0])
    ref = 0.5 * (lo + hi)
    dg = np.diff(g)
    n = np.asarray(pulses[1:], dtype=float)
    steps = {}
    for d, sel in (("up", n > 0), ("down", n < 0)):
        sel &= np.isfinite(dg)
        mean = abs(float(np.sum(dg[sel]) / np.sum(np.abs(n[sel])))) if sel.any() else 0.0
        steps[d] = max(mean, 1e-3 * (hi - lo))
    first = float(g[ok][0])
    return {
        "g_start": first,
        "g_ref": ref,
        "delta_up": steps["up"],
        "delta_down": steps["down"],
        "w_max": 0.6 * (hi - lo),
        "w_min": -0.6 * (hi - lo),
    }


def fit_trace(
    conductance: Sequence[float] | np.ndarray,
    pulses: Sequence[int] | np.ndarray,
    family: str = "soft-bounds",
    n_nodes: int = PIECEWISE_NODES,
    params: lmfit.Parameters | None = None,
    **overrides: float,
) -> lmfit.model.ModelResult:
    """Least-squares fit of one trace (data units) with :func:`pulse_trace_model`.

    ``overrides`` set starting values (e.g. ``w_max=2e-6``); to fix or constrain parameters
    pass your own ``params`` (``pulse_trace_model(f).make_params(...)``, then
    ``params["w_min"].set(vary=False)`` or ``.set(expr=...)``). NaN reads are left out.
    Returns lmfit's ``ModelResult`` (``.params``, ``.covar``, ``.fit_report()``).
    """
    g = np.asarray(conductance, dtype=float)
    p = np.asarray(pulses)
    if g.ndim != 1 or p.shape != g.shape:
        raise ValueError("one trace: conductance and pulses must be 1-D of the same length")
    if np.isfinite(g).sum() < 4:
        raise ValueError("a trace needs at least four finite reads")
    model = pulse_trace_model(family, n_nodes)
    if params is None:
        start = {**_start(g, p), **overrides}
        params = model.make_params(**start)
        span = start["w_max"] - start["w_min"]
        params["g_start"].set(min=start["g_start"] - span, max=start["g_start"] + span)
    weights = np.isfinite(g).astype(float)
    y = np.where(np.isfinite(g), g, 0.0)
    # finite-difference step ~1e-4 of each value: the trajectory clips at the bounds, and
    # MINPACK's default step (~1e-8 relative) can miss the slope there (no covariance)
    result = model.fit(y, params, pulses=p, weights=weights, fit_kws={"epsfcn": 1e-8})
    if result.covar is None:  # polish with a trust-region step: its Jacobian gives one
        again = result.params.copy()
        for par in again.values():  # lmfit gives no errors for values still at their start
            if par.vary and par.expr is None:
                par.set(value=par.value * (1.0 + 1e-3) + 1e-12 * (par.value == 0))
        result = model.fit(
            y,
            again,
            pulses=p,
            weights=weights,
            method="least_squares",
            fit_kws={"diff_step": 1e-4},
        )
    return result


def to_preset_parameters(result: lmfit.model.ModelResult, family: str) -> dict[str, Any]:
    """aihwkit parameters (preset names) and standard errors from a :func:`fit_trace` result.

    ``dw_min`` is the larger step, ``up_down`` the asymmetry (aihwkit: Δ⁺ = dw_min·(1 + β)
    for β < 0, Δ⁻ = dw_min·(1 − β) for β > 0), errors by first-order propagation with the
    covariance. Device-to-device spreads are not available from one trace.
    """
    v = {k: float(p.value) for k, p in result.params.items()}
    se = {
        k: (float(p.stderr) if p.vary and p.stderr is not None else None)
        for k, p in result.params.items()
    }
    cov = result.covar
    names = list(result.var_names)
    up, dn = v["delta_up"], v["delta_down"]
    out: dict[str, Any] = {"g_offset_s": v["g_ref"], "w_max": v["w_max"], "w_min": v["w_min"]}
    err: dict[str, Any] = {"w_max": se["w_max"], "w_min": se["w_min"]}
    if up >= dn:  # dw_min = Δ⁺, β = 1 − Δ⁻/Δ⁺
        out["dw_min"], out["up_down"] = up, 1.0 - dn / up
        grad = {"delta_up": (1.0, dn / up**2), "delta_down": (0.0, -1.0 / up)}
    else:  # dw_min = Δ⁻, β = Δ⁺/Δ⁻ − 1
        out["dw_min"], out["up_down"] = dn, up / dn - 1.0
        grad = {"delta_up": (0.0, 1.0 / dn), "delta_down": (1.0, -up / dn**2)}
    if cov is not None and all(k in names for k in grad):
        idx = [names.index(k) for k in grad]
        c = np.asarray(cov)[np.ix_(idx, idx)]
        for pos, key in enumerate(("dw_min", "up_down")):
            gvec = np.array([grad[k][pos] for k in grad])
            err[key] = float(np.sqrt(max(gvec @ c @ gvec, 0.0)))
    else:
        err["dw_min"] = err["up_down"] = None
    shape = tuple(k for k in v if k not in COMMON)
    shape_out, shape_err = _model(family).trace_preset(v, se, shape)
    out.update(shape_out)
    err.update(shape_err)
    for k in ("dw_min_dtod", "up_down_dtod", "w_max_dtod", "w_min_dtod"):
        out[k], err[k] = None, "not available (1 device)"
    return {"parameters": out, "uncertainty": err}
