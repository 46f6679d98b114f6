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

from fitting import fit_pulse_response
from tests.identical_devices import identical_devices

N_DEVICES = 512


@pytest.mark.parametrize("family", ["constant-step", "linear-step"])
def test_step_errors_match_their_spread_over_identical_devices(family: str) -> None:
    traces = identical_devices(family, N_DEVICES, seed=3, up_down=0.1)
    fit = fit_pulse_response(traces, model=family, n_boot=0, predictive_check=False)
    for name in ("delta_up", "delta_down"):
        est, se = fit.per_device[name], fit.per_device[f"{name}_se"]
        ok = np.isfinite(est) & np.isfinite(se)
        assert ok.sum() > 0.9 * N_DEVICES
        assert np.all(se[ok] > 0)
        # ~500 devices estimate an SD to ±3 %; within 15 % either way
        ratio = float(np.sqrt(np.mean(se[ok] ** 2)) / np.std(est[ok]))
        assert 0.85 < ratio < 1.15, (name, ratio)
