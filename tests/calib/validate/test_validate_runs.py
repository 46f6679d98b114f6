"""``calib validate`` end to end: tasks, the chip in the loop, reports, the CLI and its errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from calib.cli import main
from calib.validate import (
    EvalSettings,
    EvalTask,
    TrainingOptions,
    ValidationOptions,
    evaluate_accuracy,
    run_validation,
)
from calib.validate.datasets import load_dataset
from calib.validate.networks import NetworkSpec, save_network
from calib.validate.predictive import drift_check, pulse_response_check
from calib.validate.training import train_network
from instruments.emulator.server import running_emulator

EXAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "examples"
PCM_TRUTH = EXAMPLES / "pcm_truth.json"
RERAM_TRUTH = EXAMPLES / "reram_truth.json"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pcm_network(tmp_path_factory) -> Path:
    """An MLP trained hardware-aware for the PCM truth (3 epochs: quick, ~90 % on digits)."""
    preset = json.loads(PCM_TRUTH.read_text())
    spec = NetworkSpec("mlp", "digits", hidden=(32,))
    net = train_network(
        spec, preset, "pcm", load_dataset("digits", 0), 0, TrainingOptions(epochs=3),
        EvalSettings().mapping(),
    )  # fmt: skip
    return save_network(net, tmp_path_factory.mktemp("net") / "network.pt")


def test_results_do_not_depend_on_the_order_of_tasks(pcm_network: Path) -> None:
    """Simulated and chip tasks give the same accuracy whatever ran before (seeds come from
    (seed, repeat, time) only; the chip's noise is reseeded and PCM is RESET per task)."""
    with running_emulator("pcm", seed=4, shape=(96, 96)) as resource:
        tasks = [
            EvalTask(str(pcm_network), str(PCM_TRUTH), source, t, r, 0, chip)
            for source, chip in (("fitted", None), ("chip", resource))
            for t in (1.0, 86400.0)
            for r in (0, 1)
        ]
        forward = [evaluate_accuracy(t) for t in tasks]
        backward = [evaluate_accuracy(t) for t in reversed(tasks)][::-1]
    assert forward == backward
    assert len(set(forward)) > 1  # repeats and times differ


def test_identical_presets_give_identical_accuracies(pcm_network: Path, tmp_path: Path) -> None:
    """Sources see common random numbers: the same preset under two names, no gap at all."""
    copy_path = tmp_path / "same.json"
    copy_path.write_text(PCM_TRUTH.read_text())
    for r in range(3):
        a = evaluate_accuracy(EvalTask(str(pcm_network), str(PCM_TRUTH), "fitted", 3600.0, r))
        b = evaluate_accuracy(EvalTask(str(pcm_network), str(copy_path), "truth", 3600.0, r))
        assert a == b


def test_pcm_validation_with_the_chip_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = run_validation(
        ValidationOptions(
            PCM_TRUTH, out, truth=PCM_TRUTH, chip="embedded", repeats=3,
            times_s=(86400.0, 1.0), training=TrainingOptions(epochs=5),
            campaign=EXAMPLES / "pcm_drift.h5",
        )
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["times_s"] == [1.0, 86400.0]  # sorted
    assert set(report["sources"]) == {"fitted", "truth", "chip"}
    assert all(len(s["accuracy"][0]) == 3 for s in report["sources"].values())
    # the same preset as fitted and truth: exactly no gap (common random numbers)
    assert report["gaps_pp"]["fitted - truth"]["max_abs"] == 0.0
    # simulation vs chip: per-repeat std is ~0.5 pp here, so the SE of a 3-repeat gap is
    # ~0.4 pp; 3 pp is > 5 SE
    assert report["gaps_pp"]["fitted - chip"]["max_abs"] < 3.0
    assert report["chip_programming"]["n_devices"] == 2 * (64 * 64 + 64 * 10)
    assert report["inputs"]["chip"]["technology"] == "pcm"
    assert "t_inference + 20 s after programming" in report["time_convention"]
    check = report["predictive_check"]
    assert check["campaign"] == "drift" and check["score"] < 3 * check["sampling_floor"]
    md = (out / "report.md").read_text()
    assert "| 1 d |" in md and "fitted - chip (pp)" in md and "![accuracy vs time]" in md
    for name in ("accuracy_vs_time.png", "predictive_check.png", "network.pt"):
        assert (out / name).stat().st_size > 1000
    assert result.accuracy_table()["chip"][0] > 80


def test_pulsed_validation_on_the_reram_chip(tmp_path: Path) -> None:
    """Training on the preset's device, one device per weight against a reference on the
    chip, and the pulse-response predictive check."""
    result = run_validation(
        ValidationOptions(
            RERAM_TRUTH, tmp_path, truth=RERAM_TRUTH, chip="embedded", repeats=2,
            times_s=(1.0,), training=TrainingOptions(epochs=4),
            campaign=EXAMPLES / "reram_pulse_response.h5",
        )
    )  # fmt: skip
    report = result.report
    assert report["network"]["mapping"]["kind"] == "reference"
    assert report["chip_programming"]["n_devices"] == 64 * 64 + 64 * 10
    table = result.accuracy_table()
    assert abs(table["fitted"][0] - table["chip"][0]) < 5  # 2 repeats, std ~1 pp
    check = report["predictive_check"]
    assert check["campaign"] == "pulse_response"
    assert check["score"] < 2 * check["sampling_floor"] + 0.005


def test_validation_tells_a_wrong_pcm_preset_from_the_truth(tmp_path: Path) -> None:
    """3x the programming noise and drift spread: the gap to the truth exceeds 1 pp."""
    bad = json.loads(PCM_TRUTH.read_text())
    pcm = bad["pcm"]
    pcm["prog_noise"]["coefficients_s"] = [3 * c for c in pcm["prog_noise"]["coefficients_s"]]
    pcm["drift"]["sigma_nu"] = {k: 3 * v for k, v in pcm["drift"]["sigma_nu"].items()}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    result = run_validation(
        ValidationOptions(
            tmp_path / "bad.json", tmp_path / "r", truth=PCM_TRUTH, repeats=10,
            times_s=(1.0, 31536000.0), training=TrainingOptions(epochs=5),
        )
    )  # fmt: skip
    target = result.report["targets"]["fitted - truth"]
    gap = result.report["gaps_pp"]["fitted - truth"]
    # measured gap at 1 year -2.5 ± 0.5 pp (paired SE): > 1 pp by 3 SE
    assert not target["met"] and gap["mean"][1] < -1.0
    assert result.report["predictive_note"].startswith("predictive check skipped")


def test_predictive_checks_separate_right_and_wrong_presets() -> None:
    truth = json.loads(RERAM_TRUTH.read_text())
    good = pulse_response_check(truth, EXAMPLES / "reram_pulse_response.h5")
    wrong = copy.deepcopy(truth)
    wrong["device"]["parameters"]["dw_min"] *= 2
    bad = pulse_response_check(wrong, EXAMPLES / "reram_pulse_response.h5")
    assert good.score < 2 * good.floor + 0.005 < bad.score
    pcm = json.loads(PCM_TRUTH.read_text())
    good = drift_check(pcm, EXAMPLES / "pcm_drift.h5")
    for key in ("b", "lo", "hi"):  # drift exponents 0.03 larger at every level
        pcm["pcm"]["drift"]["mu_nu"][key] += 0.03
    bad = drift_check(pcm, EXAMPLES / "pcm_drift.h5")
    # 8 devices per level only: the floor is ~2 % of g_max; seeds 0-4 gave score/floor
    # 0.6-1.3 for the truth, and the wrong preset scores 5 %
    assert good.score < 2 * good.floor < bad.score
    assert good.measured["mean"].shape == (8, 20)  # 8 levels x 20 read times


# ----------------------------------------------------------------------------- the CLI
def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_runs_and_prints_the_table(tmp_path: Path, capsys) -> None:
    code, out, err = _cli(
        [str(PCM_TRUTH), "--truth", str(PCM_TRUTH), "--times", "1,1d", "--repeats", "2",
         "--epochs", "2", "-o", str(tmp_path)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "fitted - truth" in out and "report:" in out
    assert (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--truth", str(RERAM_TRUTH)], "compare presets of the same family"),
        (["--chip", "TCPIP::127.0.0.1::1::SOCKET"], "TCPIP::127.0.0.1::1::SOCKET"),
        (["--dataset", "mnist2d"], "unknown dataset 'mnist2d'; choose one of digits, mnist1d"),
        (["--times", "1,soon"], "'soon' is not a time"),
        (["--network", "rnn"], "'rnn' is not one of"),
    ],
)
def test_cli_bad_inputs_are_one_line_errors(args, message, tmp_path: Path, capsys) -> None:
    code, _, err = _cli([str(PCM_TRUTH), *args, "-o", str(tmp_path)], capsys)
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "report.json").exists()


def test_cli_missing_and_mismatched_chip(tmp_path: Path, capsys) -> None:
    code, _, err = _cli([str(tmp_path / "none.json"), "-o", str(tmp_path)], capsys)
    assert code == 1 and "no such preset file" in err
    with running_emulator("reram", seed=0, shape=(64, 64)) as resource:
        code, _, err = _cli([str(PCM_TRUTH), "--chip", resource, "-o", str(tmp_path)], capsys)
    assert code == 1 and "is a reram chip but the preset describes pcm" in err
    assert len(err.strip().splitlines()) == 1


def test_embedded_chip_needs_to_know_the_technology(tmp_path: Path, capsys) -> None:
    preset = json.loads(RERAM_TRUTH.read_text())
    preset["provenance"] = {"software_version": "0", "created": "x", "command": "hand made"}
    (tmp_path / "p.json").write_text(json.dumps(preset))
    out = str(tmp_path / "out")  # a new folder: the output check refuses a non-empty one
    code, _, err = _cli([str(tmp_path / "p.json"), "--chip", "embedded", "-o", out], capsys)
    assert code == 1 and "cannot tell which emulated chip to start" in err
