"""HDF5 datasets get the checks CSVs get, through one validator (issues 18.8, 18.12, 18.18).

Files are written with plain h5py from ``datasets/FORMAT.md`` (as an outside user would),
then corrupted one way each. ``read_campaign`` (every command's reader) and the chunked
``HDF5PulseSource`` (``calib fit`` with ``--workers``, ``fit-many``) must both refuse them
with one line; data stored outside the file (external links, external raw storage, virtual
datasets) is refused because the input hash would not identify it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.io import read_campaign
from calib.io.pulse_source import HDF5PulseSource

RNG = np.random.default_rng(11)
N_DEV = 16


def _root(f: h5py.File) -> None:
    f.attrs["format"] = "aimc-calib-dataset"
    f.attrs["format_version"] = 1
    f.attrs["software_version"] = "handwritten"


def _group(f: h5py.File, campaign: str, technology: str | None = None) -> h5py.Group:
    g = f.create_group(campaign)
    g.attrs["campaign"] = campaign
    g.attrs["status"] = "complete"
    if technology is not None:
        g.attrs["instrument"] = json.dumps({"configuration": {"technology": technology}})
    g.create_dataset("device_index", data=np.arange(N_DEV))
    g.create_dataset("row", data=np.zeros(N_DEV, dtype=int))
    g.create_dataset("col", data=np.arange(N_DEV))
    return g


def _s(g: h5py.Group, name: str, data, units: str = "S") -> h5py.Dataset:
    ds = g.create_dataset(name, data=data)
    ds.attrs["units"] = units
    return ds


def pulse_file(path: Path, edit: Callable[[dict], None] | None = None) -> Path:
    pulses = np.array([0] + [1] * 20 + [-1] * 20)
    g = 20e-6 + 0.5e-6 * np.cumsum(pulses)[None, :] + RNG.normal(0, 5e-8, (N_DEV, pulses.size))
    arrays = {"conductance": g, "pulses": pulses, "device_index": np.arange(N_DEV)}
    if edit:
        edit(arrays)
    with h5py.File(path, "w") as f:
        _root(f)
        grp = _group(f, "pulse_response")
        del grp["device_index"]
        grp.create_dataset("device_index", data=arrays["device_index"])
        _s(grp, "conductance", arrays["conductance"])
        grp.create_dataset("pulses", data=arrays["pulses"])
    return path


def pcm_file(path: Path, campaign: str, edit=None, technology: str | None = "pcm") -> Path:
    target = np.repeat([5e-6, 20e-6], N_DEV // 2).astype(float)
    times = np.geomspace(20, 1e4, 12)
    if campaign == "drift":
        g = target[:, None] * (times / 20) ** -0.05 * (1 + RNG.normal(0, 0.02, (N_DEV, 12)))
    else:
        g = target * (1 + RNG.normal(0, 0.05, N_DEV))
    arrays = {"conductance": g, "target": target, "time": times}
    if edit:
        edit(arrays)
    with h5py.File(path, "w") as f:
        _root(f)
        grp = _group(f, campaign, technology)
        _s(grp, "conductance", arrays["conductance"])
        _s(grp, "target", arrays["target"])
        grp.create_dataset("converged", data=np.ones(N_DEV, dtype=bool))
        if campaign == "drift":
            _s(grp, "time", arrays["time"], "s")
    return path


def _set(key: str, index, value) -> Callable[[dict], None]:
    def edit(arrays: dict) -> None:
        arrays[key] = np.array(arrays[key], dtype=float if key != "pulses" else int)
        arrays[key][index] = value

    return edit


def _refused(path: Path, campaign: str, match: str) -> None:
    with pytest.raises(CalibError, match=match) as info:
        read_campaign(path, campaign)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_clean_files_are_read(tmp_path: Path) -> None:
    assert read_campaign(pulse_file(tmp_path / "p.h5"), "pulse_response").n_devices == N_DEV
    assert read_campaign(pcm_file(tmp_path / "d.h5", "drift"), "drift").n_devices == N_DEV
    assert read_campaign(pcm_file(tmp_path / "g.h5", "programming"), "programming").n_devices


def test_fifty_siemens_is_refused(tmp_path: Path) -> None:
    path = pulse_file(tmp_path / "p.h5", _set("conductance", (3, 5), 50.0))
    _refused(path, "pulse_response", r"device 3 read 5: conductance 50 S is not plausible")
    with pytest.raises(CalibError, match="not plausible"):
        src = HDF5PulseSource(path)
        src.read(slice(0, N_DEV))
    path = pcm_file(tmp_path / "g.h5", "programming", _set("conductance", 2, 50.0))
    _refused(path, "programming", "not plausible")


def test_duplicate_device_index_is_refused(tmp_path: Path) -> None:
    path = pulse_file(tmp_path / "p.h5", _set("device_index", 7, 2))
    _refused(path, "pulse_response", r"device_index 2 appears twice")
    with pytest.raises(CalibError, match="appears twice"):
        HDF5PulseSource(path)


def test_reversed_drift_time_axis_is_refused(tmp_path: Path) -> None:
    def reverse(arrays: dict) -> None:
        arrays["time"] = arrays["time"][::-1].copy()

    _refused(pcm_file(tmp_path / "d.h5", "drift", reverse), "drift", r"time order")


def test_nan_in_drift_and_programming_reads_is_refused(tmp_path: Path) -> None:
    path = pcm_file(tmp_path / "d.h5", "drift", _set("conductance", (4, 6), np.nan))
    _refused(path, "drift", r"device 4 read 6: NaN read")
    path = pcm_file(tmp_path / "g.h5", "programming", _set("conductance", 9, np.nan))
    _refused(path, "programming", r"device 9: NaN conductance")


def test_string_typed_conductance_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "p.h5"
    pulse_file(path)
    with h5py.File(path, "a") as f:
        g = f["pulse_response"]
        del g["conductance"]
        _s(g, "conductance", np.full((N_DEV, 41), b"2e-5"))
    _refused(path, "pulse_response", r"conductance has non-numeric type")
    with pytest.raises(CalibError, match="non-numeric"):
        HDF5PulseSource(path)
    code = main(["fit", "pulse-response", str(path), "-o", str(tmp_path / "o.json")])
    err = _error_line(capsys.readouterr().err)
    assert code == 1 and "non-numeric" in err and "\n" not in err


def test_a_reram_programming_campaign_is_not_fitted_as_pcm(tmp_path: Path, capsys) -> None:
    path = pcm_file(tmp_path / "g.h5", "programming", technology="reram")
    out = tmp_path / "o.json"
    assert main(["fit", "pcm", str(path), "-o", str(out)]) == 1
    err = _error_line(capsys.readouterr().err)
    assert "reram chip" in err and "--any-technology" in err and "\n" not in err
    assert not out.exists()
    assert main(["fit", "pcm", str(path), "-o", str(out), "--any-technology"]) == 0
    assert out.exists()


def test_external_links_and_external_storage_are_refused(tmp_path: Path) -> None:
    data = pulse_file(tmp_path / "data.h5")
    linked = tmp_path / "linked.h5"
    with h5py.File(linked, "w") as f:
        _root(f)
        f["pulse_response"] = h5py.ExternalLink(str(data), "/pulse_response")
    _refused(linked, "pulse_response", r"external link")

    raw = tmp_path / "raw.bin"
    g = np.full((N_DEV, 41), 2e-5)
    g.tofile(raw)
    ext = tmp_path / "ext.h5"
    pulse_file(ext)
    with h5py.File(ext, "a") as f:
        grp = f["pulse_response"]
        del grp["conductance"]
        grp.create_dataset(
            "conductance", shape=g.shape, dtype="f8", external=[(str(raw), 0, g.nbytes)]
        )
        grp["conductance"].attrs["units"] = "S"
    _refused(ext, "pulse_response", r"external file")
    with pytest.raises(CalibError, match="external file"):
        HDF5PulseSource(ext)

    virt = tmp_path / "virt.h5"
    pulse_file(virt)
    with h5py.File(virt, "a") as f:
        grp = f["pulse_response"]
        del grp["conductance"]
        layout = h5py.VirtualLayout(shape=(N_DEV, 41), dtype="f8")
        layout[:] = h5py.VirtualSource(str(data), "pulse_response/conductance", shape=(N_DEV, 41))
        grp.create_virtual_dataset("conductance", layout).attrs["units"] = "S"
    _refused(virt, "pulse_response", r"virtual dataset")


def test_pulse_source_refuses_what_read_campaign_refuses(tmp_path: Path) -> None:
    """One validator: a chunk read by the Dask path fails the same way as the whole file."""
    path = pulse_file(tmp_path / "p.h5", _set("pulses", 4, 2**40))
    _refused(path, "pulse_response", r"pulse count")
    with pytest.raises(CalibError, match=r"pulse count"):
        HDF5PulseSource(path).read(np.arange(N_DEV))


def _error_line(stderr: str) -> str:
    """The command's one error line (a progress bar drawn before it is not part of it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("calib")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_campaign_attributes_are_strict_json(tmp_path: Path) -> None:
    """A non-finite parameter is refused in one line, not written as invalid JSON (NaN)."""
    from calib.io import CampaignData, write_campaign

    data = CampaignData(
        "programming",
        {
            "device_index": np.arange(2),
            "row": np.zeros(2, dtype=int),
            "col": np.arange(2),
            "conductance": np.array([5e-6, 6e-6]),
            "target": np.array([5e-6, 6e-6]),
        },
        {"campaign": "programming", "parameters": {"read_delay_s": float("nan")}},
        {"conductance": "S", "target": "S"},
    )
    with pytest.raises(CalibError, match=r"parameters: read_delay_s is nan"):
        write_campaign(tmp_path / "x.h5", data)


