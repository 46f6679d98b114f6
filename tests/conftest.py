"""Shared fixtures: an in-process emulated chip on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from instruments.emulator.server import running_emulator


@pytest.fixture
def emulator_resource() -> Iterator[str]:
    """VISA resource string of a small emulated ReRAM chip (32x32, seed 11)."""
    with running_emulator("reram", seed=11, shape=(32, 32)) as resource:
        yield resource


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hardware",
        action="append",
        default=[],
        metavar="RESOURCE",
        help="VISA resource of a real bench instrument (repeatable); the hardware tests "
        "(tests/instruments/test_bench_hardware.py) are skipped without it",
    )
