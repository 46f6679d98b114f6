"""Pulse-response dataset files measured on the emulator with the real campaign code."""

from __future__ import annotations

from pathlib import Path

from calib.campaigns import PulseResponseParams, measure_pulse_response
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator

__all__ = ["measure_chip_file"]


def measure_chip_file(
    path: Path, seed: int, n_devices: int, shape=(32, 32), n_pulses: int = 100
) -> Path:
    """A ReRAM chip (emulator seed ``seed``): 2 cycles of ``n_pulses`` up and down pulses."""
    params = PulseResponseParams(
        n_devices=n_devices, n_up=n_pulses, n_down=n_pulses, cycles=2, seed=seed
    )
    with running_emulator("reram", seed=seed, shape=shape) as res, ScpiCrossbarChip(res) as chip:
        return measure_pulse_response(chip, params, path)
