"""The pulse-response report renders what the fit carries (``fit.figures``), nothing else.

:func:`fitting.diagnostics.report_material` computes the shown traces, their simulation, the
pairs, residuals and step curves once; the report (``calib/reports/pulse_response.py``) only
draws them. Checked on synthetic devices of known truth (soft bounds: the step of the median
device is Δ(1 − w/b), written out here).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fitting.diagnostics import MAX_SHOWN_DEVICES, report_material
from fitting.pulse_response import fit_pulse_response
from fitting.synthetic import sample_devices, simulate_traces
from fitting.traces import PulseTraces

TRUTH = {  # normalized units, then mapped to siemens below
    "dw_min": 0.02,
    "up_down": 0.0,
    "w_max": 0.6,
    "w_min": -0.6,
    "dw_min_dtod": 0.1,
    "up_down_dtod": 0.0,
    "w_max_dtod": 0.05,
    "w_min_dtod": 0.05,
}
PULSES = np.r_[0, np.ones(80, int), -np.ones(80, int), np.ones(80, int), -np.ones(80, int)]
G0, SCALE = 50e-6, 1e-5  # siemens: g = G0 + SCALE·w


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(21)
    n = 48
    dev = sample_devices("soft-bounds", TRUTH, n, rng)
    w = simulate_traces("soft-bounds", dev, PULSES, np.zeros(n), rng, 0.2, 0.0, 0.003)
    traces = PulseTraces(G0 + SCALE * w, PULSES, units="S")
    return traces, fit_pulse_response(traces, model="soft-bounds", seed=1)


def test_the_figures_carry_the_shown_traces_their_simulation_and_the_model_curves(fitted):
    traces, fit = fitted
    fig = report_material(traces, fit, seed=0)
    assert fig.n_shown == min(fit.n_fitted, MAX_SHOWN_DEVICES)
    np.testing.assert_array_equal(fig.measured, traces.conductance_s[fig.rows])
    assert fig.simulated.shape == fig.measured.shape and fig.shared_pulses
    # the simulated preset starts at the measured first reads (plus read noise)
    spread = np.std(fig.measured[:, 0])
    assert np.mean(np.abs(fig.simulated[:, 0] - fig.measured[:, 0])) < spread
    # step of the median device: Δ(1 − w/b⁺) up; truth at w = 0 (g = G0) is dw_min·SCALE
    # (d2d 10 % over 48 devices and the fit's error: a few per cent; 15 % allowed)
    up = fig.step_curves[1]
    at_g0 = np.interp(G0, up.conductance, up.median)
    assert at_g0 == pytest.approx(TRUTH["dw_min"] * SCALE, rel=0.15)
    assert up.median[-1] == pytest.approx(0.0, abs=0.05 * at_g0)  # vanishes at b⁺
    # residuals of the fitted model on its own data: standardized to unit spread
    std = np.concatenate([r.standardized[r.valid] for r in fig.residuals])
    assert np.std(std) == pytest.approx(1.0, abs=0.15)
    # pairs of the shown traces, per source and direction
    pairs = fig.step_pairs["measured"][1]
    assert pairs.valid.sum() > 0.9 * fig.n_shown * np.sum(PULSES > 0)
    assert np.median(pairs.increment[pairs.valid]) > 0


PRESET = {"provenance": {"input_file": "x.h5", "input_sha256": "0" * 64, "created": "now"}}


def test_the_report_renders_the_fit_figures_without_calling_the_fitter(
    fitted, tmp_path, monkeypatch
) -> None:
    import calib.reports.pulse_response as report
    import fitting.diagnostics as diagnostics
    import fitting.pairs as pairs

    traces, fit = fitted
    fit = dataclasses.replace(fit)
    fit.figures = report_material(traces, fit, seed=0)

    def call_back(*args, **kwargs):
        raise AssertionError("the report called back into the fitter")

    for name in ("simulate_like", "pair_residuals", "step_curve", "report_material"):
        monkeypatch.setattr(diagnostics, name, call_back)
        monkeypatch.setattr(report, name, call_back, raising=False)
    monkeypatch.setattr(pairs, "build_pairs", call_back)
    files = report.write_pulse_response_report(tmp_path, fit, PRESET)
    names = {f.name for f in files}
    assert {"mean_trace.png", "step_vs_conductance.png", "residuals.png"} <= names
    assert {"parameters.png", "summary.md", "summary.json"} <= names


def test_a_fit_without_figures_gets_a_one_line_error(fitted, tmp_path) -> None:
    from calib.reports.pulse_response import write_pulse_response_report

    fit = dataclasses.replace(fitted[1])
    fit.figures = None
    with pytest.raises(ValueError, match=r"no report figures.*report_material") as err:
        write_pulse_response_report(tmp_path, fit, PRESET)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing written
