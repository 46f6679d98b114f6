"""The random cases of ``benchmarks/aihwkit_conformance.py sweep`` (no aihwkit needed here).

The grid's cases were written by hand and the fitter was tuned on them; ``sweep`` draws
devices and protocols over aihwkit's parameter space to judge the fitter on cases it has not
seen (2026-12-07: it found linear-step's γ spread at 2.86 for 0.05). These checks keep the
draws reproducible and inside the ranges the sweep states, and the committed fixtures safe.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_modules import benchmark_module


def _bench():
    return benchmark_module("aihwkit_conformance")


def test_random_cases_are_reproducible_and_inside_the_stated_ranges() -> None:
    bench = _bench()
    cases = [bench.random_case(np.random.default_rng([7, k]), f"s{k}") for k in range(300)]
    again = [bench.random_case(np.random.default_rng([7, k]), f"s{k}") for k in range(300)]
    assert cases == again
    assert {c.family for c in cases} == set(bench.CLASSES)
    grid = {c.name for c in bench.CASES}
    for c in cases:
        f = c.fields
        assert c.name.endswith(c.family) and c.name not in grid
        assert 0.003 <= f["dw_min"] <= 0.02
        assert 0.3 <= f["w_max"] <= 1.2 and -1.2 <= f["w_min"] <= -0.3
        assert abs(f.get("up_down", 0.0)) <= 0.3
        assert 60 <= c.n_pulses <= 400 and 1 <= c.cycles <= 3
        assert c.n_devices in (64, 96, 128, 256) and 0.004 <= c.read_noise <= 0.02
        if c.family == "linear-step" and min(f["gamma_up"], f["gamma_down"]) < 0:
            assert f["allow_increasing"] is True  # aihwkit takes |γ| otherwise
        if c.family == "piecewise-step":
            assert len(f["piecewise_up"]) == len(f["piecewise_down"]) >= 2


def test_sweep_refuses_to_write_into_the_committed_fixtures() -> None:
    bench = _bench()
    with pytest.raises(SystemExit, match="committed fixtures"):
        bench.sweep(1, 0, bench.FIXTURES)


def test_an_internal_error_is_a_result_and_the_sweep_goes_on(tmp_path, monkeypatch) -> None:
    # seed 8's fifth case stopped the first sweep with a ValueError and lost its later cases
    import json

    import aihwkit_checks

    bench = _bench()
    monkeypatch.setattr(bench, "generate", lambda case, out: None)
    monkeypatch.setattr(bench, "add_redraws", lambda case, out: None)
    monkeypatch.setattr(bench, "_our_side_on_path", lambda: None)
    monkeypatch.setattr(bench, "print_tables", lambda results: None)

    def evaluate(name, fixtures):
        if name.startswith("sweep3_01"):
            raise ValueError("device parameter up_down is not finite (inf)")
        return {"case": name, "true_family": "x", "family": "x", "failures": []}

    monkeypatch.setattr(aihwkit_checks, "evaluate_case", evaluate)
    assert bench.sweep(3, 3, tmp_path) == 0
    results = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["family"] for r in results] == ["x", "(internal error)", "x"]
    assert "ValueError: device parameter up_down" in results[1]["failures"][0]
