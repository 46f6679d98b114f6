"""Linear-step γ spreads on aihwkit's traces with one device whose γ is undetermined.

aihwkit 1.2.0's LinearStepDevice, γ⁺ 0.5, γ⁻ 0.2, gamma_*_dtod at their default 0.05 (absolute,
``fixtures/aihwkit/ls_gamma_mid_undetermined_device.json``), 128 devices, 2 x 200 pulses: one
device's γ⁺ came out 42 ± 26 (γ⁻ −3.5 ± 7.1). Pooled with equal weights it made γ⁺_dtod
2.86 ± 1.4 and γ⁻_dtod 0 ± 0.53; the preset re-simulated the mean trace 21 % off the
measured one (aihwkit's own redraws of the true device: 2.0-2.4 %). Criteria: the issue's
0.05 on a spread (stated for dw_min_dtod) and the case's mean-trace limit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aihwkit_checks import FIXTURES, limits, load_truth, resimulate, trace_errors


def test_gamma_spreads_survive_an_undetermined_device(tmp_path: Path) -> None:
    from calib.fit.pulse_response import fit_pulse_response_file, load_pulse_traces
    from calib.presets import load_preset

    case = "ls_gamma_mid_undetermined_device"
    truth = load_truth(case)
    out, fit = fit_pulse_response_file(
        FIXTURES / f"{case}.h5", tmp_path / "preset.json", model="linear-step", units="normalized"
    )
    for d in ("up", "down"):
        true = truth["aihwkit_fields"][f"gamma_{d}_dtod"]
        assert fit.parameters[f"gamma_{d}_dtod"] == pytest.approx(true, abs=0.05)
    traces, _ = load_pulse_traces(FIXTURES / f"{case}.h5")
    g = np.asarray(traces.conductance_s, dtype=float)
    sim = resimulate(load_preset(out), g, np.asarray(traces.pulses), seed=0)
    mean_error, _ = trace_errors(sim, g)
    assert mean_error <= limits(truth)[0]
