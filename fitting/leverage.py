"""The per-device fit's leverage on the c2c noise sums, from its own Jacobian.

Fitting p parameters to a device's pairs lowers their residuals' sum of squares by the
c2c variance the fitted means absorb. For a least-squares fit, δθ = G⁻¹ Σ_k J_kᵀ u_k with
J_k = ∂inc_k/∂θ (pair k's fitted increment) and G = Σ_k J_kᵀ J_k, and c2c variances
σ_c²·v_k, a pair's residual loses on average

    2·J_k G⁻¹ J_kᵀ v_k − J_k C_v J_kᵀ,   C_v = G⁻¹ (Σ_k v_k J_kᵀ J_k) G⁻¹,

which sums to Q = Σ_k H_kk·v_k (H the hat matrix) in units of σ_c². The approximation
Q = p·v̄ (``fitting.noise``) takes every H_kk as its mean p/n; on soft-bounds the large early
steps carry both the c2c noise (large v_k) and most of the leverage (large H_kk): Q is 2.2
times p·v̄ there and σ_c came out 2 % low (``benchmarks/bench_coverage.py``: dw_min_std
covered 82 %). A window w of m pairs compares the m-pulse map from its first read with its
last read; the c2c noise of its pair k reaches its end contracted by γ_k = Π_{l>k} a_l, so
it loses 2·S_w G⁻¹ T_wᵀ − S_w C_v S_wᵀ with S_w = ∂F_m/∂θ (the window map's Jacobian) and
T_w = Σ_{k∈w} γ_k v_k J_k. Only the c2c variance enters: a pair's read noise,
e_{k+1} − a·e_k, is differenced, and smooth fitted means give almost none of it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fitting.families import FamilyModel
from fitting.gmm import predict_increment
from fitting.pairs import PairBlock

__all__ = ["FitLeverage", "increment_jacobian"]


def increment_jacobian(
    model: FamilyModel,
    block: PairBlock,
    values: Mapping[str, object],
    names: Sequence[str],
    fitted: np.ndarray,
    ok: np.ndarray,
) -> np.ndarray:
    """∂inc/∂θ of every pair (or window) of ``block``, shape (n_dev, P, p): forward
    differences with each device's own step; 0 where ``ok`` is False or the device did not
    fit the parameter (``fitted`` (n_dev, p))."""
    inc = predict_increment(model, block, values)
    out = np.zeros((*inc.shape, len(names)))
    for j, name in enumerate(names):
        if not fitted[:, j].any():
            continue
        col = np.asarray(values[name], dtype=float)
        h = 1e-6 * (np.abs(col) + 1e-3)
        d = (predict_increment(model, block, {**values, name: col + h}) - inc) / h
        out[..., j] = np.where(ok & fitted[:, j : j + 1] & np.isfinite(d), d, 0.0)
    return out


def _quad(a: np.ndarray, m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per device and pair a_k M b_kᵀ: (n, P, p), (n, p, p), (n, P, p) -> (n, P)."""
    return np.einsum("nkq,nkq->nk", a @ m, b)


@dataclass
class FitLeverage:
    """Exact leverage per device (units of σ_c²) of a fit of the per-device parameters
    ``names`` (``fitted`` (n_dev, p): fitted to the device's own pairs): add every pair
    block (:meth:`add_pairs`), then ask for the pairs' (:meth:`pairs`) and each window
    length's (:meth:`windows`)."""

    names: Sequence[str]
    fitted: np.ndarray
    _blocks: list = field(default_factory=list, repr=False)
    _g_inv: np.ndarray | None = field(default=None, repr=False)
    _c_v: np.ndarray | None = field(default=None, repr=False)

    def add_pairs(
        self,
        model: FamilyModel,
        block: PairBlock,
        values: Mapping[str, object],
        ok: np.ndarray,
        v: np.ndarray,
        a: np.ndarray,
    ) -> None:
        """One block's pairs: ``ok`` the pairs the sums use, ``v`` their c2c factors, ``a``
        their contractions (:func:`fitting.noise.pair_statistics`)."""
        jac = increment_jacobian(model, block, values, self.names, self.fitted, ok)
        self._blocks.append((jac, np.where(ok, v, 0.0), np.where(ok, a, 1.0)))

    def pairs(self) -> np.ndarray:
        """Q = Σ_k H_kk·v_k per device over the blocks added (n_dev,)."""
        g = sum(np.einsum("nkp,nkq->npq", j, j) for j, _, _ in self._blocks)
        meat = sum(np.einsum("nkp,nk,nkq->npq", j, v, j) for j, v, _ in self._blocks)
        self._g_inv = np.linalg.pinv(g)
        self._c_v = self._g_inv @ meat @ self._g_inv
        return sum(np.einsum("nk,nk->n", _quad(j, self._g_inv, j), v) for j, v, _ in self._blocks)

    def windows(
        self,
        model: FamilyModel,
        index: int,
        block: PairBlock,
        cols: np.ndarray,
        values: Mapping[str, object],
        ok: np.ndarray,
        m: int,
    ) -> np.ndarray:
        """Leverage of the windows ``block`` of m pairs each, starting at the pair columns
        ``cols`` of the ``index``-th pair block added (``ok``: the windows used), per
        device; after :meth:`pairs`."""
        if self._g_inv is None:
            raise RuntimeError("FitLeverage.windows needs pairs() first")
        jac, v, a = self._blocks[index]
        s = increment_jacobian(model, block, values, self.names, self.fitted, ok)
        pairs = cols[:, None] + np.arange(m)  # (windows, m): the pairs of each window
        later = a[:, pairs[:, 1:]]  # contraction by each later pair of the window
        # γ_k = Π_{l>k} a_l, from the window's last pair back (γ of the last pair: 1)
        gamma = np.ones((*later.shape[:2], m))
        gamma[..., :-1] = np.cumprod(later[..., ::-1], axis=-1)[..., ::-1]
        t = np.einsum("ncm,ncmp->ncp", gamma * v[:, pairs], jac[:, pairs, :])
        per_window = 2.0 * _quad(s, self._g_inv, t) - _quad(s, self._c_v, s)
        return np.einsum("nk,nk->n", per_window, ok.astype(float))
