"""The crossbar chip driver: declared settings, optional capabilities, the deprecated alias."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from instruments.chip import (
    OPTIONAL_CAPABILITIES,
    ChipInterface,
    DeviceSelection,
    NotSupportedError,
    PulseSpec,
    VirtualClock,
)
from instruments.drivers.base import SettingError
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.visa_transport import InstrumentError


class _CountingTransport:
    """Wraps the chip's transport and counts every message sent."""

    def __init__(self, inner) -> None:
        self.inner, self.sent = inner, []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def write(self, command: str) -> None:
        self.sent.append(command)
        self.inner.write(command)

    def write_block(self, command: str, *args, **kw) -> None:
        self.sent.append(command)
        self.inner.write_block(command, *args, **kw)

    def command(self, command: str) -> None:
        self.sent.append(command)
        self.inner.command(command)


def test_settings_are_declared_parameters_with_units() -> None:
    params = ScpiCrossbarChip.parameters()
    assert params["read_voltage_v"].unit == "V"
    assert params["pulse_period_s"].unit == "s"
    assert params["verify_tolerance_s"].unit == "S"


@pytest.mark.parametrize(
    ("operation", "name"),
    [
        (lambda c: c.read_conductance(DeviceSelection(0, 0), v_read=math.nan), "read_voltage_v"),
        (lambda c: c.read_conductance(DeviceSelection(0, 0), 0.2, n_avg=0), "read_averages"),
        (lambda c: c.apply_pulses(DeviceSelection(0, 0), PulseSpec(1.0, 1e-6, -1.0)), "period"),
        (
            lambda c: c.program_verify(
                DeviceSelection(0, 0), 50e-6, math.inf, 5, 0.2, PulseSpec(1.2, 1e-6)
            ),
            "verify_tolerance_s",
        ),
    ],
)
def test_bad_settings_raise_before_anything_is_sent(emulator_resource: str, operation, name):
    with ScpiCrossbarChip(emulator_resource) as chip:
        chip.read_conductance(DeviceSelection(0, 0), 0.2)  # selection already active
        chip.transport = counting = _CountingTransport(chip.transport)
        with pytest.raises(SettingError, match=name.split("_")[0]):
            operation(chip)
        assert counting.sent == []


def test_settings_are_cached_after_the_chip_accepts_them(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        chip.read_conductance(DeviceSelection(1, 1), 0.25, n_avg=3)
        assert chip.read_voltage_v.cached == pytest.approx(0.25)
        assert chip.read_averages.cached == 3
        assert chip.read_voltage_v.get() == pytest.approx(0.25)  # what the chip holds


def test_the_chip_declares_its_optional_capabilities(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        assert chip.capabilities == OPTIONAL_CAPABILITIES
        assert all(chip.supports(c) for c in OPTIONAL_CAPABILITIES)
        assert chip.technology == "reram"


class _MinimalChip(ChipInterface):
    shape = (2, 2)

    def __init__(self) -> None:
        self.clock = VirtualClock()

    def identity(self) -> str:
        return "TEST,MINIMAL"

    def read_conductance(self, sel, v_read: float, n_avg: int = 1) -> np.ndarray:
        return np.zeros(sel.indices(self.shape).size)

    def apply_pulses(self, sel, pulse: PulseSpec, n: int = 1) -> None:
        pass


def test_unsupported_optional_operation_raises_one_line_not_supported() -> None:
    chip = _MinimalChip()
    assert not chip.supports("seed_noise")
    with pytest.raises(NotSupportedError, match=r"TEST,MINIMAL\) does not support seed_noise"):
        chip.seed_noise(1)
    with pytest.raises(ValueError, match="unknown chip capability"):
        chip.supports("teleport")


def test_emulated_chip_is_a_deprecated_alias_of_the_driver() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from instruments.emulated_chip import EmulatedChip
    assert EmulatedChip is ScpiCrossbarChip
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


class _OtherInstrument:
    """A transport to an instrument that is not a crossbar chip (records what it is sent)."""

    resource, idn, timeout_s = "TCPIP::10.0.0.5::5025::SOCKET", "KEYSIGHT,B2902A,MY1,1.0", 30.0

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    def write(self, command: str) -> None:
        self.sent.append(command)

    def close(self) -> None:
        self.closed = True


def test_another_instrument_is_refused_by_identity_before_anything_is_sent() -> None:
    transport = _OtherInstrument()
    with pytest.raises(InstrumentError, match=r"B2902A.*is not a crossbar chip") as info:
        ScpiCrossbarChip(transport)
    assert "\n" not in str(info.value)
    assert transport.sent == [] and transport.closed
