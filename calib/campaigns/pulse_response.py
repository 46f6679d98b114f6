"""Pulse-response campaign: cycles of N up then N down pulses with a read after every k."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calib.campaigns.base import CampaignParams, ProgressCallback, run_campaign, select_devices
from calib.campaigns.technology import (
    PULSE_RESPONSE_DEFAULTS,
    chip_technology,
    known_technology,
)
from calib.errors import CalibError
from calib.io.hdf5 import RowSpec
from instruments.chip import ChipInterface, ListSelection, PulseSpec, PulseTrainSpec, pulse_sequence

__all__ = ["PulseResponseParams", "measure_pulse_response", "select_devices"]


@dataclass(frozen=True)
class PulseResponseParams(CampaignParams):
    """Pulse-train protocol (V, s) on top of the common campaign parameters.

    Fields left ``None`` take the defaults of the chip's technology when the campaign runs
    (:data:`~calib.campaigns.technology.PULSE_RESPONSE_DEFAULTS`: ECRAM gets 3 V / 10 ms
    pulses and 2 cycles of 400 + 400, ReRAM 1.2 V / 1 µs and 3 cycles of 200 + 200);
    ``amplitude_down_v`` defaults to ``-amplitude_up_v``. :meth:`for_technology` resolves
    them without a chip.
    """

    n_up: int | None = None
    n_down: int | None = None
    cycles: int | None = None
    read_every: int = 1
    amplitude_up_v: float | None = None
    amplitude_down_v: float | None = None
    width_s: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.amplitude_up_v is not None and self.amplitude_up_v <= 0) or (
            self.amplitude_down_v is not None and self.amplitude_down_v >= 0
        ):
            raise CalibError("amplitude_up_v must be > 0 and amplitude_down_v < 0")
        if self.is_resolved():
            try:
                self.train()
            except ValueError as exc:
                raise CalibError(f"pulse-response parameters: {exc}") from None

    @classmethod
    def for_technology(cls, technology: str | None, **fields: Any) -> PulseResponseParams:
        """Parameters with the defaults of ``technology`` (``reram``, ``ecram``, ``pcm``)."""
        return cls(**fields).resolved(technology)

    def is_resolved(self) -> bool:
        """True when no pulse setting is left to the technology."""
        return None not in (self.n_up, self.n_down, self.cycles, self.amplitude_up_v, self.width_s)

    def resolved(self, technology: str | None) -> PulseResponseParams:
        """A copy with every ``None`` field set from ``technology``'s defaults."""
        d = PULSE_RESPONSE_DEFAULTS[known_technology(technology, "pulse-response")]
        up_v = d.amplitude_v if self.amplitude_up_v is None else self.amplitude_up_v
        return dataclasses.replace(
            self,
            n_up=d.n_up if self.n_up is None else self.n_up,
            n_down=d.n_down if self.n_down is None else self.n_down,
            cycles=d.cycles if self.cycles is None else self.cycles,
            amplitude_up_v=up_v,
            amplitude_down_v=-up_v if self.amplitude_down_v is None else self.amplitude_down_v,
            width_s=d.width_s if self.width_s is None else self.width_s,
        )

    def train(self) -> PulseTrainSpec:
        if not self.is_resolved():
            raise CalibError(
                "pulse-response parameters are not resolved: use "
                "PulseResponseParams.for_technology(...) or .resolved(technology)"
            )
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
