"""Garbage pulse-response campaign files through the streamed fit: one line, or a fit of all.

An outside tester's probes of the one HDF5 reader (calib/io/hdf5.py CampaignFile) and the
streamed pulse-response fit (calib/io/pulse_source.py, fitting/chunked.py) through
``calib fit pulse-response``: a copy of the 64-device example campaign
(datasets/examples/reram_pulse_response.h5) with one thing broken. Refused files must give
exit 1, one ``calib: error:`` line naming the file, and no preset; nothing measured may be
dropped or read differently from what the file holds. Probes that found a fault are
``xfail(strict=True)`` with the function at fault (files of another helper today).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from calib.cli import main

EXAMPLE = Path(__file__).parents[3] / "datasets" / "examples" / "reram_pulse_response.h5"
N_DEVICES = 64  # devices of the example campaign


def _copy(tmp_path: Path, edit: Callable[[Path], None]) -> Path:
    path = tmp_path / "campaign.h5"
    shutil.copy(EXAMPLE, path)
    edit(path)
    return path


def _group(edit: Callable[[h5py.Group, h5py.File], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with h5py.File(path, "a") as fh:
            edit(fh["pulse_response"], fh)

    return apply


def _attr(name: str, value) -> Callable[[Path], None]:
    return _group(lambda g, fh: g.attrs.__setitem__(name, value))


def _replace(name: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def edit(g: h5py.Group, fh: h5py.File) -> None:
        data = make(g[name][()])
        attrs = dict(g[name].attrs)
        del g[name]
        g[name] = data
        g[name].attrs.update(attrs)

    return _group(edit)


def _fit(path: Path, capsys, *extra: str) -> tuple[int, list[str], Path]:
    out = path.with_name("preset.json")
    capsys.readouterr()
    rc = main(["fit", "pulse-response", str(path), "-o", str(out), *extra])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("calib")]
    return rc, err, out


def _assert_refused(path: Path, capsys, *extra: str) -> str:
    rc, err, out = _fit(path, capsys, *extra)
    assert rc == 1, err
    assert len(err) == 1 and err[0].startswith("calib: error:") and str(path) in err[0]
    assert not out.exists()
    return err[0]


def _truncate(keep: Callable[[int], int]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(path.read_bytes()[: keep(path.stat().st_size)])


def _group_for_dataset(path: Path) -> None:
    with h5py.File(path, "a") as fh:
        del fh["pulse_response/conductance"]
        fh["pulse_response"].create_group("conductance")


REFUSED: dict[str, Callable[[Path], None]] = {
    "status running": _attr("status", "running"),
    "status interrupted": _attr("status", "interrupted"),
    "status missing": _group(lambda g, fh: g.attrs.__delitem__("status")),
    "empty file": lambda path: path.write_bytes(b""),
    "truncated to half": _truncate(lambda n: n // 2),
    "last 100 bytes cut": _truncate(lambda n: n - 100),
    "a drift campaign": lambda path: shutil.copy(EXAMPLE.with_name("pcm_drift.h5"), path),
    "an infinite read": _group(lambda g, fh: g["conductance"].__setitem__((3, 7), np.inf)),
    "every read NaN": _group(lambda g, fh: g["conductance"].__setitem__(slice(None), np.nan)),
    "pulses one read short": _replace("pulses", lambda d: d[:-1]),
    "device_index one device short": _replace("device_index", lambda d: d[:-1]),
    "a device index given twice": _group(
        lambda g, fh: g["device_index"].__setitem__(1, g["device_index"][0])
    ),
    "conductance of strings": _replace("conductance", lambda d: np.full(d.shape, b"x")),
    "conductance in volts": _group(lambda g, fh: g["conductance"].attrs.__setitem__("units", "V")),
    "a NaN pulse count": _replace("pulses", lambda d: np.where(np.arange(d.size) == 3, np.nan, d)),
    "an external link": _group(
        lambda g, fh: (
            g.__delitem__("row"),
            g.__setitem__("row", h5py.ExternalLink("/nonexistent.h5", "/r")),
        )
    ),
    "not an aimc file": _group(lambda g, fh: fh.attrs.__setitem__("format", "other")),
    "a newer format version": _group(lambda g, fh: fh.attrs.__setitem__("format_version", 99)),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_broken_campaign_file_is_refused_with_one_line(tmp_path: Path, capsys, name: str) -> None:
    _assert_refused(_copy(tmp_path, REFUSED[name]), capsys)


def test_a_file_held_open_by_a_running_writer_is_refused_with_one_line(
    tmp_path: Path, capsys
) -> None:
    """A campaign being measured by another process (status 'running', file open for
    writing and locked): refused as unfinished, whatever the lock."""
    path = _copy(tmp_path, _attr("status", "running"))
    script = textwrap.dedent(
        f"""
        import sys, h5py
        with h5py.File({str(path)!r}, "a") as fh:
            print("open", flush=True)
            sys.stdin.readline()
        """
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "open"
        assert "running" in _assert_refused(path, capsys)
    finally:
        writer.communicate("\n", timeout=60)


def test_the_streamed_fit_in_chunks_gives_the_fit_in_one_piece(tmp_path: Path, capsys) -> None:
    """Chunk boundaries lose no device: 64 devices in chunks of 64 and one piece alike."""
    path = _copy(tmp_path, lambda p: None)
    rc, err, out = _fit(path, capsys, "--chunk-devices", "64")
    assert rc == 0, err
    assert len(out.read_text()) > 0
    import json

    assert json.loads(out.read_text())["provenance"]["n_devices"] == N_DEVICES


# -- faults found by the probes (calib/io/hdf5.py, calib/fit/pulse_response.py: HB's files today)
@pytest.mark.parametrize(
    "edit",
    [
        _attr("rows_complete", -1),
        _attr("rows_complete", np.nan),
        _attr("rows_complete", "x"),
        _group(lambda g, fh: fh.attrs.__setitem__("format_version", "x")),
    ],
    ids=["rows_complete -1", "rows_complete NaN", "rows_complete text", "format_version text"],
)
def test_a_garbage_bookkeeping_attribute_is_refused_with_one_line(
    tmp_path: Path, capsys, edit
) -> None:
    _assert_refused(_copy(tmp_path, edit), capsys)


def test_a_group_in_place_of_a_required_dataset_is_refused_with_one_line(
    tmp_path: Path, capsys
) -> None:
    _assert_refused(_copy(tmp_path, _group_for_dataset), capsys)


def test_a_complete_campaign_with_fewer_rows_complete_than_rows_loses_no_device(
    tmp_path: Path, capsys
) -> None:
    """Status 'complete' but rows_complete 10 of 64 rows: the file contradicts itself. Either
    refuse it or fit every row; a preset of 10 devices says nothing of the 54 others."""
    import json

    path = _copy(tmp_path, _attr("rows_complete", 10))
    rc, err, out = _fit(path, capsys)
    if rc == 0:
        assert json.loads(out.read_text())["provenance"]["n_devices"] == N_DEVICES
    else:
        assert rc == 1 and len(err) == 1 and str(path) in err[0]


def test_a_fractional_pulse_count_is_refused_as_not_an_integer(tmp_path: Path, capsys) -> None:
    path = _copy(tmp_path, _replace("pulses", lambda d: d.astype(np.float64) * 1.5))
    assert "integer" in _assert_refused(path, capsys)


def test_half_pulse_counts_are_refused_as_not_integers(tmp_path: Path, capsys) -> None:
    path = _copy(tmp_path, _replace("pulses", lambda d: d.astype(np.float64) + 0.5))
    assert "integer" in _assert_refused(path, capsys)


def test_a_device_with_no_finite_read_is_fitted_around_without_a_numpy_warning(
    tmp_path: Path, capsys
) -> None:
    path = _copy(tmp_path, _group(lambda g, fh: g["conductance"].__setitem__(5, np.nan)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rc, err, out = _fit(path, capsys)
    assert rc == 0, err
    assert out.exists()


@pytest.mark.slow
def test_a_fit_killed_at_any_moment_leaves_no_preset_or_a_whole_one(tmp_path: Path) -> None:
    """SIGKILL of ``calib fit pulse-response`` at 20 %, 50 %, 80 % and 95 % of the time an
    uninterrupted run takes (import, read, fit, write): the output is absent or a preset
    that loads; the input campaign is unchanged."""
    import json
    import os
    import signal
    import time

    from calib.presets import load_preset

    path = _copy(tmp_path, lambda p: None)
    before = path.read_bytes()

    def run(out: Path, kill_after_s: float | None) -> None:
        fit = subprocess.Popen(
            [sys.executable, "-m", "calib", "fit", "pulse-response", str(path), "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=Path(__file__).parents[3],
        )
        if kill_after_s is not None:
            time.sleep(kill_after_s)
            if fit.poll() is None:
                os.kill(fit.pid, signal.SIGKILL)
        assert fit.wait(timeout=300) == 0 or kill_after_s is not None

    start = time.perf_counter()
    run(tmp_path / "whole.json", None)
    whole_s = time.perf_counter() - start
    load_preset(tmp_path / "whole.json")
    for fraction in (0.2, 0.5, 0.8, 0.95):
        out = tmp_path / f"killed_{fraction}.json"
        run(out, fraction * whole_s)
        if out.exists():
            assert json.loads(out.read_text())["schema"] == "aimc-calib-preset"
            load_preset(out)
    assert path.read_bytes() == before


def test_a_campaign_replaced_during_a_streamed_fit_is_refused_not_mixed(tmp_path: Path) -> None:
    import os
    import pickle

    from calib.errors import CalibError
    from calib.io.pulse_source import HDF5PulseSource

    path = _copy(tmp_path, lambda p: None)
    source = HDF5PulseSource(path)
    source.read(slice(0, 32))  # the first chunk, as the fit reads it
    other = tmp_path / "remeasured.h5"
    shutil.copy(path, other)
    with h5py.File(other, "a") as fh:
        fh["pulse_response/conductance"][:] *= 1.5
    os.replace(other, path)  # e.g. calib measure -o campaign.h5 --overwrite meanwhile
    worker = pickle.loads(pickle.dumps(source))  # a Dask worker reopens the file by path
    with pytest.raises(CalibError, match="changed"):
        worker.read(slice(32, 64))
