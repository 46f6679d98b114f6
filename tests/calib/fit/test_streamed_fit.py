"""The pulse-response fit of a file streams it (bounded memory) and equals the in-memory fit.

Data come from the emulator through the real campaign code (independent physics); the
reference is the fit of the same traces held in memory, so "streamed" changes nothing but
where the traces are read.
"""

from __future__ import annotations

import dataclasses
import gc
import weakref
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from chip_files import measure_chip_file

import calib.fit.pulse_response as fit_commands
import fitting.pulse_response as pulse_response
from calib.errors import CalibError
from calib.fit.pulse_response import fit_pulse_response_file, load_pulse_traces
from calib.io.hdf5 import CampaignFile, check_complete, read_campaign
from calib.io.pulse_source import HDF5PulseSource, sample_complete_traces
from fitting import PulseTraces
from fitting.chunked import DeviceEstimates
from fitting.noise import NoiseSums
from fitting.pulse_response import fit_pulse_response, fit_pulse_response_source
from instruments.emulator.physics import PulsedDeviceArray, chip_truth


@pytest.fixture(scope="module")
def chip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return measure_chip_file(tmp_path_factory.mktemp("chip") / "chip.h5", 31, 500)


def _same_fit(a, b) -> None:
    """Bitwise the same population, uncertainties, noise, per-device values and checks."""
    assert a.model == b.model and a.g_offset_s == b.g_offset_s
    assert a.parameters == b.parameters
    assert a.uncertainty == b.uncertainty
    assert a.uncertainty_method == b.uncertainty_method
    assert a.noise == b.noise and a.excluded == b.excluded
    assert a.predictive == b.predictive
    assert set(a.per_device) == set(b.per_device)
    for name, values in a.per_device.items():
        np.testing.assert_array_equal(values, b.per_device[name], err_msg=name)


