"""No writer replaces a file without --overwrite, and none ever writes over its own input."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.runtime.outputs import check_output_dir, check_output_file

EXAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "examples"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.h5"
    shutil.copy(EXAMPLES / "reram_pulse_response.h5", path)
    return path


def test_fit_pulse_response_refuses_to_write_over_its_input_even_with_overwrite(
    capsys, data: Path
) -> None:
    before = _digest(data)
    for extra in ((), ("--overwrite",)):
        code, err = _run(capsys, "fit", "pulse-response", str(data), "-o", str(data), *extra)
        assert code == 1 and "input file" in err and err.count("\n") == 1
        assert _digest(data) == before
    # another spelling of the same file (relative, through a symlink) is caught too
    link = data.parent / "link.h5"
    link.symlink_to(data)
    code, err = _run(capsys, "fit", "pulse-response", str(data), "-o", str(link), "--overwrite")
    assert code == 1 and "input file" in err and _digest(data) == before


def test_fit_pulse_response_keeps_an_unrelated_existing_file(capsys, data: Path) -> None:
    notes = data.parent / "hand_edited.json"
    notes.write_text('{"mine": true}\n')
    code, err = _run(capsys, "fit", "pulse-response", str(data), "-o", str(notes))
    assert code == 1 and "exists; pass --overwrite" in err
    assert notes.read_text() == '{"mine": true}\n'


def test_fit_pcm_refuses_to_write_over_one_of_its_inputs(capsys, tmp_path: Path) -> None:
    inputs = []
    for name in ("pcm_programming.h5", "pcm_drift.h5", "pcm_read_noise.h5"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
        inputs.append(tmp_path / name)
    before = _digest(inputs[1])
    code, err = _run(capsys, "fit", "pcm", *map(str, inputs), "-o", str(inputs[1]), "--overwrite")
    assert code == 1 and "input file" in err
    assert _digest(inputs[1]) == before


def test_export_refuses_to_write_over_the_preset_it_reads(capsys, tmp_path: Path) -> None:
    preset = tmp_path / "p.json"
    shutil.copy(EXAMPLES / "reram_truth.json", preset)
    before = _digest(preset)
    code, err = _run(capsys, "export", str(preset), "--to", "aihwkit", "-o", str(preset))
    assert code == 1 and "input file" in err and _digest(preset) == before
    out = tmp_path / "out.json"
    assert _run(capsys, "export", str(preset), "--to", "aihwkit", "-o", str(out))[0] == 0
    code, err = _run(capsys, "export", str(preset), "--to", "python", "-o", str(out))
    assert code == 1 and "exists" in err
    assert (
        _run(capsys, "export", str(preset), "--to", "python", "-o", str(out), "--overwrite")[0] == 0
    )
    assert "import" in out.read_text()


def test_emulator_truth_does_not_replace_a_campaign_file(capsys, data: Path) -> None:
    before = _digest(data)
    code, err = _run(capsys, "emulator", "truth", "-o", str(data))
    assert code == 1 and "exists; pass --overwrite" in err and _digest(data) == before


def test_import_refuses_to_write_over_its_csv(capsys, tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("device,pulse,conductance\n0,0,1e-5\n0,1,1.1e-5\n0,2,1.2e-5\n")
    before = _digest(csv)
    code, err = _run(
        capsys,
        "import",
        "csv",
        str(csv),
        "--kind",
        "pulse-response",
        "-o",
        str(csv),
        "--overwrite",
    )
    assert code == 1 and "input file" in err and _digest(csv) == before


def test_fit_report_folder_keeps_other_files_and_guards_its_own(
    capsys, data: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "notes.txt").write_text("mine")
    out = tmp_path / "preset.json"
    code, err = _run(
        capsys, "fit", "pulse-response", str(data), "-o", str(out), "--report", str(report)
    )
    assert code == 0, err
    assert (report / "notes.txt").read_text() == "mine" and (report / "summary.md").exists()
    # a second run would replace the report's own files: --overwrite needed
    out2 = tmp_path / "preset2.json"
    code, err = _run(
        capsys, "fit", "pulse-response", str(data), "-o", str(out2), "--report", str(report)
    )
    assert code == 1 and str(report) in err and "exists; pass --overwrite" in err
    assert not out2.exists()
    # an input where the report writes one of its files: refused even with --overwrite
    clash = report / "summary.json"
    shutil.copy(data, clash)
    before = _digest(clash)
    code, err = _run(
        capsys,
        "fit",
        "pulse-response",
        str(clash),
        "-o",
        str(out2),
        "--report",
        str(report),
        "--overwrite",
    )
    assert code == 1 and "which is the input" in err and _digest(clash) == before


def test_fit_many_outdir_files_are_guarded(capsys, tmp_path: Path) -> None:
    dies = tmp_path / "dies"
    dies.mkdir()
    for k in range(2):
        shutil.copy(EXAMPLES / "reram_pulse_response.h5", dies / f"chip{k}.h5")
    out = tmp_path / "out"
    out.mkdir()
    (out / "wafer_summary.json").write_text("{}")
    code, err = _run(capsys, "fit-many", str(dies / "*.h5"), "-o", str(out))
    assert code == 1 and "wafer_summary.json: exists" in err
    assert (out / "wafer_summary.json").read_text() == "{}"
    # a manifest where fit-many writes its chip table: refused even with --overwrite
    manifest = out / "wafer_chips.csv"
    manifest.write_text("path\n../dies/chip0.h5\n../dies/chip1.h5\n")
    before = _digest(manifest)
    code, err = _run(capsys, "fit-many", str(manifest), "-o", str(out), "--overwrite")
    assert code == 1 and "which is the input" in err and _digest(manifest) == before


def test_validate_output_folder_is_guarded(capsys, tmp_path: Path) -> None:
    preset = tmp_path / "report.json"  # where validate writes its report
    shutil.copy(EXAMPLES / "reram_truth.json", preset)
    before = _digest(preset)
    code, err = _run(capsys, "validate", str(preset), "-o", str(tmp_path), "--overwrite")
    assert code == 1 and "which is the input" in err and _digest(preset) == before
    (tmp_path / "report.md").write_text("an earlier validation")
    other = tmp_path / "p.json"
    shutil.copy(EXAMPLES / "reram_truth.json", other)
    code, err = _run(capsys, "validate", str(other), "-o", str(tmp_path))
    assert code == 1 and "exists; pass --overwrite" in err
    code, err = _run(capsys, "validate", str(preset), "-o", str(preset))
    assert code != 0 and _digest(preset) == before  # a file is not a report folder


def test_guard_unit_rules(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("x")
    assert check_output_file(tmp_path / "new.txt", [a]) == tmp_path / "new.txt"
    with pytest.raises(CalibError, match="input file"):
        check_output_file(tmp_path / "sub" / ".." / "a.txt", [a], overwrite=True)
    with pytest.raises(CalibError, match="names a folder"):
        check_output_file(tmp_path, [], overwrite=True)
    with pytest.raises(CalibError, match="must be a folder"):
        check_output_dir(a, [])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_dir(empty, [a]) == empty
    # a folder of unnamed files: all or nothing
    with pytest.raises(CalibError, match="not empty"):
        check_output_dir(tmp_path, [])
    with pytest.raises(CalibError, match="holds the input"):
        check_output_dir(tmp_path, [a], overwrite=True)
    # named files: others may stay, the command's own need --overwrite
    assert check_output_dir(tmp_path, [a], writes=("*.png",)) == tmp_path
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.png").write_text("")
    with pytest.raises(CalibError, match=r"x\.png: exists"):
        check_output_dir(tmp_path, [a], writes=("sub/*",))


def test_measure_never_writes_over_its_bench_file(capsys, tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text('{"smu": "TCPIP::127.0.0.1::1::SOCKET"}\n')
    before = _digest(bench)
    code, err = _run(
        capsys,
        "measure",
        "pulse-response",
        "--resource",
        f"bench:{bench}",
        "-o",
        str(bench),
        "--overwrite",
    )
    assert code == 1 and "names the bench file" in err and _digest(bench) == before
