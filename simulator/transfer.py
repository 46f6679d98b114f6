"""Transfer-based training algorithms on two device arrays: Tiki-Taka, TTv2, chopped TTv2.

Both keep a fast array A (gradient accumulator, updated by pulse trains) and a slow array C
(the weight), and realize W = γ·A + C (REFERENCES.md [R11]):

* :class:`TikiTakaTile`: every ``transfer_every`` units the next ``n_reads_per_transfer``
  columns of A are read through the (noisy) transfer periphery and written onto C by a pulsed
  update with rate λ_tr (x = one-hot column, d = −v).
* :class:`ChoppedTransferTile`: A receives the chopped gradient; reads of A are de-chopped and
  filtered in a floating-point buffer H, and only whole thresholds are written to C as
  single pulses (TTv2 when the chopper probability is 0).

All columns due within one mini-batch are read and written at once (vectorized); the order
of reads relative to the A updates of the same mini-batch is the only difference from
aihwkit's mat-vec interleaving.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from simulator.config import SGD, AnalogConfig, ChoppedTTv2, TikiTaka
from simulator.periphery import analog_mvm
from simulator.tile import AnalogTile, TileBase, check_matrix

__all__ = ["ChoppedTransferTile", "TikiTakaTile", "build_tile"]


def build_tile(
    out_size: int,
    in_size: int,
    config: AnalogConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> TileBase:
    """The tile class that ``config.algorithm`` asks for."""
    algo = config.algorithm
    if isinstance(algo, SGD):
        return AnalogTile(out_size, in_size, config, seed, device)
    if isinstance(algo, TikiTaka):
        return TikiTakaTile(out_size, in_size, config, seed, device)
    if isinstance(algo, ChoppedTTv2):
        return ChoppedTransferTile(out_size, in_size, config, seed, device)
    raise ValueError(f"unknown training algorithm {algo!r}")


class _TransferBase(TileBase):
    """Two device arrays A (fast) and C (slow); W = γ·A + C."""

    def __init__(self, out_size, in_size, config, seed, device) -> None:
        super().__init__(out_size, in_size, config, seed, device)
        sgd = dataclasses.replace(config, algorithm=SGD())
        self.fast = AnalogTile(out_size, in_size, sgd, seed * 2 + 1, self.device)
        self.slow = AnalogTile(out_size, in_size, self._slow_config(sgd), seed * 2 + 2, device)
        self.n_updates = 0  # mini-batches seen
        self.n_matvecs = 0  # samples seen
        self.n_transfers = 0  # columns transferred so far
        self.n_transfer_events = 0  # transfer periods elapsed
        self.set_weights(torch.zeros(self.shape))

    def _slow_config(self, sgd: AnalogConfig) -> AnalogConfig:
        return sgd

    @property
    def gamma(self) -> float:
        return float(self.config.algorithm.gamma)

    def effective_weights(self) -> torch.Tensor:
        w = self.slow.effective_weights()
        if self.gamma != 0:
            w = w + self.gamma * self.fast.effective_weights()
        return w

    def set_weights(self, weights: torch.Tensor) -> None:
        """All of the weight goes to C; A is set to zero (aihwkit ``onSetWeights``)."""
        check_matrix(weights, self.shape, "weights")
        self.slow.set_weights(weights)
        self.fast.set_weights(torch.zeros(self.shape))
        self.post_update()

    def _read_columns(self, cols: torch.Tensor) -> torch.Tensor:
        """A[:, cols] read through the transfer periphery: (out_size, len(cols))."""
        eye = torch.zeros(cols.numel(), self.shape[1], device=self.device)
        eye[torch.arange(cols.numel(), device=self.device), cols] = 1.0
        io = self.config.algorithm.transfer_forward
        return analog_mvm(eye, self.fast.effective_weights(), io, self.generator).T

    def _due_columns(self, units: float, every: float) -> list[torch.Tensor]:
        """Columns to transfer now (round-robin), in rounds of distinct columns."""
        due = math.floor(units / every) - self.n_transfer_events
        if due <= 0:
            return []
        self.n_transfer_events += due
        n_cols = due * self._reads_per_event()
        start = self.n_transfers
        self.n_transfers += n_cols
        rounds = []
        in_size = self.shape[1]
        for first in range(0, n_cols, in_size):
            k = min(in_size, n_cols - first)
            rounds.append((start + first + torch.arange(k, device=self.device)) % in_size)
        return rounds

    def _reads_per_event(self) -> int:
        return 1

    def _move(self, device: torch.device) -> None:
        self.fast.to(device)
        self.slow.to(device)


class TikiTakaTile(_TransferBase):
    """Tiki-Taka v1 (see :class:`simulator.config.TikiTaka`)."""

    def _slow_config(self, sgd: AnalogConfig) -> AnalogConfig:
        return dataclasses.replace(sgd, update=self.config.algorithm.transfer_update)

    def _reads_per_event(self) -> int:
        return max(1, int(self.config.algorithm.n_reads_per_transfer))

    def update(self, x: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        algo: TikiTaka = self.config.algorithm
        fast_lr = lr if algo.fast_lr <= 0 else algo.fast_lr * (lr if algo.scale_fast_lr else 1.0)
        self.fast.update(x, d, fast_lr)
        self.n_updates += 1
        self.n_matvecs += x.shape[0]
        units = self.n_updates if algo.units_in_mbatch else self.n_matvecs
        transfer_lr = algo.transfer_lr * (lr if algo.scale_transfer_lr else 1.0)
        for cols in self._due_columns(units, abs(algo.transfer_every)):
            v = self._read_columns(cols)  # (out, k)
            onehot = torch.zeros(cols.numel(), self.shape[1], device=self.device)
            onehot[torch.arange(cols.numel(), device=self.device), cols] = 1.0
            self.slow.update(onehot, -v.T, transfer_lr)  # C ← C + λ·v·e_kᵀ
            if algo.with_reset_prob > 0:
                pick = torch.rand(cols.numel(), generator=self.generator, device=self.device)
                reset_cols = cols[pick < algo.with_reset_prob]
                if reset_cols.numel():
                    mask = torch.zeros(self.shape, dtype=torch.bool, device=self.device)
                    mask[:, reset_cols] = True
                    for array in self.fast.arrays:
                        array.reset(mask)
        self.post_update()


class ChoppedTransferTile(_TransferBase):
    """TTv2 / chopped TTv2 (see :class:`simulator.config.ChoppedTTv2`)."""

    def __init__(self, out_size, in_size, config, seed, device) -> None:
        super().__init__(out_size, in_size, config, seed, device)
        self.buffer = torch.zeros(self.shape, device=self.device)
        self.in_chopper = torch.ones(self.shape[1], device=self.device)
        self.out_chopper = torch.ones(self.shape[0], device=self.device)
        self.reads_per_column = torch.zeros(self.shape[1], device=self.device)
        self.x_max = 0.0
        self.d_max = 0.0

    def transfer_every(self) -> float:
        """Transfer period (mat-vecs or mini-batches); auto when ``transfer_every`` < 0."""
        every = self.config.algorithm.transfer_every
        if every > 0:
            return float(every)
        return max(1.0, round(self.fast.n_states() / self.shape[1] * abs(every)))

    def fast_lr(self, lr: float, x: torch.Tensor, d: torch.Tensor) -> float:
        algo: ChoppedTTv2 = self.config.algorithm
        base = lr if algo.fast_lr <= 0 else algo.fast_lr
        scale = lr if (algo.scale_fast_lr and algo.fast_lr > 0) else 1.0
        if not algo.auto_scale:
            return base * scale
        tau = (1.0 - algo.auto_momentum) / max(1, x.shape[0])
        x_now, d_now = float(x.abs().max()), float(d.abs().max())
        if self.x_max == 0.0:
            self.x_max, self.d_max = x_now, d_now
        else:
            self.x_max = (1 - tau) * self.x_max + tau * x_now
            self.d_max = (1 - tau) * self.d_max + tau * d_now
        if self.x_max <= 0 or self.d_max <= 0:
            return 0.0
        bl = self.config.update.desired_bl
        return algo.fast_lr * bl * self.fast.granularity / (self.x_max * self.d_max) * scale

    def update(self, x: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        algo: ChoppedTTv2 = self.config.algorithm
        eta_fast = self.fast_lr(lr, x, d)
        self.fast.update(x * self.in_chopper, d * self.out_chopper, eta_fast)
        self.n_updates += 1
        self.n_matvecs += x.shape[0]
        units = self.n_updates if algo.units_in_mbatch else self.n_matvecs
        every = self.transfer_every()
        transfer_lr = algo.transfer_lr * (lr if algo.scale_transfer_lr else 1.0)
        eps_fast, eps_slow = self.fast.granularity, self.slow.granularity
        theta = algo.buffer_granularity * eps_fast
        if algo.auto_granularity > 0:
            theta *= algo.auto_granularity / (self.shape[1] * abs(every))
        if algo.correct_gradient_magnitudes:
            rho = abs(transfer_lr) / max(eta_fast * theta * eps_slow / eps_fast, 1e-30)
        else:
            rho = abs(transfer_lr) / theta
        for cols in self._due_columns(units, every):
            v = self._read_columns(cols)
            sign = self.out_chopper[:, None] * self.in_chopper[cols][None, :]
            h = self.buffer[:, cols] + sign * rho * v
            n = torch.where(h.abs() >= 1.0, torch.trunc(h), torch.zeros_like(h))
            n = n.clamp(-algo.transfer_bl, algo.transfer_bl)
            moved = n != 0
            if algo.forget_buffer:
                h = torch.where(moved, algo.momentum * h, h)
            else:
                h = h - (1.0 - algo.momentum) * n
            self.buffer[:, cols] = h
            pulses = torch.round(n.abs() * algo.step) * torch.sign(n)
            self.slow.apply_counts(pulses.clamp(min=0), (-pulses).clamp(min=0), cols)
            self._flip_choppers(cols)
        self.post_update()

    def _flip_choppers(self, cols: torch.Tensor) -> None:
        algo: ChoppedTTv2 = self.config.algorithm
        self.reads_per_column[cols] += 1
        if algo.in_chop_prob > 0:
            if algo.in_chop_random:
                u = torch.rand(cols.numel(), generator=self.generator, device=self.device)
                flip = u < algo.in_chop_prob
            else:
                period = max(math.ceil(1.0 / algo.in_chop_prob), 2)
                flip = (self.reads_per_column[cols] % period) == 0
            self.in_chopper[cols] = torch.where(flip, -self.in_chopper[cols], self.in_chopper[cols])
        last = self.shape[1] - 1
        if algo.out_chop_prob > 0 and bool((cols == last).any()):
            u = torch.rand(self.shape[0], generator=self.generator, device=self.device)
            self.out_chopper = torch.where(
                u < algo.out_chop_prob, -self.out_chopper, self.out_chopper
            )

    def _move(self, device: torch.device) -> None:
        super()._move(device)
        self.buffer = self.buffer.to(device)
        self.in_chopper = self.in_chopper.to(device)
        self.out_chopper = self.out_chopper.to(device)
        self.reads_per_column = self.reads_per_column.to(device)
