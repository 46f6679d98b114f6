"""The paths a new user takes, walked through the CLI (click.testing) for every chip kind.

Issue 16: the demo on every chip kind, technology defaults in the Python API as well as in
the CLI, validation verdicts, option names, ``-v`` traffic logs, start-up without torch,
shipped references and the check for clashing top-level packages.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from calib.campaigns import PulseResponseParams, measure_pulse_response
from calib.campaigns.technology import PULSE_RESPONSE_DEFAULTS
from calib.cli import cli
from calib.errors import CalibError
from calib.io import read_campaign
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.physics import CHIP_KINDS
from instruments.emulator.server import running_emulator

EXAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "examples"


def _invoke(args: list[str]):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


# --------------------------------------------------------------------------- demo
@pytest.mark.parametrize(
    ("kind", "devices", "expect"),
    [
        ("reram", 64, "fitted soft-bounds device"),
        # ECRAM: the emulator's own pulses (3 V, 10 ms) and 2 cycles of 400 + 400; slow:
        # its fit ranks all six families (14 s idle, 100 s on the loaded 2-core VM)
        pytest.param(
            "ecram",
            64,
            "2 cycles of 400 up + 400 down pulses of 3 V, 0.01 s",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_demo_of_a_pulsed_chip_measures_fits_and_trains(tmp_path, kind, devices, expect) -> None:
    result = _invoke(
        ["demo", "--chip", kind, "--devices", str(devices), "--epochs", "2", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert expect in " ".join(result.output.split())
    for name in ("pulse_response.h5", "preset.json", "truth.json"):
        assert (tmp_path / name).is_file()
    assert "test accuracy on digits" in result.output


@pytest.mark.slow  # ~30 s: three campaigns, a PCM fit, training and 40 inference runs
def test_demo_of_a_pcm_chip_shows_programming_drift_read_noise_and_inference_over_time(
    tmp_path,
) -> None:
    result = _invoke(
        ["demo", "--chip", "pcm", "--devices", "128", "--epochs", "2", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for phrase in (
        "measuring programming",
        "measuring drift",
        "measuring read noise",
        "PCM noise model",
        "drift:",
        "read noise:",
        "1 y",
        "training learned",
    ):
        assert phrase in text, phrase
    report = json.loads((tmp_path / "validation" / "report.json").read_text())
    assert report["verdict"]["learned"]
    assert report["inputs"]["preset"]["kind"] == "pcm"
    assert report["times_s"] == [1.0, 3600.0, 86400.0, 31536000.0]
    for name in ("prog.h5", "drift.h5", "read_noise.h5", "preset.json", "truth.json"):
        assert (tmp_path / name).is_file()


# --------------------------------------------------------------- technology defaults
def test_pulse_response_params_take_the_chips_technology_defaults(tmp_path) -> None:
    ecram = CHIP_KINDS["ecram"]  # the emulator's physics: the pulses its devices respond to
    with running_emulator("ecram", seed=3, shape=(8, 8)) as res, ScpiCrossbarChip(res) as chip:
        path = measure_pulse_response(
            chip, PulseResponseParams(n_devices=4, chunk_devices=4), tmp_path / "pr.h5"
        )
    data = read_campaign(path, "pulse_response")
    assert data.attrs["pulse_amplitude_up_v"] == ecram.pulse_amplitude_v
    assert data.attrs["pulse_amplitude_down_v"] == -ecram.pulse_amplitude_v
    assert data.attrs["pulse_width_s"] == ecram.pulse_width_s
    stored = data.attrs["parameters"]
    assert (stored["n_up"], stored["n_down"], stored["cycles"]) == (400, 400, 2)
    assert data.conductance_s.shape == (4, 2 * 800 + 1)


def test_for_technology_resolves_defaults_and_keeps_what_is_given() -> None:
    for kind in ("reram", "ecram", "pcm"):
        p = PulseResponseParams.for_technology(kind, n_devices=8)
        d = PULSE_RESPONSE_DEFAULTS[kind]
        assert (p.amplitude_up_v, p.width_s, p.n_up, p.cycles) == (
            d.amplitude_v,
            d.width_s,
            d.n_up,
            d.cycles,
        )
    p = PulseResponseParams.for_technology("ecram", amplitude_up_v=2.0, n_up=10)
    assert (p.amplitude_up_v, p.amplitude_down_v, p.n_up, p.n_down) == (2.0, -2.0, 10, 400)
    with pytest.raises(CalibError, match="not resolved"):
        PulseResponseParams().train()


def test_cli_pulse_response_on_ecram_uses_its_pulses_and_train(tmp_path) -> None:
    out = tmp_path / "pr.h5"
    args = ["measure", "pulse-response", "--chip", "ecram", "--devices", "2", "-o", str(out)]
    assert _invoke(args).exit_code == 0
    stored = read_campaign(out, "pulse_response").attrs["parameters"]
    assert (stored["amplitude_up_v"], stored["width_s"], stored["n_up"]) == (3.0, 0.01, 400)


# ------------------------------------------------------------------------ options
def test_chip_with_resource_is_an_error(tmp_path) -> None:
    args = ["measure", "drift", "--chip", "pcm", "--resource", "TCPIP::192.0.2.1::5025::SOCKET"]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "d.h5")])
    assert result.exit_code == 2
    assert "--chip" in result.output and "--resource" in result.output


def test_pulse_options_have_one_name_and_the_old_ones_still_work(tmp_path) -> None:
    help_text = _invoke(["measure", "pulse-response", "--help"]).output
    assert "--pulse-amplitude" in help_text and "--pulse-width" in help_text
    assert "--amplitude " not in help_text and "--width " not in help_text  # hidden aliases
    out = tmp_path / "pr.h5"
    base = ["measure", "pulse-response", "--devices", "2", "--n-up", "3", "--n-down", "3"]
    assert _invoke([*base, "--amplitude", "1.1", "--width", "2e-6", "-o", str(out)]).exit_code == 0
    attrs = read_campaign(out, "pulse_response").attrs
    assert (attrs["pulse_amplitude_up_v"], attrs["pulse_width_s"]) == (1.1, 2e-6)
    both = CliRunner().invoke(
        cli, [*base, "--amplitude", "1", "--pulse-amplitude", "1", "-o", str(tmp_path / "b.h5")]
    )
    assert both.exit_code == 2 and "--pulse-amplitude only" in both.output


def test_verbose_after_the_subcommand_logs_every_scpi_exchange(tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="instruments.traffic")
    args = ["measure", "pulse-response", "--devices", "2", "--n-up", "2", "--n-down", "2"]
    assert _invoke([*args, "-o", str(tmp_path / "pr.h5"), "-v"]).exit_code == 0
    sent = [r.getMessage() for r in caplog.records if r.name == "instruments.traffic"]
    assert any(m.endswith("<- *IDN?") for m in sent)
    assert any("-> EMU,AIMC-XBAR-RERAM" in m for m in sent)
    assert any("<block of" in m for m in sent)  # binary blocks summarized, not dumped
    assert max(len(m) for m in sent) < 250  # truncated


# ------------------------------------------------------------------ start-up, packaging
def test_cli_and_export_load_no_torch(tmp_path) -> None:
    out = tmp_path / "device.json"
    code = (
        "import sys\n"
        "from calib.cli import main\n"
        "assert 'torch' not in sys.modules, 'import calib.cli loads torch'\n"
        f"rc = main(['export', {str(EXAMPLES / 'reram_truth.json')!r}, '--to', 'aihwkit', "
        f"'-o', {str(out)!r}])\n"
        "assert rc == 0, rc\n"
        "loaded = [m for m in ('torch', 'pandas', 'h5py') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())


def test_formats_shows_where_the_shipped_references_are() -> None:
    listing = _invoke(["formats"]).output
    paths = [line.split()[1] for line in listing.splitlines() if line[:1].isalpha()][:3]
    assert len(paths) == 3 and all(Path(p).is_file() for p in paths)
    assert _invoke(["formats", "dataset"]).output.startswith("# Dataset format")
    assert "SYST:CONF?" in _invoke(["formats", "commands"]).output


def test_another_package_with_one_of_our_names_stops_the_cli(tmp_path) -> None:
    from calib.runtime.installation import check_installation

    (tmp_path / "simulator").mkdir()
    (tmp_path / "simulator" / "__init__.py").write_text("")
    check_installation([str(EXAMPLES)])  # nothing of that name there
    with pytest.raises(CalibError, match=r"another package named 'simulator'.*virtual env"):
        check_installation([str(tmp_path)])


# ------------------------------------------------------------- window coverage (item 4)
@pytest.mark.parametrize(
    ("train", "warned"),
    [([], False), (["--n-up", "200", "--n-down", "200", "--cycles", "3"], True)],
)
def test_fit_says_when_the_campaign_does_not_cover_the_ecram_window(
    tmp_path, train, warned
) -> None:
    # ECRAM steps ~0.02 uS on an 8 uS window: 200 pulses cover ~60 % of it (measured 0.59
    # with 128 devices and pow-step), its default 400 cover ~90 % (0.92)
    data, preset = tmp_path / "pr.h5", tmp_path / "preset.json"
    args = ["measure", "pulse-response", "--chip", "ecram", "--devices", "64", *train]
    assert _invoke([*args, "-o", str(data)]).exit_code == 0
    result = _invoke(["fit", "pulse-response", str(data), "--model", "pow-step", "-o", str(preset)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert ("the pulse trains cover only" in text) is warned
    doc = json.loads(preset.read_text())
    assert any("cover only" in n for n in doc["device"]["notes"]) is warned
    # the file fit takes each device's read range in its screening pass; the traces in
    # memory give the same verdict
    from types import SimpleNamespace

    from calib.fit.pulse_response import _note_window_coverage, load_pulse_traces

    fit = SimpleNamespace(parameters=doc["device"]["parameters"], notes=[])
    _note_window_coverage(fit, load_pulse_traces(data)[0], {"parameters": {"n_up": 200}})
    assert bool(fit.notes) is warned


# ------------------------------------------------------------------ fit stages (item 10)
def test_fit_shows_each_stage_on_stderr(tmp_path) -> None:
    data = tmp_path / "pr.h5"
    args = ["measure", "pulse-response", "--devices", "16", "--n-up", "40", "--n-down", "40"]
    assert _invoke([*args, "-o", str(data)]).exit_code == 0
    result = CliRunner().invoke(
        cli, ["fit", "pulse-response", str(data), "-o", str(tmp_path / "p.json")]
    )
    assert result.exit_code == 0, result.output
    stages = [
        "screening devices",
        "choosing the device family and its shared shape",
        "per-device fits",
        "population, bootstrap, predictive check",
    ]
    err = result.stderr
    positions = [err.rfind(s) for s in stages]
    assert all(p >= 0 for p in positions), err
    assert positions == sorted(positions)  # in the order they run
    assert "fitted 1" in result.stdout  # the result itself stays on stdout


# ------------------------------------------------------------------------ figures
def test_figure_format_svg_writes_vector_figures_and_links_them(tmp_path) -> None:
    data, report = tmp_path / "pr.h5", tmp_path / "report"
    args = ["measure", "pulse-response", "--devices", "16", "--n-up", "40", "--n-down", "40"]
    assert _invoke([*args, "-o", str(data)]).exit_code == 0
    fit = ["fit", "pulse-response", str(data), "-o", str(tmp_path / "p.json")]
    assert _invoke([*fit, "--report", str(report), "--figure-format", "svg"]).exit_code == 0
    figures = sorted(p.suffix for p in report.iterdir() if p.suffix in (".png", ".svg"))
    assert figures and set(figures) == {".svg"}
    assert (report / "step_vs_conductance.svg").read_text().lstrip().startswith("<?xml")
    assert "(step_vs_conductance.svg)" in (report / "summary.md").read_text()
    from calib.reports.figures import figure_path

    assert figure_path("x.png").suffix == ".png"  # the format was the command's only


def test_programming_params_take_the_chips_technology_defaults(tmp_path) -> None:
    from calib.campaigns import ProgrammingParams, measure_programming
    from calib.campaigns.parameters import DEFAULT_N_LEVELS
    from calib.campaigns.programming import PROGRAM_DEFAULTS, default_levels

    # a PCM chip: PCM's pulses and tolerance, targets inside PCM's 1-24 uS range (ReRAM's
    # 30-90 uS defaults cannot be reached by a PCM cell)
    with running_emulator("pcm", seed=2, shape=(8, 8)) as res, ScpiCrossbarChip(res) as chip:
        path = measure_programming(chip, ProgrammingParams(n_devices=8), tmp_path / "p.h5")
    data = read_campaign(path, "programming")
    stored = data.attrs["parameters"]
    tol, amplitude_v, width_s = PROGRAM_DEFAULTS["pcm"]
    assert (stored["tolerance_s"], stored["pulse_amplitude_v"], stored["pulse_width_s"]) == (
        tol,
        amplitude_v,
        width_s,
    )
    assert stored["levels_s"] == list(default_levels("pcm", DEFAULT_N_LEVELS))
    assert data["converged"].mean() > 0.8
