"""A cycle-to-cycle noise the reads cannot determine is said to be so.

At read noise of ten steps and more, reads one pulse apart carry little of the step noise:
aihwkit's EcRamMOPresetDevice (71 steps) gave dw_min_std 0.0 ± 0.88 for 2.0, its
GokmenVlasovPresetDevice (12.5 steps) 0.07 ± 0.25 for 0.3, and 256 emulated constant-step
devices at 11 steps 0.0 ± 0.045 for 0.3 (a moment estimate held at 0, whose bootstrap is
narrow), each with no word in the notes.
"""

from __future__ import annotations

import pytest

from fitting import fit_pulse_response
from tests.identical_devices import identical_devices


@pytest.mark.parametrize("read_noise_s, said", [(10e-6, True), (0.3e-6, False)])
def test_note_on_undetermined_c2c(read_noise_s: float, said: bool) -> None:
    traces = identical_devices("constant-step", 256, seed=1, read_noise_s=read_noise_s)
    fit = fit_pulse_response(traces, model="constant-step", seed=0, predictive_check=False)
    notes = [n for n in fit.notes if n.startswith("dw_min_std") and "poorly determined" in n]
    # 10 µS: 0 ± 0.045 (11 steps of read noise); 0.3 µS: 0.303 ± 0.004
    assert bool(notes) is said, fit.notes
    if said:
        assert "10.6 steps" in notes[0]
