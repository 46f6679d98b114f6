"""Campaigns against the emulated chip through PyVISA: files, attributes, interruption, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fault_tools import peek_while_written

from calib.campaigns import (
    DriftParams,
    ProgrammingParams,
    PulseResponseParams,
    ReadNoiseParams,
    measure_drift,
    measure_programming,
    measure_pulse_response,
    measure_read_noise,
)
from calib.errors import CalibError
from calib.io import load, read_campaign
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator
from instruments.visa_transport import InstrumentError

COMMON_ATTRS = {
    "idn",
    "instrument",
    "parameters",
    "seed",
    "status",
    "start_time",
    "end_time",
    "software_version",
    "read_voltage_v",
    "rows_complete",
}
LEVELS = (30e-6, 60e-6, 90e-6)


@pytest.fixture
def chip():
    with running_emulator("reram", seed=5, shape=(32, 32)) as res, ScpiCrossbarChip(res) as c:
        yield c


def test_pulse_response_campaign_round_trips_every_attribute(chip, tmp_path: Path) -> None:
    params = PulseResponseParams(n_devices=40, chunk_devices=16, n_up=20, n_down=20, cycles=2)
    seen = []
    path = measure_pulse_response(chip, params, tmp_path / "pr.h5", lambda d, t: seen.append(d))
    data = read_campaign(path, "pulse_response")
    assert set(data.attrs) >= COMMON_ATTRS
    assert data.attrs["status"] == "complete" and data.attrs["rows_complete"] == 40
    assert data.attrs["idn"].startswith("EMU,AIMC-XBAR")
    assert data.attrs["parameters"]["n_up"] == 20
    assert data.attrs["pulse_width_s"] == pytest.approx(1e-6)
    assert data.conductance_s.shape == (40, 81) and data.units["conductance"] == "S"
    assert seen == [0, 16, 32, 40]  # progress after every chunk
    frame = load(path)["pulse_response"]
    assert len(frame) == 40 * 81 and frame["conductance"].between(1e-6, 2e-4).all()


def test_programming_drift_and_read_noise_campaigns(chip, tmp_path: Path) -> None:
    common = {"n_devices": 12, "chunk_devices": 6, "levels_s": LEVELS, "tolerance_s": 1e-6}
    prog = read_campaign(
        measure_programming(chip, ProgrammingParams(**common), tmp_path / "p.h5"), "programming"
    )
    np.testing.assert_allclose(prog["target"], np.tile(LEVELS, 4))
    assert prog["converged"].all()
    # converged within 1 uS at the last verify read; the independent read adds read noise
    assert np.abs(prog["verify_conductance"] - prog["target"]).max() <= 1e-6
    assert np.abs(prog["conductance"] - prog["target"]).max() < 3e-6

    drift = read_campaign(
        measure_drift(chip, DriftParams(**common, n_times=5, t_max_s=1e4), tmp_path / "d.h5"),
        "drift",
    )
    assert drift.conductance_s.shape == (12, 5) and drift.units["time"] == "s"
    np.testing.assert_allclose(drift["time"], np.geomspace(20, 1e4, 5))

    noise = read_campaign(
        measure_read_noise(chip, ReadNoiseParams(**common, n_reads=50), tmp_path / "r.h5"),
        "read_noise",
    )
    assert noise.conductance_s.shape == (12, 50)
    # reads start read_delay_s (100 s) after each device's programming
    assert np.all(noise["time"][:, 0] >= 100.0)
    sd = noise.conductance_s.std(axis=1)
    truth = chip.ground_truth()["device"]["read_noise_s"]
    # 50 reads per device, 12 devices: the pooled std estimates the read noise within ~10 %
    assert np.sqrt(np.mean(sd**2)) == pytest.approx(truth, rel=0.15)


class _FailingChip:
    """Wraps a chip and raises an instrument error on the n-th pulse train."""

    def __init__(self, chip: ScpiCrossbarChip, fail_at: int) -> None:
        self._chip, self._left = chip, fail_at

    def __getattr__(self, name: str):
        return getattr(self._chip, name)

    def pulse_train_with_reads(self, *args, **kw):
        self._left -= 1
        if self._left == 0:
            raise InstrumentError("TCPIP::x::1::SOCKET", "FETC:COND?", "timed out")
        return self._chip.pulse_train_with_reads(*args, **kw)


def test_instrument_error_leaves_interrupted_file_that_resumes_identically(tmp_path: Path):
    params = PulseResponseParams(n_devices=48, chunk_devices=16, n_up=10, n_down=10, seed=2)
    whole, part = tmp_path / "whole.h5", tmp_path / "part.h5"
    with running_emulator("reram", seed=9, shape=(16, 16)) as res, ScpiCrossbarChip(res) as c:
        measure_pulse_response(c, params, whole)
    with (
        running_emulator("reram", seed=9, shape=(16, 16)) as res,
        ScpiCrossbarChip(res) as c,
        pytest.raises(InstrumentError),
    ):
        measure_pulse_response(_FailingChip(c, 3), params, part)
    data = read_campaign(part, "pulse_response")
    assert data.attrs["status"] == "interrupted" and data.n_devices == 32
    changed = PulseResponseParams(**{**params.__dict__, "n_up": 12, "n_down": 12})
    with (
        pytest.raises(CalibError, match="different parameters"),
        running_emulator("reram", seed=9, shape=(16, 16)) as res,
        ScpiCrossbarChip(res) as c,
    ):
        measure_pulse_response(c, changed, part, resume=True)
    with running_emulator("reram", seed=9, shape=(16, 16)) as res, ScpiCrossbarChip(res) as c:
        measure_pulse_response(c, params, part, resume=True)
    a, b = read_campaign(whole, "pulse_response"), read_campaign(part, "pulse_response")
    assert b.attrs["status"] == "complete"
    np.testing.assert_array_equal(a.conductance_s, b.conductance_s)
    np.testing.assert_array_equal(a.device_index, b.device_index)


def test_existing_file_is_not_overwritten_silently(chip, tmp_path: Path) -> None:
    params = PulseResponseParams(n_devices=4, n_up=2, n_down=2, cycles=1)
    path = measure_pulse_response(chip, params, tmp_path / "x.h5")
    with pytest.raises(CalibError, match="exists"):
        measure_pulse_response(chip, params, path)
    with pytest.raises(CalibError, match="already complete"):
        measure_pulse_response(chip, params, path, resume=True)


def _rows_complete(path: Path) -> int:
    return peek_while_written(path, lambda f: int(f["pulse_response"].attrs["rows_complete"]), 0)


def test_sigkill_mid_campaign_then_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    args = [
        "measure",
        "pulse-response",
        "--devices",
        "3072",
        "--chunk",
        "64",
        "--seed",
        "4",
        "--n-up",
        "100",
        "--n-down",
        "100",
        "--cycles",
        "2",
    ]
    env = {**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE"}
    killed = tmp_path / "killed.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "calib", *args, "-o", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 60
    while _rows_complete(killed) < 256 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "campaign finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_campaign(killed, "pulse_response")
    assert partial.attrs["status"] == "running"  # never marked complete
    assert 256 <= partial.n_devices < 3072 and partial.n_devices % 64 == 0
    resumed = subprocess.run(
        [sys.executable, "-m", "calib", *args, "-o", str(killed), "--resume"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole.h5"
    full = subprocess.run(
        [sys.executable, "-m", "calib", *args, "-o", str(whole)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert full.returncode == 0, full.stderr
    a, b = read_campaign(whole, "pulse_response"), read_campaign(killed, "pulse_response")
    assert b.attrs["status"] == "complete"
    np.testing.assert_array_equal(a.conductance_s, b.conductance_s)


@pytest.mark.parametrize(
    ("params_class", "field"),
    [
        (DriftParams, "t_max_s"),
        (DriftParams, "read_delay_s"),
        (PulseResponseParams, "width_s"),
        (ReadNoiseParams, "chunk_seconds"),
    ],
)
def test_campaign_parameters_refuse_non_finite_numbers_from_python(params_class, field) -> None:
    with pytest.raises(CalibError, match=f"{field} must be a finite number"):
        params_class(**{field: float("inf")})
    with pytest.raises(CalibError, match=f"{field} must be a finite number"):
        params_class(**{field: float("nan")})
