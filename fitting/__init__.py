"""Fit measured traces into device and noise models (numpy, scipy, lmfit; may use simulator)."""

from fitting.pulse_response import PulseResponseFit, fit_pulse_response
from fitting.traces import FitInputError, PulseTraces

__all__ = ["FitInputError", "PulseResponseFit", "PulseTraces", "fit_pulse_response"]
