"""A fit whose folded-gain likelihood runs away ends in a verdict, not an internal error
(aihwkit's random pow-step case 4 of seed 8: tests/fixtures/aihwkit_robustness/README.md)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from calib.cli import main

CASE = Path(__file__).parents[2] / "fixtures" / "aihwkit_robustness" / "sweep8_04_pow-step.h5"


def test_runaway_folded_gain_gives_a_verdict_without_warnings(tmp_path: Path, capsys) -> None:
    out = tmp_path / "preset.json"
    with warnings.catch_warnings():  # (pytest would otherwise keep them from the output)
        warnings.simplefilter("error", RuntimeWarning)
        args = ["--model", "pow-step", "--units", "normalized", "-o", str(out)]
        code = main(["fit", "pulse-response", str(CASE), *args])
    printed = capsys.readouterr()
    said = printed.out + printed.err
    assert code == 0, said
    assert "internal error" not in said and "RuntimeWarning" not in said
    assert "did not converge (nominal gain" in said
    device = json.loads(out.read_text())["device"]
    assert device["fit_status"]["status"] == "does_not_fit"
    assert all(
        isinstance(v, bool) or not isinstance(v, float) or abs(v) < 1e300
        for v in device["parameters"].values()
    )


def test_a_non_finite_population_parameter_is_refused_in_one_line(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    # without the folded gain's own judgement, up_down comes out inf on this case: the fit
    # is refused before the preset is simulated or written
    import fitting.pulse_response as pulse_response

    monkeypatch.setattr(pulse_response, "FOLDED_SCALE_RANGE", (0.0, float("inf")))
    out = tmp_path / "preset.json"
    args = ["--model", "pow-step", "--units", "normalized", "-o", str(out)]
    code = main(["fit", "pulse-response", str(CASE), *args])
    err = capsys.readouterr().err
    assert code == 1
    assert "the pow-step fit diverged (up_down = inf)" in err and "internal error" not in err
    assert not out.exists()
