"""The GMM per-device fit's errors against the spread of its estimates over identical devices.

Every device-to-device spread 0: the spread of the per-device steps over the devices is the
estimator's own error, which their reported standard errors must match. The moments' lag-1
products summed pair by pair (Newey-West) had given errors 20-25 % too small (z-scores of
constant-step steps with SD 1.2-1.3 on the coverage benchmark's chips) and some devices
errors near 0.
"""

from __future__ import annotations

import numpy as np
import pytest

from fitting import PulseTraces, fit_pulse_response
from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
from instruments.emulator.physics import PulsedDeviceArray, chip_truth

N_DEVICES = 512


@pytest.mark.parametrize("family", ["constant-step", "linear-step"])
def test_step_errors_match_their_spread_over_identical_devices(family: str) -> None:
    truth = chip_truth(
        "reram",
        response=family,
        dw_min=0.9e-6,
        up_down=0.1,
        w_max=34e-6,
        w_min=-34e-6,
        dw_min_dtod=0.0,
        up_down_dtod=0.0,
        w_max_dtod=0.0,
        w_min_dtod=0.0,
        gamma_up_dtod=0.0,
        gamma_down_dtod=0.0,
        dw_min_std=0.3,
    )
    spec = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), cycles=2)
    array = PulsedDeviceArray(truth, (16, N_DEVICES // 16), 3)
    g = array.pulse_train(np.arange(N_DEVICES), 100, 100, 2, 1, (1.2, 1e-6), (-1.2, 1e-6))
    fit = fit_pulse_response(
        PulseTraces(g.T, pulse_sequence(spec)), model=family, n_boot=0, predictive_check=False
    )
    for name in ("delta_up", "delta_down"):
        est, se = fit.per_device[name], fit.per_device[f"{name}_se"]
        ok = np.isfinite(est) & np.isfinite(se)
        assert ok.sum() > 0.9 * N_DEVICES
        assert np.all(se[ok] > 0)
        # ~500 devices estimate an SD to ±3 %; within 15 % either way
        ratio = float(np.sqrt(np.mean(se[ok] ** 2)) / np.std(est[ok]))
        assert 0.85 < ratio < 1.15, (name, ratio)
