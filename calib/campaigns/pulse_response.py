"""Pulse-response campaign: cycles of N up then N down pulses with a read after each.

Devices are measured in chunks (one batched pulse train per chunk), and every chunk is
appended to the dataset and flushed before the next one starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calib.errors import CalibError
from calib.io.hdf5 import CampaignWriter
from instruments.chip import ChipInterface, ListSelection, PulseSpec, PulseTrainSpec, pulse_sequence

__all__ = ["PulseResponseParams", "measure_pulse_response", "select_devices"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PulseResponseParams:
    """Campaign parameters (SI units)."""

    n_devices: int = 256
    selection: str = "block"  # "block": first devices in row-major order; "random": a sample
    n_up: int = 200
    n_down: int = 200
    cycles: int = 3
    read_every: int = 1
    amplitude_up_v: float = 1.2
    amplitude_down_v: float = -1.2
    width_s: float = 1e-6
    read_voltage_v: float = 0.2
    chunk_devices: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_devices < 1:
            raise CalibError(f"n_devices must be >= 1, got {self.n_devices}")
        if self.selection not in ("block", "random"):
            raise CalibError(f"selection must be 'block' or 'random', got {self.selection!r}")
        if self.amplitude_up_v <= 0 or self.amplitude_down_v >= 0:
            raise CalibError("amplitude_up_v must be > 0 and amplitude_down_v < 0")

    def train(self) -> PulseTrainSpec:
        return PulseTrainSpec(
            n_up=self.n_up,
            up=PulseSpec(self.amplitude_up_v, self.width_s),
            n_down=self.n_down,
            down=PulseSpec(self.amplitude_down_v, self.width_s),
            cycles=self.cycles,
            read_every=self.read_every,
        )


def select_devices(shape: tuple[int, int], params: PulseResponseParams) -> np.ndarray:
    """Flat indices of the devices to measure."""
    total = shape[0] * shape[1]
    if params.n_devices > total:
        raise CalibError(f"asked for {params.n_devices} devices; the chip has {total}")
    if params.selection == "block":
        return np.arange(params.n_devices, dtype=np.int64)
    rng = np.random.default_rng(params.seed)
    return np.sort(rng.choice(total, size=params.n_devices, replace=False)).astype(np.int64)


def measure_pulse_response(
    chip: ChipInterface,
    params: PulseResponseParams,
    output: str | Path,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = True,
) -> Path:
    """Run the campaign on ``chip`` and write group ``pulse_response`` of ``output``."""
    spec = params.train()
    devices = select_devices(chip.shape, params)
    log.info("measuring pulse response of %d devices on %s", devices.size, chip.identity())
    attrs = {
        "idn": chip.identity(),
        "instrument": chip.snapshot(),
        "parameters": asdict(params),
        "seed": params.seed,
        "read_voltage_v": params.read_voltage_v,
        "pulse_amplitude_up_v": params.amplitude_up_v,
        "pulse_amplitude_down_v": params.amplitude_down_v,
        "pulse_width_s": params.width_s,
    }
    columns = {"pulses": pulse_sequence(spec)}
    with CampaignWriter(output, "pulse_response", spec.n_reads, columns, attrs, overwrite) as w:
        done = 0
        if progress:
            progress(0, devices.size)
        for start in range(0, devices.size, params.chunk_devices):
            chunk = devices[start : start + params.chunk_devices]
            t0 = chip.clock.now()
            g = chip.pulse_train_with_reads(ListSelection.of(chunk), spec, params.read_voltage_v)
            w.append(g.T, chunk, chip.shape, t0)
            done += chunk.size
            if progress:
                progress(done, devices.size)
    return Path(output)
