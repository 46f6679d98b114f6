"""Per-operation cost of the crossbar chip driver (small operations, where driver code shows).

1. Round trips: pairs of ``read_conductance`` (one device) + ``apply_pulses`` (a 4x4 block)
   against an emulator in a thread of this process, pairs/s (median of ``--rounds``).
2. Driver CPU: the same pair against a transport that answers at once without I/O, µs of
   Python per pair (validation, command rendering, parameter cache): what the driver adds
   on top of the instrument's round trips, independent of the machine's load.

``--driver FILE:CLASS`` loads another driver class (e.g. an old checkout's
``instruments/emulated_chip.py:EmulatedChip``) and interleaves it with the current
``ScpiCrossbarChip`` round by round, so both see the same load.

Run: ``.venv/bin/python benchmarks/bench_chip_driver.py [--rounds 12] [--driver FILE:CLASS]``
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Iterator

import numpy as np

from instruments.chip import BlockSelection, DeviceSelection, PulseSpec
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator

SEL, BLOCK, PULSE = DeviceSelection(1, 2), BlockSelection(0, 0, 4, 4), PulseSpec(1.0, 1e-6)
CONF = {"rows": 32, "cols": 32, "technology": "reram"}


def pairs_per_second(chip, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        chip.read_conductance(SEL, 0.2)
        chip.apply_pulses(BLOCK, PULSE, 1)
    return n / (time.perf_counter() - t0)


class NullTransport:
    """Answers every query at once (no I/O): isolates the driver's own CPU time."""

    resource, idn, timeout_s, dialect = "NULL::0::SOCKET", "EMU,AIMC-XBAR-RERAM,SN0,bench", 30.0, ""

    def write(self, command: str) -> None:
        pass

    def query(self, command: str) -> str:
        return {"SYST:CONF?": json.dumps(CONF), "SYST:CLOC:MODE?": "VIRT"}.get(command, "0")

    def query_unconfirmed(self, command: str) -> str:
        return '0,"No error"'

    def errors(self) -> list[str]:
        return []

    def check_errors(self, command: str = "") -> None:
        pass

    def command(self, command: str) -> None:
        pass

    def write_block(self, command: str, values, dtype: str = "<f4") -> None:
        pass

    def query_block(self, command: str, dtype: str = "<f4", payload=None) -> np.ndarray:
        return np.zeros(1, dtype=dtype)

    @contextlib.contextmanager
    def timeout(self, seconds: float) -> Iterator[None]:
        yield

    def close(self) -> None:
        pass


def driver_cpu_us(cls, n: int = 20000) -> float:
    """µs of driver Python per read+pulse pair over a transport without I/O."""
    import instruments.visa_transport as vt

    real = vt.VisaTransport
    vt.VisaTransport = lambda *a, **k: NullTransport()  # old drivers open their own
    try:
        module = importlib.import_module(cls.__module__)
        saved = getattr(module, "VisaTransport", None)
        if saved is not None:
            module.VisaTransport = vt.VisaTransport
        try:
            chip = cls("NULL::0::SOCKET")
        finally:
            if saved is not None:
                module.VisaTransport = saved
    finally:
        vt.VisaTransport = real
    chip.read_conductance(SEL, 0.2)
    return 1e6 / pairs_per_second(chip, n)


def load_class(spec: str):
    path, name = spec.rsplit(":", 1)
    module_spec = importlib.util.spec_from_file_location("bench_other_driver", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["bench_other_driver"] = module
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--driver", help="FILE:CLASS of another driver to compare")
    args = parser.parse_args()
    drivers = {"ScpiCrossbarChip": ScpiCrossbarChip}
    if args.driver:
        drivers["other"] = load_class(args.driver)
    rates: dict[str, list[float]] = {name: [] for name in drivers}
    with running_emulator("reram", seed=0, shape=(32, 32)) as resource:
        chips = {name: cls(resource) for name, cls in drivers.items()}
        for r in range(args.rounds):
            order = list(chips) if r % 2 == 0 else list(chips)[::-1]
            for name in order:
                rates[name].append(pairs_per_second(chips[name], args.pairs))
        for chip in chips.values():
            chip.close()
    for name, cls in drivers.items():
        print(
            f"{name}: {statistics.median(rates[name]):.0f} read+pulse pairs/s median over "
            f"{args.rounds} rounds (min {min(rates[name]):.0f}, max {max(rates[name]):.0f}); "
            f"driver CPU {driver_cpu_us(cls):.1f} µs per pair"
        )


if __name__ == "__main__":
    main()
