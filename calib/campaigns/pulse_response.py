"""Pulse-response campaign: cycles of N up then N down pulses with a read after every k."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calib.campaigns.base import ProgressCallback, run_campaign, select_devices
from calib.campaigns.parameters import PulseResponseParams
from calib.campaigns.technology import (
    chip_technology,
)
from calib.io.hdf5 import RowSpec
from instruments.chip import ChipInterface, ListSelection, pulse_sequence

__all__ = ["PulseResponseParams", "measure_pulse_response", "select_devices"]


def measure_pulse_response(
    chip: ChipInterface,
    params: PulseResponseParams,
    output: str | Path,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    overwrite: bool = False,
    resume_on_other_chip: bool = False,
) -> Path:
    """Run the campaign on ``chip`` and write group ``pulse_response`` of ``output``.

    Pulse settings left ``None`` in ``params`` follow the chip's technology.
    """
    params = params.resolved(chip_technology(chip)) if not params.is_resolved() else params
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
        resume_on_other_chip=resume_on_other_chip,
    )
