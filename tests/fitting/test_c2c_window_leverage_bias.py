"""Soft-bounds c2c noise (dw_min_std) is not biased low by the windows' leverage (issue 14).

Windows of m pulses (fitting.noise) take out the per-device fit's leverage as p·v̄ per
window, exact only where the leverage is spread evenly. On soft-bounds the large early steps
carry both the c2c noise and most of the leverage, the fit absorbs more and every window
length came out low (emulated chips, 100-pulse sweeps, σ_c/σ_c true: single pairs 0.99, 4-pulse
windows 0.985, 8: 0.967, 16: 0.953), the longer the lower; the window with the smallest
*variance* was chosen, so dw_min_std coverage fell to 76 %. The choice then counted the
leverage's bias (Q·σ_c²)² in each candidate's error, and single pairs were still 1-2 % low:
Q = p·v̄ is 2.2 times too small there. The leverage is now the fit's own
(``fitting/leverage.py``: Σ H_kk·v_k for pairs, its window form for windows).

Truth from outside the fitter: the emulator's physics (instruments/emulator/physics.py,
aihwkit's SoftBoundsDevice step with multiplicative c2c noise) with a known dw_min_std.
"""

from __future__ import annotations

import numpy as np

from fitting import PulseTraces, fit_pulse_response
from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
from instruments.emulator.physics import PulsedDeviceArray, chip_truth

C2C = 0.3


def _c2c_ratio(seed: int) -> float:
    truth = chip_truth(
        "reram",
        response="soft-bounds",
        dw_min=1e-6,
        up_down=0.05,
        w_max=34e-6,
        w_min=-34e-6,
        dw_min_dtod=0.2,
        up_down_dtod=0.03,
        w_max_dtod=0.08,
        w_min_dtod=0.08,
        dw_min_std=C2C,
        read_noise_s=0.5e-6,  # read noise above one step's c2c noise (0.3 µS): windows pay
    )
    n = 1024
    spec = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), cycles=2)
    array = PulsedDeviceArray(truth, (16, n // 16), seed)
    g = array.pulse_train(np.arange(n), 100, 100, 2, 1, (1.2, 1e-6), (-1.2, 1e-6))
    fit = fit_pulse_response(
        PulseTraces(g.T, pulse_sequence(spec)), model="soft-bounds", predictive_check=False
    )
    return float(fit.parameters["dw_min_std"]) / C2C


def test_soft_bounds_c2c_noise_is_not_pulled_low_by_window_leverage() -> None:
    # 8 chips of 1024 devices: bootstrap SE of one chip's ratio 0.013-0.023, of the mean
    # ≈ 0.006. Measured: 0.944 with the window chosen by variance alone, 0.974 with the
    # bias (p·v̄·σ_c²)² charged in the choice (2d29c87), 1.002 with the fit's exact
    # leverage (fitting/leverage.py; single pairs 1.002, windows of 4, 8, 16, 32 pulses
    # 0.994, 0.987, 0.981, 1.003). ± 0.02 is about 3 SE: the older estimators miss it.
    ratios = [_c2c_ratio(seed) for seed in range(8)]
    assert 0.98 < np.mean(ratios) < 1.02, ratios
