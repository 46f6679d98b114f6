"""The one conversion of values into what JSON can hold (calib/runtime/json_values.py)."""

from __future__ import annotations

import json
import math

import numpy as np

from calib.runtime.json_values import plain_json


def test_numpy_tuples_keys_and_non_finite_floats_become_plain_json() -> None:
    value = {
        1: (np.float32(0.5), np.int64(3)),
        "a": np.array([[1.0, np.nan], [np.inf, -2.0]]),
        "b": [float("-inf"), np.bool_(True), None, "text"],
    }
    out = plain_json(value)
    assert out == {"1": [0.5, 3], "a": [[1.0, None], [None, -2.0]], "b": [None, True, None, "text"]}
    json.dumps(out, allow_nan=False)  # writable as strict JSON
    assert math.isnan(value["a"][0, 1])  # the input is not changed
