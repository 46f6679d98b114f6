"""PyVISA driver for the emulated crossbar chip: :class:`ChipInterface` over SCPI.

Each operation is one or a few round trips regardless of the number of devices: the
selection is sent once (a block of int32 indices for arbitrary lists), sequences run on
the chip, and results come back as binary blocks.
"""

from __future__ import annotations

import json

import numpy as np

from instruments.chip import (
    BlockSelection,
    ChipInterface,
    DeviceSelection,
    ListSelection,
    PulseSpec,
    PulseTrainSpec,
    Selection,
)
from instruments.visa_transport import InstrumentError, VisaTransport

__all__ = ["EmulatedChip", "ScpiClock"]


class ScpiClock:
    """The chip's own clock (``SYST:CLOC:*``); virtual unless the chip runs in real mode."""

    def __init__(self, transport: VisaTransport) -> None:
        self._t = transport
        self.virtual = transport.query("SYST:CLOC:MODE?").upper().startswith("VIRT")

    def now(self) -> float:
        return float(self._t.query("SYST:CLOC:TIME?"))

    def advance(self, dt_s: float) -> None:
        if dt_s > 0:
            self._t.command(f"SYST:CLOC:ADV {dt_s!r}")


class EmulatedChip(ChipInterface):
    """Driver for ``EMU,AIMC-XBAR-*`` instruments (our emulator, or firmware speaking its set)."""

    def __init__(self, resource: str, timeout_s: float = 30.0) -> None:
        self.transport = VisaTransport(resource, timeout_s=timeout_s)
        t = self.transport
        if not t.idn.startswith("EMU,AIMC-XBAR"):
            t.close()
            raise InstrumentError(resource, "*IDN?", f"not an AIMC crossbar: {t.idn!r}")
        t.write("*CLS")
        conf = json.loads(t.query("SYST:CONF?"))
        self.shape = (int(conf["rows"]), int(conf["cols"]))
        self.technology = conf["technology"]
        self.configuration = conf
        t.command("FORM:DATA REAL,32")
        self.clock = ScpiClock(t)
        self._selection_key: object = None

    # ------------------------------------------------------------------ metadata
    def identity(self) -> str:
        return self.transport.idn

    def snapshot(self) -> dict:
        return {
            "idn": self.identity(),
            "resource": self.transport.resource,
            "shape": list(self.shape),
            "configuration": self.configuration,
        }

    def close(self) -> None:
        self.transport.close()

    # ------------------------------------------------------------------ selection
    def _select(self, sel: Selection) -> int:
        """Send the selection unless it is already active; returns its size."""
        idx = sel.indices(self.shape)  # validates on the host first
        if sel == self._selection_key:
            return idx.size
        t = self.transport
        if isinstance(sel, DeviceSelection):
            t.command(f"ROUT:SEL:DEV {sel.row},{sel.col}")
        elif isinstance(sel, BlockSelection):
            t.command(f"ROUT:SEL:BLOC {sel.row0},{sel.col0},{sel.n_rows},{sel.n_cols}")
        elif isinstance(sel, ListSelection):
            t.write_block("ROUT:SEL:LIST", idx.astype("<i4"), "<i4")
            t.check_errors("ROUT:SEL:LIST")
        else:  # pragma: no cover - Selection is a closed union
            raise TypeError(f"unsupported selection {sel!r}")
        self._selection_key = sel
        return idx.size

    def _set_read_voltage(self, v_read: float) -> None:
        self.transport.command(f"SENS:VOLT {v_read!r}")

    def _fetch(self, command: str, shape: tuple[int, ...]) -> np.ndarray:
        data = self.transport.query_block(command)
        expected = int(np.prod(shape))
        if data.size != expected:
            raise InstrumentError(
                self.transport.resource, command, f"expected {expected} values, got {data.size}"
            )
        return data.reshape(shape)

    # ------------------------------------------------------------------ primitives
    def read_conductance(self, sel: Selection, v_read: float, n_avg: int = 1) -> np.ndarray:
        n = self._select(sel)
        self._set_read_voltage(v_read)
        self.transport.command(f"SENS:AVER {int(n_avg)}")
        return self._fetch("MEAS:COND?", (n,))

    def apply_pulses(self, sel: Selection, pulse: PulseSpec, n: int = 1) -> None:
        self._select(sel)
        self.transport.command(f"PULS:APPL {int(n)},{pulse.amplitude_v!r},{pulse.width_s!r}")

    # ------------------------------------------------------------------ batched
    def repeated_reads(self, sel: Selection, n: int, v_read: float) -> np.ndarray:
        size = self._select(sel)
        self._set_read_voltage(v_read)
        return self._fetch(f"MEAS:COND:REP? {int(n)}", (n, size))

    def pulse_train_with_reads(
        self, sel: Selection, spec: PulseTrainSpec, v_read: float
    ) -> np.ndarray:
        if abs(spec.up.width_s - spec.down.width_s) > 0:
            return super().pulse_train_with_reads(sel, spec, v_read)
        n = self._select(sel)
        self._set_read_voltage(v_read)
        t = self.transport
        t.command(
            f"SEQ:PTR:DEF {spec.n_up},{spec.up.amplitude_v!r},{spec.n_down},"
            f"{spec.down.amplitude_v!r},{spec.up.width_s!r},{spec.cycles},{spec.read_every}"
        )
        with t.timeout(max(t.timeout_s, 600.0)):
            t.command("SEQ:INIT")
            return self._fetch("FETC:COND?", (spec.n_reads, n))

    # ------------------------------------------------------------------ emulator-only
    def ground_truth(self) -> dict:
        """The emulator's hidden truth as a preset document (``EMU:TRUTH?``)."""
        return json.loads(self.transport.query("EMU:TRUTH?"))

    def ground_truth_array(self, name: str) -> np.ndarray:
        """A per-device ground-truth array (flat device order), e.g. ``"delta_up"``."""
        n = self.shape[0] * self.shape[1]
        data = self.transport.query_block(f"EMU:GTRU? {name}", "<f8")
        if data.size != n:
            raise InstrumentError(self.transport.resource, "EMU:GTRU?", "wrong size")
        return data
