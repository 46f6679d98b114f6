"""File-level PCM fitting: datasets (HDF5 or CSV) in, a preset with a ``pcm`` section out.

HDF5 files may hold any of the ``programming``, ``drift`` and ``read_noise`` groups
(``datasets/FORMAT.md``); CSV files hold one campaign each, named by ``kinds``. Each campaign
may come from one file only. What is present is fitted (:func:`fitting.pcm.fit_pcm`); the
preset records which parts could not be fitted and why, the excluded devices, and the
provenance of every input file (path, SHA-256, campaigns).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calib.errors import CalibError
from calib.io import CampaignData, read_campaign, read_campaign_any
from calib.io.checks import check_technology
from calib.io.hdf5 import check_complete, open_dataset
from calib.presets import SCHEMA_NAME, SCHEMA_VERSION, file_sha256, provenance, save_preset
from calib.runtime.json_values import plain_json
from fitting.pcm import PcmFit, PcmFitOptions, fit_pcm
from fitting.pcm_data import DriftSample, ProgrammingSample, RepeatedReadSample
from fitting.traces import FitInputError

__all__ = [
    "PCM_CAMPAIGNS",
    "fit_pcm_files",
    "load_pcm_campaigns",
    "pcm_samples",
    "split_verify_reads",
]

PCM_CAMPAIGNS = ("programming", "drift", "read_noise")


def load_pcm_campaigns(
    inputs: Sequence[str | Path],
    kinds: Sequence[str] = (),
    units: str = "S",
    any_technology: bool = False,
) -> dict[str, CampaignData]:
    """Read the PCM campaigns of ``inputs``; ``kinds`` name the CSV files' campaigns, in order.

    A campaign whose instrument snapshot names another technology (a ReRAM chip's
    programming campaign) is refused unless ``any_technology``.
    """
    if not inputs:
        raise CalibError("no input files given")
    kinds = [k.replace("-", "_") for k in kinds]
    csv_inputs = [Path(p) for p in inputs if Path(p).suffix.lower() == ".csv"]
    if len(kinds) != len(csv_inputs):
        raise CalibError(
            f"{len(csv_inputs)} CSV input(s) need as many --kind options (got {len(kinds)}), "
            "one per CSV file in order: programming, drift or read-noise"
        )
    found: dict[str, CampaignData] = {}
    csv_kinds = iter(kinds)
    for raw in inputs:
        path = Path(raw)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            kind = next(csv_kinds)
            if kind not in PCM_CAMPAIGNS:
                raise CalibError(
                    f"{path}: --kind {kind} is not one of programming, drift, read-noise"
                )
            names = [kind]
        elif suffix in (".h5", ".hdf5"):
            with open_dataset(path) as f:
                names = [n for n in PCM_CAMPAIGNS if n in f]
                groups = sorted(f)
            if not names:
                raise CalibError(
                    f"{path}: has no programming, drift or read_noise group (groups: {groups})"
                )
        else:
            raise CalibError(f"{path}: unknown file type {suffix!r}; expected .h5, .hdf5 or .csv")
        for name in names:
            if name in found:
                raise CalibError(
                    f"campaign {name!r} found in both {found[name].source} and {path}; "
                    "give each campaign once"
                )
            data = (
                read_campaign_any(path, name, units)
                if suffix == ".csv"
                else read_campaign(path, name)
            )
            _check_campaign(data, path)
            if not any_technology:
                check_technology(data.attrs, "pcm", f"{path}: {name}", "a PCM fit")
            found[name] = data
    return found


def _check_campaign(data: CampaignData, path: Path) -> None:
    check_complete(data.attrs, path, data.campaign)
    for name in ("conductance", "target"):
        if data.units.get(name, "S") != "S":
            raise CalibError(
                f"{path}: {data.campaign}/{name} is in {data.units[name]!r} units; PCM fitting "
                "needs siemens"
            )


def _parameters(data: CampaignData) -> dict[str, Any]:
    params = data.attrs.get("parameters")
    return params if isinstance(params, dict) else {}


VERIFY_SOURCE = "drift verify reads (t = 0)"


def split_verify_reads(
    time: np.ndarray, conductance: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Take the reads at t = 0 (the verify read of write-verify) out of a drift campaign.

    ``time`` is shared (reads,) or per device (devices, reads); returns (time, conductance)
    without them (a shared column is dropped, per-device entries become NaN) and the verify
    conductance of each device (NaN where it has none), or None when no read is at t = 0.
    """
    g = np.array(conductance, dtype=float, copy=True)
    zero = np.broadcast_to(time == 0, g.shape)
    if not zero.any():
        return time, g, None
    first = np.argmax(zero, axis=1)
    has = zero.any(axis=1)
    verify = np.where(has, g[np.arange(g.shape[0]), first], np.nan)
    if time.ndim == 1:
        keep = time != 0
        return time[keep], g[:, keep], verify
    t = np.where(zero, np.nan, time)
    return t, np.where(zero, np.nan, g), verify


