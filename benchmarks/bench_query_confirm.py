"""Cost of confirming every query with ``*OPC?`` (failed queries reported at once).

A/B in one session, interleaved (the order alternating every round) so that machine load
hits both sides alike:

- text queries: ``SOUR:PULS:AMPL?`` read as is (the old path) vs ``query`` (sent as
  ``SOUR:PULS:AMPL?;*OPC?``, reply ``1.2;1``), round trips per second;
- 4 MB blocks: ``FETC:COND? 0,16`` (16 x 65,536 float32) read by the old block reader
  (header, payload + LF) vs ``query_block`` (payload + ``;1`` LF), MB/s.

Run: ``.venv/bin/python benchmarks/bench_query_confirm.py [--server process|thread]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
from bench_emulator import SHAPE, emulator
from pyvisa import constants

from instruments.chip import BlockSelection, PulseSpec, PulseTrainSpec
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.visa_transport import VisaTransport


def old_block(t: VisaTransport, command: str) -> np.ndarray:
    """The block reader before confirmation: header, then payload + LF."""
    inst = t._inst
    inst.write(command)
    inst.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, constants.VI_FALSE)
    try:
        assert t._read_exact(1) == b"#"
        nd = int(t._read_exact(1))
        n = int(t._read_exact(nd))
        data = t._read_exact(n + 1)
    finally:
        inst.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, constants.VI_TRUE)
    return np.frombuffer(data, dtype="<f4", count=n // 4)


def repeat(query, n: int = 200) -> None:
    """``n`` text round trips of ``query``."""
    for _ in range(n):
        assert query("SOUR:PULS:AMPL?") == "1.2"


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with emulator(args.server, 0) as resource, ScpiCrossbarChip(resource) as chip:
        t = chip.transport
        spec = PulseTrainSpec(8, PulseSpec(1.2, 1e-6), 8, PulseSpec(-1.2, 1e-6), cycles=1)
        chip.pulse_train_with_reads(BlockSelection(0, 0, *SHAPE), spec, 0.2)
        command = "FETC:COND? 0,16"
        assert np.array_equal(old_block(t, command), t.query_block(command))
        text = {"old": [], "confirmed": []}
        block = {"old": [], "confirmed": []}
        sides = {"old": (t.query_unconfirmed, old_block), "confirmed": (t.query, None)}
        for k in range(args.rounds):
            for side in ("old", "confirmed")[:: 1 if k % 2 else -1]:  # alternate the order
                query, reader = sides[side]
                text[side].append(timed(repeat, query))
                if reader is None:
                    block[side].append(timed(t.query_block, command))
                else:
                    block[side].append(timed(reader, t, command))
        mb = 16 * SHAPE[0] * SHAPE[1] * 4 / 1e6
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_avg": os.getloadavg(),
        "server": args.server,
        "text_round_trips_per_s_median": {k: 200 / statistics.median(v) for k, v in text.items()},
        "text_round_trips_per_s_best": {k: 200 / min(v) for k, v in text.items()},
        "block_mb_per_s_median": {k: mb / statistics.median(v) for k, v in block.items()},
        "block_mb_per_s_best": {k: mb / min(v) for k, v in block.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
