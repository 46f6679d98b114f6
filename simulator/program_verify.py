"""Program-and-verify of pulsed devices: what writing a weight onto a real array leaves.

Writing a trained weight onto pulsed devices is a verify loop: read the device, and while
the read lies outside ``±tolerance`` of the target, apply one pulse of the error's sign.
The loop stops at the *first* read inside the band, so a device ends on the side it
approached from, by up to the band: the weights a chip holds are not the targets. This
module runs that loop on a :class:`~simulator.tile.PulsedTile` with the device model's own
steps (device-to-device gains and bounds, cycle-to-cycle noise) and the read noise of each
verify read.

Cost: the loop's outcome depends only on its last pulses before the band, so it starts
``approach_steps`` expected steps below the band's lower edge (clipped to the device's
bounds) instead of climbing from the erased state; ``tests/simulator/test_program_verify.py``
checks that both give the same landing distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from simulator.random_streams import normal
from simulator.tile import PulsedTile

__all__ = ["VerifyResult", "program_and_verify"]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome per device: the loop stopped inside the band, and the pulses it applied."""

    converged: torch.Tensor  # bool, tile shape
    pulses: torch.Tensor  # float, tile shape


def program_and_verify(
    array: PulsedTile,
    target: torch.Tensor,
    tolerance: float,
    read_noise: float,
    generator: torch.Generator,
    approach_steps: int | None = 4,
    max_iterations: int = 200,
) -> VerifyResult:
    """Verify-loop ``array``'s device states to ``target`` (weight units, tile shape).

    ``tolerance``: half-width of the acceptance band; ``read_noise``: std of one verify
    read (both weight units). ``approach_steps=None`` climbs from the lower bound (the state
    an erase leaves) instead of starting near the band. A target outside a device's bounds
    leaves it at the bound, not converged.
    """
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"verify tolerance must be > 0 and finite, got {tolerance}")
    if not (math.isfinite(read_noise) and read_noise >= 0):
        raise ValueError(f"verify read noise must be a finite std >= 0, got {read_noise}")
    target = target.to(array.device, torch.float32)
    if approach_steps is None:
        array.set_weights(array.b_min.expand(array.shape).clone())
    else:
        array.set_weights(target - tolerance)
        step = array.expected_step(True).abs()  # NaN for stuck devices (b⁻ = b⁺)
        step = torch.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)
        array.set_weights(target - tolerance - approach_steps * step)
    pulses = torch.zeros(array.shape, device=array.device)
    active = torch.ones(array.shape, dtype=torch.bool, device=array.device)
    given_up = array.population.stuck.clone()  # a stuck device never responds
    for _ in range(max_iterations):
        read = array.weights() + read_noise * normal(array.shape, generator, array.device)
        error = target - read
        active &= error.abs() > tolerance
        # a device held at the bound its error points beyond cannot get closer
        given_up |= active & (
            ((error > 0) & (array.w >= array.b_max)) | ((error < 0) & (array.w <= array.b_min))
        )
        pushing = active & ~given_up
        if not bool(pushing.any()):
            break
        counts = torch.where(pushing, torch.sign(error), torch.zeros_like(error))
        array.apply_pulses(counts)
        pulses += counts.abs()
    return VerifyResult(~active, pulses)
