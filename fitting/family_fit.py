"""Fit one family to a set of devices: initial values, shared shape, per-device parameters.

Works in normalized units (``w = (G − g0)/scale``). Stages:

1. closed-form linear IV fits per direction (:mod:`fitting.soft_bounds`) and the reads'
   plateaus give starting values for every family; soft-bounds with the same pulse count
   before every read is finished there (the IV fit is its exact estimator);
2. shared shape parameters (exp-step's A and γ, piecewise-step's nodes, and, for model
   selection, linear-step's γ and pow-step's exponents) are fitted jointly with the
   per-device parameters of a subsample of devices (:meth:`GmmProblem.solve_joint`), from a
   few starting shapes; the best criterion wins;
3. per-device parameters of all devices with the shape fixed (or per-device shapes for the
   families where aihwkit varies them from device to device).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fitting.families import DEVICE_PARAMS, FAMILY_MODELS, FamilyModel, ShapeStart
from fitting.gmm import DeviceFit, GmmProblem, clear_of_bounds
from fitting.increment_noise import IncrementNoise
from fitting.pairs import PairBlock
from fitting.soft_bounds import (
    increment_noise,
    iv_cross_covariance,
    linear_iv,
    soft_bounds_from_iv,
)

__all__ = [
    "DeviceData",
    "chip_increment_noise",
    "fit_devices",
    "fit_per_device_shape",
    "fit_shared_shape",
    "initial_values",
]

TYPICAL = {"b_max": 0.1, "b_min": 0.1}  # shape parameters: FamilyModel.typical


@dataclass
class DeviceData:
    """Normalized pairs of a set of devices with their plateaus."""

    up: PairBlock
    down: PairBlock
    hi: np.ndarray  # (n_dev,) upper plateau (normalized)
    lo: np.ndarray

    @property
    def blocks(self) -> list[PairBlock]:
        return [self.up, self.down]

    @property
    def n_dev(self) -> int:
        return self.hi.size

    def uniform_pulses(self) -> int | None:
        """The pulse count between reads if it is the same for every pair, else None."""
        counts = set()
        for b in self.blocks:
            counts.update(b.pulse_counts)
        return counts.pop() if len(counts) == 1 else None


def _mid_step(block: PairBlock, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Mean step per pulse over the pairs whose instrument lies in the far half of the range.

    Selecting on the instrument (not on the noisy read itself) avoids regression to the
    mean; far from the bound it is approached, the step is close to its nominal size.
    """
    mid = 0.5 * (hi + lo)[:, None]
    sel = (block.z < mid) if block.direction > 0 else (block.z > mid)
    w = block.weight * sel
    cnt = w.sum(axis=1)
    inc = (block.y1 - block.y0) / block.n
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.sum(inc * w, axis=1) / cnt
        allw = block.weight.sum(axis=1)
        fallback = np.sum(inc * block.weight, axis=1) / allw
    step = np.where(cnt >= 3, step, fallback)
    return np.abs(np.nan_to_num(step, nan=0.0))


def initial_values(model: FamilyModel, data: DeviceData) -> tuple[dict, list[dict]]:
    """Starting per-device values and candidate shared shapes for ``model``."""
    span = np.maximum(data.hi - data.lo, 1e-9)
    iv = {d: linear_iv(b) for d, b in (("up", data.up), ("down", data.down))}
    n_typ = {
        d: max(float(np.median(b.n[b.weight > 0])) if (b.weight > 0).any() else 1.0, 1.0)
        for d, b in (("up", data.up), ("down", data.down))
    }
    step_mid = {
        "up": _mid_step(data.up, data.hi, data.lo),
        "down": _mid_step(data.down, data.hi, data.lo),
    }
    floor = 1e-3 * np.nanmedian(span)
    for d in ("up", "down"):
        good = step_mid[d] > 0
        fill = float(np.median(step_mid[d][good])) if good.any() else 0.01 * float(np.median(span))
        step_mid[d] = np.where(good, step_mid[d], fill)
        step_mid[d] = np.maximum(step_mid[d], floor)
    vals = {
        "delta_up": step_mid["up"].copy(),
        "delta_down": step_mid["down"].copy(),
        "b_max": data.hi.copy(),
        "b_min": data.lo.copy(),
    }
    c_up, s_up = iv["up"].intercept / n_typ["up"], iv["up"].slope / n_typ["up"]
    c_dn, s_dn = iv["down"].intercept / n_typ["down"], iv["down"].slope / n_typ["down"]
    start = ShapeStart(c_up, s_up, c_dn, s_dn, data.hi, data.lo)
    cand = model.starts(model, start, vals)
    return vals, cand


