"""aihwkit export of a ``pcm`` section: constructor arguments, units, notes, Python snippet."""

from __future__ import annotations

import copy
import sys
import types

import numpy as np
import pytest

from calib.errors import CalibError
from calib.presets.export_pcm import aihwkit_noise_model, python_snippet
from fitting.pcm import published_section
from fitting.pcm_model import drift_curves


def test_published_constants_export_to_the_default_pcm_model() -> None:
    model = aihwkit_noise_model(published_section())
    assert model["class"] == "PCMLikeNoiseModel"
    args = model["arguments"]
    assert args["prog_coeff"] == pytest.approx([0.26348, 1.9650, -1.1731])  # µS at 25 µS
    assert model["g_converter"]["arguments"]["g_max"] == pytest.approx(25.0)
    assert args["t_0"] == 20.0 and args["t_read"] == 250e-9
    assert args["read_noise_scale"] == pytest.approx(1.0)
    assert "custom_drift_model" not in args and "prog_coeff_g_max_reference" not in args


def test_fitted_drift_becomes_a_custom_drift_model_in_microsiemens() -> None:
    pcm = copy.deepcopy(published_section())
    pcm["g_max_s"] = 40e-6
    pcm["drift"] = {"form": "table", "x": [0.05, 0.5, 1.0], "mu_nu": [0.1, 0.06, 0.05],
                    "sigma_nu": [0.03, 0.01, 0.008]}  # fmt: skip
    pcm["read_noise"]["a"] *= 2.0
    pcm["read_noise"]["conductance"] = "g_T"
    pcm["valid_range"] = {"g_min_s": 2e-6, "g_max_s": 38e-6, "t_min_s": 20.0, "t_max_s": 1e5}
    model = aihwkit_noise_model(pcm)
    assert model["class"] == "CustomDriftPCMLikeNoiseModel"
    drift = model["arguments"]["custom_drift_model"]
    g = np.asarray(drift["g_lst"])
    # aihwkit needs the table to cover the converter's range [0, g_max] in µS, ascending
    assert g[0] == 0.0 and g[-1] == pytest.approx(40.0) and np.all(np.diff(g) > 0)
    mu, sig = drift_curves(pcm["drift"], g / 40.0)
    assert drift["nu_mean_lst"] == pytest.approx(mu.tolist())
    assert drift["nu_std_lst"] == pytest.approx(sig.tolist())
    # ours: Q = 2a/(g/40 µS)^b; aihwkit's: a/(g/25 µS)^b -> one exact scale 2·1.6^b
    assert model["arguments"]["read_noise_scale"] == pytest.approx(2.0 * 1.6**0.65, rel=1e-9)
    assert model["read_noise_scale_max_rel_error"] < 1e-6
    assert any("g_T" in note for note in model["notes"])


def test_a_different_q_shape_is_approximated_and_the_mismatch_reported() -> None:
    pcm = copy.deepcopy(published_section())
    pcm["read_noise"]["b"] = 0.4
    model = aihwkit_noise_model(pcm)
    assert model["read_noise_scale_max_rel_error"] > 0.05
    assert any("read_noise_scale" in note for note in model["notes"])


def test_incomplete_section_is_a_clear_error() -> None:
    pcm = published_section()
    del pcm["prog_noise"]
    with pytest.raises(CalibError, match="incomplete"):
        aihwkit_noise_model(pcm)


def test_python_snippet_builds_the_model_with_aihwkit_names(monkeypatch) -> None:
    """Run the snippet against stand-in aihwkit modules that record the constructor calls."""
    calls: dict[str, dict] = {}

    def recorder(name: str):
        def init(self, *args, **kwargs):
            assert not args, "arguments are passed by name"
            calls[name] = kwargs

        return type(name, (), {"__init__": init})

    modules = {
        "aihwkit": {},
        "aihwkit.inference": {},
        "aihwkit.inference.noise": {},
        "aihwkit.inference.noise.pcm": {
            "PCMLikeNoiseModel": recorder("PCMLikeNoiseModel"),
            "CustomDriftPCMLikeNoiseModel": recorder("CustomDriftPCMLikeNoiseModel"),
        },
        "aihwkit.inference.converter": {},
        "aihwkit.inference.converter.conductance": {
            "SinglePairConductanceConverter": recorder("SinglePairConductanceConverter")
        },
        "aihwkit.simulator": {},
        "aihwkit.simulator.configs": {"InferenceRPUConfig": recorder("InferenceRPUConfig")},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)
    pcm = copy.deepcopy(published_section())
    pcm["drift"]["mu_nu"]["b"] += 0.01  # not the built-in curve: custom drift model
    namespace: dict = {}
    exec(compile(python_snippet(pcm), "<snippet>", "exec"), namespace)
    kwargs = calls["CustomDriftPCMLikeNoiseModel"]
    assert kwargs["prog_coeff"] == pytest.approx([0.26348, 1.9650, -1.1731])
    assert set(kwargs["custom_drift_model"]) == {"g_lst", "nu_mean_lst", "nu_std_lst"}
    assert calls["SinglePairConductanceConverter"] == {"g_max": 25.0, "g_min": 0.0}
    assert namespace["rpu_config"].noise_model is namespace["noise_model"]
