"""What every campaign shares: device selection, chunked measurement, resume, metadata.

A campaign measures its devices in chunks; each chunk is appended to the dataset (and the
file closed) before the next starts, so an interruption loses at most the chunk in
progress. ``resume=True`` reopens the file, checks that the parameters are the same, and
continues after the last complete chunk. When the chip can reseed its noise generator
(the emulator can), every chunk starts from a seed derived from the campaign seed and the
chunk number, so an interrupted-then-resumed run gives the same data as an uninterrupted
one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calib.errors import CalibError
from calib.io.hdf5 import CampaignWriter, RowSpec
from instruments.chip import ChipInterface, ListSelection

__all__ = ["CampaignParams", "ProgressCallback", "run_campaign", "select_devices"]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class CampaignParams:
    """Parameters every campaign has (SI units)."""

    n_devices: int = 256
    selection: str = "random"  # "block": the first devices in row-major order; "random"
    seed: int = 0
    chunk_devices: int = 4096
    read_voltage_v: float = 0.2

    def __post_init__(self) -> None:
        if self.n_devices < 1:
            raise CalibError(f"n_devices must be >= 1, got {self.n_devices}")
        if self.selection not in ("block", "random"):
            raise CalibError(f"selection must be 'block' or 'random', got {self.selection!r}")
        if self.chunk_devices < 1:
            raise CalibError(f"chunk_devices must be >= 1, got {self.chunk_devices}")
        if not 0 < self.read_voltage_v <= 2.0:
            raise CalibError(f"read voltage {self.read_voltage_v} V outside (0, 2] V")


def select_devices(shape: tuple[int, int], params: CampaignParams) -> np.ndarray:
    """Flat indices of the devices to measure (reproducible from the seed)."""
    total = shape[0] * shape[1]
    if params.n_devices > total:
        raise CalibError(f"asked for {params.n_devices} devices; the chip has {total}")
    if params.selection == "block":
        return np.arange(params.n_devices, dtype=np.int64)
    rng = np.random.default_rng([params.seed, 17])
    return np.sort(rng.choice(total, size=params.n_devices, replace=False)).astype(np.int64)


def _chunk_seed(seed: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, 23, chunk]).generate_state(1)[0])


def run_campaign(
    chip: ChipInterface,
    campaign: str,
    params: CampaignParams,
    output: str | Path,
    rows: dict[str, RowSpec],
    measure_chunk: Callable[[ListSelection, np.ndarray, int], dict[str, np.ndarray]],
    columns: dict[str, np.ndarray] | None = None,
    column_units: dict[str, str] | None = None,
    extra_attrs: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Measure ``params.n_devices`` devices chunk by chunk into group ``campaign``.

    ``measure_chunk(selection, device_indices, first)`` returns the row arrays of one chunk;
    ``first`` is the chunk's position in the campaign's device selection.
    """
    devices = select_devices(chip.shape, params)
    identity = chip.identity()
    log.info("%s campaign on %s: %d devices", campaign, identity, devices.size)
    if resume:
        writer = CampaignWriter.resume(output, campaign)
        stored = writer.attrs().get("parameters")
        if stored != _jsonable(asdict(params)):
            raise CalibError(
                f"{output}: cannot resume with different parameters (file has {stored})"
            )
        start = writer.rows_complete
    else:
        attrs = {
            "idn": identity,
            "instrument": chip.snapshot(),
            "parameters": _jsonable(asdict(params)),
            "seed": params.seed,
            "read_voltage_v": params.read_voltage_v,
            "chunk_devices": params.chunk_devices,
            **(extra_attrs or {}),
        }
        writer = CampaignWriter(
            output,
            campaign,
            rows,
            columns or {},
            attrs,
            column_units,
            overwrite=overwrite,
            chunk_rows=min(params.chunk_devices, params.n_devices),
        )
        start = 0
    seed_noise = getattr(chip, "seed_noise", None)
    try:
        if progress:
            progress(start, devices.size)
        for first in range(start, devices.size, params.chunk_devices):
            chunk = devices[first : first + params.chunk_devices]
            if seed_noise is not None:
                seed_noise(_chunk_seed(params.seed, first // params.chunk_devices))
            result = measure_chunk(ListSelection.of(chunk), chunk, first)
            writer.append(chunk, chip.shape, **result)
            if progress:
                progress(first + chunk.size, devices.size)
    except BaseException:
        writer.finish("interrupted")
        raise
    writer.finish("complete")
    return Path(output)


def _jsonable(value: Any) -> Any:
    """Parameters as stored in the file (tuples become lists) for equality checks."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value):
        return _jsonable(asdict(value))
    return value
