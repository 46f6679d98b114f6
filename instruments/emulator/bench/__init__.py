"""The virtual bench: B2900 and 2600B SMUs, a 33500B pulse generator and an E5250A switch.

Each virtual instrument speaks its real instrument's command subset on its own loopback
port, and all of them act on one emulated device array and one virtual clock, so that
:class:`~instruments.bench_chip.BenchChip` runs the real drivers end to end through PyVISA.
"""

from instruments.emulator.bench.bench import BenchResources, VirtualBench, running_bench

__all__ = ["BenchResources", "VirtualBench", "running_bench"]
