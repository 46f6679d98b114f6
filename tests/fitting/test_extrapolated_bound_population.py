"""Population bounds of families whose steps place each device's bounds (exp-step's z,
pow-step's and piecewise-step's shapes): the plain mean of the devices' fitted bounds, not a
mean weighted by their errors; and a predictive check that also looks at the device spread.

aihwkit's ExpStepDevice of ``aihwkit_conformance.py sweep --seed 6`` (case 9: 256 devices,
two 101-pulse cycles, w_min reached by 31 %) came out with w_min −0.81 for −1.11: a device
that does not reach its bound has it placed by z's dependence on its window, far from the
reads and with a large error, so weights 1/(τ² + sᵢ²) kept the near bounds of the devices
that reached it. The re-simulated mean trace missed by 9.3 % of the span.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fitting.pulse_response import PREDICTIVE_SPREAD_DEVICES, _predictive_miss


def test_unreached_exp_step_bound_is_not_pulled_to_the_reached_devices(tmp_path: Path):
    from aihwkit_checks import FIXTURES, load_truth, realized_fields

    from calib.fit.pulse_response import fit_pulse_response_file
    from calib.presets import load_preset
    from calib.presets.export import aihwkit_device

    case = "sweep6_08_exp-step"
    out, fit = fit_pulse_response_file(
        FIXTURES / f"{case}.h5", tmp_path / "p.json", model="exp-step", units="normalized"
    )
    exported = aihwkit_device(load_preset(out))
    conv = exported["conversion"]
    truth = realized_fields(case, load_truth(case))
    fitted = {
        b: float(conv["g_offset_s"]) + float(conv["scale_s"]) * exported["device"]["parameters"][b]
        for b in ("w_max", "w_min")
    }
    # w_min: −0.882 (20 % inside) with the error-weighted mean, −1.023 now. The plain mean's
    # own error is 0.035 (3 %); the unreached devices' bounds are fitted somewhat inwards
    # themselves (z's dependence on the window is weak), so the limit is half the old miss
    assert fitted["w_min"] / truth["drawn_w_min"] - 1.0 == pytest.approx(0.0, abs=0.15)
    # w_max, reached by 97 %, stays where it was (1.044 for 1.037)
    assert fitted["w_max"] / truth["drawn_w_max"] - 1.0 == pytest.approx(0.0, abs=0.05)
    assert fit.uncertainty_method["w_min"] == "fisher"


def _fit(mean_error: float, spread_ratio: float, n: int = 256) -> SimpleNamespace:
    return SimpleNamespace(
        predictive={"mean_error_of_span": mean_error, "spread_ratio": spread_ratio}, n_fitted=n
    )


def test_predictive_miss_counts_a_wrong_device_spread():
    # aihwkit's cs_up_down_neg_unreached: exp-step's mean trace within 7.9 % of the span
    # (under the 10 % limit) with a spread 1.53-fold; constant-step (the truth) 2.2 %, 1.05
    exp_step, constant_step = _fit(0.079, 1.53), _fit(0.022, 1.05)
    assert _predictive_miss(exp_step) > 1.0
    assert _predictive_miss(constant_step) < 1.0
    assert _predictive_miss(constant_step) < _predictive_miss(exp_step)
    # a spread too small counts as one too large
    assert _predictive_miss(_fit(0.02, 1 / 1.53)) == pytest.approx(_predictive_miss(exp_step))
    # the mean trace alone where a few devices cannot tell their spread
    few = _fit(0.079, 1.53, n=PREDICTIVE_SPREAD_DEVICES - 1)
    assert _predictive_miss(few) == pytest.approx(0.79)
    assert _predictive_miss(_fit(0.2, np.nan)) == pytest.approx(2.0)
