"""Tile configuration: plain dataclasses (aihwkit's RPUConfig, in our names).

An :class:`AnalogConfig` says which device the tile is built from (or ``None`` for an ideal
floating-point device), the periphery of each MVM direction, how updates become pulses, the
training algorithm, how weights map onto devices, and the inference noise model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.devices.config import PulsedDeviceConfig
from simulator.devices.pcm import PCMNoiseModel
from simulator.periphery import IOParameters
from simulator.update import UpdateParameters

__all__ = [
    "SGD",
    "AnalogConfig",
    "ChoppedTTv2",
    "MappingParameters",
    "TikiTaka",
    "WeightModifier",
    "ttv2",
]

CELLS = ("single", "pair")
REFERENCES = ("zero", "symmetry-point")
MODIFIERS = ("none", "add-normal", "mult-normal", "pcm-prog")


@dataclass
class SGD:
    """In-memory SGD: the gradient goes straight onto the weight devices by pulse trains."""


@dataclass
class TikiTaka:
    """Tiki-Taka v1 (Gokmen & Haensch 2020): W = γ·A + C; A gets SGD, columns of A are read
    and transferred to C by pulsed updates (aihwkit ``TransferCompound``, §5.2).

    ``fast_lr`` ≤ 0 uses the SGD learning rate for A; with ``scale_fast_lr`` A's rate is
    ``fast_lr``·lr. ``transfer_every`` counts mini-batches (``units_in_mbatch``) or
    mat-vecs; ``transfer_lr`` is scaled by lr when ``scale_transfer_lr``.
    """

    gamma: float = 0.0
    transfer_every: float = 1.0
    units_in_mbatch: bool = True
    n_reads_per_transfer: int = 1
    fast_lr: float = 1.0
    scale_fast_lr: bool = True  # aihwkit 1.2.0 TransferCompound's default (Chopped: False)
    transfer_lr: float = 1.0
    scale_transfer_lr: bool = True
    with_reset_prob: float = 0.0
    transfer_forward: IOParameters = field(
        default_factory=lambda: IOParameters(noise_management="none", bound_management="none")
    )
    transfer_update: UpdateParameters = field(default_factory=UpdateParameters)


@dataclass
class ChoppedTTv2:
    """Chopped TTv2 (Rasch et al. 2024; aihwkit ``ChoppedTransferCompound``, §5.4).

    A is updated with the chopped gradient c_out·c_inᵀ ⊙ (−η_A·d·xᵀ); every
    ``transfer_every`` mat-vecs (mini-batches if ``units_in_mbatch``; < 0: auto,
    round(n_states_A/in_size·|every|)) the next column of A is read, de-chopped and
    accumulated in a digital buffer H (in units of the threshold θ = ``buffer_granularity``·ε_A,
    scaled by ``auto_granularity``/(in_size·|every|) when > 0); where |H| ≥ 1,
    n = clip(trunc(H), ±BL_tr) pulses of ``step``·ε_C go to C and H forgets
    (H ← ``momentum``·H if ``forget_buffer`` else H − (1 − momentum)·n). Input choppers flip with
    ``in_chop_prob`` after each read of their column, output choppers with ``out_chop_prob``
    after each full pass. ``in_chop_prob`` = 0 is TTv2 (Gokmen 2021), see :func:`ttv2`.
    """

    gamma: float = 0.0
    transfer_every: float = 1.0
    units_in_mbatch: bool = False
    fast_lr: float = 1.0
    scale_fast_lr: bool = False
    transfer_lr: float = 1.0
    scale_transfer_lr: bool = True
    in_chop_prob: float = 0.1
    in_chop_random: bool = True
    out_chop_prob: float = 0.0
    buffer_granularity: float = 1.0
    auto_granularity: float = 0.0
    step: float = 1.0
    momentum: float = 0.0
    forget_buffer: bool = True
    auto_scale: bool = False
    auto_momentum: float = 0.99
    correct_gradient_magnitudes: bool = False
    transfer_forward: IOParameters = field(
        default_factory=lambda: IOParameters(noise_management="none", bound_management="none")
    )
    transfer_bl: int = 1

    def __post_init__(self) -> None:
        for name in ("in_chop_prob", "out_chop_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if self.transfer_every == 0:
            raise ValueError("transfer_every must be non-zero")


def ttv2(**overrides: object) -> ChoppedTTv2:
    """TTv2 (buffered transfer, no chopper): aihwkit's ``build_config("ttv2")`` settings."""
    return ChoppedTTv2(**{"in_chop_prob": 0.0, **overrides})


