"""Cycle-to-cycle noise under read noise many steps wide, on aihwkit's own presets.

Issue 13 (``dw_min_std`` within 20 %) and 14 (honest uncertainties). aihwkit 1.2.0's
GokmenVlasovPresetDevice (constant steps of 0.0016, c2c 0.3, read noise 0.02: 12.5 steps,
1000-pulse sweeps) and CapacitorPresetDevice (linear steps of 0.005, c2c 0.3, read noise 4
steps, 500-pulse sweeps), ``fixtures/aihwkit/preset_*.json``. With windows of at most 32
pulses, whose two end reads carry 2·σ_read² against 32·(0.3·Δ)² of c2c noise (1 % and 9 %
of it), the fits gave dw_min_std 0.10 ± 0.25 and 0.24 ± 0.08. Triangle windows compare
means of blocks of up to 64 reads (``fitting.noise.TRIANGLES``) and gave 0.29 ± 0.11 and
0.29 ± 0.015. Criteria: the issue's 20 % on dw_min_std, and the truth within 2.5 of the
reported standard errors (the reported error must not be the small one of a biased value).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aihwkit_checks import FIXTURES, load_truth


@pytest.mark.parametrize(
    ("case", "family"),
    [("preset_gokmen_vlasov", "constant-step"), ("preset_capacitor", "linear-step")],
)
def test_c2c_noise_recovered_under_wide_read_noise(case: str, family: str, tmp_path: Path) -> None:
    from calib.fit.pulse_response import fit_pulse_response_file

    truth = load_truth(case)["aihwkit_fields"]["dw_min_std"]
    _, fit = fit_pulse_response_file(
        FIXTURES / f"{case}.h5", tmp_path / "preset.json", model=family, units="normalized"
    )
    value, se = fit.parameters["dw_min_std"], fit.uncertainty["dw_min_std"]
    assert abs(value / truth - 1.0) <= 0.20, (value, se)
    assert abs(value - truth) <= 2.5 * se, (value, se)
