"""Conformance with aihwkit on traces aihwkit 1.2.0 itself produced (issue 13, item 3).

The fixtures (``tests/fixtures/aihwkit``, made by ``benchmarks/aihwkit_conformance.py``) hold,
per case, 64-256 devices of one aihwkit device class driven one pulse at a time, and the
truth: every field of the device, the fraction of devices that reached each bound, and the
noise-free trace of the nominal device (no spreads, no noise).

* The reference step rules (:func:`aihwkit_checks.aihwkit_step`, written from aihwkit's C++)
  and our simulator both replay the nominal device pulse by pulse and must land on
  aihwkit's own nominal trace (float32 round-off only).
* ``--model auto`` on every case must meet the issue's criteria
  (:func:`aihwkit_checks.failures`): a fast subset here, the whole grid marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from aihwkit_checks import (
    CASES,
    aihwkit_step,
    evaluate_case,
    load_truth,
    nominal_fields,
)

#: cases fitted in ``make test`` (the rest of the grid is marked slow; pw_1_node_equivalent
#: moved there 2026-12-07 to keep make test under 10 minutes on 2 cores)
FAST = ("sb_default_saturating",)

#: cases whose fit misses a criterion (measured with the fitter of 2026-12-06 08:53-09:11 UTC,
#: 57a3afd, benchmarks/RESULTS.md; entries marked HC and the removal of cs_twice_spread,
#: cs_up_down_neg_unreached, sb_asym_up_down_pos, sb_strong (all now pass) from the grid of
#: 11:26-12:01 UTC at 9249e98/90047f2; entries saying "family right since" and the removal
#: of ls_gamma_03_07_hard_bounds (passes) from 12:15 UTC at 1a56f8c; ls_twice_spread removed
#: (passes since the per-device shape is scored as a random effect, a896dfc); sb_twice_spread
#: and sb_up_down_neg removed (pass since the soft-bounds origin fit and the wrong-side
#: bounds, ad44e55/6bfe98e, HC 13:53 UTC); ls_weak_unreached removed (passes since a bound
#: that fewer than 3 devices reached is a limit at the furthest reads, b74b973: mean trace
#: 6.4 % for 9.5 %, spread ratio 1.02); every reason re-measured 16:45 UTC at e5e89df
#: (evaluate_case); the aihwkit
#: re-simulation criterion is left out: aihwkit is not installed here), with the reason.
#: Each entry is (the family ``auto`` picks, the reason). Strict: a case the fitter starts to
#: pass fails until removed, and so does one whose family changes (a strict xfail passes on
#: any failure: ps_weak_gamma and ps_twice_spread picked piecewise-step for a session, since
#: 083aa3f, under reasons that said pow-step; families re-measured 2026-12-07 07:23 UTC).
#: ls_strong_asym, preset_capacitor and preset_gokmen_vlasov removed (pass since the
#: triangle windows of fitting/noise.py, 2026-12-07 11:55 UTC: dw_min_std under read noise
#: of 1.7, 4 and 12.5 steps, tests/fitting/aihwkit/test_c2c_under_read_noise.py); the other
#: reasons re-measured then (ps_weak_gamma and preset_reram_es changed).
XFAIL: dict[str, tuple[str, str]] = {
    # re-measured at the read leverage of the c2c windows and the clip-clear shape margins
    # (tests/aihwkit_checks.evaluate_case, 2026-12-07 01:25 UTC); sb_weak_unreached passes
    # since (dw_min_std 0.312 for 0.3). Every reason re-measured 2026-12-07 07:23 UTC at
    # e6ead9a: ps_twice_spread, ps_weak_gamma, preset_reram_es and preset_reram_sb had
    # changed (a strict xfail does not see a different failure), the rest as written
    "es_both_A_negative": (
        "linear-step",
        "fitter (2026-12-08 at 7b5f5a6 on a fresh venv: linear-step first by ΔBIC 25.7 over "
        "exp-step, whose tie-break had kept exp-step before; w_min -0.384 vs -0.489 then): "
        "auto picked linear-step, truth exp-step; every other criterion met (re-simulated "
        "mean trace 2.7 % of the span)",
    ),
    "es_twice_spread": (
        "exp-step",
        "fitter (family right since the bound-level starts): up step curve rms 0.056 of "
        "the largest step > 0.05; w_min -0.506 vs -0.614 (reached by 41%); re-simulated "
        "mean trace off by 4.4% of the span (limit 3.0%)",
    ),
    "ls_allow_increasing": (
        "linear-step",
        "fitter: re-simulated mean trace off by 3.4% of the span (limit 3.0%)",
    ),
    "ps_default": (
        "soft-bounds",
        "fitter: auto picked soft-bounds, truth pow-step (exponent 1 ± 0.11 per device): each "
        "device's ln γ is known to ±0.14-0.16 only, so the spread's expected evidence, "
        "Σ r − ln(1 + r) with r = τ²/se², is 36 for a price of 2 ln N = 22; the random-effect "
        "criterion scores per-device pow-step J 583 + 239 (+5 ln N) against soft-bounds' 859, "
        "ΔBIC 17.7 (938 + 308 against 1082 before J was taken at the efficient estimate); "
        "fitted ln γ spreads 0.05/0.08 for about 0.1",
    ),
    "ps_twice_spread": (
        "piecewise-step",
        "fitter (piecewise-step since every shared shape is scored at its efficient minimum, "
        "2026-12-07 15th session: its three nodes J 1054 against pow-step's shared 2185 and "
        "per-device 804 + 193 random-effect cost, ΔBIC 16; pow-step before, with up curve "
        "0.201): auto picked piecewise-step, truth pow-step; up step curve rms 0.176 of the "
        "largest step > 0.05; re-simulated mean trace off by 10.9% of the span (limit 3.9%)",
    ),
    "ps_weak_gamma": (
        "pow-step",
        "fitter (pow-step again on 2026-12-08 at 7b5f5a6 on a fresh venv: its re-solved "
        "shape J 521 against piecewise-step's 487, ΔBIC 29; piecewise-step for a session "
        "with J 570): dw_min_dtod 0.232 vs 0.300 (drawn 0.286); dw_min_std 0.000 vs 0.300",
    ),
    "pw_5_nodes": (
        "piecewise-step",
        "fitter: re-simulated mean trace off by 3.4% of the span (limit 3.0%)",
    ),
    "pw_3_nodes_asym": (
        "piecewise-step",
        "fitter: dw_min_dtod 0.249 vs 0.300 configured; the devices aihwkit drew have a gain "
        "spread of 0.26 (absolute spread 0.0026 of both directions' scales, dw_min 0.01). "
        "0.257 before the up steps were balanced against their nodes (aihwkit's additive "
        "gain: tests/fitting/test_piecewise_direction_balance.py), which moved random sweep "
        "cases of seed 7 from 0.21 and 0.24 to 0.29",
    ),
    "pw_twice_spread": (
        "piecewise-step",
        "fitter: dw_min_dtod 0.521 vs 0.600 (the devices kept have a drawn gain spread of "
        "0.53 after aihwkit's |1 + σξ|, 0.58 unfolded; the low-gain devices' steps come out "
        "1.5x too large: their bounds, never reached, trade against the step)",
    ),
    "sweep5_05_pow-step": (
        "soft-bounds",
        "fitter: auto picked soft-bounds, truth pow-step (γ 2.09, one 118-pulse cycle, bounds "
        "never reached, read noise 4 steps); up step curve rms 0.069, down 0.106 of the "
        "largest step > 0.05. On one-read moments the exponent lowers J by 1.4; the exponent "
        "test (four-read instruments) puts pow-step ahead and says so in a note, but chosen "
        "on it pow-step's re-simulated mean trace was 13.7 % off (6.5 % for soft-bounds): its "
        "step scale and bounds are not identified (benchmarks/RESULTS.md, 12th session)",
    ),
    "sweep6_08_exp-step": (
        "exp-step",
        "fitter: re-simulated mean trace off by 3.6% of the span (limit 3.3%); w_min -1.001 vs "
        "-1.106 (reached by 31%), -0.812 and 9.3 % off when the population bound weighted the "
        "devices by their errors (tests/fitting/test_extrapolated_bound_population.py)",
    ),
    # aihwkit's published presets as shipped (benchmarks/aihwkit_conformance.py, "preset_")
    "preset_ecram_mo": (
        "soft-bounds",
        "fitter: auto picked soft-bounds, truth linear-step (bounds never reached: 3000 pulses "
        "of 2.8e-4 cross 0.85 of the range 2, read noise 71 steps); up step curve rms 0.078 "
        "of the largest step > 0.05; re-simulated mean trace off by 6.3% of the span (limit "
        "3.4%)",
    ),
    "preset_reram_es": (
        "soft-bounds",
        "fitter: auto picked soft-bounds, truth exp-step (write noise 75 dw_min = 5 % of the "
        "range per pulse, c2c 5.0); up step curve rms 0.501, down 0.116 of the largest step; "
        "w_min -0.858 vs -1.018 (reached by 77%); re-simulated mean trace off by 9.1% of the "
        "span (limit 6.8%)",
    ),
    "preset_reram_sb": (
        "soft-bounds",
        "fitter: write noise 56 dw_min (5.6 % of the range per pulse) and additive c2c 3.75: "
        "up step curve rms 0.167, down 0.141 of the largest step; dw_min_dtod 0.705 vs "
        "0.300; w_max 0.859 vs 1.276 (reached by 40%), w_min -0.599 vs -0.733 (61%); "
        "re-simulated mean trace off by 17.8% of the span (limit 7.7%)",
    ),
}

#: float32 weights in aihwkit: a few ulps per pulse over at most 1,200 pulses
NOMINAL_TOL = 2e-4


def _cases(names) -> list:
    out = []
    for name in names:
        marks = []
        if name not in FAST:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _replay(step, w0: float, pulses: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Noise-free trace: w ← clip(w + step(w, up), lo, hi) for every pulse."""
    w = np.empty(pulses.size)
    w[0] = min(max(w0, lo), hi)
    for k in range(1, pulses.size):
        w[k] = min(max(w[k - 1] + float(step(w[k - 1], pulses[k] > 0)), lo), hi)
    return w


