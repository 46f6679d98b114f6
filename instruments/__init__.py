"""Instrument drivers, the chip interface and the emulated chip (PyVISA; no fitting/calib)."""

from instruments.chip import (
    BlockSelection,
    ChipInterface,
    Clock,
    DeviceSelection,
    ListSelection,
    ProgramResult,
    PulseSpec,
    PulseTrainSpec,
    RealClock,
    Selection,
    VirtualClock,
    pulse_sequence,
)
from instruments.visa_transport import InstrumentError

__all__ = [
    "BlockSelection",
    "ChipInterface",
    "Clock",
    "DeviceSelection",
    "InstrumentError",
    "ListSelection",
    "ProgramResult",
    "PulseSpec",
    "PulseTrainSpec",
    "RealClock",
    "Selection",
    "VirtualClock",
    "pulse_sequence",
]
