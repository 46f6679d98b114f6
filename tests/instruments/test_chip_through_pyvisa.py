"""The emulated chip driven only through PyVISA (the lab code path)."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from instruments.chip import (
    BlockSelection,
    DeviceSelection,
    ListSelection,
    PulseSpec,
    PulseTrainSpec,
    pulse_sequence,
)
from instruments.drivers.base import SafeOperatingAreaError
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.visa_transport import InstrumentError, VisaTransport


def _host_port(resource: str) -> tuple[str, int]:
    parts = resource.split("::")
    return parts[1], int(parts[2])


def test_identity_configuration_and_reads(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        assert chip.identity().startswith("EMU,AIMC-XBAR-RERAM")
        assert chip.shape == (32, 32)
        g = chip.read_conductance(BlockSelection(2, 3, 4, 5), v_read=0.2)
        assert g.shape == (20,)
        assert np.all((g > 5e-6) & (g < 200e-6))  # conductances in siemens


def test_pulse_train_shape_and_direction(emulator_resource: str) -> None:
    spec = PulseTrainSpec(50, PulseSpec(1.2, 1e-6), 50, PulseSpec(-1.2, 1e-6), cycles=2)
    with ScpiCrossbarChip(emulator_resource) as chip:
        g = chip.pulse_train_with_reads(BlockSelection(0, 0, 4, 8), spec, 0.2)
    assert g.shape == (spec.n_reads, 32)
    seq = pulse_sequence(spec)
    assert seq[0] == 0 and seq.size == spec.n_reads
    # median over devices: up branches raise, down branches lower the conductance
    med = np.median(g, axis=1)
    assert med[50] > med[0] and med[100] < med[50]


def test_list_selection_block_roundtrip_and_fallback_match(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        idx = np.array([5, 900, 17, 1023])
        g = chip.read_conductance(ListSelection.of(idx), 0.2, n_avg=4)
        assert g.shape == (4,)
        with pytest.raises(ValueError, match="outside"):
            chip.read_conductance(ListSelection.of([1024]), 0.2)


def test_unknown_command_queues_error_and_state_is_unchanged(emulator_resource: str) -> None:
    t = VisaTransport(emulator_resource)
    try:
        t.write("SOUR:PULS:AMPL 1.0")
        t.write("SOUR:PULS:AMPL 99")  # outside the safe operating area
        t.write("SOUR:PULS:AMPL nan")
        t.write("BOGUS:HEADER 3")
        errors = t.errors()
        assert [e.split(",")[0] for e in errors] == ["-222", "-222", "-113"]
        assert float(t.query("SOUR:PULS:AMPL?")) == 1.0
    finally:
        t.close()


def test_commands_outside_safe_area_never_apply(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        sel = DeviceSelection(1, 1)
        before = chip.read_conductance(sel, 0.2, n_avg=64)
        # the driver refuses first, with the chip's own limits (SYST:CONF? safe_operating_area)
        with pytest.raises(SafeOperatingAreaError, match=r"9 V exceeds.*<= 5 V.*nothing"):
            chip.apply_pulses(sel, PulseSpec(9.0, 1e-6), n=100)
        with pytest.raises(SafeOperatingAreaError, match=r"3 V exceeds.*<= 0.5 V"):
            chip.read_conductance(sel, v_read=3.0)
        with pytest.raises(SafeOperatingAreaError, match="width"):
            chip.pulse_train_with_reads(
                sel, PulseTrainSpec(1, PulseSpec(1.0, 2.0), 1, PulseSpec(-1.0, 1e-6)), 0.2
            )
        # and the chip refuses the same commands sent past the driver
        with pytest.raises(InstrumentError, match="-222"):
            chip.transport.command("PULS:APPL 100,9.0,1e-06")
        with pytest.raises(InstrumentError, match="-222"):
            chip.transport.command("SENS:VOLT 3.0")
        chip.invalidate_cache()
        after = chip.read_conductance(sel, 0.2, n_avg=64)
        # 64-read averages: noise std 0.25 uS / 8; a real pulse train would move >> 1 uS
        assert abs(after[0] - before[0]) < 0.2e-6


def test_virtual_clock_advances_without_waiting(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        t0 = chip.clock.now()
        wall = time.perf_counter()
        chip.clock.advance(1e5)
        assert chip.clock.now() - t0 == pytest.approx(1e5, rel=1e-9)
        assert time.perf_counter() - wall < 1.0


def test_server_survives_garbage_truncated_blocks_and_disconnects(emulator_resource: str) -> None:
    host, port = _host_port(emulator_resource)
    for junk in (b"\x00\xff\xfe garbage\n", b"ROUT:SEL:LIST #9000001000\x01\x02", b"#\n;;;\n"):
        with socket.create_connection((host, port)) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)  # then end the connection mid-message
            # the error queue is the instrument's, shared by its clients: wait until the
            # server has handled the junk and closed its side, else under load the next
            # client's *CLS ran first and met the junk's -102 on its own command (CI run of
            # 2026-12-07 01:47 UTC)
            s.settimeout(10.0)
            while s.recv(4096):
                pass
    with ScpiCrossbarChip(emulator_resource) as chip:  # a second client after the bad ones
        assert chip.read_conductance(DeviceSelection(0, 0), 0.2).shape == (1,)


def test_wrong_block_length_is_a_block_error(emulator_resource: str) -> None:
    t = VisaTransport(emulator_resource)
    try:
        t._inst.write_raw(b"ROUT:SEL:LIST #13\x01\x02\x03\n")  # 3 bytes: not whole int32s
        assert t.errors()[0].startswith("-161")
    finally:
        t.close()


def test_closed_port_gives_one_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InstrumentError, match=f"127.0.0.1::{port}"):
        ScpiCrossbarChip(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout_s=1.0)


def test_ground_truth_is_available_only_through_emu_commands(emulator_resource: str) -> None:
    with ScpiCrossbarChip(emulator_resource) as chip:
        truth = chip.ground_truth()
        assert truth["device"]["model"] == "soft-bounds"
        assert chip.ground_truth_array("delta_up").shape == (1024,)
