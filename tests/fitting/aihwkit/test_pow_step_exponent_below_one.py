"""Cycle-to-cycle noise of a pow-step device whose exponent is below 1, on aihwkit's traces.

aihwkit 1.2.0's PowStepDevice with pow_gamma 0.561 (``fixtures/aihwkit/ps_gamma_below_one``,
found by ``benchmarks/aihwkit_conformance.py sweep``): the step Δ·ω^γ has a slope that
diverges at the bounds, so the mean map's contraction a = 1 + step′ of a window that starts
next to a bound ran to ±1e3 per pulse, and the read-noise part σ_na²·Σ(1 + a²) of 32-pulse
windows to 7e95 against Σu² of 3.5. Every window length and the single pairs then gave a
negative σ_c²: dw_min_std 0.000 for 0.3. The linearization of the noise
moments (fitting/noise.py) holds only where a read error is not amplified: windows and
pairs with |a| above MAX_CONTRACTION are left out. Criterion: the issue's 20 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aihwkit_checks import FIXTURES, load_truth


def test_c2c_noise_of_pow_step_with_exponent_below_one(tmp_path: Path) -> None:
    from calib.fit.pulse_response import fit_pulse_response_file

    case = "ps_gamma_below_one"
    _, fit = fit_pulse_response_file(
        FIXTURES / f"{case}.h5", tmp_path / "preset.json", model="pow-step", units="normalized"
    )
    true_std = load_truth(case)["aihwkit_fields"]["dw_min_std"]
    assert fit.parameters["dw_min_std"] == pytest.approx(true_std, rel=0.20)
