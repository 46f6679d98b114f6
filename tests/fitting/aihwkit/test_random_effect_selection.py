"""Per-device shapes scored as a random effect in ``auto``'s family choice (issue 13, item 3).

aihwkit draws linear-step's γ per device (``gamma_*_dtod``) and pow-step's exponent
(``pow_gamma_dtod``). Charged ln N per device and value (BIC with the shapes as fixed
parameters), the true family with its shape per device lost to a 3-node piecewise-step that
cannot represent the spread, although its J was far lower (ls_twice_spread: 799 vs 1359,
BIC −146). Scored as a random effect (:func:`fitting.selection.random_effect_penalty`:
a normal population of the shape with fitted mean and spread, integrated out on J's scale)
it wins; where there is no spread (constant-step traces) it must not buy the richer
family a better score than the true one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fitting.chunked import device_data
from fitting.families import family_model
from fitting.family_fit import fit_per_device_shape, fit_shared_shape
from fitting.pulse_response import PER_DEVICE_NOTE, _score_families

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aihwkit"


def _scores(case: str, families: tuple[str, ...], n_dev: int) -> dict:
    from calib.fit.pulse_response import load_pulse_traces

    traces, _ = load_pulse_traces(FIXTURES / f"{case}.h5", units="normalized")  # G = w
    rows = np.unique(np.linspace(0, traces.n_devices - 1, n_dev).round().astype(int))
    traces = traces.subset(rows)
    g = traces.conductance_s.astype(float)
    hi, lo = np.percentile(g, 97, axis=1), np.percentile(g, 3, axis=1)
    data, rep = device_data(traces, 0.0, 1.0, hi, lo)
    fits, problems, variants = {}, {}, []
    for fam in families:
        fm = family_model(fam)
        fits[fam], problems[fam] = fit_shared_shape(fm, data)
        if fm.per_device_shape:
            vfit, vprob = fit_per_device_shape(fm, data, fits[fam])
            variants.append((fam, PER_DEVICE_NOTE, vfit, vprob, False))
    return {s.family: s for s in _score_families(fits, problems, data, rep, variants)}


def test_linear_step_with_gamma_spread_beats_piecewise_as_a_random_effect() -> None:
    pytest.importorskip("h5py")
    scores = _scores("ls_twice_spread", ("linear-step", "piecewise-step"), 64)
    lin, pw = scores["linear-step"], scores["piecewise-step"]
    assert lin.note.startswith(PER_DEVICE_NOTE)  # the per-device shape is linear-step's row
    # the population: two means and two spreads, not one shape value per device
    assert lin.n_params < pw.n_params + 16
    assert lin.penalty > 0
    # measured on these 64 devices: see the assertion message; with every device's γ
    # charged ln N (the old criterion) piecewise-step won by several hundred
    assert lin.criterion < pw.criterion, (lin.criterion, pw.criterion)


def test_random_effect_gives_no_edge_without_a_shape_spread() -> None:
    pytest.importorskip("h5py")
    scores = _scores("cs_default_reached", ("constant-step", "linear-step"), 64)
    assert scores["constant-step"].criterion < scores["linear-step"].criterion
