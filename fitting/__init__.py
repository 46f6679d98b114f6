"""Fit measured traces into device and noise models (numpy, scipy, lmfit; may use simulator)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "FitInputError",
    "PulseFitOptions",
    "PulseResponseFit",
    "PulseTraces",
    "fit_pulse_response",
]


def __getattr__(name: str) -> Any:  # lazy: importing a submodule does not load the pipeline
    if name in ("PulseFitOptions", "PulseResponseFit", "fit_pulse_response"):
        from fitting import pulse_response

        return getattr(pulse_response, name)
    if name in ("FitInputError", "PulseTraces"):
        from fitting import traces

        return getattr(traces, name)
    raise AttributeError(f"module 'fitting' has no attribute {name!r}")
