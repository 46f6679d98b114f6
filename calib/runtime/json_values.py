"""Values as JSON holds them: the one conversion every JSON document the toolkit writes uses.

numpy scalars and arrays become Python numbers and lists, tuples become lists, mapping keys
become strings, and non-finite floats become ``null`` (JSON has no NaN or infinity), so
``json.dumps(..., allow_nan=False)`` never meets a value it cannot write.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["plain_json"]


def plain_json(value: Any) -> Any:
    """``value`` with numpy types, tuples and non-finite floats made JSON-plain (a copy)."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
