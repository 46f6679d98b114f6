"""Verdicts a user relies on: a validation that did not learn fails, --strict fails on a
missed target, and fit-many calls outliers only beyond each chip's own uncertainty."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from calib.cli import main
from calib.cli.validate import _exit_on_verdict
from calib.fit.many import wafer_summary
from calib.validate.report import training_verdict

EXAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "examples"


# ----------------------------------------------------------------------- validate
def test_training_verdict_fails_at_chance_and_far_below_the_float_reference() -> None:
    ok = training_verdict(0.95, 0.97, 10, 1.0)
    assert ok["learned"] and not ok["reasons"]
    at_chance = training_verdict(0.10, 0.97, 10, 1.0)  # issue 16: 10 % on digits
    assert not at_chance["learned"] and "at chance level" in at_chance["reasons"][0]
    far = training_verdict(0.40, 0.97, 10, 1.0)  # learned a little: 30 of 87 pp over chance
    assert not far["learned"] and "far below the float reference" in far["reasons"][0]
    no_reference = training_verdict(0.12, 0.15, 10, 1.0)  # the float network learns nothing
    assert (
        not no_reference["learned"]
        and "float reference reaches only" in (no_reference["reasons"][0])
    )


def test_validate_of_a_device_that_cannot_learn_exits_4_with_one_line(tmp_path, capsys) -> None:
    # the emulator's ReRAM truth with one step of half the window and 20:1 up/down asymmetry:
    # every weight runs into a bound, the network stays at chance (measured: 10.9 %)
    preset = json.loads((EXAMPLES / "reram_truth.json").read_text())
    preset["device"]["parameters"].update(up_down=0.95, dw_min=2e-5)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(preset))
    args = ["validate", str(path), "--epochs", "2", "--repeats", "2", "--times", "1"]
    code = main([*args, "-o", str(tmp_path / "out")])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars
    assert code == 4
    assert last.startswith("calib: validation failed: training did not learn")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verdict"]["learned"] is False  # the report is written all the same


def _report(met: bool) -> dict:
    target = {"limit_pp": 2.0, "max_abs_gap_pp": 1.0 if met else 2.27, "met": met}
    return {"verdict": {"learned": True, "reasons": []}, "targets": {"fitted - chip": target}}


def test_strict_turns_a_missed_target_into_exit_4() -> None:
    _exit_on_verdict(_report(met=False), strict=False)  # reported, exit 0 (as before)
    _exit_on_verdict(_report(met=True), strict=True)
    with pytest.raises(click.ClickException, match=r"--strict.*fitted - chip.*2.27 pp") as exc:
        _exit_on_verdict(_report(met=False), strict=True)
    assert exc.value.exit_code == 4


# ------------------------------------------------------------------------ fit-many
def _chips(values: list[float], se: float) -> list[dict]:
    return [{"chip": f"c{k}", "dw_min_std": v, "dw_min_std_se": se} for k, v in enumerate(values)]


def test_a_chip_two_standard_errors_from_the_others_is_no_outlier() -> None:
    # issue 16: chips with the same truth; the MAD of their values (0.011) is far below
    # their standard errors (0.02), so the MAD alone called c5 (z = 3.8) an outlier
    rows = _chips([1.00, 1.01, 0.99, 1.005, 0.995, 1.045], se=0.02)
    wafer_summary(rows)
    assert not any(r["outlier"] for r in rows)
    assert abs(rows[5]["z_dw_min_std"]) < 2.5
    # without standard errors the same numbers are an outlier (the old rule)
    bare = [{k: v for k, v in r.items() if not k.endswith("_se")} for r in rows]
    wafer_summary(bare)
    assert [r["chip"] for r in bare if r["outlier"]] == ["c5"]


def test_a_chip_far_beyond_its_standard_error_is_an_outlier_but_not_among_four() -> None:
    rows = _chips([1.00, 1.01, 0.99, 1.005, 0.995, 1.20], se=0.02)
    summary = wafer_summary(rows)
    assert [r["chip"] for r in rows if r["outlier"]] == ["c5"]
    assert summary["dw_min_std"]["outlier_chips"] == 1
    four = _chips([1.00, 1.01, 0.99, 1.20], se=0.02)
    wafer_summary(four)
    assert not any(r["outlier"] for r in four)  # too few chips to call one


def test_fit_many_says_outliers_are_not_called_with_few_chips(tmp_path, capsys) -> None:
    from chip_files import measure_chip_file

    for k in range(2):
        measure_chip_file(tmp_path / f"die{k}.h5", 60 + k, 40, n_pulses=40)
    assert main(["fit-many", str(tmp_path / "die*.h5"), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "outlier chips: not called (2 fitted chips, 5 needed)" in out
