"""File-level fitting: dataset in, preset out (used by the CLI and the demo)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from calib.errors import CalibError
from calib.io import read_pulse_response_any
from calib.io.hdf5 import check_complete
from calib.presets import make_preset, provenance, save_preset
from fitting import FitInputError, PulseResponseFit, PulseTraces, fit_pulse_response

__all__ = ["fit_pulse_response_file", "load_pulse_traces"]

SCREEN_PIECE_CHUNKS = 8  # screening tasks of 8 chunks of devices each (first pass)
#: a file of more devices gets its report figures from this many fitted devices (an evenly
#: spaced sample, read from the file), not from every trace
REPORT_DEVICES = 8192


def load_pulse_traces(input_path: str | Path, units: str = "S") -> tuple[PulseTraces, dict]:
    """Pulse-response traces of an HDF5 dataset or a CSV file, and the file's attributes.

    ``units`` applies to CSV input (``S``, ``mS``, ``uS``, ``nS`` or ``normalized``);
    HDF5 files carry their own unit.
    """
    input_path = Path(input_path)
    data = read_pulse_response_any(input_path, units=units)
    check_complete(data.attrs, input_path, data.campaign)
    unit = data.units.get("conductance", "S")
    try:
        traces = PulseTraces(
            data.conductance_s, data.pulses, data.device_index, str(input_path), units=unit
        )
    except FitInputError as exc:
        raise CalibError(str(exc)) from None
    return traces, dict(data.attrs)


def fit_pulse_response_file(
    input_path: str | Path,
    output: str | Path,
    model: str = "soft-bounds",
    *,
    units: str = "S",
    report_dir: str | Path | None = None,
    read_noise_s: float | None = None,
    seed: int = 0,
    client: Any | None = None,
    chunk_devices: int = 2048,
    progress_label: str | None = None,
    show_stages: bool = False,
) -> tuple[Path, PulseResponseFit]:
    """Fit the pulse-response campaign of ``input_path`` and write a preset.

    ``model`` is a family name or ``auto``; ``report_dir`` (optional) receives PNG plots and
    ``summary.md``/``summary.json``. An HDF5 dataset is read a chunk of devices at a time
    (:class:`calib.io.pulse_source.HDF5PulseSource`): the fit holds per-device results, never
    the conductance matrix, so its memory does not grow with the reads (the report's figures
    read at most :data:`REPORT_DEVICES` fitted devices of it, the sample stated in the
    report). With a Dask ``client`` (:mod:`calib.runtime.distributed`) the
    per-device stages run on its workers in chunks of ``chunk_devices`` devices, each
    worker reading its rows from the HDF5 file; the result is the same as in-process, and
    the same as a fit of the traces in memory (CSV input).
    ``show_stages`` shows the in-process fit's stages on stderr (:mod:`calib.runtime.fit_progress`).
    """
    input_path = Path(input_path)
    if client is not None or input_path.suffix.lower() in (".h5", ".hdf5"):
        fit, attrs, ranges = _fit_distributed(
            input_path,
            model,
            read_noise_s,
            seed,
            client,
            chunk_devices,
            progress_label,
            show_stages,
        )
        traces = None
        _note_window_coverage_of_ranges(fit, ranges, attrs)
    else:
        traces, attrs = load_pulse_traces(input_path, units)
        try:
            if show_stages:
                fit = _fit_with_stages(traces, model, read_noise_s, seed, chunk_devices)
            else:
                fit = fit_pulse_response(
                    traces,
                    model=model,
                    read_noise_s=read_noise_s,
                    seed=seed,
                    chunk_devices=chunk_devices,
                )
        except FitInputError as exc:
            raise CalibError(str(exc)) from None
        _note_window_coverage(fit, traces, attrs)
    prov = provenance(
        input_path,
        campaign="pulse_response",
        instrument_idn=attrs.get("idn"),
        excluded_devices=fit.excluded,
        n_devices=fit.n_devices,
        diagnostics=fit.diagnostics,
        fit_options={"model": model, "units": units, "read_noise_s": read_noise_s, "seed": seed},
    )
    preset = make_preset(fit.device_section(), prov, per_device=fit.per_device)
    path = save_preset(preset, output)
    if report_dir is not None:
        from calib.reports.pulse_response import write_pulse_response_report
        from fitting.diagnostics import report_material

        sample = None
        shown = fit
        if traces is None:  # the figures need traces: the file's, or a sample of it
            traces, shown, sample = _report_traces(input_path, fit)
        fit.figures = report_material(traces, shown, seed=seed)  # the report only renders
        write_pulse_response_report(report_dir, fit, preset, figures_sample=sample)
    return path, fit


def _report_traces(
    path: Path, fit: PulseResponseFit
) -> tuple[PulseTraces, PulseResponseFit, str | None]:
    """Traces for the report's figures of an HDF5 file, the fit they belong to, and what
    they are a sample of (None: every device).

    A file of at most :data:`REPORT_DEVICES` devices is read whole (the figures of every
    fitted device); a larger one only at an evenly spaced sample of that many fitted
    devices (file order), with a fit restricted to them, so that memory stays bounded.
    """
    import dataclasses

    from calib.io.pulse_source import HDF5PulseSource

    source = HDF5PulseSource(path)
    if source.n_devices <= REPORT_DEVICES:
        return source.read(slice(0, source.n_devices)), fit, None
    ids = np.asarray(fit.per_device["device_id"])
    pick = np.unique(np.linspace(0, ids.size - 1, min(ids.size, REPORT_DEVICES)).astype(int))
    order = np.argsort(source.device_ids)
    rows = np.sort(order[np.searchsorted(source.device_ids[order], ids[pick])])
    per_device = {k: np.asarray(v)[pick] for k, v in fit.per_device.items()}
    sample = (
        f"{pick.size} of {ids.size} fitted devices, evenly spaced in file order (the file "
        f"has more than {REPORT_DEVICES} devices: only these were read for the figures)"
    )
    return source.read(rows), dataclasses.replace(fit, per_device=per_device), sample


def _fit_with_stages(
    traces: PulseTraces, model: str, read_noise_s: float | None, seed: int, chunk_devices: int
) -> PulseResponseFit:
    """:func:`fit_pulse_response`, its stages shown on stderr (same result).

    The per-device fits run in ~20 chunks (at least 64 devices each) so that their bar
    moves; devices are fitted independently, so the chunking does not change the result.
    """
    from calib.runtime.fit_progress import FitStages
    from fitting.chunked import TracesSource
    from fitting.pulse_response import fit_pulse_response_source

    chunk = _progress_chunk(traces.conductance_s.shape[0], chunk_devices)
    with FitStages(model=model) as stages:
        return fit_pulse_response_source(
            TracesSource(traces),
            model,
            read_noise_s=read_noise_s,
            seed=seed,
            chunk_devices=chunk,
            map_tasks=stages,
        )


def _progress_chunk(n_devices: int, chunk_devices: int) -> int:
    """Devices per per-device task when the stages are shown: ~20 tasks of at least 64."""
    return min(chunk_devices, max(64, -(-n_devices // 20)))


def _note_window_coverage(fit: PulseResponseFit, traces: PulseTraces, attrs: dict) -> None:
    """Add a note to ``fit`` when the traces do not cover the fitted device window."""
    from calib.fit.coverage import coverage_note, window_coverage

    coverage = window_coverage(traces.conductance_s, traces.device_ids, fit)
    note = coverage_note(
        coverage, _pulses_per_direction(attrs), _default_pulses_per_direction(attrs)
    )
    if note:
        fit.notes.append(note)


def _pulses_per_direction(attrs: dict) -> int | None:
    """``n_up`` of the campaign parameters in file attributes (a dict, or its JSON text)."""
    params = attrs.get("parameters")
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            return None
    return params.get("n_up") if isinstance(params, dict) else None


def _default_pulses_per_direction(attrs: dict) -> int | None:
    """The default ``n_up`` of the technology in the file's instrument snapshot, if known."""
    from calib.campaigns.technology import PULSE_RESPONSE_DEFAULTS

    instrument = attrs.get("instrument")
    if isinstance(instrument, str):
        try:
            instrument = json.loads(instrument)
        except ValueError:
            return None
    conf = instrument.get("configuration") if isinstance(instrument, dict) else None
    tech = conf.get("technology") if isinstance(conf, dict) else None
    defaults = PULSE_RESPONSE_DEFAULTS.get(str(tech).lower()) if tech else None
    return defaults.n_up if defaults else None


