"""The emulated AIMC chip: SCPI engine, hidden device physics and loopback server."""

from instruments.emulator.crossbar import EmulatedCrossbar, SafeOperatingArea
from instruments.emulator.server import EmulatorServer, running_emulator

__all__ = ["EmulatedCrossbar", "EmulatorServer", "SafeOperatingArea", "running_emulator"]
