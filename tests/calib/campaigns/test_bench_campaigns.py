"""Campaigns through BenchChip on the virtual bench, end to end through PyVISA.

The datasets must fit like the emulated chip's (same devices: same truth, seed and shape),
and a lost connection or an instrument error mid-campaign must stop it with a clear
message and leave a file that resumes to the same data as an uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import pytest

from calib.campaigns import DriftParams, PulseResponseParams, measure_drift, measure_pulse_response
from calib.cli import main
from calib.io import read_campaign
from fitting import PulseTraces, fit_pulse_response
from fitting.pcm_drift import fit_device_drift
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.bench import running_bench
from instruments.emulator.bench.client import open_virtual_bench as open_bench
from instruments.emulator.physics import chip_truth
from instruments.emulator.server import running_emulator
from instruments.visa_transport import InstrumentError

# ReRAM whose nominal pulse (strength 1) is 100 µs, long enough for SMU list sweeps
RERAM_100US = chip_truth("reram", pulse_width_s=1e-4)
PCM = chip_truth("pcm")


def _fit(path):
    data = read_campaign(path, "pulse_response")
    return fit_pulse_response(PulseTraces(data.conductance_s, data.pulses, data.device_index))


def test_pulse_response_campaign_stores_the_bench_metadata(tmp_path) -> None:
    params = PulseResponseParams(
        n_devices=10, chunk_devices=5, n_up=10, n_down=10, cycles=1, width_s=1e-4, seed=2
    )
    with (
        running_bench(truth=RERAM_100US, seed=3, shape=(8, 8)) as res,
        open_bench(res.description(), timeout_s=5) as chip,
    ):
        path = measure_pulse_response(chip, params, tmp_path / "pr.h5")
    data = read_campaign(path, "pulse_response")
    assert data.attrs["status"] == "complete" and data.conductance_s.shape == (10, 21)
    assert data.attrs["idn"].startswith("BENCH,8x8,Keysight Technologies,B2901A")
    instrument = data.attrs["instrument"]
    assert instrument["smu"]["settings"]["current_compliance_a"]["value"] == 1e-3
    assert instrument["pulser"]["idn"].startswith("Keysight Technologies,33521B")
    assert instrument["switch"]["settings"]["connection_sequence"]["value"] == "break_before_make"
    assert instrument["routing"]["smu_input"] == 1
    assert np.all((data.conductance_s > 1e-6) & (data.conductance_s < 2e-4))


def test_bench_pulse_response_fits_like_the_emulated_chip(tmp_path) -> None:
    # 48 devices x 2 cycles x 100+100 pulses; both campaigns measure the same devices
    params = PulseResponseParams(
        n_devices=48, chunk_devices=48, n_up=100, n_down=100, cycles=2, width_s=1e-4, seed=1
    )
    with (
        running_bench(truth=RERAM_100US, seed=5, shape=(16, 16)) as res,
        open_bench(res.description(), timeout_s=10) as chip,
    ):
        bench_fit = _fit(measure_pulse_response(chip, params, tmp_path / "bench.h5"))
        measured = read_campaign(tmp_path / "bench.h5", "pulse_response").device_index
        stuck = int(res.bench.array.stuck[measured].sum())
    with (
        running_emulator(truth=RERAM_100US, seed=5, shape=(16, 16)) as resource,
        ScpiCrossbarChip(resource) as chip,
    ):
        emu_fit = _fit(measure_pulse_response(chip, params, tmp_path / "emu.h5"))
    t = RERAM_100US
    for fit in (bench_fit, emu_fit):
        p = fit.parameters
        # 48 devices: population means within ~2-3 standard errors of the truth
        assert p["dw_min"] == pytest.approx(t.dw_min, rel=0.10)
        assert abs(p["up_down"] - t.up_down) < 0.05
        assert p["w_max"] == pytest.approx(t.w_max, rel=0.05)
        assert abs(p["dw_min_dtod"] - t.dw_min_dtod) < 0.06
        assert abs(p["w_max_dtod"] - t.w_max_dtod) < 0.04
        assert p["dw_min_std"] == pytest.approx(t.dw_min_std, rel=0.15)
        assert fit.read_noise_s == pytest.approx(t.read_noise_s, rel=0.10)
        assert fit.excluded == {"stuck": stuck}
    # the same devices with independent noise: estimates agree within ~2 standard errors
    b, e = bench_fit.parameters, emu_fit.parameters
    assert b["dw_min"] == pytest.approx(e["dw_min"], rel=0.05)
    assert abs(b["up_down"] - e["up_down"]) < 0.04
    assert b["w_max"] == pytest.approx(e["w_max"], rel=0.02)
    assert abs(b["dw_min_dtod"] - e["dw_min_dtod"]) < 0.03


def _fit_drift(path):
    """The project's per-device drift fit (weighted, read-noise bias removed) of a dataset."""
    d = read_campaign(path, "drift")
    times = np.broadcast_to(d["time"], d.conductance_s.shape)
    fit = fit_device_drift(d.conductance_s, times, float(d["time"][0]), PCM.t_read_s)
    return fit, d


