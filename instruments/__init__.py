"""Instrument drivers, the chip interface and the emulated chip (PyVISA; no fitting/calib)."""

from instruments.chip import (
    BlockSelection,
    ChipInterface,
    DeviceSelection,
    ListSelection,
    ProgramResult,
    PulseSpec,
    PulseTrainSpec,
    pulse_sequence,
)
from instruments.visa_transport import InstrumentError

__all__ = [
    "BlockSelection",
    "ChipInterface",
    "DeviceSelection",
    "InstrumentError",
    "ListSelection",
    "ProgramResult",
    "PulseSpec",
    "PulseTrainSpec",
    "pulse_sequence",
]