# ------------------------------------------------------------------ float32 files (issue 19)
def _float32(edit: Callable[[dict], None] | None = None) -> Callable[[dict], None]:
    def as_float32(arrays: dict) -> None:
        if edit:
            edit(arrays)
        arrays["conductance"] = np.asarray(arrays["conductance"], dtype=np.float32)

    return as_float32


def test_float32_files_get_the_float64_verdicts(tmp_path: Path) -> None:
    """The checks run in the file's float32 (no float64 copy of every chunk), with the
    verdicts of float64: float32(0.1) is 0.10000000149 S, above the plausible 0.1 S, although
    a float32 comparison with 0.1 would call it equal."""
    assert read_campaign(pulse_file(tmp_path / "ok.h5", _float32()), "pulse_response")
    path = pulse_file(tmp_path / "p.h5", _float32(_set("conductance", (3, 5), 0.1)))
    _refused(path, "pulse_response", r"device 3 read 5: conductance 0.1 S is not plausible")
    path = pulse_file(tmp_path / "inf.h5", _float32(_set("conductance", (2, 7), np.inf)))
    _refused(path, "pulse_response", r"device 2 read 7: infinite conductance")
    small = _float32(lambda a: a.update(conductance=np.asarray(a["conductance"]) * 1e-6))
    _refused(pulse_file(tmp_path / "uS.h5", small), "pulse_response", "not plausible in siemens")

    def doubled(arrays: dict) -> None:  # every read (and pulse count) twice in a row
        arrays["conductance"] = np.repeat(arrays["conductance"][:, :21], 2, axis=1)[:, :41]
        arrays["pulses"] = np.repeat(arrays["pulses"][:21], 2)[:41]

    path = pulse_file(tmp_path / "twice.h5", _float32(doubled))
    _refused(path, "pulse_response", "every read repeats the one before it")


def test_checks_of_a_float32_chunk_make_no_float64_copy_of_it() -> None:
    import tracemalloc

    from calib.io.checks import check_campaign_values

    n, reads = 2000, 1201
    pulses = np.array([0] + [1, -1] * (reads // 2))
    rng = np.random.default_rng(2)
    g = (20e-6 + rng.normal(0, 1e-7, (n, reads))).astype(np.float32)
    arrays = {"conductance": g, "pulses": pulses, "device_index": np.arange(n)}
    tracemalloc.start()
    try:
        check_campaign_values("pulse_response", arrays, {"conductance": "S"}, "chunk")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # boolean masks of the reads (1 byte each) only; a float64 copy alone is 8 bytes a read
    assert peak < 4 * g.size