def test_drift_campaign_on_a_pcm_bench_measures_drift_like_the_emulated_chip(tmp_path):
    # 3 levels x 8 devices of PCM read at 6 log-spaced times from 20 s to 10^4 s (virtual),
    # 4 reads averaged; the bench programs with a 1 µS band (its reads see relaxation)
    params = DriftParams(
        n_devices=24,
        chunk_devices=24,
        levels_s=(5e-6, 12e-6, 20e-6),
        tolerance_s=1e-6,
        pulse_amplitude_v=1.0,
        pulse_width_s=100e-9,
        reset_pulses=1,
        n_times=6,
        t_max_s=1e4,
        seed=3,
    )
    errors, level_errors = {}, {}
    for name in ("bench", "emulator"):
        path = tmp_path / f"{name}.h5"
        if name == "bench":
            with (
                running_bench("pcm", seed=6, shape=(8, 8)) as res,
                open_bench(res.description(), timeout_s=10) as chip,
            ):
                measure_drift(chip, params, path)
                nu_true, stuck = chip.ground_truth_array("nu"), res.bench.array.stuck
        else:
            with (
                running_emulator("pcm", seed=6, shape=(8, 8)) as resource,
                ScpiCrossbarChip(resource) as chip,
            ):
                measure_drift(chip, params, path)
                nu_true = chip.ground_truth_array("nu")
        fit, data = _fit_drift(path)
        devices = data.device_index
        used = fit.ok & ~stuck[devices]
        assert data.attrs["status"] == "complete" and data["converged"][used].all()
        errors[name] = fit.nu[used] - nu_true[devices][used]
        level = np.searchsorted(params.levels_s, data["target"] * (1 - 1e-9))
        level_errors[name] = [errors[name][level[used] == k].mean() for k in range(3)]
    # read noise of ~3 % per averaged read over 2.7 decades: SE(ν) ≈ 0.006 per device
    for name in errors:
        assert np.sqrt(np.mean(errors[name] ** 2)) < 0.015
        assert abs(errors[name].mean()) < 0.008
        # the mean ν of 8 devices of a level: its slope errors average to ~0.002
        assert np.all(np.abs(level_errors[name]) < 0.008)
    rms = {k: np.sqrt(np.mean(v**2)) for k, v in errors.items()}
    assert abs(rms["bench"] - rms["emulator"]) < 0.008  # the same accuracy


def _interrupted_run(tmp_path, kind: str, instrument: str):
    """Whole run, run interrupted by a fault after the first chunk, then resumed."""
    params = PulseResponseParams(
        n_devices=12, chunk_devices=4, n_up=8, n_down=8, cycles=1, width_s=1e-4, seed=7
    )
    whole, part = tmp_path / "whole.h5", tmp_path / "part.h5"
    with (
        running_bench(truth=RERAM_100US, seed=8, shape=(8, 8)) as res,
        open_bench(res.description(timeout_s=1.0)) as chip,
    ):
        measure_pulse_response(chip, params, whole)
    with running_bench(truth=RERAM_100US, seed=8, shape=(8, 8)) as res:
        faulty = res.bench.instruments[instrument]

        def arm(done: int, total: int) -> None:
            if done == 4:  # the first chunk is in the file: break the next one
                faulty.inject_fault(kind, after=3)

        with (
            open_bench(res.description(timeout_s=1.0)) as chip,
            pytest.raises(InstrumentError) as failure,
        ):
            measure_pulse_response(chip, params, part, progress=arm)
    interrupted = read_campaign(part, "pulse_response")
    with (
        running_bench(truth=RERAM_100US, seed=8, shape=(8, 8)) as res,
        open_bench(res.description(timeout_s=1.0)) as chip,
    ):
        measure_pulse_response(chip, params, part, resume=True)
    return str(failure.value), interrupted, read_campaign(whole, "pulse_response"), part


def test_a_dropped_connection_stops_the_campaign_with_a_resumable_file(tmp_path) -> None:
    message, interrupted, whole, part = _interrupted_run(tmp_path, "drop", "smu")
    # a dropped connection is reported at once (or, without EOF detection, as a timeout)
    assert "connection closed by the instrument" in message or "timed out waiting" in message
    assert "list sweep of device (" in message  # which device was being measured
    assert interrupted.attrs["status"] == "interrupted" and interrupted.n_devices == 4
    resumed = read_campaign(part, "pulse_response")
    assert resumed.attrs["status"] == "complete"
    np.testing.assert_array_equal(resumed.device_index, whole.device_index)
    np.testing.assert_array_equal(resumed.conductance_s, whole.conductance_s)


def test_an_instrument_error_stops_the_campaign_with_a_resumable_file(tmp_path) -> None:
    message, interrupted, whole, part = _interrupted_run(tmp_path, "error", "switch")
    assert "-310" in message and "virtual fault injected" in message
    assert interrupted.attrs["status"] == "interrupted" and interrupted.n_devices == 4
    resumed = read_campaign(part, "pulse_response")
    np.testing.assert_array_equal(resumed.conductance_s, whole.conductance_s)


def test_the_cli_measures_through_a_bench_description(tmp_path, capsys) -> None:
    with running_bench("reram", seed=2, shape=(4, 4)) as res:
        description = res.write_description(tmp_path / "bench.json", smu="keithley_2600")
        out = tmp_path / "pr.h5"
        args = ["measure", "pulse-response", "--resource", f"bench:{description}"]
        args += ["--devices", "3", "--n-up", "4", "--n-down", "4", "--cycles", "1"]
        assert main([*args, "--width", "1e-4", "-o", str(out)]) == 0
    data = read_campaign(out, "pulse_response")
    assert data.attrs["idn"].startswith("BENCH,4x4,Keithley") and data.conductance_s.shape == (3, 9)
    (tmp_path / "bad.json").write_text("{")
    assert main([*args[:2], "--resource", f"bench:{tmp_path / 'bad.json'}", "-o", "x.h5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("calib: error:") and "not valid JSON" in err[-1]
