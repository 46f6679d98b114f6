"""Pulse-response campaign: cycles of N up then N down pulses with a read after every k."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calib.campaigns.base import CampaignParams, ProgressCallback, run_campaign, select_devices
from calib.errors import CalibError
from calib.io.hdf5 import RowSpec
from instruments.chip import ChipInterface, ListSelection, PulseSpec, PulseTrainSpec, pulse_sequence

__all__ = ["PulseResponseParams", "measure_pulse_response", "select_devices"]


@dataclass(frozen=True)
class PulseResponseParams(CampaignParams):
    """Pulse-train protocol (V, s) on top of the common campaign parameters."""

    n_up: int = 200
    n_down: int = 200
    cycles: int = 3
    read_every: int = 1
    amplitude_up_v: float = 1.2
    amplitude_down_v: float = -1.2
    width_s: float = 1e-6

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.amplitude_up_v <= 0 or self.amplitude_down_v >= 0:
            raise CalibError("amplitude_up_v must be > 0 and amplitude_down_v < 0")
        try:
            self.train()
        except ValueError as exc:
            raise CalibError(f"pulse-response parameters: {exc}") from None

    def train(self) -> PulseTrainSpec:
        return PulseTrainSpec(
            n_up=self.n_up,
            up=PulseSpec(self.amplitude_up_v, self.width_s),
            n_down=self.n_down,
            down=PulseSpec(self.amplitude_down_v, self.width_s),
            cycles=self.cycles,
            read_every=self.read_every,
        )


def measure_pulse_response(
    chip: ChipInterface,
    params: PulseResponseParams,
    output: str | Path,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Run the campaign on ``chip`` and write group ``pulse_response`` of ``output``."""
    spec = params.train()

    def measure(sel: ListSelection, chunk: np.ndarray, first: int) -> dict[str, np.ndarray]:
        t0 = chip.clock.now()
        g = chip.pulse_train_with_reads(sel, spec, params.read_voltage_v)
        return {"conductance": g.T, "start_time": np.full(chunk.size, t0)}

    rows = {
        "conductance": RowSpec((spec.n_reads,), "f4", "S"),
        "start_time": RowSpec((), "f8", "s"),
    }
    attrs = {
        "pulse_amplitude_up_v": params.amplitude_up_v,
        "pulse_amplitude_down_v": params.amplitude_down_v,
        "pulse_width_s": params.width_s,
    }
    return run_campaign(
        chip,
        "pulse_response",
        params,
        output,
        rows,
        measure,
        columns={"pulses": pulse_sequence(spec)},
        column_units={"pulses": "pulses (signed count before each read)"},
        extra_attrs=attrs,
        progress=progress,
        resume=resume,
        overwrite=overwrite,
    )
