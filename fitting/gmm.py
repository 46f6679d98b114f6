"""Batched nonlinear instrumental-variable (GMM) fits, vectorized across devices.

For every device and pulse direction the residual of pair k is
u_k(θ) = (y_{k+1} − y_k) − [F_n(y_k; θ) − y_k], where F_n is the mean map of the n pulses
between the reads (the family's expected step, applied n times, clipped to the device's
bounds where the family needs it). The moment conditions E[Z_k u_k] = 0 use instruments
Z_k = (He_0(ẑ), …, He_5(ẑ)), Hermite polynomials of the earlier, independent read ẑ
(:mod:`fitting.pairs`), which keeps read noise from biasing the state dependence of the
step. The criterion Q(θ) = Σ_d g_d(θ)ᵀ W_d g_d(θ), with g_d = Σ_k Z_k u_k and
W_d = (σ̂_d² Σ_k Z_k Z_kᵀ)⁻¹, is the nonlinear two-stage least-squares criterion.

It is minimized by Levenberg-Marquardt, all devices at once: per-device parameter blocks
(numerical Jacobians: one model evaluation per parameter for all devices), and optionally
shape parameters shared by all devices, by a Schur-complement step on the joint normal
equations (one small dense system for the shared parameters). Covariances are sandwich
estimates whose meat is the covariance of the moments under the chip's increment noise
(:mod:`fitting.increment_noise`: read noise makes the residuals MA(1)); the covariance of
shared parameters is clustered by device (robust to device-level misfit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fitting.families import FamilyModel
from fitting.increment_noise import IncrementNoise, estimate_increment_noise, moment_covariance
from fitting.pairs import PairBlock

__all__ = [
    "DeviceFit",
    "GmmProblem",
    "clear_of_bounds",
    "instrument_state",
    "instruments",
    "moment_weights",
    "predict_increment",
    "read_noise_sd",
]

#: a kept pair's first read lies this many SDs (of its spread about its instrument) below the
#: clip at the level where its device sits: the clip at a noisy read then biases a pair's
#: moment by σ·E[(ξ − x)⁺] ≤ 0.008 σ (x = 2); from the plateau's 97th percentile, as before,
#: the last kept pairs had x ≈ 0.8 (0.12 σ each; at read noise 10 steps aihwkit's
#: EcRamPresetDevice got γ⁺ −0.38 for 0.12)
CLIP_CLEAR_SD = 2.0

#: instruments per direction: Hermite polynomials of degree 0..5 of the instrument read. Fewer
#: (e.g. 4) cannot resolve local shape features such as piecewise-step nodes.
N_INSTRUMENTS = 6
#: reads averaged into the instrument of a pair (:func:`instrument_state`) in the fits and
#: the model selection's scores
INSTRUMENT_READS = 1
#: ... and in the exponent test of model selection (fitting.pulse_response._exponent_test,
#: :meth:`GmmProblem.with_instrument_reads`): a single read's noise makes the moments of
#: smooth instruments rough along a sweep, and J loses most of its power on the step's shape
#: (aihwkit pow-step γ 2.09, 64 devices, read noise 4 steps: J of soft-bounds − J of
#: pow-step 1.4 with one read, 42 with four). The fits keep one read: with four,
#: linear-step's fits near its bounds drifted (aihwkit's ls_twice_spread: mean trace 10.7 %
#: off instead of 2.1 %; the clip's read-noise rules, CLIP_CLEAR_SD, assume one read)
SCORE_INSTRUMENT_READS = 4
#: pairs whose instrument read lies within this fraction of the device's range from the end
#: its pulses drive it to keep one read (:func:`instrument_state`): there a device may
#: saturate at a bound it reaches, and the mean of earlier reads lags the state by more
#: than the response's scale (aihwkit's pow-step with γ 0.3, ps_weak_gamma, fitted with
#: four-read instruments: pow-step lost to piecewise-step without this, kept it with it)
NEAR_END = 0.1


def predict_increment(
    model: FamilyModel,
    block: PairBlock,
    values: Mapping[str, object],
    y0: np.ndarray | None = None,
    return_clipped: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Expected increment F_n(y0) − y0 of every pair (n pulses of the block's direction)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # trial parameters of a search may overflow (e.g. exp-step's A·e^{γz}): the
        # criterion is then non-finite and the step is rejected, no warning needed
        return _predict(model, block, values, y0, return_clipped)


def _predict(model, block, values, y0, return_clipped):
    y0 = block.y0 if y0 is None else y0
    params = model.step_params(values)
    up = block.direction > 0
    lo, hi = params["b_min"], params["b_max"]
    w = y0
    clipped = np.zeros(y0.shape, dtype=bool) if return_clipped else None
    n_max = block.max_pulses
    for j in range(n_max):
        new = w + model.step(w, up, values)
        if model.clip:
            bounded = np.minimum(np.maximum(new, lo), hi)
            if return_clipped:
                clipped |= bounded != new
            new = bounded
        w = np.where(block.n > j, new, w) if n_max > 1 else new
    inc = w - y0
    if return_clipped:
        return inc, clipped
    return inc


def clear_of_bounds(
    blocks: Sequence[PairBlock], hi: np.ndarray, lo: np.ndarray, n_sd: float = 3.0
) -> tuple[list[PairBlock], dict[str, np.ndarray]]:
    """The pairs whose instrument read lies clear of the device's read plateaus, and the bounds.

    A hard bound clips the predicted increment at the earlier, noisy read y₀ = w + e₀: for a
    device that sits at its bound the model predicts min(y₀ + Δ, b) − y₀ while the data
    give e₁ − e₀, so E[u] = E[max(−e₀ − Δ, 0)] > 0 (about 0.2 Δ at σ_read ≈ Δ) and the
    shape absorbs it (aihwkit's linear-step γ 0.3/0.7: γ⁺/w_max 0.73 instead of 0.50).
    Leaving out the pairs whose instrument z (independent of e₀, e₁: the selection does not
    bias the moments) lies within ``n_sd`` read-noise SDs plus two steps of the plateau
    ``hi``/``lo`` (per device, normalized), and within :data:`CLIP_CLEAR_SD` SDs of y₀ − z
    (√2·σ) plus two steps of the level where the device sits, keeps the clip out of those
    moments. Only devices that sit at the bound lose pairs: their mean step near the plateau
    is below half their mean step far from it, by more than ``n_sd`` errors of the two
    means (a device that turns before its bound keeps every pair).

    The read-noise SD comes from the data: increments of one direction have lag-1
    covariance −σ²_read (an MA(1) from the shared read), so σ ≥ sqrt(−cov) per device; the
    median over devices is used. Returns new blocks (weights 0 on the pairs left out) and
    ``{"b_max", "b_min"}``: per device the mean read while it sits at that bound (its later
    reads of the pairs left out), NaN for a device that does not sit there.
    """
    out = []
    nan = np.full(hi.shape, np.nan)
    bounds = {"b_max": nan, "b_min": nan}
    for b in blocks:
        w = b.weight
        d = (b.y1 - b.y0) / b.n
        cnt = np.maximum(w.sum(axis=1), 1.0)
        mean = (d * w).sum(axis=1) / cnt
        sd = read_noise_sd(b)
        step = float(np.nanmedian(np.abs(mean)))
        margin = n_sd * sd + 2.0 * step
        up = b.direction > 0
        near = b.z > hi[:, None] - margin if up else b.z < lo[:, None] + margin
        # only devices that sit at that bound: their steps near the plateau are less than
        # half those far from it, by more than n_sd of the two means' errors (a device
        # that turns before reaching a bound keeps its pairs there, which carry the shape)
        sits = _sits(d, w, near, b.contiguous, sd, n_sd)
        near &= sits[:, None]
        # the bound: mean later read of those pairs (selected by z, so e₁ averages out)
        with np.errstate(invalid="ignore", divide="ignore"):
            level = (b.y1 * w * near).sum(axis=1) / (w * near).sum(axis=1)
        # a pair's first read lies about N(z + Δ, 2σ²) from its instrument: clear of the
        # clip at the level where the device sits (y₀ < b − Δ) by n_sd of that spread
        clear = np.sqrt(2.0) * CLIP_CLEAR_SD * sd + 2.0 * step
        beyond = b.z > level[:, None] - clear if up else b.z < level[:, None] + clear
        near |= beyond & sits[:, None]
        out.append(dataclasses.replace(b, weight=np.where(near, 0.0, w)))
        bounds["b_max" if up else "b_min"] = np.where(sits, level, np.nan)
    return out, bounds


def _sits(
    d: np.ndarray,
    w: np.ndarray,
    near: np.ndarray,
    links: np.ndarray,
    sd: float,
    n_sd: float,
) -> np.ndarray:
    """Per device: the mean step of the pairs ``near`` a plateau is below half that of the
    others by more than ``n_sd`` errors of their difference. The mean step of a run of
    contiguous pairs telescopes (read noise enters at its two ends only), so each mean has
    an error of σ·√(2·runs)/pairs. Without the error test, at read noise 10 steps the last
    30 pairs of a sweep that turned before its bound looked flat on one device in eight,
    which then got a bound inside its reads."""
    means, errs = [], []
    for part in (near, ~near):
        on = w * part
        n = on.sum(axis=1)
        starts = on[:, 0] > 0
        if on.shape[1] > 1:
            starts = starts + ((on[:, 1:] > 0) & ~((on[:, :-1] > 0) & links)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.abs((d * on).sum(axis=1) / n))
            errs.append(sd * np.sqrt(2.0 * starts) / n)
    (at_near, at_far), (se_near, se_far) = means, errs
    with np.errstate(invalid="ignore"):
        gap = at_far - at_near
        out = (at_near < 0.5 * at_far) & (gap > n_sd * np.hypot(se_near, se_far))
    return np.nan_to_num(out, nan=False).astype(bool)


def read_noise_sd(block: PairBlock) -> float:
    """Read-noise SD of a block's devices (median over devices), from the data alone.

    Increments of one direction have lag-1 covariance −σ²_read (an MA(1) from the shared
    read), so σ ≥ sqrt(−cov) per device; 0 when no device has contiguous pairs.
    """
    w = block.weight
    d = (block.y1 - block.y0) / block.n
    cnt = np.maximum(w.sum(axis=1), 1.0)
    mean = (d * w).sum(axis=1) / cnt
    both = (w[:, 1:] * w[:, :-1]) * block.contiguous
    dc = d - mean[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        lag = (dc[:, 1:] * dc[:, :-1] * both).sum(axis=1) / both.sum(axis=1)
    if not np.any(np.isfinite(lag)):
        return 0.0
    return float(np.sqrt(max(-np.nanmedian(lag), 0.0)))


@dataclass
class DeviceFit:
    """Result of a batched fit: per-device values, their covariance, shared values."""

    names: list[str]  # per-device parameter names
    theta: np.ndarray  # (n_dev, p)
    cov: np.ndarray  # (n_dev, p, p) sandwich covariance (inf on the diagonal: unidentified)
    shared_names: list[str]
    phi: np.ndarray  # (q,)
    phi_cov: np.ndarray  # (q, q) device-clustered covariance
    objective: np.ndarray  # (n_dev,) final criterion
    converged: np.ndarray  # (n_dev,) bool

    def values(self) -> dict[str, np.ndarray]:
        """Per-device values by name (shared values broadcast), shape (n_dev,)."""
        out = {name: self.theta[:, j] for j, name in enumerate(self.names)}
        for j, name in enumerate(self.shared_names):
            out[name] = np.full(self.theta.shape[0], self.phi[j])
        return out

    def stderr(self, name: str) -> np.ndarray:
        j = self.names.index(name)
        return np.sqrt(np.maximum(self.cov[:, j, j], 0.0))


def instrument_state(block: PairBlock, reads: int = INSTRUMENT_READS) -> np.ndarray:
    """The instrument of every pair (n_dev, P): the mean of the instrument reads of this pair
    and of up to ``reads`` − 1 pairs before it in the same run (``block.contiguous``), i.e.
    of reads k−1, …, k−``reads`` for pair (k, k+1); one read within :data:`NEAR_END` of
    the device's range from the end its pulses drive it to. All of them precede read k, so
    the instrument stays independent of the pair's read, write and c2c noise."""
    z = block.z
    if reads <= 1 or z.shape[1] < 2:
        return z
    n_dev, n_pairs = z.shape
    link = np.zeros((n_dev, n_pairs), dtype=bool)
    link[:, 1:] = block.contiguous
    idx = np.broadcast_to(np.arange(n_pairs), z.shape)
    run_start = np.maximum.accumulate(np.where(link, 0, idx), axis=1)
    chain = idx - run_start  # contiguous pairs before this one in its run
    total, count = z.copy(), np.ones(z.shape)
    for lag in range(1, reads):
        use = chain[:, lag:] >= lag
        total[:, lag:] += np.where(use, z[:, :-lag], 0.0)
        count[:, lag:] += use
    # near the end of its range a device may saturate (a bound it reaches): there the mean
    # lags the state by more than the response's scale, and the pair keeps its one read
    w = block.weight > 0
    top = np.max(np.where(w, z, -np.inf), axis=1, keepdims=True)
    bottom = np.min(np.where(w, z, np.inf), axis=1, keepdims=True)
    edge = NEAR_END * (top - bottom)
    near = z > top - edge if block.direction > 0 else z < bottom + edge
    return np.where(near, z, total / count)


def instruments(block: PairBlock, reads: int = INSTRUMENT_READS) -> np.ndarray:
    """Instruments Z of every pair of ``block`` (n_dev, P, N_INSTRUMENTS): probabilists'
    Hermite polynomials of the pair's instrument (:func:`instrument_state` of ``reads``
    reads) standardized per device, 0 on unused pairs."""
    w = block.weight
    z = instrument_state(block, reads)
    cnt = np.maximum(w.sum(1, keepdims=True), 1.0)
    mean = (z * w).sum(1, keepdims=True) / cnt
    var = (((z - mean) * w) ** 2).sum(1, keepdims=True) / cnt
    zs = (z - mean) / np.sqrt(np.where(var > 0, var, 1.0))
    # probabilists' Hermite polynomials of the standardized instrument: well conditioned
    cols = [np.ones_like(zs), zs]
    for k in range(2, N_INSTRUMENTS):
        cols.append(zs * cols[-1] - (k - 1) * cols[-2])
    return np.stack([c * w for c in cols], axis=-1)


def moment_weights(z: np.ndarray, u: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """NL2SLS weights W = (σ̂² Σ Z Zᵀ)⁻¹ per device of one block (n_dev, m, m): σ̂² the mean
    squared residual ``u`` (0 on unused pairs) over the pairs ``weight`` marks, the chip's
    median where a device's is 0."""
    m = z.shape[2]
    cnt = np.maximum(weight.sum(1), 1.0)
    s2 = (u**2).sum(1) / cnt
    s2 = np.where(s2 > 0, s2, np.nanmedian(np.where(s2 > 0, s2, np.nan)))
    s2 = np.where(np.isfinite(s2) & (s2 > 0), s2, 1.0)
    zz = np.einsum("dpm,dpn->dmn", z, z) * s2[:, None, None]
    zz += np.eye(m) * 1e-9 * np.trace(zz, axis1=1, axis2=2)[:, None, None] / m
    return np.linalg.pinv(zz)


class GmmProblem:
    """The moment conditions of one family on one set of devices (normalized units)."""

    def __init__(
        self,
        model: FamilyModel,
        blocks: Sequence[PairBlock],
        names: Sequence[str],
        shared_names: Sequence[str] = (),
        fixed: Mapping[str, object] | None = None,
        typical: Mapping[str, float] | None = None,
    ) -> None:
        self.model = model
        self.blocks = list(blocks)
        self.names = list(names)
        self.shared_names = list(shared_names)
        self.fixed = dict(fixed or {})
        self.typical = dict(typical or {})
        self.n_dev = self.blocks[0].y0.shape[0]
        self._set_instruments(INSTRUMENT_READS)
        self.m = N_INSTRUMENTS
        self.W = np.zeros((self.n_dev, self.m * len(self.blocks), self.m * len(self.blocks)))
        self.deps = {name: self._blocks_of(name) for name in self.names + self.shared_names}

    # ------------------------------------------------------------------ set-up
    def _set_instruments(self, reads: int) -> None:
        self.instrument_reads = reads
        self.Z = [instruments(b, reads) for b in self.blocks]
        self.gy = np.concatenate(
            [
                np.einsum("dp,dpm->dm", (b.y1 - b.y0) * b.weight, z)
                for b, z in zip(self.blocks, self.Z, strict=True)
            ],
            axis=1,
        )

    def with_instrument_reads(self, reads: int) -> GmmProblem:
        """A copy whose instruments average ``reads`` reads (:func:`instrument_state`)."""
        out = self.subset(np.arange(self.n_dev))
        if reads != self.instrument_reads:
            out._set_instruments(reads)
        return out

    def _blocks_of(self, name: str) -> list[int]:
        out = []
        for i, b in enumerate(self.blocks):
            up = b.direction > 0
            if name.endswith("_up") or name.startswith("node_up"):
                hit = up
            elif name.endswith("_down") or name.startswith("node_down"):
                hit = not up
            elif name == "b_max" and self.model.bounds_by_direction:
                hit = up
            elif name == "b_min" and self.model.bounds_by_direction:
                hit = not up
            else:
                hit = True
            if hit:
                out.append(i)
        return out

    def set_weights(self, theta: np.ndarray, phi: np.ndarray) -> None:
        """NL2SLS weights W_d = (σ̂_d² Σ Z Zᵀ)⁻¹ with σ̂_d² the residual variance at θ."""
        m = self.m
        for i, (b, z) in enumerate(zip(self.blocks, self.Z, strict=True)):
            inc = predict_increment(self.model, b, self._values(theta, phi))
            u = ((b.y1 - b.y0) - inc) * b.weight
            self.W[:, i * m : (i + 1) * m, i * m : (i + 1) * m] = moment_weights(z, u, b.weight)

    # ------------------------------------------------------------------ model
    def _values(self, theta: np.ndarray, phi: np.ndarray) -> dict[str, object]:
        vals: dict[str, object] = dict(self.fixed)
        for j, name in enumerate(self.names):
            vals[name] = theta[:, j : j + 1]
        for j, name in enumerate(self.shared_names):
            vals[name] = float(phi[j])
        return vals

    def _block_moments(self, i: int, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        b, z = self.blocks[i], self.Z[i]
        inc = predict_increment(self.model, b, self._values(theta, phi))
        return np.einsum("dp,dpm->dm", inc * b.weight, z)

    def moments(self, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """g(θ) = Σ_k Z_k u_k per device and direction, shape (n_dev, m·n_blocks)."""
        parts = [self._block_moments(i, theta, phi) for i in range(len(self.blocks))]
        return self.gy - np.concatenate(parts, axis=1)

    def _step(self, name: str, value: np.ndarray) -> np.ndarray:
        return 1e-6 * (np.abs(value) + self.typical.get(name, 1e-2))

    def jacobian(
        self, theta: np.ndarray, phi: np.ndarray, g: np.ndarray, shared: bool = False
    ) -> np.ndarray:
        """Forward-difference Jacobian of the moments, (n_dev, M, p) or (n_dev, M, q)."""
        names = self.shared_names if shared else self.names
        jac = np.zeros((*g.shape, len(names)))
        m = self.m
        for j, name in enumerate(names):
            if shared:
                h = float(self._step(name, np.asarray(phi[j])))
                t2, p2 = theta, phi.copy()
                p2[j] += h
            else:
                h = self._step(name, theta[:, j])
                t2, p2 = theta.copy(), phi
                t2[:, j] += h
            for i in self.deps[name]:
                gi = -self._block_moments(i, t2, p2)
                base = g[:, i * m : (i + 1) * m] - self.gy[:, i * m : (i + 1) * m]
                hh = h if shared else h[:, None]
                jac[:, i * m : (i + 1) * m, j] = (gi - base) / hh
        return jac

    def objective(self, g: np.ndarray) -> np.ndarray:
        return np.einsum("dm,dmn,dn->d", g, self.W, g)

    # ------------------------------------------------------------------ solvers
    def subset(self, rows: np.ndarray) -> GmmProblem:
        """The same problem restricted to the devices ``rows`` (arrays copied)."""
        out = object.__new__(GmmProblem)
        out.__dict__.update(self.__dict__)
        out.blocks = [b.take(rows) for b in self.blocks]
        out.fixed = {  # per-device fixed values, (n_dev, 1), follow their devices
            k: v[rows] if np.ndim(v) == 2 and np.shape(v)[0] == self.n_dev else v
            for k, v in self.fixed.items()
        }
        out.Z = [z[rows] for z in self.Z]
        out.gy = self.gy[rows]
        out.W = self.W[rows]
        out.n_dev = rows.size
        return out

    def solve_devices(
        self,
        theta: np.ndarray,
        phi: np.ndarray,
        max_iter: int = 40,
        rtol: float = 1e-10,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Levenberg-Marquardt on the per-device parameters with ``phi`` fixed.

        Devices that have converged drop out: once fewer than half of the devices still
        iterate, the problem is restricted to them (one copy), so a few slow devices do not
        cost a full evaluation of all.
        """
        theta = theta.copy()
        n, p = theta.shape
        lam = np.full(n, 1e-3)
        g = self.moments(theta, phi)
        q = self.objective(g)
        done = ~np.isfinite(q)
        converged = np.zeros(n, dtype=bool)
        prob, rows = self, np.arange(n)  # the (sub)problem iterated and its device rows
        for _ in range(max_iter):
            if done.all():
                break
            if (~done[rows]).sum() < 0.5 * rows.size and rows.size > 64:
                rows = np.nonzero(~done)[0]
                prob = self.subset(rows)
            th, gg, qq, lm, dn = theta[rows], g[rows], q[rows], lam[rows], done[rows]
            jac = prob.jacobian(th, phi, gg)
            with np.errstate(invalid="ignore", over="ignore"):  # a diverging device: NaN rows
                jw = np.swapaxes(jac, 1, 2) @ prob.W
                hess = jw @ jac
                grad = (jw @ gg[..., None])[..., 0]
            diag = np.diagonal(hess, axis1=1, axis2=2).copy()
            floor = 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300)
            diag = np.maximum(diag, floor)
            a = hess + lm[:, None, None] * (diag[:, :, None] * np.eye(p))
            a += np.eye(p) * floor[:, :, None] * 1e-3
            delta = -_solve(a, grad)
            delta[dn] = 0.0
            trial = th + delta
            g_new = prob.moments(trial, phi)
            q_new = prob.objective(g_new)
            better = np.isfinite(q_new) & (q_new <= qq) & ~dn
            small = better & ((qq - q_new) <= rtol * np.maximum(qq, 1e-30))
            th[better] = trial[better]
            gg[better] = g_new[better]
            qq = np.where(better, q_new, qq)
            lm = np.where(better, lm * 0.3, lm * 8.0)
            conv = small | (better & (qq <= 1e-30))
            theta[rows], g[rows], q[rows], lam[rows] = th, gg, qq, lm
            converged[rows] |= conv
            done[rows] |= conv | (lm > 1e12)
        return theta, q, converged | (lam <= 1e12)

    def solve_joint(
        self, theta: np.ndarray, phi: np.ndarray, max_iter: int = 60, rtol: float = 1e-9
    ) -> tuple[np.ndarray, np.ndarray]:
        """Levenberg-Marquardt on per-device and shared parameters jointly (Schur steps)."""
        lam = 1e-3
        g = self.moments(theta, phi)
        q = self.objective(g)
        total = float(np.sum(q[np.isfinite(q)]))
        for _ in range(max_iter):
            jt = self.jacobian(theta, phi, g)
            js = self.jacobian(theta, phi, g, shared=True)
            step = _schur_step(jt, js, self.W, g, lam)
            if step is None:
                break
            d_theta, d_phi = step
            t2, p2 = theta + d_theta, phi + d_phi
            g2 = self.moments(t2, p2)
            q2 = self.objective(g2)
            new_total = float(np.sum(q2[np.isfinite(q)]))
            if np.isfinite(new_total) and new_total <= total:
                rel = (total - new_total) / max(total, 1e-30)
                theta, phi, g, total = t2, p2, g2, new_total
                lam *= 0.3
                if rel < rtol:
                    break
            else:
                lam *= 8.0
                if lam > 1e10:
                    break
        return theta, phi

    # ------------------------------------------------------------------ uncertainty
    def residuals(self, theta: np.ndarray, phi: np.ndarray) -> list[np.ndarray]:
        """Pair residuals per block (0 on padding)."""
        vals = self._values(theta, phi)
        out = []
        for b in self.blocks:
            inc = predict_increment(self.model, b, vals)
            out.append(((b.y1 - b.y0) - inc) * b.weight)
        return out

    def pair_terms(
        self, theta: np.ndarray, phi: np.ndarray, h: float = 1e-6
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per block: residuals u, fitted increments, the map's contraction a = ∂F/∂y₀ and
        the pairs used (n_dev, P) each, for :mod:`fitting.increment_noise`."""
        vals = self._values(theta, phi)
        out = []
        for b in self.blocks:
            inc = predict_increment(self.model, b, vals)
            inc_h = predict_increment(self.model, b, vals, y0=b.y0 + h)
            a = 1.0 + (inc_h - inc) / h
            u = (b.y1 - b.y0) - inc
            use = (b.weight > 0) & np.isfinite(u) & np.isfinite(a) & np.isfinite(inc)
            out.append((np.where(use, u, 0.0), np.where(use, inc, 0.0), a, use))
        return out

    def increment_noise(self, theta: np.ndarray, phi: np.ndarray) -> list[IncrementNoise | None]:
        """The chip's increment noise of each block, from these devices at (θ, φ)."""
        terms = self.pair_terms(theta, phi)
        return [_block_noise(t, b) for t, b in zip(terms, self.blocks, strict=True)]

    def moment_covariance(
        self,
        theta: np.ndarray,
        phi: np.ndarray,
        noise: Sequence[IncrementNoise | None] | None = None,
    ) -> np.ndarray:
        """Covariance S of the moments, (n_dev, M, M), block diagonal, under the chip's
        increment ``noise`` per block (estimated from these devices where None): the model's
        own covariance (:mod:`fitting.increment_noise`), positive semi-definite. The lag-1
        products summed pair by pair (Newey-West) were not, and gave constant-step devices
        errors whose z-scores had SD 1.2-1.3."""
        m = self.m
        s = np.zeros_like(self.W)
        terms = self.pair_terms(theta, phi)
        for i, (term, b, z) in enumerate(zip(terms, self.blocks, self.Z, strict=True)):
            chip = None if noise is None else noise[i]
            if chip is None:
                chip = _block_noise(term, b)
            if chip is None:
                s[:, i * m : (i + 1) * m, i * m : (i + 1) * m] = np.nan
                continue
            _, inc, a, use = term
            block = moment_covariance(z, chip, inc, a, use, b.contiguous)
            s[:, i * m : (i + 1) * m, i * m : (i + 1) * m] = block
        return s

    def covariance(
        self,
        theta: np.ndarray,
        phi: np.ndarray,
        noise: Sequence[IncrementNoise | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sandwich covariance of the per-device parameters (meat: :meth:`moment_covariance`
        under ``noise``) and clustered shared covariance."""
        g = self.moments(theta, phi)
        jt = self.jacobian(theta, phi, g)
        s = self.moment_covariance(theta, phi, noise)
        jw = np.swapaxes(jt, 1, 2) @ self.W
        bread = jw @ jt
        p = theta.shape[1]
        scale = np.array([self.typical.get(n, 1e-2) for n in self.names])
        dsc = np.diagonal(bread, axis1=1, axis2=2) * scale**2
        ident = dsc > 1e-14 * np.maximum(dsc.max(axis=1, keepdims=True), 1e-300)
        inv = np.linalg.pinv(bread + np.eye(p) * 1e-300)
        cov = inv @ (jw @ s @ np.swapaxes(jw, 1, 2)) @ inv
        idx = np.arange(p)
        diag = np.maximum(cov[:, idx, idx], 0.0)
        diag[~ident] = np.inf
        cov[:, idx, idx] = diag
        q = len(self.shared_names)
        if q == 0:
            return cov, np.zeros((0, 0))
        js = self.jacobian(theta, phi, g, shared=True)
        jsw = np.swapaxes(js, 1, 2) @ self.W
        h_st = jsw @ jt  # (n, q, p)
        h_ss = (jsw @ js).sum(0)
        a = h_st @ inv  # (n, q, p)
        reduced = h_ss - np.einsum("dqp,dpr->qr", a, np.swapaxes(h_st, 1, 2))
        score = (jsw @ g[..., None])[..., 0] - (a @ (jw @ g[..., None]))[..., 0]  # (n, q)
        n = theta.shape[0]
        meat = score.T @ score * n / max(n - 1, 1)
        rinv = np.linalg.pinv(reduced)
        return cov, rinv @ meat @ rinv


def _block_noise(term: tuple, block: PairBlock) -> IncrementNoise | None:
    """The chip's increment noise of one block from its :meth:`GmmProblem.pair_terms`."""
    u, inc, a, use = term
    return estimate_increment_noise(u, inc, a, use, block.contiguous)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(a) @ b[..., None])[..., 0]


def _schur_step(
    jt: np.ndarray, js: np.ndarray, w: np.ndarray, g: np.ndarray, lam: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Damped Gauss-Newton step on (per-device θ, shared φ) via the Schur complement."""
    ok = np.all(np.isfinite(jt), axis=(1, 2)) & np.all(np.isfinite(js), axis=(1, 2))
    ok &= np.all(np.isfinite(g), axis=1)
    if not ok.any():
        return None
    jtw = np.swapaxes(jt, 1, 2) @ w
    jsw = np.swapaxes(js, 1, 2) @ w
    h_tt = jtw @ jt
    h_ts = jtw @ js
    h_ss = (jsw[ok] @ js[ok]).sum(0)
    g_t = (jtw @ g[..., None])[..., 0]
    g_s = (jsw[ok] @ g[ok][..., None])[..., 0].sum(0)
    p, _q = jt.shape[2], js.shape[2]
    d_t = np.maximum(np.diagonal(h_tt, axis1=1, axis2=2), 1e-300)
    d_s = np.maximum(np.diagonal(h_ss), 1e-300)
    a = h_tt + lam * d_t[:, :, None] * np.eye(p)
    ainv = np.linalg.pinv(a)
    ainv[~ok] = 0.0
    h_st = np.swapaxes(h_ts, 1, 2)
    reduced = h_ss + lam * np.diag(d_s) - np.einsum("dqp,dpr->qr", h_st @ ainv, h_ts)
    rhs = g_s - np.einsum("dqp,dp->q", h_st @ ainv, g_t)
    try:
        d_phi = -np.linalg.solve(reduced, rhs)
    except np.linalg.LinAlgError:
        d_phi = -np.linalg.pinv(reduced) @ rhs
    d_theta = -(ainv @ (g_t + (h_ts @ d_phi))[..., None])[..., 0]
    d_theta[~ok] = 0.0
    return d_theta, d_phi
