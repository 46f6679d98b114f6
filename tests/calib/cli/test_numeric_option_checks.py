"""Every numeric CLI option is checked for finiteness and range (issue 18.9, 18.18).

``type=float`` accepts ``nan`` and ``inf`` and ``click.FloatRange`` lets ``nan`` through;
``--read-delay nan`` measured with no delay and ``--t-max inf`` was an internal error.
Every float option must use :class:`calib.cli.option_types.FiniteFloat` and every integer
option a range with a lower bound (seeds >= 0), so that new options cannot slip back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from calib.cli import cli, main
from calib.cli.option_types import FiniteFloat


def _options(group: click.Command, path: str = "calib") -> Iterator[tuple[str, click.Option]]:
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            yield from _options(sub, f"{path} {name}")
    for param in group.params:
        if isinstance(param, click.Option):
            yield path, param


NUMERIC = [
    (path, opt)
    for path, opt in _options(cli)
    if isinstance(opt.type, click.types.FloatParamType | click.types.IntParamType)
]
FLOATS = [(p, o) for p, o in NUMERIC if isinstance(o.type, click.types.FloatParamType)]


def test_the_cli_has_numeric_options_to_check() -> None:
    assert len(FLOATS) >= 15 and len(NUMERIC) >= 40


@pytest.mark.parametrize(("path", "opt"), NUMERIC, ids=[f"{p} {o.name}" for p, o in NUMERIC])
def test_every_numeric_option_is_bounded(path: str, opt: click.Option) -> None:
    if isinstance(opt.type, click.types.FloatParamType):
        assert isinstance(opt.type, FiniteFloat), f"{path} {opt.opts}: use number(...)"
    else:
        assert isinstance(opt.type, click.IntRange) and opt.type.min is not None, (
            f"{path} {opt.opts}: use click.IntRange(min, ...) (or SEED)"
        )


@pytest.mark.parametrize(("path", "opt"), FLOATS, ids=[f"{p} {o.name}" for p, o in FLOATS])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_float_options_refuse_non_finite_values(path: str, opt: click.Option, text: str) -> None:
    with pytest.raises(click.BadParameter, match="not a finite number"):
        opt.type.convert(text, opt, None)


@pytest.mark.parametrize(
    "args",
    [
        ["measure", "programming", "--read-delay", "nan"],
        ["measure", "read-noise", "--read-delay", "-1"],
        ["measure", "drift", "--t-max", "inf"],
        ["measure", "drift", "--t-min", "0"],
        ["measure", "pulse-response", "--read-voltage", "nan"],
        ["measure", "pulse-response", "--seed", "-1"],
        ["measure", "drift", "--tolerance", "-1e-6"],
        ["fit", "pulse-response", "IN.h5", "--read-noise", "-1"],
        ["fit", "pulse-response", "IN.h5", "--workers", "0"],
        ["fit", "pcm", "IN.h5", "--t0", "nan"],
        ["export", "IN.json", "--to", "aihwkit", "--scale", "inf"],
        ["validate", "IN.json", "--hwa-noise", "nan"],
    ],
)
def test_bad_numbers_are_one_line_usage_errors(tmp_path: Path, args: list[str], capsys) -> None:
    out = tmp_path / "out.h5"
    code = main([*args, "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Invalid value" in err, err
    assert not out.exists()
