"""Emulated chips whose devices are all the same (every device-to-device spread 0).

The spread of any per-device estimate over such a chip is the estimator's own error, which
its reported standard error must match.
"""

from __future__ import annotations

import numpy as np

from fitting.traces import PulseTraces
from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
from instruments.emulator.physics import PulsedDeviceArray, chip_truth

NO_SPREAD = dict.fromkeys(
    (
        "dw_min_dtod",
        "up_down_dtod",
        "w_max_dtod",
        "w_min_dtod",
        "gamma_up_dtod",
        "gamma_down_dtod",
    ),
    0.0,
)


def identical_devices(
    family: str, n: int, seed: int = 1, *, alive_only: bool = False, **overrides: float
) -> PulseTraces:
    """``n`` identical emulated ``family`` devices (dw_min 0.9 µS, bounds ±34 µS, up_down 0,
    dw_min_std 0.3 unless overridden), 2 cycles of 100 up + 100 down pulses (siemens);
    ``alive_only``: without the devices the emulator drew stuck."""
    truth = {
        "response": family,
        "dw_min": 0.9e-6,
        "up_down": 0.0,
        "w_max": 34e-6,
        "w_min": -34e-6,
        "dw_min_std": 0.3,
        **NO_SPREAD,
        **overrides,
    }
    spec = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), cycles=2)
    array = PulsedDeviceArray(chip_truth("reram", **truth), (16, n // 16), seed)
    g = array.pulse_train(np.arange(n), 100, 100, 2, 1, (1.2, 1e-6), (-1.2, 1e-6)).T
    if alive_only:
        g = g[array.per_device_truth()["stuck"] == 0]
    return PulseTraces(g, pulse_sequence(spec))