def pcm_samples(
    campaigns: dict[str, CampaignData],
) -> tuple[ProgrammingSample | None, DriftSample | None, RepeatedReadSample | None]:
    """Fitter inputs from campaign data (read times and averaging from the attributes)."""
    prog = drift = reads = None
    try:
        if "programming" in campaigns:
            d = campaigns["programming"]
            p = _parameters(d)
            prog = ProgrammingSample(
                d["target"],
                d["conductance"],
                read_time_s=p.get("read_delay_s"),
                n_avg=int(p.get("n_avg", 1)),
                converged=d.arrays.get("converged"),
                device_ids=d.device_index,
                source=f"{Path(d.source).name}:programming",
            )
        if "drift" in campaigns:
            d = campaigns["drift"]
            n_avg = int(d.attrs.get("n_avg", _parameters(d).get("n_avg", 1)))
            time, g, verify = split_verify_reads(
                np.asarray(d["time"], dtype=float), np.asarray(d["conductance"], dtype=float)
            )
            drift = DriftSample(
                d["target"],
                time,
                g,
                n_avg=n_avg,
                converged=d.arrays.get("converged"),
                device_ids=d.device_index,
                source=f"{Path(d.source).name}:drift",
            )
            if verify is not None and prog is None:
                # the verify read of write-verify (t = 0) is the programming read; drift
                # before t0 is outside the power-law model, so it counts as a read at t0
                ok = np.isfinite(verify)
                if d.arrays.get("converged") is not None:
                    ok &= np.asarray(d.arrays["converged"], dtype=bool)
                prog = ProgrammingSample(
                    d["target"],
                    np.where(ok, verify, 0.0),
                    read_time_s=drift.first_read_time(),
                    n_avg=1,
                    converged=ok,
                    device_ids=d.device_index,
                    source=f"{Path(d.source).name}:{VERIFY_SOURCE}",
                )
        if "read_noise" in campaigns:
            d = campaigns["read_noise"]
            reads = RepeatedReadSample(
                d["time"],
                d["conductance"],
                target_s=d.arrays.get("target"),
                converged=d.arrays.get("converged"),
                device_ids=d.device_index,
                source=f"{Path(d.source).name}:read_noise",
            )
    except FitInputError as exc:
        raise CalibError(str(exc)) from None
    return prog, drift, reads


def fit_pcm_files(
    inputs: Sequence[str | Path],
    output: str | Path,
    options: PcmFitOptions | None = None,
    kinds: Sequence[str] = (),
    units: str = "S",
    report_dir: str | Path | None = None,
    any_technology: bool = False,
) -> tuple[Path, PcmFit, dict[str, Any]]:
    """Fit the PCM model from ``inputs`` and write the preset to ``output``.

    Returns (preset path, fit, preset document). ``report_dir`` also writes the plots.
    """
    campaigns = load_pcm_campaigns(inputs, kinds, units, any_technology)
    prog, drift, reads = pcm_samples(campaigns)
    options = options or PcmFitOptions()
    try:
        fit = fit_pcm(prog, drift, reads, options)
    except FitInputError as exc:
        raise CalibError(str(exc)) from None
    if prog is not None and prog.source.endswith(VERIFY_SOURCE):
        fit.notes.append(
            f"programming noise: the drift campaign's reads at t = 0 (verify reads) are the "
            f"programming reads, taken as reads at t0 = {prog.read_time_s:g} s (the power-law "
            "drift model starts at t0)"
        )
    files = []
    for raw in dict.fromkeys(str(p) for p in inputs):
        names = [c for c, d in campaigns.items() if Path(d.source) == Path(raw)]
        files.append({"path": raw, "sha256": file_sha256(raw), "campaigns": names})
    idn = {c: d.attrs.get("idn") for c, d in campaigns.items() if d.attrs.get("idn")}
    prov = provenance(
        inputs[0],
        inputs=files,
        fit="pcm",
        options={k: v for k, v in vars(options).items()},
        instrument_idn=idn,
    )
    preset = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "pcm": plain_json(fit.section()),
        "provenance": plain_json(prov),
    }
    path = save_preset(preset, output)
    if report_dir is not None:
        from calib.reports.pcm import write_pcm_report

        write_pcm_report(fit, report_dir)
    return path, fit, preset


def accuracy_table(fit_section: dict[str, Any], truth_section: dict[str, Any], g_s: np.ndarray):
    """Per-level fitted vs true σ_prog, μ_ν, σ_ν, Q_s (for reports and checks against truth)."""
    from fitting.pcm_model import evaluate_section

    fitted = evaluate_section(fit_section, g_s)
    truth = evaluate_section(truth_section, g_s)
    return {"g_target_s": np.asarray(g_s), "fit": fitted, "truth": truth}
