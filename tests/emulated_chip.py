"""An emulated ReRAM chip of one pulsed family, measured with the coverage benchmark's protocol.

2 cycles x (100 up + 100 down) pulses of ±1.2 V / 1 µs, as ``benchmarks/bench_coverage.py``,
so a chip found there can be rebuilt in a test from its fields.
"""

from __future__ import annotations

import numpy as np

from fitting import PulseResponseFit, PulseTraces, fit_pulse_response
from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
from instruments.emulator.physics import PulsedDeviceArray, PulsedTruth, chip_truth


def fit_emulated_chip(
    fields: dict, n_devices: int, seed: int
) -> tuple[PulsedTruth, PulsedDeviceArray, PulseResponseFit]:
    """Truth, device array and fit (its own family, no predictive check) of ``n_devices``
    (a multiple of 16) emulated devices with ``fields`` (``chip_truth`` keywords, siemens)."""
    truth = chip_truth("reram", **fields)
    spec = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), cycles=2)
    array = PulsedDeviceArray(truth, (16, n_devices // 16), seed)
    g = array.pulse_train(np.arange(n_devices), 100, 100, 2, 1, (1.2, 1e-6), (-1.2, 1e-6))
    fit = fit_pulse_response(
        PulseTraces(g.T, pulse_sequence(spec)), model=fields["response"], predictive_check=False
    )
    return truth, array, fit
