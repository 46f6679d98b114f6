"""Convert the published measurements in ../shared/data/measured into our dataset format.

Run from the repository root:  .venv/bin/python datasets/measured/convert_measured.py
Writes gong_et_al.h5 and crosssim_ramps.h5 next to this script (licenses alongside).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from calib.io import CampaignData, write_campaign

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1].parent / "shared" / "data" / "measured"


def convert_gong(source: Path, output: Path) -> Path:
    """One device: 1000 up pulses (column 1) then 1000 down pulses (column 2), normalized."""
    values = np.loadtxt(source, delimiter=",")
    if values.shape != (1000, 2):
        raise SystemExit(f"{source}: expected 1000 rows x 2 columns, got {values.shape}")
    conductance = np.concatenate([values[:, 0], values[:, 1]])[None, :]
    pulses = np.concatenate([np.ones(1000, int), -np.ones(1000, int)])
    data = CampaignData(
        "pulse_response",
        {
            "conductance": conductance,
            "pulses": pulses,
            "device_index": np.array([0]),
            "row": np.array([0]),
            "col": np.array([0]),
        },
        {
            "status": "complete",
            "source": "IBM aihwkit examples/csv/gong_et_al.csv (Gong et al., Nat. Commun. "
            "9:2102, 2018)",
            "license": "MIT (LICENSE-aihwkit-MIT.txt)",
            "note": "normalized conductance after each of 1000 up then 1000 down pulses; "
            "no read before the first pulse",
        },
        {"conductance": "normalized"},
        str(source),
    )
    return write_campaign(output, data, overwrite=True)


def _ramps(path: Path) -> tuple[list[str], list[np.ndarray]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    ramps = []
    for j in range(len(header)):
        column = []
        for row in body:
            cell = row[j].strip() if j < len(row) else ""
            if cell == "" or float(cell) == 0.0:
                break  # empty cells and zeros mark the end of a shorter ramp
            column.append(float(cell))
        ramps.append(np.array(column))
    return header, ramps


def convert_crosssim(set_csv: Path, reset_csv: Path, output: Path, v_read: float = 0.1) -> Path:
    """39 SET ramps and 40 RESET ramps, one row each; current/0.1 V -> conductance (S)."""
    set_names, set_ramps = _ramps(set_csv)
    reset_names, reset_ramps = _ramps(reset_csv)
    ramps = set_ramps + reset_ramps
    signs = [1] * len(set_ramps) + [-1] * len(reset_ramps)
    n_max = max(r.size for r in ramps)
    conductance = np.full((len(ramps), n_max), np.nan)
    pulses = np.zeros((len(ramps), n_max), dtype=int)
    for i, (ramp, sign) in enumerate(zip(ramps, signs, strict=True)):
        conductance[i, : ramp.size] = ramp / v_read
        pulses[i, : ramp.size] = sign
    labels = [f"set:{n}" for n in set_names] + [f"reset:{n}" for n in reset_names]
    n = len(ramps)
    data = CampaignData(
        "pulse_response",
        {
            "conductance": conductance,
            "pulses": pulses,
            "device_index": np.arange(n),
            "row": np.zeros(n, dtype=int),
            "col": np.arange(n),
        },
        {
            "status": "complete",
            "source": "Sandia CrossSim v2.0 examples/lookup_table_generation/"
            "lookup_table_example/{set,reset}.csv",
            "license": "BSD-3-Clause (LICENSE-crosssim-BSD3.md)",
            "read_voltage_v": v_read,
            "device_labels": labels,
            "note": "one row per ramp: SET ramps (+1 pulse before each read) then RESET ramps "
            "(-1); shorter ramps are padded with NaN conductance and 0 pulses; conductance = "
            "current / 0.1 V",
        },
        {"conductance": "S"},
        f"{set_csv} + {reset_csv}",
    )
    return write_campaign(output, data, overwrite=True)


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    print(convert_gong(source / "gong_et_al.csv", HERE / "gong_et_al.h5"))
    print(
        convert_crosssim(
            source / "crosssim_set.csv", source / "crosssim_reset.csv", HERE / "crosssim_ramps.h5"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
