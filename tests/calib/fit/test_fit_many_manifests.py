"""fit-many manifests: chip names never become paths, collisions and bad encodings refused
(issues 18.10 and 18.18)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.fit.many import chip_file_stem, read_chip_inputs

EXAMPLE = Path(__file__).parents[3] / "datasets" / "examples" / "reram_pulse_response.h5"


def _manifest(tmp_path: Path, names: list[str], encoding: str = "utf-8") -> Path:
    shutil.copy(EXAMPLE, tmp_path / "die.h5")
    lines = ["chip,path"] + [f'"{n}",die.h5' for n in names]
    path = tmp_path / "manifest.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("../../../x", "_.._.._x"),
        ("/etc/passwd", "_etc_passwd"),
        ("..", "chip"),
        ("a\\b", "a_b"),
        ("die 7", "die_7"),
        ("W12-d03.v2", "W12-d03.v2"),
    ],
)
def test_chip_names_become_safe_file_names(name: str, stem: str) -> None:
    assert chip_file_stem(name) == stem
    assert "/" not in chip_file_stem(name) and not chip_file_stem(name).startswith(".")


def test_a_chip_named_like_a_path_writes_inside_outdir(tmp_path: Path, capsys) -> None:
    manifest = _manifest(tmp_path, ["../../../escape", "/tmp/abs"])
    out = tmp_path / "deep" / "out"
    assert main(["fit-many", str(manifest), "-o", str(out)]) == 0, capsys.readouterr()
    written = sorted(p.name for p in (out / "presets").iterdir())
    assert written == ["_.._.._escape.json", "_tmp_abs.json"]
    assert not list(tmp_path.rglob("escape.json")) and not Path("/tmp/abs.json").exists()
    assert "../../../escape" in (out / "wafer_chips.csv").read_text()  # the name is kept


@pytest.mark.parametrize("names", [["a/b", "a_b"], ["Die1", "die1"], ["x", "x"]])
def test_names_that_collide_are_refused(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(CalibError, match=r"same preset file|not unique") as info:
        read_chip_inputs(_manifest(tmp_path, names))
    assert "\n" not in str(info.value)


def test_a_manifest_that_is_not_utf8_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    manifest = _manifest(tmp_path, ["Würzburg-1"], encoding="latin-1")
    code = main(["fit-many", str(manifest), "-o", str(tmp_path / "out")])
    err = _error_line(capsys.readouterr().err)
    assert code == 1 and "not UTF-8" in err and "\n" not in err


def _error_line(stderr: str) -> str:
    """The command's one error line (a progress bar drawn before it is not part of it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("calib")]
    assert len(lines) == 1, stderr
    return lines[0]
