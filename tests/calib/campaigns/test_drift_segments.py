"""A drift chunk is read in time segments, and an interruption keeps the reads taken.

A drift campaign to 1e5 s waits a day per chunk; its reads are taken in segments of
consecutive read times, each stored in ``drift/partial`` (invisible to readers). The
emulator's virtual clock makes the waits instant, and its noise stream is consumed read
time by read time, so segmented reads must equal one call for all times bit for bit.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from fault_tools import peek_while_written

import calib.campaigns.programming as programming
from calib.campaigns import DriftParams, measure_drift
from calib.cli.interruption import interrupted_message
from calib.io.hdf5 import read_campaign
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator
from instruments.visa_transport import InstrumentError

SHAPE = (16, 16)
PARAMS = DriftParams(
    n_devices=64,
    chunk_devices=32,
    seed=3,
    levels_s=(30e-6, 60e-6, 90e-6),
    tolerance_s=1e-6,
    t_min_s=1.0,
    t_max_s=1e4,
    n_times=12,
)
#: Datasets that do not depend on the chip clock (a restarted emulator restarts it).
SAME = ("device_index", "target", "verify_conductance", "iterations", "converged", "conductance")


def _run(path: Path, wrap=None, **kw) -> Path:
    with running_emulator("pcm", seed=5, shape=SHAPE) as res, ScpiCrossbarChip(res) as chip:
        return measure_drift(wrap(chip) if wrap else chip, PARAMS, path, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[float]]:
    """An uninterrupted run, and its progress reports."""
    path = tmp_path_factory.mktemp("drift") / "whole.h5"
    steps: list[float] = []
    _run(path, progress=lambda done, total: steps.append(done))
    return path, steps


class _StopAtSegment:
    """Wraps a chip; raises ``error`` at the ``segment``-th read of chunk ``chunk`` (1-based)."""

    def __init__(self, chip, chunk: int, segment: int, error: BaseException) -> None:
        self._chip, self._chunk, self._segment, self._error = chip, chunk, segment, error
        self.chunks = self.reads = 0

    def __getattr__(self, name: str):
        return getattr(self._chip, name)

    def program_verify(self, *args, **kw):
        self.chunks += 1
        self.reads = 0
        return self._chip.program_verify(*args, **kw)

    def read_at_times(self, *args, **kw):
        self.reads += 1
        if self.chunks == self._chunk and self.reads == self._segment:
            raise self._error
        return self._chip.read_at_times(*args, **kw)


def test_segments_close_only_where_the_next_read_leaves_room() -> None:
    times = PARAMS.times()
    ends = programming.drift_segments(times, spread_s=0.5, seconds=10.0)
    assert ends[-1] == times.size and np.all(np.diff(ends) > 0)
    starts = np.concatenate([[0], ends[:-1]])
    for start, end in zip(starts[:-1], ends[:-1], strict=True):
        # each cut leaves the spread + slack + 1 % before the next read falls due
        assert times[end] - times[end - 1] > 0.5 + programming.SEGMENT_SLACK_S
        assert times[end - 1] - (times[start - 1] if start else 0.0) >= 10.0
    # programming spread wider than every gap: one segment, as one call
    assert programming.drift_segments(times, spread_s=1e5, seconds=10.0).tolist() == [12]


def test_segmented_reads_equal_one_call_for_all_times(reference, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(programming, "drift_segments", lambda t, s, c: np.array([t.size]))
    one = _run(tmp_path / "one.h5")
    a, b = read_campaign(reference[0], "drift"), read_campaign(one, "drift")
    for name in SAME:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a.n_devices == 64 and not np.isnan(a.conductance_s).any()


def test_progress_advances_within_a_drift_chunk(reference) -> None:
    steps = reference[1]
    within_first = [s for s in steps if 0 < s < 32]
    assert len(within_first) >= 3 and within_first == sorted(within_first)
    assert steps[0] == 0 and steps[-1] == 64 and 32 in steps


@pytest.mark.parametrize(
    "error",
    [InstrumentError("TCPIP::x::1::SOCKET", "FETC:COND?", "timed out"), KeyboardInterrupt()],
    ids=["instrument-error", "ctrl-c"],
)
def test_interrupt_mid_chunk_keeps_the_reads_taken_and_resume_equals_whole_run(
    reference, tmp_path, caplog, error
) -> None:
    part = tmp_path / "part.h5"
    with pytest.raises(type(error)):
        _run(part, wrap=lambda c: _StopAtSegment(c, chunk=2, segment=3, error=error))
    whole = read_campaign(reference[0], "drift")
    kept = read_campaign(part, "drift")  # readers: the complete chunk only
    assert kept.attrs["status"] == "interrupted" and kept.n_devices == 32
    for name in SAME:
        np.testing.assert_array_equal(whole[name][:32], kept[name], err_msg=name)
    with h5py.File(part, "r") as f:
        p = f["drift/partial"]
        k, ends = int(p.attrs["times_complete"]), p.attrs["segment_ends"]
        assert int(p.attrs["n_times"]) == 12 and int(p.attrs["first_row"]) == 32
        assert 0 < k < 12 and f"{k}" in ends  # two segments read, the third not
        g = p["conductance"][()]
        saved = {name: p[name][()] for name in p}
    np.testing.assert_array_equal(saved["device_index"], whole.device_index[32:])
    np.testing.assert_array_equal(g[:, :k], whole.conductance_s[32:, :k])
    assert np.isnan(g[:, k:]).all()
    message = interrupted_message(part, 64)
    assert f"saved 32 of 64 devices in {part}, plus {k} of 12 read times of the next 32" in (
        message
    )
    assert f"{part}:/drift/partial" in message

    with caplog.at_level(logging.WARNING):
        _run(part, resume=True)
    assert "/drift/partial_interrupted_0" in caplog.text and "measured again" in caplog.text
    done = read_campaign(part, "drift")
    assert done.attrs["status"] == "complete"
    for name in SAME:
        if name == "verify_conductance":
            # a verify read is timed on the chip clock, which the restarted emulator
            # restarts: the rounding of (t - t_prog) at 1e4 s vs 0 s moves it by ~1e-7
            # relative (the same without segments: an interrupt between chunks does it)
            np.testing.assert_allclose(whole[name], done[name], rtol=1e-6, err_msg=name)
            continue
        np.testing.assert_array_equal(whole[name], done[name], err_msg=name)
    with h5py.File(part, "r") as f:
        assert "partial" not in f["drift"]
        old = f["drift/partial_interrupted_0"]
        for name, values in saved.items():  # set aside as it was, never deleted
            np.testing.assert_array_equal(old[name][()], values, err_msg=name)


def test_interrupt_in_the_first_chunk_keeps_the_file_with_its_partial_reads(tmp_path) -> None:
    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        _run(part, wrap=lambda c: _StopAtSegment(c, 1, 3, KeyboardInterrupt()))
    assert part.is_file()  # not discarded: it holds measured reads
    with h5py.File(part, "r") as f:
        assert int(f["drift"].attrs["rows_complete"]) == 0 and "partial" in f["drift"]
    assert "saved 0 of 64 devices" in interrupted_message(part, 64)
    _run(part, resume=True)
    with h5py.File(part, "r") as f:
        assert "partial_interrupted_0" in f["drift"] and "partial" not in f["drift"]


def _has_partial(path: Path) -> bool:
    return peek_while_written(path, lambda f: "drift/partial" in f, False)


def test_sigterm_mid_chunk_says_what_was_kept_and_cli_resume_sets_it_aside(tmp_path) -> None:
    """`calib measure drift` stopped by SIGTERM while a chunk is being read (one chunk of
    512 devices, 200 read times to 1e5 s: the emulator's clock makes the waits instant)."""
    path = tmp_path / "drift.h5"
    args = ["measure", "drift", "--devices", "512", "--chunk", "512", "--seed", "3"]
    args += ["--levels", "3e-5,6e-5,9e-5", "--t-max", "1e5", "--n-times", "200", "-o", str(path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "calib", *args], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not _has_partial(path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGSTOP)
    assert proc.poll() is None, "campaign ended before the fault; make it longer"
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert f"saved 0 of 512 devices in {path}, plus " in err
    assert f"read times of the next 512 devices (kept in {path}:/drift/partial" in err
    with h5py.File(path, "r") as f:
        p = f["drift/partial"]
        k = int(p.attrs["times_complete"])
        g = p["conductance"][()]
        assert f["drift"].attrs["status"] == "interrupted" and 0 < k < 200
        assert np.isfinite(g[:, :k]).all() and np.isnan(g[:, k:]).all()
    assert f"plus {k} of 200 read times" in err
    resumed = subprocess.run(
        [sys.executable, "-m", "calib", *args, "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "partial_interrupted_0" in resumed.stderr
    with h5py.File(path, "r") as f:
        assert int(f["drift"].attrs["rows_complete"]) == 512 and "partial" not in f["drift"]
        np.testing.assert_array_equal(f["drift/partial_interrupted_0/conductance"][()], g)
