"""Every exported device's keyword arguments are fields of its aihwkit class, by aihwkit's
own dataclasses (``tests/fixtures/aihwkit/class_fields.json``, written by
``benchmarks/aihwkit_conformance.py class-fields`` from aihwkit 1.2.0), not by our tables.

Found by the sweep of random aihwkit cases (2026-12-07): a pow-step fit with a per-device
reference offset exported ``PowStepReferenceDevice(write_noise_std=0.0, ...)``, which
aihwkit refuses (``unexpected keyword argument 'write_noise_std'``): that class has no write
noise, and a zero one was kept as a field.
"""

from __future__ import annotations

import json

import pytest
from aihwkit_checks import FIXTURES

from calib.presets import make_preset, provenance
from calib.presets.export import AIHWKIT_CLASSES, AIHWKIT_FIELDS, aihwkit_device
from tests.calib.presets.test_export_aihwkit import BASE, EXTRA

AIHWKIT = json.loads((FIXTURES / "class_fields.json").read_text())["classes"]


def test_our_field_tables_are_aihwkits() -> None:
    for cls, fields in AIHWKIT_FIELDS.items():
        assert set(fields) <= set(AIHWKIT[cls]), cls


@pytest.mark.parametrize("model", list(AIHWKIT_CLASSES))
@pytest.mark.parametrize("write_noise", [0.0, 0.1])
@pytest.mark.parametrize("reference_std", [0.0, 1e-5])
def test_exported_keywords_are_fields_of_the_aihwkit_class(
    model: str, write_noise: float, reference_std: float
) -> None:
    out = aihwkit_device(
        make_preset(
            {
                "model": model,
                "parameters": {
                    **BASE,
                    **EXTRA[model],
                    "write_noise_std": write_noise,
                    "reference_std": reference_std,
                },
                "g_offset_s": 6e-5,
            },
            provenance(None),
        )
    )
    cls = out["device"]["class"]
    assert set(out["device"]["parameters"]) <= set(AIHWKIT[cls]), cls