def _pulses(truth: dict) -> np.ndarray:
    p = truth["protocol"]
    cycle = np.r_[np.ones(p["n_up"]), -np.ones(p["n_down"])]
    return np.r_[0, np.tile(cycle, p["cycles"])].astype(int)


def test_fixtures_cover_the_conformance_grid():
    truths = [load_truth(c) for c in CASES]
    assert len(truths) >= 30
    families = {t["family"] for t in truths}
    assert families == {
        "constant-step",
        "linear-step",
        "soft-bounds",
        "exp-step",
        "pow-step",
        "piecewise-step",
    }
    noise = [t["protocol"]["read_noise_std"] for t in truths]
    spans = [t["aihwkit_fields"]["w_max"] - t["aihwkit_fields"]["w_min"] for t in truths]
    rel = np.array(noise) / np.array(spans)
    assert rel.min() >= 0.005 - 1e-12 and rel.max() <= 0.02 + 1e-12
    assert {t["protocol"]["cycles"] for t in truths} == {1, 2, 3}
    assert any(t["aihwkit_fields"]["dw_min_dtod"] == 0.6 for t in truths)  # twice the default
    es = [t["aihwkit_fields"] for t in truths if t["family"] == "exp-step"]
    assert any(f["A_up"] < 0 and f["a"] != 0.244 and f["b"] != 0.2425 for f in es)
    partly = [t for t in truths if t["family"] == "constant-step"]
    assert any(0.25 <= t["reached"]["w_min"] <= 0.75 for t in partly)


