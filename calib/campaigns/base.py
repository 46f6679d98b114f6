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

from calib.campaigns.parameters import CampaignParams
from calib.errors import CalibError
from calib.io.hdf5 import CampaignWriter, RowSpec
from instruments.chip import ChipInterface, ListSelection

__all__ = [
    "CampaignParams",
    "ChunkPlan",
    "PartialSaver",
    "ProgressCallback",
    "chip_record",
    "run_campaign",
    "select_devices",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, int], None]
#: ``save_partial(rows, reads_done, reads_total, attrs)``: a chunk measured in segments
#: (drift) stores its rows so far after each segment (:meth:`CampaignWriter.write_partial`).
PartialSaver = Callable[[dict[str, np.ndarray], int, int, dict[str, Any]], None]


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


#: Devices in the first chunk, whose instrument time sizes the following chunks.
PROBE_DEVICES = 64
#: Campaigns of at most this many devices keep chunks of ``chunk_devices`` (one chunk by
#: default), so that campaigns of different kinds with the same seed cut the same chunks
#: and an emulator replays the same noise in them.
PROBE_MIN_DEVICES = 1024
#: A campaign whose every chunk waits this long (drift to 1e5 s) is not probed: a probe
#: chunk would add one more such wait. Its chunks are ``chunk_devices`` devices.
LONG_WAIT_S = 3600.0


@dataclass(frozen=True)
class ChunkPlan:
    """Chunk sizes: ``first`` devices, then ``steady`` devices per chunk (``None``: not
    known yet, it is set from the instrument time of the first chunk)."""

    first: int
    steady: int | None

    @classmethod
    def start(cls, params: CampaignParams, fixed_wait_s: float) -> ChunkPlan:
        probe = min(params.chunk_devices, PROBE_DEVICES)
        small = params.n_devices <= PROBE_MIN_DEVICES
        if small or probe == params.chunk_devices or fixed_wait_s >= LONG_WAIT_S:
            return cls(params.chunk_devices, params.chunk_devices)
        return cls(probe, None)

    def size(self, number: int) -> int:
        if number == 0:
            return self.first
        if self.steady is None:
            raise CalibError("chunk plan has no steady size yet")  # a bug, not user input
        return self.steady

    def sized_by(self, seconds: float, params: CampaignParams, fixed_wait_s: float) -> ChunkPlan:
        """The plan once the first chunk took ``seconds`` of instrument time.

        Time per device is what the first chunk took beyond the campaign's fixed wait,
        divided by its devices; a chunk then takes about ``chunk_seconds``, or ten times the
        fixed wait when that is longer (so the waits cost at most ~10 % more time).
        """
        per_device = max(seconds - fixed_wait_s, 0.0) / self.first
        if per_device <= 0:
            return ChunkPlan(self.first, params.chunk_devices)
        budget = max(params.chunk_seconds, 9.0 * fixed_wait_s)
        steady = int(np.clip(np.floor(budget / per_device), 1, params.chunk_devices))
        return ChunkPlan(self.first, steady)

    def record(self) -> dict[str, Any]:
        return {"first_devices": self.first, "steady_devices": self.steady}

    @classmethod
    def recorded(cls, value: Any) -> ChunkPlan | None:
        if isinstance(value, dict) and "first_devices" in value:
            return cls(int(value["first_devices"]), value.get("steady_devices"))
        return None


def chip_record(chip: ChipInterface) -> dict[str, Any]:
    """Identity, technology and shape of ``chip`` as compared on ``--resume``."""
    snapshot = chip.snapshot()
    config = snapshot.get("configuration") or {}
    technology = config.get("technology") if isinstance(config, dict) else None
    return {
        "idn": chip.identity(),
        "technology": str(technology or snapshot.get("kind") or "unknown").lower(),
        "shape": [int(v) for v in chip.shape],
    }


def _same_chip(idn_a: str, idn_b: str) -> bool:
    """Same maker, model and serial (``*IDN?`` fields 1-3; a firmware update is the same
    chip); identities that are not four fields must match exactly."""
    a, b = str(idn_a).split(","), str(idn_b).split(",")
    if len(a) >= 4 and len(b) >= 4 and " | " not in idn_a + idn_b:
        return [x.strip() for x in a[:3]] == [x.strip() for x in b[:3]]
    return str(idn_a).strip() == str(idn_b).strip()


def _check_same_chip(output: Path, stored: dict[str, Any], now: dict[str, Any]) -> str | None:
    """``None`` if ``now`` is the chip the file was measured on, else why it is not."""
    instrument = stored.get("instrument") or {}
    config = instrument.get("configuration") or {} if isinstance(instrument, dict) else {}
    then = {
        "idn": stored.get("idn", instrument.get("idn") if isinstance(instrument, dict) else None),
        "technology": str(
            (config.get("technology") if isinstance(config, dict) else None)
            or (instrument.get("kind") if isinstance(instrument, dict) else None)
            or "unknown"
        ).lower(),
        "shape": instrument.get("shape") if isinstance(instrument, dict) else None,
    }
    problems = []
    if then["idn"] is None or not _same_chip(then["idn"], now["idn"]):
        problems.append("identity")
    if then["technology"] != now["technology"]:
        problems.append("technology")
    if then["shape"] is not None and list(then["shape"]) != now["shape"]:
        problems.append("shape")
    if not problems:
        return None
    return (
        f"{output}: measured on {then['idn']} ({then['technology']}), but the instrument is "
        f"{now['idn']} ({now['technology']}): {' and '.join(problems)} differ; resume on the "
        "same chip, or pass --resume-on-other-chip to continue anyway (recorded in the file)"
    )