def _problem(
    model: FamilyModel, data: DeviceData, names: Sequence[str], shared: Sequence[str]
) -> GmmProblem:
    typical = {**TYPICAL, **model.typical}
    for d in ("delta_up", "delta_down"):
        typical[d] = 1e-3
    return GmmProblem(model, data.blocks, names, shared, fixed=model.fixed, typical=typical)


def _theta(vals: dict, names: Sequence[str], shape: dict, n: int) -> np.ndarray:
    cols = []
    for name in names:
        v = vals.get(name, shape.get(name))
        cols.append(np.broadcast_to(np.asarray(v, dtype=float), (n,)))
    return np.stack(cols, axis=1).astype(float)


def fit_shared_shape(model: FamilyModel, data: DeviceData) -> tuple[DeviceFit, GmmProblem]:
    """Per-device parameters and one shape shared by all devices (best of a few starts)."""
    vals, cands = initial_values(model, data)
    names = list(DEVICE_PARAMS)
    shared = list(model.shape)
    prob = _problem(model, data, names, shared)
    best = None
    for shape in cands:
        phi = np.array([shape[s] for s in shared], dtype=float)
        theta = _theta(vals, names, {}, data.n_dev)
        prob.set_weights(theta, phi)
        theta, q, _ = prob.solve_devices(theta, phi, max_iter=10)
        total = float(np.sum(q[np.isfinite(q)]))
        if best is None or total < best[0]:
            best = (total, theta, phi)
    _, theta, phi = best
    if shared and model.bounds_only_by_clip:
        phi = _shape_clear_of_bounds(model, data, theta, phi)
    elif shared:
        theta, phi = prob.solve_joint(theta, phi)
    prob.set_weights(theta, phi)
    if shared and not model.bounds_only_by_clip:
        theta, phi = prob.solve_joint(theta, phi)
    prob.set_weights(theta, phi)
    if model.clip:
        theta, q, conv = _solve_from_bound_levels(prob, data, theta, phi)
    else:
        theta, q, conv = prob.solve_devices(theta, phi)
    cov, phi_cov = prob.covariance(theta, phi)
    return DeviceFit(names, theta, cov, shared, phi, phi_cov, q, conv), prob


START_MARGIN = 1e-8  # relative criterion gain a later start needs (solver rtol 1e-10)


