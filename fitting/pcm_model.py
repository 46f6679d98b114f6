"""The statistical PCM inference-noise model as the fitter uses it (numpy).

The equations live once, in :mod:`simulator.devices.pcm_equations` (REFERENCES.md [R8],
``datasets/PRESET.md`` ``pcm`` section), and work on numpy arrays and torch tensors alike:
the simulator's :class:`~simulator.devices.pcm.PCMNoiseModel` evaluates the same functions.
This module gives the fitter their names and the published constants in the flat layout the
fitting code reads (:data:`PUBLISHED`), derived from the preset-layout constants.

- programming noise σ_prog(x_T) = Σ_k c_k x_T^k (S): :func:`polynomial_sigma`;
- drift exponent ν ~ |N(μ_ν(x_T), σ_ν(x_T))|: :func:`clipped_log`, :func:`interp_log_table`,
  :func:`drift_curves`;
- read noise σ_read(t) = g(t)·Q_s(x)·√ln((t + t_read)/(2 t_read)): :func:`min_power_q`,
  :func:`read_time_factor`;
- a whole preset ``pcm`` section at given targets: :func:`evaluate_section`.
"""

from __future__ import annotations

from typing import Any

from simulator.devices.pcm_equations import (
    PUBLISHED_PCM_SECTION,
    X_MIN,
    clipped_log,
    drift_curves,
    evaluate_section,
    interp_log_table,
    min_power_q,
    polynomial_sigma,
    read_time_factor,
)

__all__ = [
    "PUBLISHED",
    "X_MIN",
    "clipped_log",
    "drift_curves",
    "evaluate_section",
    "interp_log_table",
    "min_power_q",
    "polynomial_sigma",
    "read_time_factor",
]


def _flat(section: dict[str, Any]) -> dict[str, Any]:
    read = {k: section["read_noise"][k] for k in ("a", "b", "c", "x_floor")}
    return {
        "g_max_s": section["g_max_s"],
        "t0_s": section["t0_s"],
        "t_read_s": section["t_read_s"],
        "prog_coefficients_s": tuple(section["prog_noise"]["coefficients_s"]),
        "mu_nu": dict(section["drift"]["mu_nu"]),
        "sigma_nu": dict(section["drift"]["sigma_nu"]),
        "read_q": read,
    }


#: aihwkit's PCMLikeNoiseModel constants (REFERENCES.md [R8]) in SI units, flat layout.
PUBLISHED: dict[str, Any] = _flat(PUBLISHED_PCM_SECTION)
