"""Client side of the virtual bench: its clock and noise seeding through ``EMU:`` commands.

A real bench runs on the wall clock; the virtual bench's instruments share a virtual
clock, which :class:`EmulatorBenchClock` reads and advances through the switch matrix's
emulator-only ``EMU:CLOC:*`` commands, so drift experiments take no wall time.
:class:`VirtualBenchChip` is a :class:`~instruments.bench_chip.BenchChip` with that clock
and with ``seed_noise`` (``EMU:NOIS:SEED``), which lets campaigns resume reproducibly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from instruments.bench_chip import BenchChip, bench_is_virtual, open_bench
from instruments.visa_transport import InstrumentError

__all__ = ["EmulatorBenchClock", "VirtualBenchChip", "open_virtual_bench"]


class EmulatorBenchClock:
    """The virtual bench's clock, reached through any of its SCPI instruments."""

    virtual = True

    def __init__(self, instrument) -> None:
        self._inst = instrument

    def now(self) -> float:
        reply = self._inst.query("EMU:CLOC:TIME?")
        try:
            return float(reply)
        except ValueError:
            raise InstrumentError(
                self._inst.resource, "EMU:CLOC:TIME?", f"reply {reply!r}"
            ) from None

    def advance(self, dt_s: float) -> None:
        if dt_s > 0:
            command = f"EMU:CLOC:ADV {float(dt_s)!r}"
            self._inst.write(command)
            self._inst.check_errors(command)


class VirtualBenchChip(BenchChip):
    """A bench chip on the virtual bench: virtual clock, reseedable noise, hidden truth."""

    virtual = True
    capabilities = frozenset({"seed_noise", "ground_truth", "ground_truth_array"})

    def __init__(self, smu, pulser, switch, routing, **kwargs) -> None:
        kwargs.setdefault("clock", EmulatorBenchClock(switch))
        super().__init__(smu, pulser, switch, routing, **kwargs)

    def seed_noise(self, seed: int) -> None:
        """Restart the bench's noise stream (read, cycle-to-cycle, programming noise)."""
        command = f"EMU:NOIS:SEED {int(seed)}"
        self.switch.write(command)
        self.switch.check_errors(command)

    def ground_truth(self) -> dict:
        """The hidden truth of the device array, as a preset document."""
        return json.loads(self.switch.query("EMU:TRUT?"))

    def ground_truth_array(self, name: str) -> np.ndarray:
        """A per-device truth array (flat device order), e.g. ``"delta_up"`` or ``"nu"``."""
        data = self.switch.transport.query_block(f"EMU:GTRU? {name}", "<f8")
        if data.size != self.shape[0] * self.shape[1]:
            raise InstrumentError(self.switch.resource, "EMU:GTRU?", "wrong size")
        return data.copy()


def open_virtual_bench(description: str | Path | dict, **kwargs) -> BenchChip:
    """:func:`~instruments.bench_chip.open_bench` for any bench, virtual ones on their clock."""
    chip_class = VirtualBenchChip if bench_is_virtual(description) else BenchChip
    return open_bench(description, chip_class=chip_class, **kwargs)
