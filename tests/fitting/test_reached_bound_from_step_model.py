"""Which devices reached a hard bound is asked of each device's fitted step model (issue 14).

A device that turned around before its bound gets that bound "fitted" at its furthest reads,
and the few clipped pairs there are fitted almost exactly, so its sandwich error can be far
below σ_read/√DWELL_READS, the old test of dwelling. On linear-step chip 130 of
``benchmarks/bench_coverage.py`` one device stopped 28 µS (111 σ_read) short of its lower
bound with an error of 0.18 σ_read: counted as reached it doubled the censored (Tobit)
spread, w_min_dtod 0.222 ± 0.035 for a true 0.091 (z = +3.8). Now the protocol is run with
each device's fitted mean steps from its first read, and a bound counts as reached where the
model sits at it for DWELL_READS reads. Known truth: the emulator's device physics
(instruments/emulator/physics.py), not the fitter.
"""

from __future__ import annotations

import numpy as np

from fitting import PulseTraces, fit_pulse_response
from fitting.families import DEVICE_PARAMS, family_model
from fitting.pulse_response import (
    DWELL_READS,
    DeviceValues,
    _dwell_reads,
    _pulse_runs,
    _reached_hard_bound,
)
from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
from instruments.emulator.physics import PulsedDeviceArray, chip_truth

SPEC = PulseTrainSpec(100, PulseSpec(1.2, 1e-6), 100, PulseSpec(-1.2, 1e-6), cycles=2)


def test_a_turning_point_with_a_small_error_is_not_a_reached_bound() -> None:
    # two constant-step devices (normalized units), both with a bound error far below the
    # old threshold σ/√6; device 0 gets to its upper bound after 40 of 100 up pulses and sits
    # there, device 1 gets to its fitted "bound" only with the last pulse of a run (a
    # turning point); the down direction reaches b_min = -1 on both
    theta = np.array([[0.02, 0.05, 0.8, -1.0], [0.011, 0.05, 0.8, -1.0]])
    values = DeviceValues(
        family_model("constant-step"),
        list(DEVICE_PARAMS),
        theta,
        np.zeros((2, 4, 4)),
        [],
        np.zeros(0),
        np.zeros((0, 0)),
        1.0,
    )
    plateaus = {"b_max": np.array([0.8, 0.8]), "b_min": np.array([-1.0, -1.0])}
    plateaus["start"] = np.array([0.0, -0.3])
    runs = _pulse_runs(pulse_sequence(SPEC))
    dwell = _dwell_reads(values, plateaus, runs)
    # device 0: 60 reads at b_max in the first up run and 12 in the second (from b_min);
    # device 1: at most the last read of the first
    assert dwell["b_max"][0] == 72 and dwell["b_max"][1] <= 1
    assert np.all(dwell["b_min"] >= DWELL_READS)
    plateaus.update({f"dwell_{k}": v for k, v in dwell.items()})
    ok = np.array([True, True])
    sigma = 0.01
    se = np.full(2, 0.1 * sigma)  # both "precise": the old rule called both reached
    assert np.all(se < sigma / np.sqrt(DWELL_READS))
    assert _reached_hard_bound(values, "b_max", ok, se, plateaus).tolist() == [True, False]
    assert _reached_hard_bound(values, "b_min", ok, se, plateaus).tolist() == [True, True]
    # without first reads every identified bound counts, as before
    del plateaus["start"]
    assert _dwell_reads(values, plateaus, runs) is None


def test_population_bound_spread_is_not_inflated_by_turning_points() -> None:
    # chip 130 of bench_coverage.py (seed 0): 64 devices, the lower bound reached by 19
    truth = chip_truth(
        "reram",
        response="linear-step",
        dw_min=7.009660559502425e-07,
        up_down=0.13062130304549352,
        w_max=3.39696494501699e-05,
        w_min=-3.39696494501699e-05,
        dw_min_dtod=0.2817423143521201,
        up_down_dtod=0.035604719598403285,
        w_max_dtod=0.05334713256911993,
        w_min_dtod=0.09099418314573929,
        dw_min_std=0.3733020552246271,
        gamma_up=0.3673727732298101,
        gamma_down=0.3465205501949363,
    )
    array = PulsedDeviceArray(truth, (16, 4), 1680679725)
    g = array.pulse_train(np.arange(64), 100, 100, 2, 1, (1.2, 1e-6), (-1.2, 1e-6))
    fit = fit_pulse_response(
        PulseTraces(g.T, pulse_sequence(SPEC)), model="linear-step", predictive_check=False
    )
    est, se = fit.parameters["w_min_dtod"], fit.uncertainty["w_min_dtod"]
    # old code: 0.222 ± 0.035 (z = +3.8); now 0.104 ± 0.016 (z = +0.8)
    assert abs(est - truth.w_min_dtod) < 2.0 * se
    assert est < 0.15


def test_turning_points_do_not_make_windows_shifted_together() -> None:
    # chip 9 of bench_coverage.py (seed 0), constant-step, independent bounds: 44 of 62
    # devices turn before w_min, each 100 down pulses (its own step) below its top, so the
    # turning point and the upper bound of a device move together (correlation 0.29) and
    # the window-offset test (fitting/window_offset.py) carried per-device offsets
    # (likelihood ratio 4.3 > 2.71); w_min_dtod then came from the REML fit of turning points:
    # 0.274 ± 0.027 for 0.076 (z = +7.2; 10 of 50 constant-step chips did this, covering 40 %).
    # The decision now uses the devices that reached both bounds (step model).
    truth = chip_truth(
        "reram",
        response="constant-step",
        dw_min=7.410795801416863e-07,
        up_down=0.10081550531089811,
        w_max=3.982081324762802e-05,
        w_min=-3.982081324762802e-05,
        dw_min_dtod=0.284668723014207,
        up_down_dtod=0.024756659171097033,
        w_max_dtod=0.07786843632411376,
        w_min_dtod=0.07647966343014606,
        dw_min_std=0.3114776516478692,
    )
    array = PulsedDeviceArray(truth, (16, 4), 1217820781)
    g = array.pulse_train(np.arange(64), 100, 100, 2, 1, (1.2, 1e-6), (-1.2, 1e-6))
    fit = fit_pulse_response(
        PulseTraces(g.T, pulse_sequence(SPEC)), model="constant-step", predictive_check=False
    )
    assert not any("shifted together" in n for n in fit.notes)
    assert fit.parameters.get("reference_std", 0.0) == 0.0
    for name in ("w_max_dtod", "w_min_dtod"):
        # now 0.084 ± 0.008 (true 0.078) and 0.072 ± 0.011 (true 0.076)
        est, se = fit.parameters[name], fit.uncertainty[name]
        assert abs(est - getattr(truth, name)) < 2.5 * se
