"""``calib fit pcm``: inputs (HDF5, CSV, several files), missing parts, bad input, schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.fit.pcm import fit_pcm_files
from calib.io.hdf5 import CampaignData, write_campaign
from calib.presets import SCHEMA_NAME, load_preset, validate_preset
from fitting.pcm import fit_pcm, published_section
from fitting.pcm_data import DriftSample, ProgrammingSample
from fitting.pcm_synthetic import SyntheticPcm, synthetic_campaigns
from fitting.traces import FitInputError

LEVELS = np.linspace(2e-6, 22e-6, 6)


@pytest.fixture(scope="module")
def samples():
    """Small synthetic campaigns (6 levels x 64 devices, 20 drift times, 50 repeated reads)."""
    return synthetic_campaigns(
        SyntheticPcm(), LEVELS, 64, seed=12, times_s=np.geomspace(20.0, 1e4, 20), n_reads=50
    )


def _write(path: Path, campaign: str, sample, status: str = "complete", **override) -> Path:
    n = sample.n_devices
    arrays = {
        "device_index": np.asarray(sample.device_ids),
        "row": np.zeros(n, dtype=int),
        "col": np.arange(n),
        "conductance": sample.conductance_s,
        "target": sample.target_s,
    }
    units = {"conductance": "S", "target": "S"}
    attrs = {"campaign": campaign, "status": status}
    if sample.converged is not None:
        arrays["converged"] = sample.converged
    if campaign == "drift":
        arrays["time"] = sample.time_s[0]
        attrs["n_avg"] = sample.n_avg
    if campaign == "read_noise":
        arrays["time"] = np.asarray(sample.time_s)
    if campaign == "programming":
        attrs["parameters"] = {"read_delay_s": sample.read_time_s, "n_avg": sample.n_avg}
    if "time" in arrays:
        units["time"] = "s"
    arrays.update(override)
    return write_campaign(path, CampaignData(campaign, arrays, attrs, units), overwrite=True)


def _one_line_error(args: list[str], capsys) -> str:
    assert main(args) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------- inputs
def test_three_hdf5_files_through_the_cli(tmp_path, samples, capsys) -> None:
    prog, drift, reads = samples
    files = [
        _write(tmp_path / "p.h5", "programming", prog),
        _write(tmp_path / "d.h5", "drift", drift),
        _write(tmp_path / "r.h5", "read_noise", reads),
    ]
    out = tmp_path / "preset.json"
    assert main(["fit", "pcm", *map(str, files), "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "preset written to" in stdout and "NOT FITTED" not in stdout
    preset = load_preset(out)
    assert preset["schema"] == SCHEMA_NAME and "device" not in preset
    assert [f["campaigns"] for f in preset["provenance"]["inputs"]] == [
        ["programming"],
        ["drift"],
        ["read_noise"],
    ]


def test_csv_inputs_with_units_and_kinds(tmp_path, samples, capsys) -> None:
    prog, drift, _ = samples
    n_t = drift.conductance_s.shape[1]
    pd.DataFrame(
        {
            "device": prog.device_ids,
            "target": prog.target_s * 1e6,
            "conductance": prog.conductance_s * 1e6,
        }
    ).to_csv(tmp_path / "prog.csv", index=False)
    pd.DataFrame(
        {
            "device": np.repeat(drift.device_ids, n_t),
            "time": drift.time_s.ravel(),
            "conductance": drift.conductance_s.ravel() * 1e6,
            "target": np.repeat(drift.target_s, n_t) * 1e6,
        }
    ).to_csv(tmp_path / "drift.csv", index=False)
    out = tmp_path / "p.json"
    args = ["fit", "pcm", str(tmp_path / "prog.csv"), str(tmp_path / "drift.csv"), "-o", str(out)]
    assert main([*args, "--kind", "programming", "--kind", "drift", "--units", "uS"]) == 0
    stdout = capsys.readouterr().out
    assert "read noise fitted from the residuals of the drift fits" in stdout
    pcm = load_preset(out)["pcm"]
    assert pcm["read_noise"]["fitted_from"] == "drift residuals"
    # CSV programming has no read time: taken at t0; the fit is in siemens
    assert 1e-7 < pcm["prog_noise"]["coefficients_s"][0] < 1e-6
    # a CSV without its --kind is refused
    msg = _one_line_error([*args, "--kind", "programming", "--overwrite"], capsys)
    assert "--kind" in msg


def test_missing_campaigns_are_reported_and_filled_with_published_values(
    tmp_path, samples, capsys
) -> None:
    prog, _, _ = samples
    path = _write(tmp_path / "p.h5", "programming", prog)
    out = tmp_path / "p.json"
    assert main(["fit", "pcm", str(path), "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "NOT FITTED drift" in stdout and "NOT FITTED read_noise" in stdout
    pcm = load_preset(out)["pcm"]
    assert set(pcm["not_fitted"]) == {"drift", "read_noise"}
    assert pcm["drift"]["fitted_from"] == "published default"
    assert pcm["drift"]["mu_nu"] == published_section()["drift"]["mu_nu"]
    assert pcm["prog_noise"]["fitted_from"] == ["programming"]


def test_one_file_with_all_groups_and_duplicates_refused(tmp_path, samples, capsys) -> None:
    prog, drift, _ = samples
    path = _write(tmp_path / "all.h5", "drift", drift)
    other = _write(tmp_path / "p.h5", "programming", prog)
    import h5py

    with h5py.File(path, "a") as f, h5py.File(other, "r") as g:
        g.copy("programming", f)
    _, fit, _ = fit_pcm_files([path], tmp_path / "p.json")
    assert fit.prog is not None and fit.drift is not None
    msg = _one_line_error(
        ["fit", "pcm", str(path), str(other), "-o", str(tmp_path / "x.json")], capsys
    )
    assert "found in both" in msg


# --------------------------------------------------------------------------- bad input
def test_negative_conductances_are_refused(tmp_path, samples, capsys) -> None:
    _, drift, _ = samples
    path = _write(tmp_path / "d.h5", "drift", drift, conductance=-drift.conductance_s)
    msg = _one_line_error(["fit", "pcm", str(path), "-o", str(tmp_path / "p.json")], capsys)
    assert "negative" in msg


def test_a_few_non_positive_reads_exclude_their_devices(samples) -> None:
    _, drift, _ = samples
    g = drift.conductance_s.copy()
    g[:3, 5] = -1e-8
    bad = DriftSample(drift.target_s, drift.time_s, g, drift.n_avg, drift.converged)
    fit = fit_pcm(drift=bad)
    assert fit.excluded["drift"]["non-positive conductance read (ln G)"] == 3


def test_times_before_t0_are_not_used_and_said(samples) -> None:
    from fitting.pcm import PcmFitOptions

    _, drift, _ = samples
    fit = fit_pcm(drift=drift, options=PcmFitOptions(t0_s=100.0))
    assert fit.t0_s == 100.0 and fit.section()["valid_range"]["t_min_s"] == 100.0
    assert any("before t0 = 100 s not used" in n for n in fit.notes)
    t = drift.time_s[0].copy()
    t[0] = 0.0
    with pytest.raises(FitInputError, match="must be > 0"):
        DriftSample(drift.target_s, t, drift.conductance_s)


def test_programming_read_before_t0_is_not_used(samples) -> None:
    prog, drift, _ = samples
    early = ProgrammingSample(prog.target_s, prog.conductance_s, 5.0, 1, prog.converged)
    fit = fit_pcm(early, drift)
    assert fit.prog.sources == ["drift fit at t0"]
    assert any("before t0" in n for n in fit.notes)


def test_too_few_levels_is_a_clear_error(tmp_path, samples, capsys) -> None:
    _, drift, _ = samples
    two = np.where(drift.target_s < 10e-6, 2e-6, 20e-6)
    path = _write(tmp_path / "d.h5", "drift", drift, target=two)
    msg = _one_line_error(["fit", "pcm", str(path), "-o", str(tmp_path / "p.json")], capsys)
    assert "at least 3 target levels" in msg and "got 2" in msg


def test_a_level_with_all_devices_stuck_is_excluded_and_reported(tmp_path, samples) -> None:
    _, drift, _ = samples
    stuck_level = LEVELS[2]
    conv = drift.converged & ~np.isclose(drift.target_s, stuck_level)
    path = _write(tmp_path / "d.h5", "drift", drift, converged=conv)
    _, fit, preset = fit_pcm_files([path], tmp_path / "p.json")
    assert fit.drift.levels.n_levels == LEVELS.size - 1
    excluded = preset["pcm"]["excluded_levels"]["d.h5:drift"]
    assert list(excluded) == [f"{stuck_level * 1e6:.4g} uS"]
    assert "0 of 64 devices usable" in next(iter(excluded.values()))
    # without a converged flag (e.g. CSV), stuck devices show constant reads
    g = drift.conductance_s.copy()
    g[np.isclose(drift.target_s, stuck_level)] = 7e-6
    no_flag = DriftSample(drift.target_s, drift.time_s, g, drift.n_avg)
    fit = fit_pcm(drift=no_flag)
    assert fit.excluded["drift"]["constant reads (stuck device or saturated readout)"] == 64
    assert len(fit.excluded_levels["drift"]) == 1


def test_unfinished_campaign_and_foreign_files_are_refused(tmp_path, samples, capsys) -> None:
    _, drift, _ = samples
    path = _write(tmp_path / "d.h5", "drift", drift, status="interrupted")
    msg = _one_line_error(["fit", "pcm", str(path), "-o", str(tmp_path / "p.json")], capsys)
    assert "interrupted" in msg and "resume" in msg
    reram = (
        Path(__file__).resolve().parents[3] / "datasets" / "examples" / "reram_pulse_response.h5"
    )
    msg = _one_line_error(["fit", "pcm", str(reram), "-o", str(tmp_path / "p.json")], capsys)
    assert "no programming, drift or read_noise group" in msg
    with pytest.raises(CalibError, match="file not found"):
        fit_pcm_files([tmp_path / "missing.h5"], tmp_path / "p.json")


# --------------------------------------------------------------------------- schema
def _pcm_preset(pcm: dict) -> dict:
    return {
        "schema": SCHEMA_NAME,
        "schema_version": 1,
        "pcm": pcm,
        "provenance": {"software_version": "test", "created": "now"},
    }


def test_schema_accepts_pcm_only_and_both_kinds_of_preset() -> None:
    validate_preset(_pcm_preset(published_section()), "pcm-only")
    examples = Path(__file__).resolve().parents[3] / "datasets" / "examples"
    assert "device" in load_preset(examples / "pcm_truth.json")
    assert "pcm" not in load_preset(examples / "reram_truth.json")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("pcm"), "'device' is a required property"),
        (lambda p: p["pcm"].pop("t0_s"), "t0_s"),
        (lambda p: p["pcm"]["drift"].update(form="table"), "'x' is a required property"),
        (lambda p: p["pcm"]["read_noise"].update(conductance="g_now"), "g_now"),
        (lambda p: p["pcm"]["prog_noise"].update(coefficients_s=[]), "coefficients_s"),
        (lambda p: p["pcm"].update(g_max_s=-1.0), "g_max_s"),
    ],
)
def test_schema_refuses_malformed_pcm_sections(tmp_path, mutate, message) -> None:
    preset = _pcm_preset(json.loads(json.dumps(published_section())))
    mutate(preset)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(preset))
    with pytest.raises(CalibError, match=message):
        load_preset(path)


def test_a_reset_level_at_zero_is_excluded_from_drift_but_not_fatal() -> None:
    levels = np.array([0.0, *LEVELS[:3]])
    prog, drift, reads = synthetic_campaigns(SyntheticPcm(), levels, 40, seed=2, n_reads=20)
    fit = fit_pcm(prog, drift, reads)
    assert "0 uS" in fit.excluded_levels["synthetic drift"]
    assert fit.drift.levels.n_levels == 3 and fit.prog.level_g_s[0] == 0.0


def test_read_noise_campaign_alone_fits_read_noise_only(samples) -> None:
    _, _, reads = samples
    fit = fit_pcm(read_noise=reads)
    assert set(fit.not_fitted) == {"drift", "prog_noise"}
    assert fit.section()["read_noise"]["fitted_from"] == "read_noise campaign"
    assert any("published mean drift" in n for n in fit.notes)
