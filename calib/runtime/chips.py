"""Connect to a chip from its resource string: the one place that knows the resource forms.

* ``None``: start the embedded emulated chip (``kind``, ``seed``, ``shape``) on a free
  loopback port for the duration of the block;
* ``bench:PATH.json``: a bench of instruments (SMU, pulse generator, switch matrix)
  described by that file (``calib/docs/BENCH.md``), real or virtual (``calib bench serve``);
* anything else: a VISA resource of an instrument speaking the chip command set
  (``ScpiCrossbarChip``).

Drivers and the emulator load when a chip is opened, not when this module is imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from calib.errors import CalibError

if TYPE_CHECKING:
    from instruments.chip import ChipInterface

__all__ = ["BENCH_PREFIX", "chip_resource", "connect", "open_chip"]

BENCH_PREFIX = "bench:"


def connect(resource: str) -> ChipInterface:
    """A connected driver for ``resource`` (``bench:FILE`` or a VISA resource); caller closes.

    A bench description that cannot be used raises :class:`CalibError` naming the problem.
    """
    if resource.startswith(BENCH_PREFIX):
        from instruments.emulator.bench.client import open_virtual_bench

        try:  # a real bench, or the virtual one (calib bench serve) on its virtual clock
            return open_virtual_bench(resource[len(BENCH_PREFIX) :])
        except ValueError as exc:
            raise CalibError(str(exc)) from None
    from instruments.drivers.scpi_crossbar import ScpiCrossbarChip

    return ScpiCrossbarChip(resource)


@contextlib.contextmanager
def chip_resource(
    resource: str | None,
    kind: str = "reram",
    seed: int = 0,
    shape: tuple[int, int] | None = None,
    truth: object | None = None,
) -> Iterator[str]:
    """``resource``, or that of an embedded emulated ``kind`` chip started for the block.

    ``seed``, ``shape`` (default: the emulator's) and ``truth`` (hidden parameters replacing
    the kind's defaults) configure the embedded chip only.
    """
    if resource is not None:
        yield resource
        return
    from instruments.emulator.server import running_emulator

    options = {} if shape is None else {"shape": shape}
    with running_emulator(kind, seed=seed, truth=truth, **options) as embedded:
        yield embedded


@contextlib.contextmanager
def open_chip(
    resource: str | None,
    kind: str = "reram",
    seed: int = 0,
    shape: tuple[int, int] | None = None,
    truth: object | None = None,
) -> Iterator[ChipInterface]:
    """Connect to ``resource`` (see :func:`chip_resource` for ``None``); closed on exit."""
    with chip_resource(resource, kind, seed, shape, truth) as res, connect(res) as chip:
        yield chip
