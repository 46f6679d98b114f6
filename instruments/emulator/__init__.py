"""The emulated AIMC chip: SCPI engine, hidden device physics and loopback server.

``COMMANDS.md`` in this folder lists the command set; ``physics.py`` and ``pcm.py``
document the hidden device models.
"""

from instruments.emulator.crossbar import EmulatedCrossbar, SafeOperatingArea
from instruments.emulator.physics import chip_truth, load_truth_file
from instruments.emulator.server import EmulatorServer, running_emulator

__all__ = [
    "EmulatedCrossbar",
    "EmulatorServer",
    "SafeOperatingArea",
    "chip_truth",
    "load_truth_file",
    "running_emulator",
]
