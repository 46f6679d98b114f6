"""The command tree is assembled where the commands live; old names keep working."""

from __future__ import annotations

from click.testing import CliRunner

from calib.cli import cli
from calib.cli.fit import fit


def test_the_fit_group_holds_every_fit_command_on_its_own() -> None:
    assert set(fit.commands) == {"pulse-response", "pcm", "many"}
    assert cli.commands["fit"] is fit


def test_fit_many_is_a_hidden_alias_of_fit_many() -> None:
    alias, many = cli.commands["fit-many"], fit.commands["many"]
    assert alias.hidden and not many.hidden
    assert alias.callback is many.callback
    assert [p.opts for p in alias.params] == [p.opts for p in many.params]
    listing = CliRunner().invoke(cli, ["--help"]).output
    assert "fit-many" not in listing
    result = CliRunner().invoke(cli, ["fit-many", "--help"])
    assert result.exit_code == 0 and "PATTERN_OR_MANIFEST" in result.output
