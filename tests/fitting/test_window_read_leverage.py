"""The c2c noise from long windows is not inflated by the fitted steps' read-noise error.

At read noise well above a step's c2c noise, σ_c comes from windows of up to 32 pulses
(``fitting.noise``). A window compares m pulses of the fitted map with the reads, so it also
carries m pulses of the fitted parameters' error from read noise, about m² times a pulse's,
which grew with the window length: on 512 identical emulated constant-step devices at read
noise 2.2 steps and c2c 0.3, σ_c came out 0.27 from 4-pulse windows and 0.38 from 32-pulse
ones, and dw_min_std 0.320-0.367 on seeds 1-3. The windows' read leverage
(``fitting.leverage``) takes it out: the window lengths agree (0.28-0.30) and dw_min_std is
0.295-0.324.
"""

from __future__ import annotations

from fitting import fit_pulse_response
from tests.identical_devices import identical_devices


def test_c2c_of_constant_steps_at_high_read_noise() -> None:
    traces = identical_devices("constant-step", 512, seed=2, read_noise_s=2e-6)
    fit = fit_pulse_response(traces, model="constant-step", n_boot=0, predictive_check=False)
    # seeds 1-3: 0.295, 0.324, 0.303 (0.320, 0.367, 0.350 without the read leverage)
    assert abs(fit.estimates["dw_min_std"].value / 0.3 - 1.0) < 0.1
