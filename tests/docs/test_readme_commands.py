"""The README names only commands that exist, and says where each one's code is.

A new user copies ``calib ...`` lines out of README.md; each must name a real command
(``calib <cmd> --help`` exits 0), and the "Where the code is" table must lead from a command
to the module that implements it in one hop (README -> ``calib/cli/<module>.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from calib.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def resolve(tokens: list[str]) -> tuple[list[str], click.Command]:
    """Follow ``tokens`` (the words after ``calib``) down the command tree.

    Descends while the current command is a group; a word that is not one of the group's
    subcommands raises ``KeyError`` (a typo or a removed command in the README).
    """
    command: click.Command = cli
    path: list[str] = []
    for token in tokens:
        if not isinstance(command, click.Group) or token.startswith(("-", "[", "<", "'")):
            break
        if token not in command.commands:
            raise KeyError(f"calib {' '.join([*path, token])}: no such command")
        command = command.commands[token]
        path.append(token)
    return path, command


def readme_invocations() -> list[str]:
    """Every ``calib ...`` command line in README.md (code blocks and inline code)."""
    lines = set()
    for match in re.finditer(r"(?:^|[`\s(])calib((?: [\w\-\[\]<>|\\'.*/:,]+)+)", README):
        words = match.group(1).split()
        if words and not words[0].startswith(("/", ".")):
            lines.add(" ".join(words[:3]))
    return sorted(lines)


def command_table() -> list[str]:
    """The first column of the README's Commands table, one ``calib ...`` text per row."""
    section = README.split("## Commands", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `calib ([^`]+)`", section, flags=re.MULTILINE)


def code_table() -> list[tuple[str, str]]:
    """Rows of the README's "Where the code is" table: (command, module path)."""
    section = README.split("## Where the code is", 1)[1]
    return re.findall(r"^\| `calib ([^`]+)` \| `([^`]+\.py)` \|", section, flags=re.MULTILINE)


def test_the_readme_command_table_has_rows() -> None:
    # A parser that finds nothing would make the tests below pass vacuously.
    assert len(command_table()) >= 10
    assert len(readme_invocations()) >= 10
    assert len(code_table()) >= 10


@pytest.mark.parametrize("row", command_table())
def test_every_command_in_the_readme_table_exists_and_has_help(row: str) -> None:
    path, command = resolve(row.split())
    assert path, f"README row `calib {row}` names no command"
    assert not isinstance(command, click.Group), f"`calib {row}` stops at a group"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("line", readme_invocations())
def test_every_calib_line_in_the_readme_names_a_real_command(line: str) -> None:
    path, _ = resolve(line.split())
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, f"calib {line}: {result.output}"


def test_the_where_the_code_is_table_names_each_commands_module() -> None:
    listed = code_table()
    for command_text, module_path in listed:
        path, command = resolve(command_text.split())
        assert path, command_text
        assert (ROOT / module_path).is_file(), module_path
        callback = command.callback
        assert callback is not None
        implemented_in = callback.__module__.replace(".", "/") + ".py"
        assert implemented_in == module_path, f"calib {command_text} is in {implemented_in}"


def test_every_command_is_in_the_where_the_code_is_table() -> None:
    listed = {command_text for command_text, _ in code_table()}

    def leaves(command: click.Command, path: list[str]) -> list[str]:
        if isinstance(command, click.Group):
            return [
                leaf
                for name, sub in command.commands.items()
                if not sub.hidden
                for leaf in leaves(sub, [*path, name])
            ]
        return [" ".join(path)]

    missing = [leaf for leaf in leaves(cli, []) if leaf not in listed]
    assert not missing, f"commands missing from README's 'Where the code is': {missing}"


@pytest.mark.parametrize("row", command_table())
def test_every_option_in_the_readme_table_is_an_option_of_its_command(row: str) -> None:
    _, command = resolve(row.split())
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    named = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", row))
    assert named <= known, f"`calib {row}`: no option {sorted(named - known)}"


# The README's ECRAM walk (technology defaults, 400 pulses per direction, --model auto) ends
# with a coverage note; it must not send the user to "the technology's defaults" they used.
def test_coverage_note_suggests_the_technology_defaults_only_to_shorter_trains() -> None:
    import json

    from calib.fit.coverage import coverage_note
    from calib.fit.pulse_response import _default_pulses_per_direction

    ecram = {"instrument": json.dumps({"configuration": {"technology": "ECRAM"}})}
    default = _default_pulses_per_direction(ecram)
    assert default == 400
    assert _default_pulses_per_direction({}) is None
    at_default = coverage_note(0.75, 400, default)
    assert at_default is not None
    assert "technology's defaults" not in at_default
    assert at_default.endswith("measure longer trains (now 400 per direction)")
    shorter = coverage_note(0.59, 200, default)
    assert shorter is not None
    assert shorter.endswith("e.g. the technology's defaults (400 per direction)")
    assert coverage_note(0.92, 400, default) is None


# README "Upward drift": `calib fit pcm` on the real RRAM relaxation file prints its verdicts,
# not numpy/scipy overflow warnings from the read-noise optimizer's trial steps.
def test_fit_pcm_of_the_readme_upward_drift_file_prints_no_runtime_warnings(tmp_path) -> None:
    import json
    import warnings

    csv = ROOT / "tests" / "fixtures" / "real" / "rram_relax_C" / "data.csv"
    data, preset = tmp_path / "relax.h5", tmp_path / "relax.json"
    args = ["import", "csv", str(csv), "--kind", "drift", "-o", str(data)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, ["fit", "pcm", str(data), "-o", str(preset)])
    assert result.exit_code == 0, result.output
    runtime = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not runtime, runtime
    # the README's claim about this file: a third of the cells relax up, signed exponent kept
    drift = json.loads(preset.read_text())["pcm"]["drift"]
    assert drift["sign"] == "signed"
    assert 0.25 < drift["sign_selection"]["fraction_negative_estimates"] < 0.45


def test_every_option_the_readme_mentions_exists_on_some_command() -> None:
    def options(command: click.Command) -> set[str]:
        own = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                own |= options(sub)
        return own

    known = options(cli) | {"--help", "--version"}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", README))
    assert named, "no options found in README.md"
    assert named <= known, f"README.md names options no command has: {sorted(named - known)}"
