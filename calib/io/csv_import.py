"""Import measurements taken elsewhere from tidy CSV files (one row per read).

Contracts (column names are case-sensitive; extra columns are ignored and reported):

* pulse response: ``device``, ``pulse``, ``conductance``; optional ``time`` (s), ``row``,
  ``col``. ``pulse`` is the signed number of pulses applied just before the read (+1 one
  up pulse, -1 one down pulse, 0 a plain read). Rows of a device are in time order.
* drift and read noise: ``device``, ``time`` (s since programming), ``conductance``;
  optional ``target``.
* programming: ``device``, ``target``, ``conductance``; optional ``iterations``.

Conductances are in siemens unless ``units`` says otherwise (``uS``, ``nS``, ``mS`` are
converted; ``normalized`` keeps dimensionless values and marks them so). Invalid rows (NaN,
negative conductance, non-numeric values) are refused with the line number, never dropped;
then the values pass the same checks as an HDF5 file (:mod:`calib.io.checks`: implausible
units, duplicated or shuffled rows, times out of order, pulse counts out of range), also
reported with the line number. Device ids that are the same number written differently
(``01`` and ``1``) are refused, and so is a drift ``target`` that changes within a device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calib.errors import CalibError
from calib.io.checks import MAX_PLAUSIBLE_S, check_campaign_values
from calib.io.hdf5 import CampaignData, read_campaign

__all__ = [
    "CSV_COLUMNS",
    "UNIT_SCALE",
    "campaign_from_csv",
    "pulse_response_from_two_files",
    "read_campaign_any",
    "read_pulse_response_any",
    "read_pulse_response_csv",
]

UNIT_SCALE = {"S": 1.0, "mS": 1e-3, "uS": 1e-6, "nS": 1e-9, "normalized": 1.0}

#: (required, optional) columns per campaign.
CSV_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pulse_response": (("device", "pulse", "conductance"), ("time", "row", "col")),
    "drift": (("device", "time", "conductance"), ("target", "row", "col")),
    "read_noise": (("device", "time", "conductance"), ("target", "row", "col")),
    "programming": (("device", "target", "conductance"), ("iterations", "row", "col")),
}


def _line(frame: pd.DataFrame, pos: int) -> int:
    """File line (1-based, after the header) of row position ``pos`` of ``frame``.

    The frame keeps the positions of the file's rows as its index, also after
    ``drop_invalid`` took rows out.
    """
    return int(frame.index[pos]) + 2


def _invalid_rows(frame: pd.DataFrame, numeric: list[str], units: str) -> dict[str, np.ndarray]:
    """Masks of the rows that strict reading refuses, by reason (for ``drop_invalid``)."""
    out: dict[str, np.ndarray] = {}
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        out[f"missing or non-numeric {col}"] = ~np.isfinite(values)
        if col in ("conductance", "target") and units != "normalized":
            with np.errstate(invalid="ignore"):
                out[f"negative {col}"] = values < 0
    out["empty device id"] = (frame["device"].str.strip() == "").to_numpy()
    return out


def _carry_pulses(path: Path, frame: pd.DataFrame, drop: np.ndarray) -> pd.DataFrame:
    """Add the pulses of dropped pulse-response rows to the device's next kept read.

    ``pulse`` counts the pulses since the previous read: a dropped read's pulses were still
    applied. Up and down pulses cannot be merged into one signed count (refused).
    """
    pulses = pd.to_numeric(frame["pulse"], errors="coerce").to_numpy(dtype=float)
    devices = frame["device"].str.strip().to_numpy()
    carry: dict[str, float] = {}
    out = pulses.copy()
    for i in range(len(frame)):
        dev = devices[i]
        if drop[i]:
            if np.isfinite(pulses[i]):
                if carry.get(dev, 0.0) * pulses[i] < 0:
                    raise CalibError(
                        f"{path}: line {_line(frame, i)}: two dropped reads in a row between up "
                        f"and down pulses of device {dev}: their pulses cannot be one count"
                    )
                carry[dev] = carry.get(dev, 0.0) + pulses[i]
            continue
        extra = carry.pop(dev, 0.0)
        if extra and np.isfinite(pulses[i]) and extra * pulses[i] < 0:
            raise CalibError(
                f"{path}: line {_line(frame, i)}: a dropped read between up and down pulses of "
                f"device {dev}: the pulses before this read cannot be one signed count"
            )
        out[i] = pulses[i] + extra
    frame = frame.copy()
    frame["pulse"] = [f"{v:.17g}" for v in out]
    return frame


def _read_table(
    path: Path, campaign: str, drop_invalid: bool = False, units: str = "S"
) -> pd.DataFrame:
    if not path.is_file():
        raise CalibError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, skipinitialspace=True, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CalibError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    required, optional = CSV_COLUMNS[campaign]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CalibError(
            f"{path}: missing column(s) {', '.join(missing)} for a {campaign.replace('_', '-')} "
            f"CSV (needs {', '.join(required)}; optional {', '.join(optional)})"
        )
    if frame.empty:
        raise CalibError(f"{path}: has a header but no data rows")
    numeric = [c for c in (*required, *optional) if c in frame.columns and c != "device"]
    dropped: dict[str, int] = {}
    if drop_invalid:  # count and report what strict reading would refuse, then drop it
        masks = _invalid_rows(frame, numeric, units)
        bad = np.zeros(len(frame), dtype=bool)
        for reason, mask in masks.items():
            new = mask & ~bad
            if new.any():
                first = int(frame.index[int(np.argmax(new))]) + 2
                dropped[f"{reason} (first at line {first})"] = int(new.sum())
            bad |= mask
        if campaign == "pulse_response":
            frame = _carry_pulses(path, frame, bad)
        frame = frame[~bad].copy()
        if frame.empty:
            raise CalibError(f"{path}: every data row is invalid ({dropped})")
    frame.attrs["dropped_rows"] = dropped
    for col in numeric:
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            pos = int(np.argmax(bad.to_numpy()))
            raise CalibError(
                f"{path}: line {_line(frame, pos)}: column {col!r} has a missing or non-numeric "
                f"value ({raw.iloc[pos]!r}); {int(bad.sum())} such row(s) in total (calib "
                "import csv --drop-invalid drops and counts them)"
            )
        frame[col] = values
    empty = frame["device"].str.strip() == ""
    if empty.any():
        raise CalibError(
            f"{path}: line {_line(frame, int(np.argmax(empty.to_numpy())))}: empty device id"
        )
    return frame


def _scale(path: Path, frame: pd.DataFrame, columns: tuple[str, ...], units: str) -> None:
    if units not in UNIT_SCALE:
        raise CalibError(f"unknown conductance units {units!r}; use one of {sorted(UNIT_SCALE)}")
    for col in columns:
        if col not in frame.columns:
            continue
        values = frame[col].to_numpy(dtype=float)
        if units != "normalized" and np.any(values < 0):
            pos = int(np.argmax(values < 0))
            raise CalibError(
                f"{path}: line {_line(frame, pos)}: negative {col} {values[pos]:g} (calib import "
                "csv --drop-invalid drops and counts such rows)"
            )
        values = values * UNIT_SCALE[units]
        if units != "normalized" and np.max(values) > MAX_PLAUSIBLE_S:
            line = _line(frame, int(np.argmax(values > MAX_PLAUSIBLE_S)))
            raise CalibError(
                f"{path}: line {line}: {col} {np.max(values):g} S is not plausible in siemens; "
                "state the units (--units uS, nS, mS or normalized)"
            )
        frame[col] = values


def _device_index(
    path: Path, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Per-row device code (order of first appearance), unique ids, and labels if not ints.

    Ids that are the same number written differently (``01`` and ``1``, ``1.0``) are
    refused: they would be one device in an HDF5 file, and merging them silently could mix
    two devices' reads.
    """
    labels = frame["device"].str.strip()
    codes, uniques = pd.factorize(labels, sort=False)
    ints = pd.to_numeric(pd.Series(uniques), errors="coerce")
    if ints.notna().all() and np.all(ints == np.round(ints)) and np.all(np.abs(ints) < 2**62):
        ids = ints.to_numpy(dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        same = ids[order][1:] == ids[order][:-1]
        if same.any():
            k = int(np.argmax(same))
            a, b = int(order[k]), int(order[k + 1])
            line_a = _line(frame, int(np.argmax(codes == a)))
            line_b = _line(frame, int(np.argmax(codes == b)))
            raise CalibError(
                f"{path}: line {line_b}: device id {uniques[b]!r} is the same number as "
                f"{uniques[a]!r} (line {line_a}); write each device's id one way"
            )
        return codes, ids, None
    return codes, np.arange(len(uniques), dtype=np.int64), [str(u) for u in uniques]


def _matrix(codes: np.ndarray, values: np.ndarray, n_dev: int, fill: float) -> np.ndarray:
    """Rows of each device (in file order) into a padded (n_dev, max_len) matrix."""
    counts = np.bincount(codes, minlength=n_dev)
    order = np.argsort(codes, kind="stable")
    pos = np.arange(codes.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.full((n_dev, counts.max()), fill, dtype=float)
    out[codes[order], pos] = values[order]
    return out


def _shared_or_matrix(mat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    if np.all(lengths == lengths[0]) and np.all(mat == mat[0]):
        return mat[0]
    return mat


def campaign_from_csv(
    path: str | Path,
    campaign: str,
    units: str = "S",
    drop_invalid: bool = False,
    round_pulses: bool = False,
) -> CampaignData:
    """Read a CSV in ``campaign``'s contract into the same structure as an HDF5 campaign.

    ``drop_invalid`` drops rows that would be refused (missing or non-numeric values,
    negative conductances or targets, empty device ids), counted per reason in
    ``attrs["dropped_rows"]``; the default refuses them with the line number.
    ``round_pulses`` rounds non-integer pulse counts (digitized curves) to the nearest
    integer, counted in ``attrs["pulses_rounded"]``.
    """
    path = Path(path)
    if campaign not in CSV_COLUMNS:
        raise CalibError(f"unknown campaign {campaign!r}; use one of {sorted(CSV_COLUMNS)}")
    frame = _read_table(path, campaign, drop_invalid, units)
    dropped = frame.attrs.get("dropped_rows", {})
    _scale(path, frame, ("conductance", "target"), units)
    codes, ids, labels = _device_index(path, frame)
    n_dev = ids.size
    line_no = frame.index.to_numpy(dtype=float) + 2  # +1 header, +1 one-based
    lines = _matrix(codes, line_no, n_dev, -1)
    unit = "normalized" if units == "normalized" else "S"
    arrays: dict[str, np.ndarray] = {"device_index": ids}
    lengths = np.bincount(codes, minlength=n_dev)
    for addr in ("row", "col"):
        if addr in frame.columns:
            arrays[addr] = _matrix(codes, frame[addr].to_numpy(float), n_dev, -1)[:, 0].astype(int)
        else:
            arrays[addr] = ids if addr == "col" else np.zeros(n_dev, dtype=np.int64)
    g = frame["conductance"].to_numpy(float)
    unit_map = {"conductance": unit}
    if campaign == "pulse_response":
        pulses = frame["pulse"].to_numpy(float)
        fractional = pulses != np.round(pulses)
        if round_pulses and fractional.any():
            rounded = {
                "rows": int(fractional.sum()),
                "largest_change": float(np.max(np.abs(pulses - np.round(pulses)))),
            }
            pulses = np.round(pulses)
        elif fractional.any():
            raise CalibError(
                f"{path}: line {_line(frame, int(np.argmax(fractional)))}: pulse must be an "
                "integer count (calib import csv --round-pulses rounds digitized counts)"
            )
        arrays["conductance"] = _matrix(codes, g, n_dev, np.nan)
        # float until checked: 1e20 pulses would wrap around in int64
        arrays["pulses"] = _matrix(codes, pulses, n_dev, 0)
        if "time" in frame.columns:
            t = _matrix(codes, frame["time"].to_numpy(float), n_dev, np.nan)
            arrays["time"] = _shared_or_matrix(t, lengths)
            unit_map["time"] = "s"
    elif campaign in ("drift", "read_noise"):
        t = frame["time"].to_numpy(float)
        if np.any(t < 0):
            pos = int(np.argmax(t < 0))
            raise CalibError(f"{path}: line {_line(frame, pos)}: negative time {t[pos]:g} s")
        arrays["conductance"] = _matrix(codes, g, n_dev, np.nan)
        arrays["time"] = _shared_or_matrix(_matrix(codes, t, n_dev, np.nan), lengths)
        unit_map["time"] = "s"
        if "target" in frame.columns:
            targets = _matrix(codes, frame["target"].to_numpy(float), n_dev, np.nan)
            changed = (targets != targets[:, :1]) & (lines >= 0)
            if changed.any():
                i, j = np.argwhere(changed)[0]
                raise CalibError(
                    f"{path}: line {int(lines[i, j])}: target {targets[i, j]:g} differs from "
                    f"the device's first target {targets[i, 0]:g} (line {int(lines[i, 0])}); "
                    "a device is programmed once per campaign"
                )
            arrays["target"] = targets[:, 0]
            unit_map["target"] = unit
        elif campaign == "drift":
            raise CalibError(f"{path}: a drift CSV needs a target column (programmed level, S)")
    else:  # programming
        if np.any(lengths > 1):
            dup = ids[np.argmax(lengths > 1)]
            raise CalibError(f"{path}: device {dup} has {lengths.max()} rows; programming has one")
        lines = line_no[np.argsort(codes)]
        arrays["conductance"] = g[np.argsort(codes)]
        arrays["target"] = frame["target"].to_numpy(float)[np.argsort(codes)]
        unit_map["target"] = unit
        if "iterations" in frame.columns:
            arrays["iterations"] = frame["iterations"].to_numpy(float)[np.argsort(codes)]
    check_campaign_values(campaign, arrays, unit_map, str(path), lines)
    if campaign == "pulse_response":
        arrays["pulses"] = _shared_or_matrix(arrays["pulses"], lengths).astype(np.int64)
    attrs = {
        "campaign": campaign,
        "status": "complete",
        "source_csv": str(path),
        "rows_imported": len(frame),
        "ignored_columns": [
            c
            for c in frame.columns
            if c not in (*CSV_COLUMNS[campaign][0], *CSV_COLUMNS[campaign][1])
        ],
    }
    if labels is not None:
        attrs["device_labels"] = labels
    if dropped:
        attrs["dropped_rows"] = dict(dropped)
    if campaign == "pulse_response" and round_pulses and fractional.any():
        attrs["pulses_rounded"] = rounded
    return CampaignData(campaign, arrays, attrs, unit_map, str(path))


def pulse_response_from_two_files(
    up_path: str | Path,
    down_path: str | Path,
    units: str = "S",
    reverse_down: bool = False,
    drop_invalid: bool = False,
    round_pulses: bool = False,
) -> CampaignData:
    """One pulse-response campaign from potentiation and depression in separate CSV files.

    Each file is a pulse-response CSV (``device,pulse,conductance``), checked on its own
    with its line numbers; ``up_path`` may hold only up (>= 0) and ``down_path`` only down
    (<= 0) pulse counts. A device in both files gets its up reads, then its down reads (one
    cycle); ``reverse_down`` reverses the order of each device's down reads (a depression
    curve tabulated from low to high conductance, or along a reversed pulse axis). Devices
    in one file only stay single-direction traces (fitted direction-wise); they are listed
    in ``attrs["unpaired_devices"]``.
    """
    parts = {}
    for name, path, sign in (("up", up_path, 1), ("down", down_path, -1)):
        data = campaign_from_csv(path, "pulse_response", units, drop_invalid, round_pulses)
        pulses = np.broadcast_to(data["pulses"], data["conductance"].shape)
        if np.any(pulses * sign < 0):
            raise CalibError(
                f"{path}: has {'down' if sign > 0 else 'up'} pulses; the {name} file of a "
                "potentiation/depression pair holds only "
                f"{'up (pulse >= 0)' if sign > 0 else 'down (pulse <= 0)'} pulse counts"
            )
        labels = data.attrs.get("device_labels") or [str(i) for i in data.device_index]
        parts[name] = (data, pulses, labels)
    (up, _, up_l), (dn, _, dn_l) = parts["up"], parts["down"]
    order = list(dict.fromkeys([*up_l, *dn_l]))
    traces, seqs = [], []
    for label in order:
        g_parts, p_parts = [], []
        for (data, pulses, labels), is_down in ((parts["up"], False), (parts["down"], True)):
            if label not in labels:
                continue
            i = labels.index(label)
            ok = np.isfinite(data["conductance"][i])
            g, p = data["conductance"][i][ok], pulses[i][ok]
            if is_down and reverse_down:
                g = g[::-1]
            g_parts.append(g)
            p_parts.append(p)
        traces.append(np.concatenate(g_parts))
        seqs.append(np.concatenate(p_parts))
    n_max = max(t.size for t in traces)
    conductance = np.full((len(order), n_max), np.nan)
    pulses = np.zeros((len(order), n_max), dtype=np.int64)
    for i, (g, p) in enumerate(zip(traces, seqs, strict=True)):
        conductance[i, : g.size], pulses[i, : p.size] = g, p
    lengths = np.array([t.size for t in traces])
    ints = pd.to_numeric(pd.Series(order), errors="coerce")
    numeric = bool(ints.notna().all() and np.all(ints == np.round(ints)))
    ids = ints.to_numpy(dtype=np.int64) if numeric else np.arange(len(order), dtype=np.int64)
    arrays = {
        "device_index": ids,
        "row": np.zeros(len(order), dtype=np.int64),
        "col": ids,
        "conductance": conductance,
        "pulses": _shared_or_matrix(pulses, lengths),
    }
    unpaired = [x for x in order if (x in up_l) != (x in dn_l)]
    attrs: dict = {
        "campaign": "pulse_response",
        "status": "complete",
        "source_csv": f"{up_path} + {down_path}",
        "rows_imported": int(up.attrs["rows_imported"] + dn.attrs["rows_imported"]),
        "combined_from": {"up": str(up_path), "down": str(down_path)},
        "reverse_down": bool(reverse_down),
        "unpaired_devices": unpaired,
    }
    if not numeric:
        attrs["device_labels"] = [str(x) for x in order]
    for key in ("dropped_rows", "pulses_rounded"):
        for name, (data, _, _) in parts.items():
            if data.attrs.get(key):
                attrs[f"{key}_{name}"] = data.attrs[key]
    unit_map = dict(up.units)
    return CampaignData("pulse_response", arrays, attrs, unit_map, str(up_path))


def read_campaign_any(path: str | Path, campaign: str, units: str = "S") -> CampaignData:
    """An HDF5 dataset (``.h5``/``.hdf5``) or a CSV file (``.csv``) in the campaign contract."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return read_campaign(path, campaign)
    if suffix == ".csv":
        return campaign_from_csv(path, campaign, units)
    raise CalibError(f"{path}: unknown file type {suffix!r}; expected .h5, .hdf5 or .csv")


def read_pulse_response_csv(path: str | Path, units: str = "S") -> CampaignData:
    """A pulse-response CSV (``device,pulse,conductance[,time,row,col]``)."""
    return campaign_from_csv(path, "pulse_response", units)


def read_pulse_response_any(path: str | Path, units: str = "S") -> CampaignData:
    """A pulse-response campaign from an HDF5 dataset or a CSV file."""
    return read_campaign_any(path, "pulse_response", units)