def test_fit_of_an_hdf5_file_streams_it_and_equals_the_fit_in_memory(
    chip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces, _ = load_pulse_traces(chip)
    in_memory = fit_pulse_response(traces, "soft-bounds", seed=4)
    read_rows: list[int] = []
    real_read = HDF5PulseSource.read

    def counted(self, rows):
        out = real_read(self, rows)
        read_rows.append(out.n_devices)
        return out

    def whole_file(*args, **kwargs):
        raise AssertionError("the file fit read the whole conductance matrix")

    monkeypatch.setattr(HDF5PulseSource, "read", counted)
    monkeypatch.setattr(fit_commands, "load_pulse_traces", whole_file)
    _, streamed = fit_pulse_response_file(chip, tmp_path / "p.json", seed=4, chunk_devices=128)
    _same_fit(streamed, in_memory)
    # pieces of 128 devices (per-device fits) but for the screening pass (pieces of
    # 8 x 1024 devices), the shape subsample and the predictive check (at most 512 devices)
    assert len(read_rows) > 4 and sum(rows > 128 for rows in read_rows) <= 3


def test_pieces_and_recentering_blocks_do_not_change_the_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """linear-step moves its shared shape with the origin: the block-wise recentering takes
    the shared values of the first device, as the one-block computation does."""
    n = 300
    array = PulsedDeviceArray(chip_truth("reram"), (3, n // 3), 2)
    g = array.pulse_train(np.arange(n), 60, 60, 2, 1, (1.2, 1e-6), (-1.2, 1e-6)).T
    traces = PulseTraces(np.ascontiguousarray(g), np.array([0] + ([1] * 60 + [-1] * 60) * 2))
    one = fit_pulse_response(traces, "linear-step", chunk_devices=64, n_boot=20)
    monkeypatch.setattr(pulse_response, "RECENTER_BLOCK", 37)
    blocks = fit_pulse_response(traces, "linear-step", chunk_devices=64, n_boot=20)
    _same_fit(blocks, one)


def _estimates(n: int, seed: int) -> DeviceEstimates:
    rng = np.random.default_rng(seed)
    fields = NoiseSums.__dataclass_fields__
    sums = NoiseSums(**{f: rng.random(n) for f in fields})
    return DeviceEstimates(["a", "b"], rng.random((n, 2)), rng.random((n, 2, 2)), [], [], sums)


def test_concat_empties_the_list_of_pieces_and_equals_concatenate() -> None:
    parts = [_estimates(n, k) for k, n in enumerate((5, 0, 7, 3))]
    theta = np.concatenate([p.theta for p in parts])
    cov = np.concatenate([p.cov for p in parts])
    uu = np.concatenate([p.sums.uu for p in parts])
    whole = DeviceEstimates.concat(parts)
    assert parts == []  # the pieces are not held twice
    np.testing.assert_array_equal(whole.theta, theta)
    np.testing.assert_array_equal(whole.cov, cov)
    np.testing.assert_array_equal(whole.sums.uu, uu)


def test_released_estimates_keep_no_reference_to_their_arrays() -> None:
    est = _estimates(10, 1)
    theta, cov, sums = est.release()
    alive = weakref.ref(theta), weakref.ref(cov), weakref.ref(sums.uu)
    assert est.n_dev == 0
    del theta, cov, sums
    gc.collect()
    assert all(ref() is None for ref in alive)


# --------------------------------------------------------------------- one reader of the format
def test_every_fit_reader_refuses_a_campaign_without_status(chip: Path, tmp_path: Path) -> None:
    """One check, one default: a group without ``status`` is not complete (FORMAT.md)."""
    path = tmp_path / "no_status.h5"
    path.write_bytes(chip.read_bytes())
    with h5py.File(path, "a") as f:
        del f["pulse_response"].attrs["status"]
    message = r"status is None, not 'complete'"
    with pytest.raises(CalibError, match=message):
        HDF5PulseSource(path)
    with pytest.raises(CalibError, match=message):
        fit_pulse_response_file(path, tmp_path / "p.json")
    with pytest.raises(CalibError, match=message):
        check_complete(read_campaign(path, "pulse_response").attrs, path, "pulse_response")


def test_pulse_source_reads_through_the_one_reader(chip: Path) -> None:
    """The source's pieces are the rows read_campaign returns, as PulseTraces."""
    whole = read_campaign(chip, "pulse_response")
    source = HDF5PulseSource(chip)
    assert isinstance(source.file, CampaignFile)
    rows = np.array([0, 7, 8, 400])
    piece = source.read(rows)
    assert isinstance(piece, PulseTraces)
    np.testing.assert_array_equal(piece.conductance_s, whole.conductance_s[rows])
    np.testing.assert_array_equal(piece.device_ids, whole.device_index[rows])
    np.testing.assert_array_equal(piece.pulses, whole.pulses)


def test_pulse_source_refuses_single_direction_pulses_like_the_traces(
    chip: Path, tmp_path: Path
) -> None:
    path = tmp_path / "up_only.h5"
    path.write_bytes(chip.read_bytes())
    with h5py.File(path, "a") as f:
        p = f["pulse_response/pulses"]
        p[...] = np.abs(p[()])
    with pytest.raises(CalibError, match=r"only up \(\+\) pulses"):
        HDF5PulseSource(path)
    traces = read_campaign(path, "pulse_response")
    with pytest.raises(ValueError, match=r"only up \(\+\) pulses"):
        PulseTraces(traces.conductance_s, traces.pulses)


def test_fit_source_with_one_screening_piece_per_chunk_equals_one_pass(chip: Path) -> None:
    source = HDF5PulseSource(chip)
    one = fit_pulse_response_source(source, "soft-bounds", chunk_devices=128, n_boot=20)
    pieces = fit_pulse_response_source(
        source, "soft-bounds", chunk_devices=128, n_boot=20, screen_pieces_of=1
    )
    _same_fit(pieces, one)


def test_predictive_sample_of_a_file_is_read_in_chunks_and_equals_the_whole_read(
    chip: Path, tmp_path: Path
) -> None:
    """calib validate's predictive check picks the same devices from a file read in chunks
    as from the whole matrix (devices with missing reads set aside)."""
    path = tmp_path / "padded.h5"
    path.write_bytes(chip.read_bytes())
    with h5py.File(path, "a") as f:
        g = f["pulse_response/conductance"]
        data = g[()]
        data[[3, 70, 71], -5:] = np.nan  # shorter traces: trailing padding
        g[...] = data
    whole = read_campaign(path, "pulse_response").conductance_s
    complete = np.nonzero(np.all(np.isfinite(whole), axis=1))[0]
    picked = complete[np.sort(np.random.default_rng(9).choice(complete.size, 100, replace=False))]
    g, _, pulses, units, excluded = sample_complete_traces(path, 100, 9, chunk_devices=64)
    np.testing.assert_array_equal(g, whole[picked])
    assert excluded == {"missing reads": 3} and units == "S" and pulses.ndim == 1


def test_noise_bootstrap_holds_one_replicate_and_draws_the_same_devices(
    chip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device bootstrap of the noise model draws one replicate's rows at a time: the
    same numbers as one (n_boot, n) matrix of rows, without its n_boot x 8 bytes per device
    (6.7 GB for 4.2e6 devices)."""
    import tracemalloc

    from fitting import noise

    captured = []
    real = pulse_response.estimate_noise
    monkeypatch.setattr(
        pulse_response, "estimate_noise", lambda s, *a, **k: captured.append(s) or real(s, *a, **k)
    )
    fit_pulse_response(load_pulse_traces(chip)[0], "soft-bounds", n_boot=0)
    sums = captured[0].take(np.arange(20_000) % captured[0].uu.size)  # a larger chip
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 20_000, size=(30, 20_000))
    reps = np.array([noise._pooled(sums.take(r), None)[:4] for r in rows])
    est = noise.estimate_noise(sums, n_boot=30, seed=5)
    expected = reps.std(axis=0, ddof=1)
    # each replicate's sums are those of its drawn rows, summed as weights x sums (rounding
    # only; another draw of devices moves these errors by percents)
    got = [est.c2c_se, est.non_accumulating_se, est.read_se, est.write_se]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)
    assert est.c2c_se > 0
    tracemalloc.start()
    try:
        noise.estimate_noise(sums, n_boot=200, seed=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # one replicate: its rows (8 B) and a copy of the sums (~30 floats) per device; the
    # matrix of all replicates' rows alone would be 1,600 B per device
    assert peak / 20_000 < 800


# ------------------------------------------------------------------ passes over the file
def test_file_fit_reads_the_file_twice_and_its_coverage_equals_the_whole_traces(
    chip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One screening pass (slices) and one per-device pass (the fitted rows): the window
    coverage comes from read ranges kept during the screening, not from a third pass, and
    equals the coverage of the whole traces in memory to the last bit."""
    from calib.fit.coverage import window_coverage

    slices: list[int] = []
    real_read = HDF5PulseSource.read

    def counted(self, rows):
        out = real_read(self, rows)
        if isinstance(rows, slice):
            slices.append(out.n_devices)
        return out

    monkeypatch.setattr(HDF5PulseSource, "read", counted)
    fit, attrs, (ranges, ids) = fit_commands._fit_distributed(
        chip, "soft-bounds", None, 4, None, 128, None
    )
    n = HDF5PulseSource(chip).n_devices
    assert sum(slices) == n  # the coverage pass read every device again (2 n) before
    traces, _ = load_pulse_traces(chip)
    np.testing.assert_array_equal(ids, traces.device_ids)
    whole = window_coverage(traces.conductance_s, traces.device_ids, fit)
    assert np.isfinite(whole) and window_coverage(ranges, ids, fit) == whole
    np.testing.assert_array_equal(ranges[:, 0], np.min(traces.conductance_s, axis=1))
    np.testing.assert_array_equal(ranges[:, 1], np.max(traces.conductance_s, axis=1))
    # the note of a file fit is the note of the traces in memory, whatever the verdict
    monkeypatch.setattr("calib.fit.coverage.MIN_COVERAGE", whole * 1.01)  # says "too short"
    from_ranges, in_memory = SimpleNamespace(**vars(fit)), SimpleNamespace(**vars(fit))
    from_ranges.notes, in_memory.notes = [], []
    fit_commands._note_window_coverage_of_ranges(from_ranges, (ranges, ids), attrs)
    fit_commands._note_window_coverage(in_memory, traces, attrs)
    assert from_ranges.notes == in_memory.notes and len(in_memory.notes) == 1


def _shifted_windows(n: int = 9, seed: int = 5) -> PulseTraces:
    """Soft-bounds devices whose 20 uS windows are shifted together by N(0, (6 uS)^2), 0.5 uS
    read noise (the per-device reference offset of fitting.window_offset applies)."""
    from fitting.lmfit_models import trajectory

    pulses = np.r_[0, np.tile(np.r_[np.ones(80), -np.ones(80)], 3)].astype(int)
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, 6e-6, n)
    g = []
    for mid in 40e-6 + offsets:
        half = 10e-6 + rng.normal(0, 1e-6)
        v = {"delta_up": 0.12 * half, "delta_down": 0.12 * half, "w_max": half, "w_min": -half}
        w = trajectory("soft-bounds", pulses, mid - half + 1e-7, mid, v)
        g.append(w + 0.5e-6 * rng.standard_normal(w.size))
    return PulseTraces(np.array(g), pulses)


def test_recentering_blocks_refer_each_device_to_its_own_window_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chips of more than RECENTER_BLOCK (65,536) devices are recentered in blocks; with
    windows shifted together every device has its own offset, which each block must take
    for its own devices (every fit of more than 65,536 devices failed on it before)."""
    traces = _shifted_windows()
    one = fit_pulse_response(traces, "soft-bounds", n_boot=20)
    assert one.parameters.get("reference_std", 0.0) > 0  # per-device offsets in use
    monkeypatch.setattr(pulse_response, "RECENTER_BLOCK", 4)
    blocks = fit_pulse_response(traces, "soft-bounds", n_boot=20)
    _same_fit(blocks, one)


# --------------------------------------------------------------------------- fit report
def _same_figures(a, b) -> None:
    np.testing.assert_array_equal(a.measured, b.measured)
    np.testing.assert_array_equal(a.simulated, b.simulated)
    for ra, rb in zip(a.residuals, b.residuals, strict=True):
        np.testing.assert_array_equal(ra.standardized, rb.standardized)
        np.testing.assert_array_equal(ra.y0, rb.y0)


def test_report_of_a_file_reads_a_sample_of_devices_and_says_so(
    chip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--report`` of a large file draws its figures from REPORT_DEVICES fitted devices read
    from the file (bounded memory), never the whole matrix; a small file's figures are those
    of every trace, as before."""
    from fitting.diagnostics import report_material

    def whole_file(*args, **kwargs):
        raise AssertionError("the report read the whole conductance matrix")

    traces, _ = load_pulse_traces(chip)
    monkeypatch.setattr(fit_commands, "load_pulse_traces", whole_file)
    _, small = fit_pulse_response_file(chip, tmp_path / "a.json", report_dir=tmp_path / "a")
    _same_figures(small.figures, report_material(traces, small, seed=0))
    assert "evenly spaced in file order" not in (tmp_path / "a" / "summary.md").read_text()

    read_rows: list[int] = []
    real_read = HDF5PulseSource.read

    def counted(self, rows):
        out = real_read(self, rows)
        read_rows.append(out.n_devices)
        return out

    monkeypatch.setattr(fit_commands, "REPORT_DEVICES", 100)
    monkeypatch.setattr(HDF5PulseSource, "read", counted)
    _, big = fit_pulse_response_file(chip, tmp_path / "b.json", report_dir=tmp_path / "b")
    assert read_rows[-1] == 100  # the report's read: the sample only
    text = " ".join((tmp_path / "b" / "summary.md").read_text().split())
    assert f"100 of {big.n_fitted} fitted devices, evenly spaced in file order" in text
    assert big.figures.residuals[0].y0.shape[0] == 100
    # the sample's figures are those of the same devices taken from the whole traces
    ids = big.per_device["device_id"]
    pick = np.unique(np.linspace(0, ids.size - 1, 100).astype(int))
    assert np.all(np.diff(traces.device_ids) > 0)
    rows = np.searchsorted(traces.device_ids, ids[pick])
    sample = dataclasses.replace(
        big, per_device={k: np.asarray(v)[pick] for k, v in big.per_device.items()}
    )
    _same_figures(big.figures, report_material(traces.subset(rows), sample, seed=0))
