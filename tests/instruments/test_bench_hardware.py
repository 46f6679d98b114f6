"""Hardware tests of the bench drivers: run with ``pytest --hardware RESOURCE`` (repeatable).

Without ``--hardware`` they are skipped. Each resource is identified by ``*IDN?`` and
checked with its driver: bench defaults without errors, a snapshot of every setting, a
harmless setting written and read back. Nothing is sourced: SMU and generator outputs are
switched off first and every relay is opened. The same checks run against the virtual
bench in the default test run, so they are known to work end to end.
"""

from __future__ import annotations

import pytest

from instruments.drivers import DRIVERS, Keithley2600, Keysight33500B, KeysightE5250A
from instruments.drivers.base import Instrument
from instruments.emulator.bench import running_bench
from instruments.visa_transport import InstrumentError, VisaTransport


def driver_for(transport: VisaTransport) -> Instrument:
    """The driver whose model list matches the instrument's identity."""
    for cls in DRIVERS.values():
        if any(model in transport.idn for model in cls.models):
            return cls(transport)
    raise InstrumentError(transport.resource, "*IDN?", f"no driver for {transport.idn!r}")


def check_instrument(resource: str) -> dict:
    """Identity, safe defaults, a snapshot and a harmless round trip; returns the snapshot."""
    with VisaTransport(resource, timeout_s=10) as transport:
        inst = driver_for(transport)
        if isinstance(inst, KeysightE5250A):
            inst.prepare()  # single route, break-before-make, every relay open
            assert inst.closed_channels() == []
        else:
            inst.output_off()
            inst.prepare()  # the generator's ends with its idle (0 V) output on
            inst.output_off()
        snapshot = inst.snapshot()
        assert snapshot["idn"] == transport.idn
        assert set(snapshot["settings"]) == set(type(inst).parameters())
        if isinstance(inst, Keysight33500B):
            inst.burst_cycles = 2
            assert inst.burst_cycles.get() == 2
        elif isinstance(inst, KeysightE5250A):
            assert inst.connection_sequence.get() == "break_before_make"
        else:
            inst.source_voltage_v = 0.0  # output is off
            assert inst.source_voltage_v.get() == 0.0
            assert isinstance(inst, Keithley2600) or inst.data_format.get() == "real32"
        inst.check_errors("hardware check")
        return snapshot


@pytest.fixture
def hardware(request: pytest.FixtureRequest) -> list[str]:
    resources = request.config.getoption("--hardware")
    if not resources:
        pytest.skip("no --hardware RESOURCE given")
    return resources


def test_real_instruments_answer_their_drivers(hardware: list[str]) -> None:
    for resource in hardware:
        check_instrument(resource)


def test_the_hardware_checks_pass_on_the_virtual_bench() -> None:
    with running_bench("reram", seed=1, shape=(4, 4)) as res:
        drivers = [check_instrument(resource)["driver"] for resource in res]
    assert drivers == ["KeysightB2900", "Keithley2600", "Keysight33500B", "KeysightE5250A"]
