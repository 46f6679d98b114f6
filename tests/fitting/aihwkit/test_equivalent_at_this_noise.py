"""Families equivalent to aihwkit's on a case *at its noise*, measured (issue 13, item 3).

Three conformance cases have shape effects that their traces cannot resolve: exp-step with
A = 0.05 (es_weak_unreached), pow-step γ 1.5 with pow_up_down −0.4 and pw 5-node
piecewise-step (ps_up_down_neg_unreached, pw_unreached), all with bounds far outside the
visited states. Their truth states a simpler family as equivalent "at this noise", and this
test measures the claim: the true family evaluated at the devices aihwkit drew (shape held at
the drawn values, each device's steps and bounds refitted, as the simpler family's are)
lowers Hansen's J (:func:`fitting.selection.j_statistic`, the simpler family's noise model)
by less than ln N, the BIC price of a single parameter. The traces then hold less evidence
for the true shape than one extra parameter costs: no criterion that pays for estimated shape
parameters can prefer it, even given the true shape for free it barely helps. The negative
control, ps_default (exponent 1 ± 0.1 per device), is *not* equivalent by this measure: there
the drawn exponents lower J by far more, although ``auto`` cannot estimate them (per-device
error ≈ 0.15 > their spread 0.1) and picks soft-bounds (a strict xfail of the conformance
test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fitting.chunked import column_values, device_data
from fitting.families import family_model, piecewise_model
from fitting.family_fit import fit_shared_shape
from fitting.gmm import GmmProblem
from fitting.noise import estimate_noise, noise_sums
from fitting.selection import j_statistic

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aihwkit"
AT_THIS_NOISE = "at this noise"


def _drawn_problem(truth: dict, drawn: dict, data) -> tuple[GmmProblem, np.ndarray]:
    """The true family with its shape held at aihwkit's draw; per-device Δ±, bounds free."""
    fam, f = truth["family"], truth["aihwkit_fields"]
    fm = family_model(fam)
    theta = np.stack([drawn[k] for k in ("dwmin_up", "dwmin_down", "max_bound", "min_bound")], 1)
    fixed = dict(fm.fixed)
    if fam == "pow-step":  # drawn per device
        for d in ("up", "down"):
            fixed[f"log_gamma_{d}"] = np.log(drawn[f"gamma_{d}"])[:, None]
    elif fam == "exp-step":  # our decays: A⁺e^{γ⁺(a+b)}, A⁻e^{−γ⁻(b−a)} (fitting.families)
        a, b = f["a"], f["b"]
        fixed["decay_up"] = f["A_up"] * np.exp(f["gamma_up"] * (a + b))
        fixed["decay_down"] = f["A_down"] * np.exp(-f["gamma_down"] * (b - a))
        fixed["gamma_up"], fixed["gamma_down"] = f["gamma_up"], f["gamma_down"]
    elif fam == "piecewise-step":  # nodes relative to the middle one, which scales Δ±
        up, dn = f["piecewise_up"], f["piecewise_down"]
        mid = len(up) // 2
        fm = piecewise_model(len(up))
        theta[:, 0] *= up[mid]
        theta[:, 1] *= dn[mid]
        for j in range(len(up)):
            if j != mid:
                fixed[f"node_up_{j}"] = up[j] / up[mid]
                fixed[f"node_down_{j}"] = dn[j] / dn[mid]
    else:
        raise NotImplementedError(fam)
    typical = {"delta_up": 1e-3, "delta_down": 1e-3, "b_max": 0.1, "b_min": 0.1}
    names = ["delta_up", "delta_down", "b_max", "b_min"]
    return GmmProblem(fm, data.blocks, names, fixed=fixed, typical=typical), theta


def evidence_for_the_true_shape(case: str, family: str) -> tuple[float, float]:
    """J of ``family`` fitted minus J of the true family at aihwkit's draw, and ln N."""
    h5py = pytest.importorskip("h5py")
    from calib.fit.pulse_response import load_pulse_traces

    path = FIXTURES / f"{case}.h5"
    truth = json.loads(path.with_suffix(".json").read_text())
    traces, _ = load_pulse_traces(path, units="normalized")  # G = w
    g = traces.conductance_s.astype(float)
    hi, lo = np.percentile(g, 97, axis=1), np.percentile(g, 3, axis=1)
    data, rep = device_data(traces, 0.0, 1.0, hi, lo)
    with h5py.File(path, "r") as f:
        drawn = {k: f[f"aihwkit_truth/{k}"][()].astype(float) for k in f["aihwkit_truth"]}
    fm = family_model(family)
    fit, prob = fit_shared_shape(fm, data)
    noise = estimate_noise(noise_sums(fm, data.blocks, column_values(fit), rep), n_boot=0)
    c2c, read = noise.c2c, noise.non_accumulating
    j_family = j_statistic(prob, fit.theta, fit.phi, c2c, read).sum()
    oracle, theta = _drawn_problem(truth, drawn, data)
    oracle.set_weights(theta, np.zeros(0))
    theta, _, _ = oracle.solve_devices(theta, np.zeros(0))
    j_true = j_statistic(oracle, theta, np.zeros(0), c2c, read).sum()
    n_obs = sum(b.weight.sum() for b in data.blocks)
    return float(j_family - j_true), float(np.log(n_obs))


def _stated() -> list:
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        truth = json.loads(path.read_text())
        for fam, why in truth.get("equivalent_families", {}).items():
            if AT_THIS_NOISE in why:
                out.append(pytest.param(path.stem, fam, id=f"{path.stem}-{fam}"))
    return out


@pytest.mark.parametrize(("case", "family"), _stated())
def test_a_family_stated_equivalent_at_this_noise_is_measured_so(case: str, family: str) -> None:
    gap, ln_n = evidence_for_the_true_shape(case, family)
    # measured: es_weak_unreached 4.6 (ln N 10.7), ps_up_down_neg_unreached 8.0 (10.6),
    # pw_unreached 2.5 (10.2), with each family's own noise model here (see the fixtures)
    assert gap < ln_n, f"{case}: the drawn truth lowers J by {gap:.1f} ≥ ln N = {ln_n:.1f}"


def test_every_at_this_noise_statement_is_one_of_the_measured_ones() -> None:
    assert {p.values[0] for p in _stated()} == {
        "es_weak_unreached",
        "ps_up_down_neg_unreached",
        "pw_unreached",
    }


def test_exponent_spread_of_ps_default_is_evidence_the_fit_cannot_use() -> None:
    gap, ln_n = evidence_for_the_true_shape("ps_default", "soft-bounds")
    assert gap > 5 * ln_n  # measured 138.5 (ln N 11.0): the drawn exponents matter
