"""Model selection on aihwkit cases that were unseen when the fitter was written (issue 13).

The fixtures (``tests/fixtures/aihwkit_unseen``) are cases of the random conformance sweep
(``benchmarks/aihwkit_conformance.py sweep --n 10 --seed 8`` and ``--seed 10``), generated
after the fitter of their day and missed by it; kept as the generator wrote them. Each test
failed on the code before its fix (seed 8's at 0810534, seed 10's at 7b5f5a6).
"""

from __future__ import annotations

from pathlib import Path

from aihwkit_checks import evaluate_case

from calib.fit.pulse_response import fit_pulse_response_file

UNSEEN = Path(__file__).resolve().parents[2] / "fixtures" / "aihwkit_unseen"


def test_exp_step_is_scored_and_fitted_at_its_efficient_shape():
    """ExpStepDevice (A⁺ 0.035, A⁻ −0.044, γ 5.1/6.3, 64 devices, bounds reached by most):
    scored at the shape of its first-step fit, exp-step's J was 711 against piecewise-step's
    540 and ``auto`` picked piecewise-step by ΔBIC 172; with the shape re-solved under the
    efficient weight (J 554) exp-step is first, and its preset, fitted at that shape, meets
    every criterion of the conformance suite (``aihwkit_checks.failures``, its tolerances)."""
    result = evaluate_case("sweep8_09_exp-step", fixtures=UNSEEN)
    assert result["family"] == "exp-step"
    assert result["failures"] == []


def test_pow_step_level_on_the_exponent_test_joins_the_predictive_tie_break(tmp_path):
    """PowStepDevice (γ 1.48, bounds never reached, one 91-pulse cycle of 96 devices): the
    one-read ranking puts soft-bounds first (ΔBIC 17 for pow-step), the exponent test has
    pow-step ahead (+2.6; within 10 counts as tied), and soft-bounds' simulation misses the
    mean trace by 11 % of the span. pow-step was never simulated; now it joins the
    predictive tie-break and is kept because its simulation is closer (its spreads still miss
    with one cycle and unreached bounds: benchmarks/RESULTS.md)."""
    path = UNSEEN / "sweep8_00_pow-step.h5"
    _, fit = fit_pulse_response_file(
        path, tmp_path / "preset.json", model="auto", units="normalized", seed=0
    )
    assert fit.model == "pow-step"
    rows = {r["family"]: r for r in fit.model_selection}
    assert rows["pow-step"]["delta_bic"] > 10.0  # not tied on the one-read ranking
    assert rows["pow-step"]["shape_test_bic"] > -10.0
    assert rows["pow-step"]["note"].startswith("selected by the predictive check")
    err = {f: rows[f]["predictive_error_of_span"] for f in ("pow-step", "soft-bounds")}
    assert err["pow-step"] < err["soft-bounds"]


def test_bound_reached_on_short_trains_is_a_measurement_not_a_limit():
    """ConstantStepDevice (128 devices, 3 cycles of 61 pulses, w_max reached by 36 %, read
    noise one step), seed 10's sweep: 12 of the 44 devices whose steps carry them to w_max
    got there fewer than DWELL_READS reads before the turn, were counted as limits at their
    own bound, and the censored mean went out to 0.658 for a drawn 0.594 (10.8 % off; the
    suite's limit 10 %). Weighing each device's furthest state by how far its steps would
    carry it beyond (fitting.censored.path_censored_random_effect): 0.610, every criterion
    met."""
    result = evaluate_case("sweep10_08_constant-step", fixtures=UNSEEN)
    assert result["family"] == "constant-step"
    assert result["bounds"]["w_max"]["rel_error"] < 0.05
    assert result["failures"] == []