def _solve_from_bound_levels(
    prob: GmmProblem, data: DeviceData, theta: np.ndarray, phi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-device values of a hard-bound family solved from three starts; the best per device.

    A hard bound acts only through the clip (and, for exp- and piecewise-step, through the
    range that scales the step's shape), so its moments are flat or multimodal in it: a
    bound that starts (or drifts, while the shape is searched) beyond the level where the
    device sits stays there, and one that a device never reaches can stop at its plateau.
    The other starts put each bound at the level where the device sits
    (:func:`fitting.gmm.clear_of_bounds`: its mean read there) and, in one of them, a bound
    the device does not sit at half a span beyond its plateau. All are solved with the same
    weights, so their criteria compare. On aihwkit's traces: linear-step γ 0.3/0.7, J 6806
    from the first start alone, 1024 with the level; exp-step with twice the default spreads,
    J 1801 -> below piecewise-step's 1500.
    """
    _, level = clear_of_bounds(data.blocks, data.hi, data.lo)
    span = data.hi - data.lo
    far = {"b_max": data.hi + 0.5 * span, "b_min": data.lo - 0.5 * span}
    at_level, beyond = theta.copy(), theta.copy()
    for name in ("b_max", "b_min"):
        if name in prob.names:
            j = prob.names.index(name)
            sits = np.isfinite(level[name])
            at_level[sits, j] = beyond[sits, j] = level[name][sits]
            beyond[~sits, j] = far[name][~sits]
    best, q, _ = prob.solve_devices(theta, phi)
    return _best_of_starts(prob, phi, best, q, (at_level, beyond))


def _best_of_starts(
    prob: GmmProblem, phi: np.ndarray, best: np.ndarray, q: np.ndarray, starts: Sequence
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per device the best of ``best`` (criterion ``q``) and the solves from ``starts``,
    reweighted and solved once more from it."""
    for start in starts:
        th, qs, _ = prob.solve_devices(start, phi)
        # a start wins only by more than the solver's tolerance: two starts that reach the
        # same optimum tie, and the first is kept whatever the neighbouring devices (a
        # near-tie decided by rounding picks parameters that differ at sqrt(rtol) and made
        # the fit depend on the chunking)
        take = np.isfinite(qs) & ~(qs >= q * (1.0 - START_MARGIN))
        best = np.where(take[:, None], th, best)
        q = np.where(take, qs, q)
    prob.set_weights(best, phi)
    return prob.solve_devices(best, phi)


def _solve_from_population_shapes(
    prob: GmmProblem,
    data: DeviceData,
    theta: np.ndarray,
    phi: np.ndarray,
    dev_shape: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-device shapes solved from four starts; the best criterion per device.

    A bound that a device approaches but does not reach is traded against its shape (a
    larger exponent with a farther bound bends the visited part alike), so the solve from
    the shared shape, bounds just beyond the plateaus, stops in the nearer basin. The other
    starts put every bound half a span beyond the device's plateau, with the shape as given
    and at the lower and upper quartile of the devices' first solutions. On aihwkit's
    pow-step with twice the default spreads (exponent 2 ± 0.4, 128 devices), J 3369 from the
    shared start alone, 1662 with these, 1579 from aihwkit's drawn values.
    """
    best, q, _ = prob.solve_devices(theta, phi)
    span = data.hi - data.lo
    far = best.copy()
    for name, bound in (("b_max", data.hi + 0.5 * span), ("b_min", data.lo - 0.5 * span)):
        if name in prob.names:
            far[:, prob.names.index(name)] = bound
    cols = [prob.names.index(n) for n in dev_shape]
    starts = [far]
    for quantile in (0.25, 0.75):
        st = far.copy()
        st[:, cols] = np.nanquantile(best[:, cols], quantile, axis=0)
        starts.append(st)
    return _best_of_starts(prob, phi, best, q, starts)


def _shape_clear_of_bounds(
    model: FamilyModel, data: DeviceData, theta: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """The shared shape of a hard-bound family from the pairs clear of the read plateaus.

    The clip at a noisy read biases the moments of pairs at a bound
    (:func:`fitting.gmm.clear_of_bounds`); those pairs are left out, and the bounds, which
    then act on few kept pairs, are held at the mean read level while the device sits at
    them; a device that turns before a bound gets it one span beyond its plateau (at the
    plateau itself it would clip states above the 97th percentile of its reads). The steps
    are refitted with it.
    """
    blocks, level = clear_of_bounds(data.blocks, data.hi, data.lo)
    steps = ["delta_up", "delta_down"]
    span = data.hi - data.lo
    far = {"b_max": data.hi + span, "b_min": data.lo - span}
    fixed = dict(model.fixed)
    for k in ("b_max", "b_min"):
        fixed[k] = np.where(np.isfinite(level[k]), level[k], far[k])[:, None]
    typical = {**model.typical, "delta_up": 1e-3, "delta_down": 1e-3}
    prob = GmmProblem(model, blocks, steps, list(model.shape), fixed=fixed, typical=typical)
    cols = [DEVICE_PARAMS.index(n) for n in steps]
    th = theta[:, cols].copy()
    prob.set_weights(th, phi)
    th, phi = prob.solve_joint(th, phi)
    prob.set_weights(th, phi)
    _, phi = prob.solve_joint(th, phi)
    return phi


def fit_devices(
    model: FamilyModel,
    data: DeviceData,
    shape: dict[str, float],
    per_device_shape: bool,
    increment_noise: tuple[IncrementNoise | None, IncrementNoise | None] | None = None,
) -> DeviceFit:
    """Per-device parameters of ``data`` with ``shape`` fixed (or as per-device start);
    ``increment_noise`` (up, down): the chip's, for the errors (estimated on ``data`` when
    None)."""
    n_pulse = data.uniform_pulses()
    if model.closed_form and n_pulse is not None:
        return _soft_bounds_closed_form(data, n_pulse, increment_noise or (None, None))
    return _fit_devices(model, data, shape, per_device_shape, noise=increment_noise)[0]


def fit_per_device_shape(
    model: FamilyModel, data: DeviceData, shared: DeviceFit
) -> tuple[DeviceFit, GmmProblem]:
    """The family with its shape fitted per device (aihwkit's ``gamma_*_dtod``,
    ``pow_*_dtod``), started from a shared-shape fit; with its problem, for model selection."""
    start = {n: float(shared.phi[j]) for j, n in enumerate(shared.shared_names)}
    return _fit_devices(model, data, start, True, start=shared)


def _fit_devices(
    model: FamilyModel,
    data: DeviceData,
    shape: dict[str, float],
    per_device_shape: bool,
    start: DeviceFit | None = None,
    noise: tuple[IncrementNoise | None, IncrementNoise | None] | None = None,
) -> tuple[DeviceFit, GmmProblem]:
    vals, _ = initial_values(model, data)
    if start is not None:  # per-device values of an earlier fit of the same devices
        for j, name in enumerate(start.names):
            vals[name] = start.theta[:, j].copy()
    n = data.n_dev
    dev_shape = list(model.per_device_shape) if per_device_shape else []
    names = list(DEVICE_PARAMS) + dev_shape
    # the shape's own names (a piecewise-step plan may carry another node count)
    shared = [s for s in (shape or model.shape) if s not in dev_shape]
    prob = _problem(model, data, names, shared)
    theta = _theta(vals, names, shape, n)
    phi = np.array([shape[s] for s in shared], dtype=float)
    prob.set_weights(theta, phi)
    if model.clip and start is None:
        theta, q, conv = _solve_from_bound_levels(prob, data, theta, phi)
    elif start is not None and dev_shape:
        theta, q, conv = _solve_from_population_shapes(prob, data, theta, phi, dev_shape)
    else:
        theta, q, conv = prob.solve_devices(theta, phi)
    prob.set_weights(theta, phi)
    theta, q, conv = prob.solve_devices(theta, phi, max_iter=15)
    cov, _ = prob.covariance(theta, phi, noise)
    fit = DeviceFit(names, theta, cov, shared, phi, np.zeros((len(shared), len(shared))), q, conv)
    return fit, prob


def chip_increment_noise(
    model: FamilyModel, data: DeviceData, fit: DeviceFit | None
) -> tuple[IncrementNoise | None, IncrementNoise | None]:
    """The chip's increment noise (up, down) from ``fit`` of the devices of ``data`` (the
    subsample of the plan, so that every chunk's errors use the same;
    :mod:`fitting.increment_noise`)."""
    if model.closed_form and data.uniform_pulses() is not None:
        return increment_noise(data.up), increment_noise(data.down)
    if fit is None:
        return None, None
    prob = _problem(model, data, fit.names, fit.shared_names)
    up, down = prob.increment_noise(fit.theta, fit.phi)
    return up, down


def _soft_bounds_closed_form(
    data: DeviceData, n_pulse: int, noise: tuple[IncrementNoise | None, IncrementNoise | None]
) -> DeviceFit:
    """Exact IV estimator of soft-bounds (same pulse count before every read).

    A direction without data (single-direction traces) keeps its starting values with
    infinite variance: not identified.
    """
    iv_up, iv_dn = linear_iv(data.up, noise[0]), linear_iv(data.down, noise[1])
    d_up, b_up, c_up, j_up = soft_bounds_from_iv(iv_up, 1, n_pulse)
    d_dn, b_dn, c_dn, j_dn = soft_bounds_from_iv(iv_dn, -1, n_pulse)
    # up and down share the reads where a sweep turns: their estimates are correlated
    up, dn = iv_up.noise, iv_dn.noise
    read_var = 0.0 if up is None or dn is None else float(np.sqrt(up.read_var * dn.read_var))
    cross = iv_cross_covariance(data.up, iv_up, data.down, iv_dn, read_var)
    with np.errstate(all="ignore"):
        c_ud = j_up @ cross @ np.swapaxes(j_dn, 1, 2)  # (Δ⁺, b⁺) x (Δ⁻, b⁻)
    n = data.n_dev
    theta = np.stack([d_up, d_dn, b_up, b_dn], axis=1)
    cov = np.zeros((n, 4, 4))
    for (i, j), (a, b) in {(0, 0): (0, 0), (0, 2): (0, 1), (2, 0): (1, 0), (2, 2): (1, 1)}.items():
        cov[:, i, j] = c_up[:, a, b]
    for (i, j), (a, b) in {(1, 1): (0, 0), (1, 3): (0, 1), (3, 1): (1, 0), (3, 3): (1, 1)}.items():
        cov[:, i, j] = c_dn[:, a, b]
    for (i, j), (a, b) in {(0, 1): (0, 0), (0, 3): (0, 1), (2, 1): (1, 0), (2, 3): (1, 1)}.items():
        cov[:, i, j] = cov[:, j, i] = np.nan_to_num(c_ud[:, a, b])
    start = None
    for col, name in enumerate(DEVICE_PARAMS):
        missing = ~np.isfinite(theta[:, col]) | ~np.isfinite(cov[:, col, col])
        if not missing.any():
            continue
        if start is None:
            start, _ = initial_values(FAMILY_MODELS["soft-bounds"], data)
        theta[missing, col] = np.asarray(start[name], dtype=float)[missing]
        cov[missing, col, :] = 0.0
        cov[missing, :, col] = 0.0
        cov[missing, col, col] = np.inf
    conv = np.all(np.isfinite(theta), axis=1)
    return DeviceFit(
        list(DEVICE_PARAMS), theta, cov, [], np.zeros(0), np.zeros((0, 0)), np.zeros(n), conv
    )
