"""Model selection between families by GMM information criteria on the same moments.

Every family is fitted with the same instruments and pairs, so their moment conditions are
comparable. Hansen's J statistic, J = Σ_devices gᵀ S⁻¹ g with S the moment covariance
implied by the family's fitted noise model, measures how badly a family violates its moment
conditions (about χ² with moments − parameters degrees of freedom when it is right).
Following Andrews (1999, "Consistent moment selection procedures for GMM"), the GMM
analogues of the information criteria are AIC = J + 2k and BIC = J + k·ln N, with k the
number of fitted parameters (4 per device + shared shape parameters + 2 noise parameters)
and N the number of pairs; the lowest BIC wins. (A Gaussian likelihood of the pair
residuals would be the wrong yardstick: evaluated at noisy reads, it rewards flexible
families that fit the read-noise-attenuated relation instead of the device's response.)

Where aihwkit varies a shape parameter from device to device (linear-step's γ, pow-step's
exponent), the family is also scored with that shape per device, as a *random effect*: the
per-device values are drawn from a normal population whose mean and spread are fitted, and
the criterion integrates them out (Laplace approximation of the marginal likelihood; e.g.
Pinheiro & Bates 2000, "Mixed-Effects Models in S and S-PLUS", ch. 2.4) instead of charging
every device's shape ln N as a fixed parameter would. With J read as −2 ln L, a device's
profile J(κ) ≈ J(κ̂) + (κ − κ̂)ᵀ V⁻¹ (κ − κ̂), V = [(Gᵀ S⁻¹ G)⁻¹]_κκ the error of κ̂ on the
scale of J (same S, G the moments' Jacobian); with κ ~ N(κ̄, T):

    −2 ln ∫ e^{−J/2} N(κ; κ̄, T) dκ = J(κ̂) + (κ̂ − κ̄)ᵀ (V + T)⁻¹ (κ̂ − κ̄) + ln det(I + V⁻¹ T),

minimized over κ̄ and T (diagonal), which count as the family's parameters. A spread the
data do not resolve (T → 0) costs each device (κ̂ − κ̄)ᵀ V⁻¹ (κ̂ − κ̄), the price of
pulling it to the shared shape; a resolved one costs ln det(I + V⁻¹ T) ≈ ln(τ²/se²) per
shape parameter instead of ln N. The quadratic approximation fails for a few devices (a
shape traded against a bound the device reaches early: κ̂ 8.9 ± 0.1 for aihwkit's 0.65 on
ls_twice_spread), and one such device would set T; so a fraction π (fitted, at most
:data:`MAX_OFF_POPULATION`) of the devices may lie off the population, each paying for its
own value under a uniform prior over the values' range, ln(Π range² / det 2πV) (a
contaminated normal population).

Known equivalences (REFERENCES.md [R4]) are reported next to the table: soft-bounds is
linear-step with γ = 1 and the device's own bounds as reference; constant-step is linear-step
with γ = 0 (and piecewise-step with one node); soft-bounds is pow-step with exponent 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from fitting.families import FAMILY_MODELS, family_model
from fitting.gmm import DeviceFit, GmmProblem
from fitting.noise import pair_statistics
from fitting.pairs import PairBlock

__all__ = [
    "RELATIONS",
    "ModelScore",
    "RandomEffectScore",
    "best_efficient_estimate",
    "efficient_estimate",
    "efficient_shape",
    "equivalences",
    "j_statistic",
    "nested_start",
    "random_effect_penalty",
    "rank_models",
    "refit_on_pairs",
]

#: How the families relate (REFERENCES.md [R4]), shown next to the selection table
#: (each family's text lives with its fit parametrization, :mod:`fitting.families`).
RELATIONS = {name: model.relation for name, model in FAMILY_MODELS.items()}

#: A difference in BIC below this is "not distinguishable on these data" (Kass & Raftery).
INDISTINGUISHABLE_BIC = 10.0


@dataclass
class ModelScore:
    """One row of the model-selection table."""

    family: str
    j_statistic: float
    n_params: int
    n_obs: int
    degrees_of_freedom: int = 0  # moments − parameters (χ² reference of J)
    #: random-effect cost of per-device shapes (:func:`random_effect_penalty`), added to J
    penalty: float = 0.0
    aic: float = 0.0
    bic: float = 0.0
    delta_aic: float = 0.0
    delta_bic: float = 0.0
    equivalent_to: list[str] = field(default_factory=list)
    note: str = ""
    #: BIC margin in favour of this family over the best one it contains, on moments that
    #: see the step's shape (``fitting.pulse_response._exponent_test``); None when not run
    shape_test_bic: float | None = None

    @property
    def relation(self) -> str:
        return RELATIONS.get(self.family, "")

    @property
    def criterion(self) -> float:
        """BIC = J + random-effect penalty + k·ln N (lower is better)."""
        return self.j_statistic + self.penalty + self.n_params * np.log(max(self.n_obs, 1))

    def as_dict(self) -> dict:
        return {
            "family": self.family,
            "j_statistic": self.j_statistic,
            "random_effect_penalty": self.penalty,
            "degrees_of_freedom": self.degrees_of_freedom,
            "n_params": self.n_params,
            "n_obs": self.n_obs,
            "aic": self.aic,
            "bic": self.bic,
            "delta_aic": self.delta_aic,
            "delta_bic": self.delta_bic,
            "equivalent_to": list(self.equivalent_to),
            "relation": self.relation,
            "note": self.note,
            **({} if self.shape_test_bic is None else {"shape_test_bic": self.shape_test_bic}),
        }


def rank_models(scores: list[ModelScore]) -> list[ModelScore]:
    """Fill AIC/BIC and their differences to the best; best (lowest BIC) first."""
    for s in scores:
        s.aic = s.j_statistic + s.penalty + 2 * s.n_params
        s.bic = s.criterion
    best_aic = min(s.aic for s in scores)
    best_bic = min(s.bic for s in scores)
    for s in scores:
        s.delta_aic = s.aic - best_aic
        s.delta_bic = s.bic - best_bic
    return sorted(scores, key=lambda s: s.bic)


def equivalences(
    family: str, shape: Mapping[str, float], shape_se: Mapping[str, float]
) -> list[str]:
    """Simpler families that ``family`` reduces to at its fitted shape (within 2 SE)."""

    def near(name: str, target: float) -> bool:
        value, se = shape.get(name), shape_se.get(name)
        if value is None or se is None or not np.isfinite(se):
            return False
        return abs(value - target) <= max(2.0 * se, 0.02 * max(abs(target), 1.0))

    return family_model(family).reduces_to(shape, near)


def moment_noise_covariance(
    prob: GmmProblem, theta: np.ndarray, phi: np.ndarray, c2c: float, non_accumulating: float
) -> np.ndarray:
    """Per-device moment covariance S implied by a noise model, (n_dev, M, M).

    S = Σ_k Z_k Z_kᵀ Var u_k + Σ_k (Z_k Z_{k+1}ᵀ + Z_{k+1} Z_kᵀ) Cov(u_k, u_{k+1}) with the
    variances of :func:`fitting.noise.pair_statistics` (cycle-to-cycle step noise ``c2c``,
    read noise ``non_accumulating``, normalized units).
    """
    vals = prob._values(theta, phi)
    m = prob.m
    s = np.zeros_like(prob.W)
    na2 = non_accumulating**2
    for i, (b, z) in enumerate(zip(prob.blocks, prob.Z, strict=True)):
        st = pair_statistics(prob.model, b, vals)
        var = (c2c**2 * st.v + na2 * (1.0 + st.a**2)) * st.valid
        blk = np.einsum("dpm,dpn,dp->dmn", z, z, var)
        if z.shape[1] > 1:
            cov = np.where(
                b.contiguous & st.valid[:, 1:] & st.valid[:, :-1], -st.a[:, 1:] * na2, 0.0
            )
            cross = np.einsum("dpm,dpn,dp->dmn", z[:, :-1], z[:, 1:], cov)
            blk += cross + np.swapaxes(cross, 1, 2)
        s[:, i * m : (i + 1) * m, i * m : (i + 1) * m] = blk
    return s


def _inverse(s: np.ndarray) -> np.ndarray:
    """S⁻¹ with eigenvalues floored at 1e-9 of the largest (one direction is nearly singular:
    read noise makes the summed increments telescope)."""
    val, vec = np.linalg.eigh(s)
    floor = 1e-9 * np.maximum(val[:, -1:], 1e-300)
    return np.einsum("dmk,dk,dnk->dmn", vec, 1.0 / np.maximum(val, floor), vec)


def efficient_estimate(
    prob: GmmProblem, theta: np.ndarray, phi: np.ndarray, c2c: float, non_accumulating: float
) -> tuple[GmmProblem, np.ndarray]:
    """The per-device values re-solved with the efficient weight W = S⁻¹ (``phi`` held), S
    from the noise model (:func:`moment_noise_covariance`); a copy of ``prob`` with that W.

    Hansen's J is χ²(moments − parameters) at the minimum of gᵀS⁻¹g, not at the NL2SLS
    estimate, whose weight (σ̂² ΣZZᵀ)⁻¹ ignores that read noise makes the summed increments
    telescope: at that estimate the moments keep components S⁻¹ charges heavily, and J came
    out 1.7-2.6 times its degrees of freedom on constant-step traces fitted with the true
    family (96 identical devices, white read noise of one step; 0.9-1.0 times at the
    efficient estimate)."""
    out = prob.subset(np.arange(prob.n_dev))
    th = theta
    for max_iter in (40, 15):  # S at the start, then at the new values (a clip may move)
        out.W = _inverse(moment_noise_covariance(out, th, phi, c2c, non_accumulating))
        th, _, _ = out.solve_devices(th, phi, max_iter=max_iter)
    return out, th


def best_efficient_estimate(
    prob: GmmProblem,
    starts: Sequence[np.ndarray],
    phi: np.ndarray,
    c2c: float,
    non_accumulating: float,
) -> tuple[GmmProblem, np.ndarray, np.ndarray]:
    """:func:`efficient_estimate` from each of ``starts`` (per-device values, each shaped as
    ``prob``'s), keeping per device the values with the lowest J, with that J: the
    efficient estimate of the first start, or of a later one, or a later start itself.

    A family scored with a shape per device contains the family with that shape shared, so
    its J can only be lower device by device: the shared fit's values are one of its points
    (with the same J). Started from its own per-device fit alone, the solve can stop in a
    worse minimum: per-device pow-step scored J 675 against the shared exponent's 641 on
    the same pairs (aihwkit's ps_weak_gamma, ``auto``'s subsample); from both starts, 569.
    J is a function of the values (S at those values), so the lowest J found is the score,
    wherever the solve ends. The problem returned is the first start's (its weights W are
    that solve's; J recomputes S at the values and does not use them)."""
    if not starts:
        raise ValueError("best_efficient_estimate needs at least one start")
    best_p, best_th = efficient_estimate(prob, starts[0], phi, c2c, non_accumulating)
    best_j = j_statistic(best_p, best_th, phi, c2c, non_accumulating)
    for start in starts[1:]:
        th = efficient_estimate(prob, start, phi, c2c, non_accumulating)[1]
        for values in (th, start):
            j = j_statistic(best_p, values, phi, c2c, non_accumulating)
            better = np.isfinite(j) & ~(j >= best_j)
            best_th = np.where(better[:, None], values, best_th)
            best_j = np.where(better, j, best_j)
    return best_p, best_th, best_j


def efficient_shape(
    prob: GmmProblem,
    fit: DeviceFit,
    c2c: float,
    non_accumulating: float,
    starts: Sequence[tuple[np.ndarray, np.ndarray | None]] = (),
    first_stage: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shared shape and the per-device values solved jointly with the efficient weight
    W = S⁻¹ (S from the noise model, :func:`moment_noise_covariance`), from the fit and
    from each of ``starts`` ((shape, per-device values or None for the fit's)): the
    per-device values, the shape and J per device of the solution with the lowest total J.

    Each start is solved first under the NL2SLS weight of ``prob``'s moments, then twice
    under S⁻¹ (S at the start, then at the new values): two-step GMM. The NL2SLS weight
    alone ignores that read noise makes the summed increments telescope, so the moments
    that carry the step's curvature count as noisy and the shape is left nearly free
    (aihwkit's pow-step with γ⁺ 1.93, γ⁻ 2.09, one 118-pulse cycle of 64 devices at read
    noise 4 steps, four-read instruments: exponents 1.38, 1.93 and J 42 below soft-bounds'
    here; started from one-read NL2SLS values without the first stage, 4.2 and J 24 below).
    J is scored at this minimum, as Hansen's statistic requires. ``first_stage=False``
    leaves the NL2SLS stage out, for per-device values that are already efficient at the
    shape (:func:`best_efficient_estimate`).
    """
    best: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
    for phi0, theta0 in ((fit.phi, None), *starts):
        out = prob.subset(np.arange(prob.n_dev))
        theta = (fit.theta if theta0 is None else theta0).copy()
        phi = np.asarray(phi0, dtype=float).copy()
        if first_stage:
            # first stage under the NL2SLS weight of these moments, then S⁻¹ (two-step GMM)
            out.set_weights(theta, phi)
            theta, _, _ = out.solve_devices(theta, phi, max_iter=10)
            out.set_weights(theta, phi)
            theta, phi = out.solve_joint(theta, phi)
            out.W = _inverse(moment_noise_covariance(out, theta, phi, c2c, non_accumulating))
            theta, _, _ = out.solve_devices(theta, phi, max_iter=40)
        for _ in range(2):  # S at the start, then at the new values
            out.W = _inverse(moment_noise_covariance(out, theta, phi, c2c, non_accumulating))
            theta, phi = out.solve_joint(theta, phi)
        j = j_statistic(out, theta, phi, c2c, non_accumulating)
        total = float(np.sum(j)) if np.all(np.isfinite(j)) else np.inf
        if best is None or total < best[3]:
            best = (theta, phi, j, total)
    assert best is not None
    return best[:3]


def nested_start(
    names: Sequence[str],
    own: np.ndarray,
    base_names: Sequence[str],
    base_theta: np.ndarray,
    base_shared: Mapping[str, float],
) -> np.ndarray:
    """Per-device values for ``names`` from a fit of the nested family: its per-device value
    (``base_theta``, columns ``base_names``) or its shared value (``base_shared``) of each
    name, the family's ``own`` value where the nested fit has none."""
    out = own.copy()
    for k, name in enumerate(names):
        if name in base_names:
            out[:, k] = base_theta[:, list(base_names).index(name)]
        elif name in base_shared:
            out[:, k] = base_shared[name]
    return out


def j_statistic(
    prob: GmmProblem,
    theta: np.ndarray,
    phi: np.ndarray,
    c2c: float,
    non_accumulating: float,
) -> np.ndarray:
    """Hansen's J = gᵀ S⁻¹ g per device, S from the fitted noise model.

    S is :func:`moment_noise_covariance`. Under a correct model J is about χ² with
    (moments − parameters) degrees of freedom; a misspecified family leaves systematic
    moments and a large J. (The empirical HAC estimate of S is too noisy here: read noise
    makes the summed increments telescope, so one direction of S is nearly singular and must
    come from the model.)
    """
    g = prob.moments(theta, phi)
    s_inv = _inverse(moment_noise_covariance(prob, theta, phi, c2c, non_accumulating))
    return np.einsum("dm,dmn,dn->d", g, s_inv, g)


@dataclass
class RandomEffectScore:
    """The random-effect cost of per-device shape parameters (see the module docstring)."""

    penalty: float  # Σ_devices (κ̂ − κ̄)ᵀ (V + T)⁻¹ (κ̂ − κ̄) + ln det(I + V⁻¹ T)
    mean: np.ndarray  # κ̄, per shape parameter
    spread: np.ndarray  # √diag T
    n_fixed: int  # devices whose κ̂ has no finite error: their shape counts as fixed parameters
    off_population: float = 0.0  # fitted fraction π of devices off the population


#: largest fraction of devices whose shape may lie off the population (module docstring)
MAX_OFF_POPULATION = 0.5


def _population_deviance(
    kappa: np.ndarray, v: np.ndarray, x: np.ndarray, width: np.ndarray
) -> np.ndarray:
    """−2 ln of each device's marginal, up to its J(κ̂): population N(κ̄, T) with weight 1 − π,
    off the population (uniform over ``width``, its own value) with weight π.

    ``x`` = (κ̄, ln √diag T, logit π). Normal part: (κ̂ − κ̄)ᵀ (V + T)⁻¹ (κ̂ − κ̄) +
    ln det(I + V⁻¹ T); off the population: ln(Π width² / det(2π V)), at least 0 (a device
    whose shape is not determined costs nothing either way).
    """
    p = kappa.shape[1]
    a = v + np.diag(np.exp(2.0 * x[p : 2 * p]))
    d = kappa - x[:p]
    # both terms are >= 0 for positive definite V and T; an asymmetric V from pinv's rounding
    # (pow-step's exponent per device on constant-step data: ln γ −117 with V ~1e-42, its
    # off-diagonal terms 3.7e-42 and 3.6e-75, "positive definite" by its lower triangle)
    # made the quadratic form −4.7e46 and the per-device pow-step won auto on traces
    # without any curvature
    quad = np.einsum("dp,dpq,dq->d", d, np.linalg.inv(a), d)
    pooled = np.maximum(quad, 0.0)
    pooled += np.maximum(np.linalg.slogdet(a)[1] - np.linalg.slogdet(v)[1], 0.0)
    own = np.maximum(2.0 * np.sum(np.log(width)) - np.linalg.slogdet(2.0 * np.pi * v)[1], 0.0)
    frac = MAX_OFF_POPULATION / (1.0 + np.exp(-x[2 * p]))
    return -2.0 * np.logaddexp(
        np.log1p(-frac) - 0.5 * pooled, np.log(max(frac, 1e-300)) - 0.5 * own
    )


def random_effect_penalty(
    prob: GmmProblem,
    theta: np.ndarray,
    phi: np.ndarray,
    c2c: float,
    non_accumulating: float,
    shape_names: Sequence[str],
) -> RandomEffectScore:
    """Cost of the per-device ``shape_names`` of ``prob`` as a random effect, on J's scale.

    V of each device is the (κ, κ) block of (Gᵀ S⁻¹ G)⁻¹ at ``theta``, S the same noise model
    as :func:`j_statistic`, so V is the curvature of the J that is scored; κ̄ and T are the
    maximum of the Laplace-approximated marginal likelihood (module docstring).
    """
    g = prob.moments(theta, phi)
    s_inv = _inverse(moment_noise_covariance(prob, theta, phi, c2c, non_accumulating))
    jac = prob.jacobian(theta, phi, g)
    info = np.swapaxes(jac, 1, 2) @ s_inv @ jac
    idx = [prob.names.index(n) for n in shape_names]
    kappa = theta[:, idx]
    p = len(idx)
    with np.errstate(all="ignore"):
        cov = np.linalg.pinv(info)
    v = cov[:, idx][:, :, idx]
    v = 0.5 * (v + np.swapaxes(v, 1, 2))  # pinv's rounding leaves it asymmetric (see below)
    diag = np.diagonal(v, axis1=1, axis2=2)
    ok = np.all(np.isfinite(kappa), axis=1) & np.all(np.isfinite(v), axis=(1, 2))
    ok &= np.all(diag > 0, axis=1)
    if ok.any():  # a nearly singular V (shape confounded with a bound) has no usable error
        ev = np.linalg.eigvalsh(v[ok])
        ok[ok] = ev[:, 0] > 1e-8 * ev[:, -1]
    n_fixed = int((~ok).sum())
    if not ok.any():
        return RandomEffectScore(0.0, np.full(p, np.nan), np.full(p, np.nan), n_fixed, 0.0)
    k, v = kappa[ok], v[ok]

    # κ̄ within the values, τ from far below the smallest error to the values' range
    width = np.maximum(np.ptp(k, axis=0), 1e-12)

    def deviance(x: np.ndarray) -> float:
        return float(np.sum(_population_deviance(k, v, x, width)))

    tiny = np.log(1e-4 * np.sqrt(np.min(np.diagonal(v, axis1=1, axis2=2), axis=0)))
    top = np.maximum(np.log(width), tiny + 1.0)  # values closer together than their errors
    bounds = [(lo, hi) for lo, hi in zip(k.min(axis=0), k.max(axis=0), strict=True)]
    bounds += [(t, w) for t, w in zip(tiny, top, strict=True)]
    bounds += [(-12.0, 12.0)]
    center = np.median(k, axis=0)
    mad = 1.4826 * np.median(np.abs(k - center), axis=0)
    spread = np.clip(np.log(mad + 1e-12), tiny, top)
    best = None
    # from the robust spread, a quarter of it and (nearly) none, with few and with many
    # devices off the population: the marginal is not convex
    for log_tau in (spread, np.maximum(spread - np.log(4.0), tiny), tiny):
        for logit in (-4.0, 0.0):
            res = optimize.minimize(
                deviance,
                np.r_[center, log_tau, logit],
                method="Nelder-Mead",
                bounds=bounds,
                options={"maxiter": 400 * (2 * p + 1), "xatol": 1e-7, "fatol": 1e-6},
            )
            if best is None or res.fun < best.fun:
                best = res
    x = best.x
    frac = MAX_OFF_POPULATION / (1.0 + np.exp(-x[2 * p]))
    return RandomEffectScore(float(best.fun), x[:p], np.exp(x[p : 2 * p]), n_fixed, float(frac))


def refit_on_pairs(
    prob: GmmProblem, theta: np.ndarray, phi: np.ndarray, blocks: Sequence[PairBlock]
) -> tuple[GmmProblem, np.ndarray]:
    """The family of ``prob`` with its per-device values re-solved on ``blocks`` (shape
    ``phi`` held), for scoring every family on the same pairs.

    Used with the pairs clear of the read plateaus (:func:`fitting.gmm.clear_of_bounds`): a
    hard bound clips the predicted increment at a noisy read, so a device that sits at its
    bound biases every pair there, and a flexible family (piecewise-step bending its last
    node) absorbs that bias and wins on J while the true one (linear-step) cannot. Scored
    on pairs without that bias, with per-device values fitted to the same pairs, the
    families compete on the response itself. Values the kept pairs no longer identify (the
    bound of a device whose pairs near it are gone) stay where they were.
    """
    p = GmmProblem(
        prob.model, blocks, prob.names, prob.shared_names, fixed=prob.fixed, typical=prob.typical
    )
    th = theta.copy()
    p.set_weights(th, phi)
    th, _, _ = p.solve_devices(th, phi)
    p.set_weights(th, phi)
    th, _, _ = p.solve_devices(th, phi, max_iter=15)
    return p, th
