"""The PCM equations exist once: the fitter (numpy) and the simulator (torch) give the same numbers.

Both uses are pinned against the published model written out here from REFERENCES.md [R8]
(aihwkit's ``PCMLikeNoiseModel``: Nandakumar et al. 2019, Joshi et al. 2020), independently
of ``simulator/devices/pcm_equations.py``, and against each other on a grid that crosses every
clip (x below 1e-7, below the read-noise floor, above 1).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from fitting import pcm_model
from fitting.pcm import published_section
from simulator.devices import pcm_equations
from simulator.devices.pcm import PUBLISHED_PCM_SECTION, PCMNoiseModel

G_MAX = 25e-6
GRID_S = np.concatenate([[0.0, 1e-13, 1e-9], np.geomspace(1e-8, 60e-6, 200)])
TABLE = {
    "form": "table",
    "x": [0.01, 0.1, 0.5, 1.0],
    "mu_nu": [0.1, 0.06, 0.055, 0.05],
    "sigma_nu": [0.03, 0.02, 0.01, 0.01],
}


def _published(g: np.ndarray) -> dict[str, np.ndarray]:
    """REFERENCES.md [R8] written out (µS polynomial, clipped logs, min-power Q_s)."""
    x = g / G_MAX
    ln_x = np.log(np.maximum(x, 1e-7))
    return {
        "sigma_prog_s": np.maximum((0.26348 + 1.9650 * x - 1.1731 * x**2) * 1e-6, 0.0),
        "mu_nu": np.clip(-0.0155 * ln_x + 0.0244, 0.049, 0.1),
        "sigma_nu": np.clip(-0.0125 * ln_x - 0.0059, 0.008, 0.045),
        "q_s": np.minimum(0.0088 / np.maximum(x, 1e-3) ** 0.65, 0.2),
    }


def _torch_components(section: dict, g: np.ndarray, dtype: torch.dtype) -> dict[str, np.ndarray]:
    model = PCMNoiseModel.from_section(section)
    gt = torch.as_tensor(g, dtype=dtype)
    mu, sig = model.drift_parameters(gt)
    return {
        "sigma_prog_s": model.prog_noise_std(gt).clamp(min=0).double().numpy(),
        "mu_nu": mu.double().numpy(),
        "sigma_nu": sig.double().numpy(),
        "q_s": model.read_noise_q(gt).double().numpy(),
    }


def test_fitter_and_simulator_evaluate_the_published_model_alike() -> None:
    want = _published(GRID_S)
    fitter = pcm_model.evaluate_section(PUBLISHED_PCM_SECTION, GRID_S)
    simulator = _torch_components(PUBLISHED_PCM_SECTION, GRID_S, torch.float64)
    for key, expected in want.items():
        # the same float64 arithmetic up to the order of the polynomial's terms
        np.testing.assert_allclose(fitter[key], expected, rtol=1e-12, atol=1e-20, err_msg=key)
        np.testing.assert_allclose(simulator[key], fitter[key], rtol=1e-12, atol=1e-20)
    # REFERENCES.md [R8] worked values (rounded there to 3-4 digits)
    at = pcm_model.evaluate_section(PUBLISHED_PCM_SECTION, np.array([0.1, 0.5, 1.0]) * G_MAX)
    assert at["sigma_prog_s"][1:] * 1e6 == pytest.approx([0.953, 1.055], abs=6e-4)
    assert (at["mu_nu"][0], at["sigma_nu"][0]) == pytest.approx((0.0601, 0.0229), abs=6e-5)
    model = PCMNoiseModel.from_section(PUBLISHED_PCM_SECTION)
    assert model.read_noise_time_factor(0.0) == pytest.approx(4.18, abs=0.005)
    assert float(pcm_model.read_time_factor(20.0, 250e-9)) == model.read_noise_time_factor(0.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("drift", ["clipped-log", "table", "one-row table"])
def test_table_and_clipped_log_drift_agree_between_numpy_and_torch(drift, dtype) -> None:
    section = copy.deepcopy(PUBLISHED_PCM_SECTION)
    if drift == "table":
        section["drift"] = copy.deepcopy(TABLE)
    elif drift == "one-row table":
        section["drift"] = {"form": "table", "x": [0.3], "mu_nu": [0.07], "sigma_nu": [0.02]}
    fitter = pcm_model.evaluate_section(section, GRID_S)
    simulator = _torch_components(section, GRID_S, dtype)
    # float32: a few ulp of the inputs, and 1e-12 S where σ_prog's terms cancel (x ≈ 2)
    rtol, atol = (1e-12, 1e-20) if dtype == torch.float64 else (2e-6, 1e-12)
    for key in fitter:
        np.testing.assert_allclose(simulator[key], fitter[key], rtol=rtol, atol=atol, err_msg=key)
    if drift == "table":  # linear in ln x between nodes, constant outside (written out here)
        x = np.array([0.001, 0.01, math.sqrt(0.1 * 0.5), 2.0])
        mu, _ = pcm_model.drift_curves(TABLE, x)
        np.testing.assert_allclose(mu, [0.1, 0.1, 0.0575, 0.05], rtol=1e-12)


def test_the_fitter_names_the_one_implementation() -> None:
    for name in ("clipped_log", "interp_log_table", "min_power_q", "polynomial_sigma"):
        assert getattr(pcm_model, name) is getattr(pcm_equations, name)
    for name in ("read_time_factor", "drift_curves", "evaluate_section", "X_MIN"):
        assert getattr(pcm_model, name) is getattr(pcm_equations, name)
    assert published_section() == PUBLISHED_PCM_SECTION
    assert published_section() is not PUBLISHED_PCM_SECTION  # callers may edit their copy
    flat = pcm_model.PUBLISHED
    assert flat["prog_coefficients_s"] == tuple(
        PUBLISHED_PCM_SECTION["prog_noise"]["coefficients_s"]
    )
    assert flat["read_q"]["x_floor"] == PUBLISHED_PCM_SECTION["read_noise"]["x_floor"]


def test_the_pcm_equations_load_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, fitting.pcm_model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
