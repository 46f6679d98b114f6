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
T_w = Σ_{k∈w} γ_k v_k J_k.

Read noise works the other way on windows. The fit (:mod:`fitting.gmm`) solves the moments
Σ_k Z_k u_k = 0 of every valid pair with instruments Z_k (Hermite polynomials of an earlier
read) and weights W per direction, so a pair's read noise r_k = e_{k+1} − a_k·e_k moves
the parameters by L_k r_k, L_k = H⁻¹ D_bᵀ W_b Z_k (D_b = Σ_k Z_k J_k of the pair's block b,
H = Σ_b D_bᵀ W_b D_b). Their read-noise covariance is C_r = Σ_k (1 + a_k²) L_k L_kᵀ −
Σ_{k~k+1} a_{k+1} (L_k L_{k+1}ᵀ + L_{k+1} L_kᵀ) (units of σ_na²); it is small where L is
smooth along a sweep, but the instruments carry their own read's noise and a clipped pair
(a = 0) is not differenced. A window adds m pulses of that error: its residual's read part
r_w = e_end − a_w·e_start gains S_w C_r S_wᵀ − 2·S_w X_w with X_w = Σ_l L_l Cov(r_l, r_w),
non-zero only for the pairs that share the window's first or last read. Left out, the c2c
estimates of constant-step chips at read noise 2.2 steps (c2c 0.3) rose from 0.27 with
4-pulse windows to 0.42 with 32-pulse ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fitting.families import FamilyModel
from fitting.gmm import instruments, moment_weights, predict_increment
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
    #: every parameter the fit estimated per device (``fitted`` when None): hard bounds fitted
    #: from clipped pairs are not in ``fitted`` (those pairs are not in the sums) but take
    #: up those pairs' read noise in the fit (left out: constant-step's 16- and 32-pulse
    #: windows were charged 1.5-2x their measured read leverage)
    estimated: np.ndarray | None = None
    _blocks: list = field(default_factory=list, repr=False)
    _g_inv: np.ndarray | None = field(default=None, repr=False)
    _c_v: np.ndarray | None = field(default=None, repr=False)
    #: per block, over the pairs the fit used: J, a, links, instruments Z, weights W
    _fit: list = field(default_factory=list, repr=False)
    _influence: list = field(default_factory=list, repr=False)  # per block: L (n, P, p)
    _c_r: np.ndarray | None = field(default=None, repr=False)
    _v_valid: list = field(default_factory=list, repr=False)  # per block: v of valid pairs

    def add_pairs(
        self,
        model: FamilyModel,
        block: PairBlock,
        values: Mapping[str, object],
        ok: np.ndarray,
        v: np.ndarray,
        a: np.ndarray,
        valid: np.ndarray | None = None,
        u: np.ndarray | None = None,
    ) -> None:
        """One block's pairs: ``ok`` the pairs the sums use, ``v`` their c2c factors, ``a``
        their contractions, ``valid`` the pairs the fit used and ``u`` their residuals
        (:func:`fitting.noise.pair_statistics`; ``ok`` and equal weights when None). ``ok``
        lies within ``valid`` and ``fitted`` within ``estimated``, so the sums' Jacobian is
        the fit's with the other pairs and parameters masked (one set of differences)."""
        valid = ok if valid is None else valid
        estimated = self.fitted if self.estimated is None else self.estimated
        jac_all = increment_jacobian(model, block, values, self.names, estimated, valid)
        jac = np.where(ok[..., None] & self.fitted[:, None, :], jac_all, 0.0)
        self._blocks.append((jac, np.where(ok, v, 0.0), np.where(ok, a, 1.0)))
        links = block.contiguous & valid[:, :-1] & valid[:, 1:]
        z = instruments(block) * valid[..., None]
        u = np.ones(valid.shape) if u is None else u  # equal weights
        weights = moment_weights(z, np.where(valid, u, 0.0), valid.astype(float))
        self._fit.append((jac_all, np.where(valid, a, 0.0), links, z, weights))
        self._v_valid.append(np.where(valid, v, 0.0))

    def pairs(self) -> np.ndarray:
        """Q = Σ_k H_kk·v_k per device over the blocks added (n_dev,)."""
        g = sum(np.einsum("nkp,nkq->npq", j, j) for j, _, _ in self._blocks)
        meat = sum(np.einsum("nkp,nk,nkq->npq", j, v, j) for j, v, _ in self._blocks)
        self._g_inv = np.linalg.pinv(g)
        self._c_v = self._g_inv @ meat @ self._g_inv
        self._read_covariance()
        return sum(np.einsum("nk,nk->n", _quad(j, self._g_inv, j), v) for j, v, _ in self._blocks)

    def _read_covariance(self) -> None:
        """The pairs' influence L_k and the parameters' read-noise covariance C_r."""
        d_w, hess = [], 0.0
        for j, _, _, z, weights in self._fit:
            d = np.einsum("nkm,nkp->nmp", z, j)  # D_b
            d_w.append(np.swapaxes(d, 1, 2) @ weights)  # D_bᵀ W_b
            hess = hess + d_w[-1] @ d
        h_inv = np.linalg.pinv(hess)
        self._influence = []
        c_r = 0.0
        for dw, (_, a, links, z, _) in zip(d_w, self._fit, strict=True):
            infl = np.einsum("npq,nqm,nkm->nkp", h_inv, dw, z)  # L_k
            self._influence.append(infl)
            c_r = c_r + np.einsum("nkp,nk,nkq->npq", infl, 1.0 + a * a, infl)
            if links.shape[1]:
                cross = np.einsum("nkp,nk,nkq->npq", infl[:, :-1], links * a[:, 1:], infl[:, 1:])
                c_r = c_r - cross - np.swapaxes(cross, 1, 2)
        self._c_r = c_r

    def windows(
        self,
        model: FamilyModel,
        index: int,
        block: PairBlock,
        cols: np.ndarray,
        values: Mapping[str, object],
        ok: np.ndarray,
        m: int,
        a_w: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Leverage of the windows ``block`` of m pairs each, starting at the pair columns
        ``cols`` of the ``index``-th pair block added (``ok``: the windows used), per device,
        after :meth:`pairs`: on the c2c sums (units of σ_c²) and the read leverage (units of
        σ_na²: what the fitted parameters' read-noise error adds to Σ u_w²); ``a_w`` the
        windows' contractions (1 when None)."""
        if self._g_inv is None:
            raise RuntimeError("FitLeverage.windows needs pairs() first")
        jac, v, a = self._blocks[index]
        s = increment_jacobian(model, block, values, self.names, self.fitted, ok)
        read = self._read_windows(index, s, cols, ok, m, a_w)
        pairs = cols[:, None] + np.arange(m)  # (windows, m): the pairs of each window
        later = a[:, pairs[:, 1:]]  # contraction by each later pair of the window
        # γ_k = Π_{l>k} a_l, from the window's last pair back (γ of the last pair: 1)
        gamma = np.ones((*later.shape[:2], m))
        gamma[..., :-1] = np.cumprod(later[..., ::-1], axis=-1)[..., ::-1]
        t = np.einsum("ncm,ncmp->ncp", gamma * v[:, pairs], jac[:, pairs, :])
        per_window = 2.0 * _quad(s, self._g_inv, t) - _quad(s, self._c_v, s)
        return np.einsum("nk,nk->n", per_window, ok.astype(float)), read

    def triangles(
        self, index: int, cols: np.ndarray, ok: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Leverage of the weighted windows S = Σ_t w_t·u_{c+t} (``weights`` w, starting at
        the pair columns ``cols`` of the ``index``-th block; ``ok`` (n_dev, n_win): the
        windows used), per device, after :meth:`pairs`: on the c2c sums (units of σ_c²),
        2·s G⁻¹ tᵀ − s C_v sᵀ with s = Σ w_t J_t and t = Σ w_t v_t J_t, and the read
        leverage (units of σ_na²), s C_r sᵀ − 2·s X with X = Σ_l L_l Cov(r_l, r_S): the
        window's read part r_S = Σ_k c_k e_k (c_k = w_{k−1} − a_k·w_k) shares reads with its
        own pairs and the pair on either side."""
        if self._g_inv is None:
            raise RuntimeError("FitLeverage.triangles needs pairs() first")
        jac_all, a, links, _, _ = self._fit[index]
        infl = self._influence[index]
        n_pairs, length = jac_all.shape[1], weights.size
        idx = cols[:, None] + np.arange(length)  # (n_win, length)
        jac = jac_all[:, idx, :] * self.fitted[:, None, None, :]
        s = np.einsum("t,nctp->ncp", weights, jac)
        t = np.einsum("t,nct,nctp->ncp", weights, self._v_valid[index][:, idx], jac)
        q = 2.0 * _quad(s, self._g_inv, t) - _quad(s, self._c_v, s)
        a_in = a[:, idx]
        coef = np.zeros((*a_in.shape[:2], length + 1))  # reads c .. c + length
        coef[..., :length] -= a_in * weights
        coef[..., 1:] += weights
        x = np.einsum("nctp,nct->ncp", infl[:, idx, :], coef[..., 1:] - a_in * coef[..., :length])
        before = cols >= 1  # pair c − 1 ends on read c
        if before.any():
            k = np.where(before, cols - 1, 0)
            on = links[:, k] & before
            x += infl[:, k, :] * (on * coef[..., 0])[..., None]
        end = cols + length  # pair c + length starts on read c + length
        after = end < n_pairs
        if after.any():
            k = np.where(after, end, 0)
            on = links[:, np.minimum(end - 1, n_pairs - 2)] & after
            x -= infl[:, k, :] * (on * a[:, k] * coef[..., -1])[..., None]
        r = _quad(s, self._c_r, s) - 2.0 * np.einsum("ncp,ncp->nc", s, x)
        okf = ok.astype(float)
        return np.einsum("nc,nc->n", q, okf), np.einsum("nc,nc->n", r, okf)

    def _read_windows(
        self,
        index: int,
        s: np.ndarray,
        cols: np.ndarray,
        ok: np.ndarray,
        m: int,
        a_w: np.ndarray | None,
    ) -> np.ndarray:
        """Σ over the windows ``ok`` of S_w C_r S_wᵀ − 2·S_w X_w (module docstring)."""
        _, a, links, _, _ = self._fit[index]
        jac = self._influence[index]
        n_pairs = jac.shape[1]
        a_w = np.ones(s.shape[:2]) if a_w is None else np.where(ok, a_w, 1.0)
        first, last = cols, cols + m - 1
        # Cov(r_l, r_w)/σ² of the pairs sharing the window's first read e_s (pair first − 1
        # ends on it, pair first starts on it) and last read e_e (pair last ends on it, pair
        # last + 1 starts on it)
        x = jac[:, first, :] * (a[:, first] * a_w)[..., None] + jac[:, last, :]
        before = first >= 1
        if before.any():
            k = np.where(before, first - 1, 0)
            on = links[:, k] & before
            x -= jac[:, k, :] * (on * a_w)[..., None]
        after = last + 1 < n_pairs
        if after.any():
            k = np.where(after, last + 1, 0)
            on = links[:, np.minimum(last, n_pairs - 2)] & after
            x -= jac[:, k, :] * (on * a[:, k])[..., None]
        per_window = _quad(s, self._c_r, s) - 2.0 * np.einsum("ncp,ncp->nc", s, x)
        return np.einsum("nk,nk->n", per_window, ok.astype(float))
