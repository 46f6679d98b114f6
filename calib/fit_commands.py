"""File-level fitting: dataset in, preset out (used by the CLI and the demo)."""

from __future__ import annotations

from pathlib import Path

from calib.errors import CalibError
from calib.io.hdf5 import read_pulse_response
from calib.presets import make_preset, provenance, save_preset
from fitting import FitInputError, PulseResponseFit, PulseTraces, fit_pulse_response

__all__ = ["fit_pulse_response_file"]


def fit_pulse_response_file(
    input_path: str | Path, output: str | Path, model: str = "soft-bounds"
) -> tuple[Path, PulseResponseFit]:
    """Fit the ``pulse_response`` campaign of ``input_path`` and write a preset."""
    input_path = Path(input_path)
    if input_path.suffix.lower() not in (".h5", ".hdf5"):
        raise CalibError(f"{input_path}: expected an HDF5 dataset (.h5); CSV import comes later")
    data = read_pulse_response(input_path)
    status = data.attrs.get("status")
    if status != "complete":
        raise CalibError(
            f"{input_path}: campaign status is {status!r}, not 'complete'; resume it first"
        )
    try:
        traces = PulseTraces(data.conductance_s, data.pulses, data.device_index, str(input_path))
        fit = fit_pulse_response(traces, model=model)
    except FitInputError as exc:
        raise CalibError(str(exc)) from None
    prov = provenance(
        input_path,
        campaign="pulse_response",
        instrument_idn=data.attrs.get("idn"),
        excluded_devices=fit.excluded,
        n_devices=fit.n_devices,
        diagnostics=fit.diagnostics,
    )
    preset = make_preset(fit.device_section(), prov, per_device=fit.per_device)
    return save_preset(preset, output), fit