class ReadRanges:
    """A ``map_tasks`` (:data:`fitting.chunked.MapTasks`) that keeps each device's read range
    from the screening pass, for the window coverage without another pass over the file.

    The screening tasks (:func:`fitting.chunked.screen_piece`) return the smallest and largest
    finite read of each device (:data:`fitting.chunked.READ_RANGE`) with their statistics;
    they are taken out of the results here (the screening does not use them) and kept as
    one (n_devices, 2) array in file order, :attr:`ranges` (siemens; NaN without a read).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._pieces: list[np.ndarray] = []

    def __call__(self, func: Any, tasks: Any) -> list:
        from fitting.chunked import READ_RANGE, screen_piece

        results = self.inner(func, tasks)
        if func is screen_piece:
            for stats in results:  # pieces in file order, covering every device once
                lo, hi = (stats.pop(k) for k in READ_RANGE)
                self._pieces.append(np.stack([lo, hi], axis=1))
        return results

    @property
    def ranges(self) -> np.ndarray:
        return np.concatenate(self._pieces) if self._pieces else np.zeros((0, 2))


def _note_window_coverage_of_ranges(
    fit: PulseResponseFit, ranges: tuple[np.ndarray, np.ndarray], attrs: dict
) -> None:
    """:func:`_note_window_coverage` from each device's read range ``(ranges, device_ids)``
    (``ranges`` (n, 2): smallest and largest read, as :class:`ReadRanges` keeps them)."""
    from calib.fit.coverage import coverage_note, window_coverage

    spans, ids = ranges
    if not len(ids):
        return
    # the span of a device's two extremes is the span of its reads (coverage takes max - min)
    coverage = window_coverage(spans, ids, fit)
    note = coverage_note(
        coverage, _pulses_per_direction(attrs), _default_pulses_per_direction(attrs)
    )
    if note:
        fit.notes.append(note)


def _fit_distributed(
    input_path: Path,
    model: str,
    read_noise_s: float | None,
    seed: int,
    client: Any,
    chunk_devices: int,
    progress_label: str | None,
    show_stages: bool = False,
) -> tuple[PulseResponseFit, dict, tuple[np.ndarray, np.ndarray]]:
    """The fit of an HDF5 dataset read in chunks, its per-device stages on the workers of
    ``client`` (None: in this process, stages shown on stderr with ``show_stages``), the
    file's attributes and each device's read range with the device ids (:class:`ReadRanges`,
    taken during the screening pass)."""
    from calib.io.pulse_source import HDF5PulseSource
    from calib.runtime.distributed import task_mapper
    from fitting.pulse_response import fit_pulse_response_source

    if input_path.suffix.lower() == ".csv":
        raise CalibError(
            f"{input_path}: distributed fits read HDF5 datasets; convert the CSV first "
            "(calib import csv ... -o FILE.h5)"
        )
    source = HDF5PulseSource(input_path)
    stages = contextlib.nullcontext()
    if client is None and show_stages:
        from calib.runtime.fit_progress import FitStages

        stages = FitStages(model=model)
        chunk_devices = _progress_chunk(source.n_devices, chunk_devices)
    try:
        with stages as shown:
            kept = ReadRanges(shown or task_mapper(client, progress_label))
            fit = fit_pulse_response_source(
                source,
                model,
                read_noise_s=read_noise_s,
                seed=seed,
                chunk_devices=chunk_devices,
                map_tasks=kept,
                screen_pieces_of=SCREEN_PIECE_CHUNKS,
            )
    except FitInputError as exc:
        raise CalibError(str(exc)) from None
    return fit, source.attrs, (kept.ranges, source.device_ids)
