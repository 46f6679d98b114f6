"""File-level fitting: dataset in, preset out (used by the CLI and the demo)."""

from __future__ import annotations

from pathlib import Path

from calib.errors import CalibError
from calib.io import read_pulse_response_any
from calib.presets import make_preset, provenance, save_preset
from fitting import FitInputError, PulseResponseFit, PulseTraces, fit_pulse_response

__all__ = ["fit_pulse_response_file", "load_pulse_traces"]


def load_pulse_traces(input_path: str | Path, units: str = "S") -> tuple[PulseTraces, dict]:
    """Pulse-response traces of an HDF5 dataset or a CSV file, and the file's attributes.

    ``units`` applies to CSV input (``S``, ``mS``, ``uS``, ``nS`` or ``normalized``);
    HDF5 files carry their own unit.
    """
    input_path = Path(input_path)
    data = read_pulse_response_any(input_path, units=units)
    status = data.attrs.get("status")
    if status != "complete":
        raise CalibError(
            f"{input_path}: campaign status is {status!r}, not 'complete'; resume it first"
        )
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
) -> tuple[Path, PulseResponseFit]:
    """Fit the pulse-response campaign of ``input_path`` and write a preset.

    ``model`` is a family name or ``auto``; ``report_dir`` (optional) receives PNG plots and
    ``summary.md``/``summary.json``.
    """
    input_path = Path(input_path)
    traces, attrs = load_pulse_traces(input_path, units)
    try:
        fit = fit_pulse_response(traces, model=model, read_noise_s=read_noise_s, seed=seed)
    except FitInputError as exc:
        raise CalibError(str(exc)) from None
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

        write_pulse_response_report(report_dir, traces, fit, preset, seed=seed)
    return path, fit