@dataclass
class MappingParameters:
    """Tile size limits and digital weight scaling (aihwkit ``MappingParameter``).

    Layers larger than ``max_input_size`` x ``max_output_size`` (0: unlimited) are split over
    several tiles. With ``weight_scaling_omega`` > 0, weights given to a layer are stored as
    W/s with s = max|W|/ω per tile and outputs are multiplied by s; ``out_scale`` is a fixed
    extra digital output factor (s = ``out_scale`` when ω = 0).
    """

    max_input_size: int = 512
    max_output_size: int = 512
    weight_scaling_omega: float = 0.0
    out_scale: float = 1.0


@dataclass
class WeightModifier:
    """Weight-noise injection for hardware-aware training (aihwkit ``WeightModifierParameter``).

    Drawn once per mini-batch, used by forward and backward, while the update goes to the clean
    weights. With a_max = max|W| (``rel_to_actual_wmax``) or ``assumed_wmax``:
    ``add-normal``: W + std_dev·a_max·ξ; ``mult-normal``: W·(1 + std_dev·ξ);
    ``pcm-prog``: the programming noise of ``AnalogConfig.noise_model`` at g = |W|/a_max·g_max,
    scaled by std_dev (sign kept).
    """

    type: str = "none"
    std_dev: float = 0.0
    rel_to_actual_wmax: bool = True
    assumed_wmax: float = 1.0
    enable_during_test: bool = False

    def __post_init__(self) -> None:
        if self.type not in MODIFIERS:
            raise ValueError(f"weight modifier type must be one of {MODIFIERS}")


@dataclass
class AnalogConfig:
    """Everything a tile needs (aihwkit's RPUConfig).

    ``device`` None is an ideal floating-point device (exact updates, ``update.pulse_type``
    ignored). ``cell``: ``single`` (one device per weight against a fixed reference) or
    ``pair`` (w = w⁺ − w⁻, each device only potentiated, refreshed when both are high:
    aihwkit's ``OneSidedUnitCell``). ``reference``: ``zero`` (the preset's reference
    conductance) or ``symmetry-point`` (each device's reference set to its symmetry point,
    plus ``reference_std`` programming error).
    """

    device: PulsedDeviceConfig | None = field(default_factory=PulsedDeviceConfig)
    forward: IOParameters = field(default_factory=IOParameters)
    backward: IOParameters = field(default_factory=IOParameters)
    update: UpdateParameters = field(default_factory=UpdateParameters)
    algorithm: SGD | TikiTaka | ChoppedTTv2 = field(default_factory=SGD)
    cell: str = "single"
    reference: str = "zero"
    reference_std: float = 0.0
    refresh_upper_thres: float = 0.75
    refresh_lower_thres: float = 0.25
    mapping: MappingParameters = field(default_factory=MappingParameters)
    modifier: WeightModifier = field(default_factory=WeightModifier)
    weight_clip: float = 0.0
    noise_model: PCMNoiseModel | None = None
    drift_compensation: bool = True
    max_substeps: int = 32

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        if self.device is None and not isinstance(self.algorithm, SGD):
            raise ValueError("transfer algorithms need a pulsed device (device is None)")
        if self.modifier.type == "pcm-prog" and self.noise_model is None:
            raise ValueError("weight modifier 'pcm-prog' needs a noise_model")
