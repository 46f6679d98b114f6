"""`calib measure ...` options come from the campaign parameter dataclasses.

A campaign default is declared once, on its dataclass field; the command shows the field's
flag, default and help, accepts the old names, and builds the same parameters as the Python
API for the same technology.
"""

from __future__ import annotations

import dataclasses

import click
import pytest

from calib.campaigns.options import cli_fields
from calib.campaigns.parameters import (
    DriftParams,
    ProgrammingParams,
    PulseResponseParams,
    ReadNoiseParams,
)
from calib.cli import cli
from calib.cli.measure import campaign_fields

COMMANDS = {
    "pulse-response": PulseResponseParams,
    "drift": DriftParams,
    "programming": ProgrammingParams,
    "read-noise": ReadNoiseParams,
}
#: options of a measure command that are not campaign parameters: where, which file, how
#: the target levels are written on the command line, logging and help
RUN_OPTIONS = {
    "resource",
    "chip",
    "output",
    "resume",
    "resume_on_other_chip",
    "overwrite",
    "levels",
    "n_levels",
    "verbose",
    "help",
}


def _options(name: str) -> dict[str, click.Option]:
    command = cli.commands["measure"].commands[name]
    return {p.name: p for p in command.params if isinstance(p, click.Option)}


@pytest.mark.parametrize("name", COMMANDS)
def test_each_campaign_option_shows_its_fields_flag_default_and_help(name: str) -> None:
    options = _options(name)
    fields = cli_fields(COMMANDS[name])
    assert len(fields) >= 7  # the common five and the campaign's own
    for field, spec in fields:
        option = options[field.name]
        assert option.opts == [spec.flag]
        assert option.default == field.default
        assert option.help == spec.help()
        assert not option.hidden
        for old in spec.old_names:
            alias = next(o for o in options.values() if old in o.opts)
            assert alias.hidden and alias.type == option.type


@pytest.mark.parametrize("name", COMMANDS)
def test_a_measure_command_has_no_parameter_option_outside_its_dataclass(name: str) -> None:
    fields = {f.name for f, _ in cli_fields(COMMANDS[name])}
    shown = {n for n, o in _options(name).items() if not o.hidden}
    assert shown - fields <= RUN_OPTIONS, shown - fields - RUN_OPTIONS


def test_help_lists_the_technology_defaults_with_units() -> None:
    width = _options("pulse-response")["width_s"].help
    assert width == "Pulse width (s); default per technology (reram 1 µs, ecram 10 ms, pcm 100 ns)."
    n_up = _options("pulse-response")["n_up"].help
    assert "(reram 200, ecram 400, pcm 200)" in n_up


def _values(name: str, argv: list[str]) -> dict:
    command = cli.commands["measure"].commands[name]
    with command.make_context(name, [*argv, "-o", "unused.h5"]) as ctx:
        return campaign_fields(COMMANDS[name], dict(ctx.params))


@pytest.mark.parametrize("technology", ["reram", "ecram", "pcm"])
def test_command_line_defaults_give_the_python_apis_parameters(technology: str) -> None:
    for name, params_class in COMMANDS.items():
        from_cli = params_class.for_technology(technology, **_values(name, []))
        from_api = params_class.for_technology(technology)
        if name != "pulse-response":  # the command line's --n-levels default is its own (8)
            from_cli = dataclasses.replace(from_cli, levels_s=from_api.levels_s)
        assert from_cli == from_api, name


def test_one_pulse_amplitude_sets_up_and_down_pulses_under_either_name() -> None:
    new = _values("pulse-response", ["--pulse-amplitude", "-2.5", "--pulse-width", "1e-3"])
    old = _values("pulse-response", ["--amplitude", "2.5", "--width", "1e-3"])
    assert new == old
    assert (new["amplitude_up_v"], new["amplitude_down_v"], new["width_s"]) == (2.5, -2.5, 1e-3)


def test_giving_an_option_under_its_old_and_new_name_is_a_usage_error() -> None:
    with pytest.raises(click.UsageError, match="give --pulse-width only"):
        _values("pulse-response", ["--pulse-width", "1e-3", "--width", "1e-3"])


def test_drift_offers_no_read_delay_its_reads_are_timed_by_t_min_and_t_max() -> None:
    assert "read_delay_s" not in _options("drift")
    assert _options("programming")["read_delay_s"].default == 20.0
    assert _options("read-noise")["read_delay_s"].default == 100.0


def test_the_number_of_target_levels_has_one_default_for_the_api_and_the_command_line() -> None:
    from calib.campaigns.parameters import DEFAULT_N_LEVELS

    programming = cli.commands["measure"].commands["programming"]
    option = next(p for p in programming.params if p.name == "n_levels")
    assert option.default == DEFAULT_N_LEVELS == 8  # was 8 on the command line, 4 in the API
