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

Known equivalences (REFERENCES.md [R4]) are reported next to the table: soft-bounds is
linear-step with γ = 1 and the device's own bounds as reference; constant-step is linear-step
with γ = 0 (and piecewise-step with one node); soft-bounds is pow-step with exponent 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fitting.families import FAMILY_MODELS, family_model
from fitting.gmm import GmmProblem
from fitting.noise import pair_statistics
from fitting.pairs import PairBlock

__all__ = [
    "RELATIONS",
    "ModelScore",
    "equivalences",
    "j_statistic",
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
    aic: float = 0.0
    bic: float = 0.0
    delta_aic: float = 0.0
    delta_bic: float = 0.0
    equivalent_to: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def relation(self) -> str:
        return RELATIONS.get(self.family, "")

    def as_dict(self) -> dict:
        return {
            "family": self.family,
            "j_statistic": self.j_statistic,
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
        }


def rank_models(scores: list[ModelScore]) -> list[ModelScore]:
    """Fill AIC/BIC and their differences to the best; best (lowest BIC) first."""
    for s in scores:
        s.aic = s.j_statistic + 2 * s.n_params
        s.bic = s.j_statistic + s.n_params * np.log(max(s.n_obs, 1))
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


def j_statistic(
    prob: GmmProblem,
    theta: np.ndarray,
    phi: np.ndarray,
    c2c: float,
    non_accumulating: float,
) -> np.ndarray:
    """Hansen's J = gᵀ S⁻¹ g per device, S from the fitted noise model.

    S = Σ_k Z_k Z_kᵀ Var u_k + Σ_k (Z_k Z_{k+1}ᵀ + Z_{k+1} Z_kᵀ) Cov(u_k, u_{k+1}) with the
    variances of :func:`log_likelihood`. Under a correct model J is about χ² with
    (moments − parameters) degrees of freedom; a misspecified family leaves systematic
    moments and a large J. (The empirical HAC estimate of S is too noisy here: read noise
    makes the summed increments telescope, so one direction of S is nearly singular and must
    come from the model.)
    """
    vals = prob._values(theta, phi)
    g = prob.moments(theta, phi)
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
    val, vec = np.linalg.eigh(s)
    floor = 1e-9 * np.maximum(val[:, -1:], 1e-300)
    proj = np.einsum("dmk,dm->dk", vec, g)
    return np.sum(proj**2 / np.maximum(val, floor), axis=1)


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