def run_campaign(
    chip: ChipInterface,
    campaign: str,
    params: CampaignParams,
    output: str | Path,
    rows: dict[str, RowSpec],
    measure_chunk: Callable[..., dict[str, np.ndarray]],
    columns: dict[str, np.ndarray] | None = None,
    column_units: dict[str, str] | None = None,
    extra_attrs: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    overwrite: bool = False,
    fixed_wait_s: float = 0.0,
    resume_on_other_chip: bool = False,
    segmented: bool = False,
) -> Path:
    """Measure ``params.n_devices`` devices chunk by chunk into group ``campaign``.

    ``measure_chunk(selection, device_indices, first)`` returns the row arrays of one chunk;
    ``first`` is the chunk's position in the campaign's device selection. ``fixed_wait_s`` is
    the instrument time every chunk waits whatever its size (drift: the last read time);
    chunks are sized from the first chunk's instrument time (:class:`ChunkPlan`), and the
    plan is recorded so that ``resume`` cuts the same chunks. ``resume`` refuses another
    chip (identity, technology, shape) unless ``resume_on_other_chip``. With ``segmented``,
    ``measure_chunk`` gets a fourth argument, a :data:`PartialSaver` that keeps a chunk's
    reads so far in the file's ``partial`` group and advances the progress by fractions of
    the chunk; ``resume`` sets an interrupted chunk's ``partial`` aside and measures the
    chunk again.
    """
    output = Path(output)
    devices = select_devices(chip.shape, params)
    identity = chip.identity()
    log.info("%s campaign on %s: %d devices", campaign, identity, devices.size)
    created = False
    if resume:
        now = chip_record(chip)
        stored_attrs: dict[str, Any] = {}

        def check(attrs: dict[str, Any]) -> None:
            """Same chip and parameters, else refuse before the file is touched."""
            stored_attrs.update(attrs)
            other = _check_same_chip(output, attrs, now)
            if other is not None and not resume_on_other_chip:
                raise CalibError(other)
            stored = attrs.get("parameters")
            if isinstance(stored, dict) and "chunk_seconds" not in stored:
                # a file from before time-sized chunks: it was cut by chunk_devices alone
                stored = {**stored, "chunk_seconds": CampaignParams.chunk_seconds}
            if stored != _jsonable(asdict(params)):
                raise CalibError(
                    f"{output}: cannot resume with different parameters (file has {stored})"
                )

        writer = CampaignWriter.resume(output, campaign, check)
        if writer.moved_partial is not None:
            log.warning(
                "%s: the reads of the interrupted chunk are kept in %s; that chunk is measured "
                "again from programming (a drift clock cannot be resumed)",
                output,
                writer.moved_partial,
            )
        other = _check_same_chip(output, stored_attrs, now)
        if other is not None:
            log.warning("%s", other)
            history = list(stored_attrs.get("resumed_on_other_chip") or [])
            history.append({**now, "rows_complete_before": writer.rows_complete})
            writer.set_attrs(resumed_on_other_chip=history)
        start = writer.rows_complete
        plan = ChunkPlan.recorded(stored_attrs.get("chunk_plan"))
        if plan is None:  # no chunk yet, or a file from before recorded plans (fixed chunks)
            flat = ChunkPlan(params.chunk_devices, params.chunk_devices)
            plan = flat if start else ChunkPlan.start(params, fixed_wait_s)
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
        created = True
        start = 0
        plan = ChunkPlan.start(params, fixed_wait_s)
    seed_noise = chip.seed_noise if chip.supports("seed_noise") else None
    try:
        if progress:
            progress(start, devices.size)
        number, first = 0, 0
        while first < start:  # the chunks already in the file
            first += plan.size(number)
            number += 1
        if first != start:
            raise CalibError(
                f"{output}: {start} rows written do not end a chunk of the recorded plan "
                f"{plan.record()}; the file was not written by this campaign"
            )
        while first < devices.size:
            chunk = devices[first : first + plan.size(number)]
            if seed_noise is not None:
                seed_noise(_chunk_seed(params.seed, number))
            t0 = chip.clock.now()
            if segmented:
                saver = _partial_saver(
                    writer, chip.shape, chunk, first, number, devices.size, progress
                )
                result = measure_chunk(ListSelection.of(chunk), chunk, first, saver)
            else:
                result = measure_chunk(ListSelection.of(chunk), chunk, first)
            if plan.steady is None:
                plan = plan.sized_by(chip.clock.now() - t0, params, fixed_wait_s)
            writer.append(chunk, chip.shape, attrs={"chunk_plan": plan.record()}, **result)
            first += chunk.size
            number += 1
            if progress:
                progress(first, devices.size)
    except BaseException:
        try:
            empty = created and writer.rows_complete == 0 and not writer.has_partial
        except CalibError:
            empty = False
        if empty:
            writer.discard()  # nothing measured: leave no file that blocks the next command
        else:
            writer.finish("interrupted")
        raise
    writer.finish("complete")
    return output


def _partial_saver(
    writer: CampaignWriter,
    shape: tuple[int, int],
    chunk: np.ndarray,
    first: int,
    number: int,
    n_devices: int,
    progress: ProgressCallback | None,
) -> PartialSaver:
    def save(rows: dict[str, np.ndarray], done: int, total: int, attrs: dict[str, Any]) -> None:
        record = {**attrs, "first_row": first, "chunk_number": number}
        writer.write_partial(chunk, shape, record, **rows)
        if progress:
            progress(first + chunk.size * done / total, n_devices)

    return save


def _jsonable(value: Any) -> Any:
    """Parameters as stored in the file (tuples become lists) for equality checks."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value):
        return _jsonable(asdict(value))
    return value