@pytest.mark.parametrize("case", CASES)
def test_reference_rules_replay_aihwkits_nominal_trace(case):
    truth = load_truth(case)
    cls, fields = truth["aihwkit_class"], truth["aihwkit_fields"]
    nominal = np.asarray(truth["nominal_trace"])
    p = nominal_fields(cls, fields)
    w = _replay(
        lambda w, up: aihwkit_step(cls, fields, np.array(w), up),
        truth["protocol"]["w_init"],
        _pulses(truth),
        p["w_min"],
        p["w_max"],
    )
    assert np.max(np.abs(w - nominal)) < NOMINAL_TOL * (p["w_max"] - p["w_min"])


@pytest.mark.parametrize("case", CASES)
def test_simulator_replays_aihwkits_nominal_trace(case):
    """Our simulator's device (family, aihwkit's field values, spreads and noise 0)."""
    from simulator.devices.config import PulsedDeviceConfig
    from simulator.tile import PulsedTile

    truth = load_truth(case)
    fields = truth["aihwkit_fields"]
    known = set(PulsedDeviceConfig.__dataclass_fields__) - {"family", "per_device"}
    kwargs = {k: v for k, v in fields.items() if k in known}
    kwargs.update({k: 0.0 for k in kwargs if k.endswith(("_dtod", "_std"))})
    config = PulsedDeviceConfig(family=truth["family"], **kwargs)
    tile = PulsedTile(1, 1, config, seed=0)
    tile.set_weights(torch.tensor([[float(truth["protocol"]["w_init"])]]))
    pulses = _pulses(truth)
    w = np.empty(pulses.size)
    w[0] = float(tile.weights()[0, 0])
    for k in range(1, pulses.size):
        tile.apply_pulses(torch.tensor([[float(pulses[k])]]))
        w[k] = float(tile.weights()[0, 0])
    nominal = np.asarray(truth["nominal_trace"])
    span = fields["w_max"] - fields["w_min"]
    worst = int(np.argmax(np.abs(w - nominal)))
    assert abs(w[worst] - nominal[worst]) < NOMINAL_TOL * span, (
        f"read {worst}: ours {w[worst]:.5f}, aihwkit {nominal[worst]:.5f}"
    )


@pytest.mark.parametrize("case", _cases(CASES))
def test_auto_fit_of_aihwkit_traces_meets_the_criteria(case):
    result = evaluate_case(case)
    if case not in XFAIL:
        assert not result["failures"], f"{case}: " + "; ".join(result["failures"])
        return
    # a known miss (XFAIL): the family it picks must still be the recorded one, and a case
    # that meets every criterion must leave the list (strict)
    family, reason = XFAIL[case]
    assert result["family"] == family, (
        f"{case}: auto now picks {result['family']}, recorded {family}: re-measure its reason"
    )
    if not result["failures"]:
        pytest.fail(f"{case} meets every criterion now: remove it from XFAIL")
    pytest.xfail(reason)
