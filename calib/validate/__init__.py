"""Validation of calibrated presets by inference: simulated with the fitted preset, with the
true device (emulator truth), and on the chip itself (chip in the loop).

Modules, one job each: :mod:`~calib.validate.datasets` (digits, MNIST-1D),
:mod:`~calib.validate.networks` (MLP/CNN, trained-network files),
:mod:`~calib.validate.training` (train once), :mod:`~calib.validate.simulated` and
:mod:`~calib.validate.chip_inference` (one evaluation each, with
:mod:`~calib.validate.chip_network` and :func:`simulator.periphery.periphery_mvm`),
:mod:`~calib.validate.tasks` (the pure task function), :mod:`~calib.validate.runner`
(orchestration), :mod:`~calib.validate.predictive` (predictive check of the campaign),
:mod:`~calib.validate.report` and :mod:`~calib.validate.plots`.
"""

from calib.validate.datasets import DATASETS, load_dataset
from calib.validate.networks import NETWORKS, NetworkSpec, load_network
from calib.validate.predictive import PredictiveCheck, drift_check, pulse_response_check
from calib.validate.runner import (
    DEFAULT_TIMES_S,
    EMBEDDED,
    ValidationOptions,
    ValidationResult,
    make_tasks,
    run_validation,
)
from calib.validate.tasks import EvalSettings, EvalTask, evaluate_accuracy, evaluate_task
from calib.validate.training import ALGORITHMS, TrainingOptions

__all__ = [
    "ALGORITHMS",
    "DATASETS",
    "DEFAULT_TIMES_S",
    "EMBEDDED",
    "NETWORKS",
    "EvalSettings",
    "EvalTask",
    "NetworkSpec",
    "PredictiveCheck",
    "TrainingOptions",
    "ValidationOptions",
    "ValidationResult",
    "drift_check",
    "evaluate_accuracy",
    "evaluate_task",
    "load_dataset",
    "load_network",
    "make_tasks",
    "pulse_response_check",
    "run_validation",
]
