"""Does a pulse-response campaign cover the device window it is fitted with?

A fit extrapolates the bounds ``w_min``/``w_max`` of devices whose traces never come near
them (ECRAM's ~0.02 µS steps on an 8 µS window need ~400 pulses per direction; 200 reach
half of it). The coverage of a device is the span of its measured conductance over its
fitted window ``w_max - w_min``; the campaign's coverage is the median over the fitted
devices. Below :data:`MIN_COVERAGE` the fit says so (a note in the preset, the CLI output
and the report): the bounds, and everything that depends on them, are extrapolated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MIN_COVERAGE", "coverage_note", "window_coverage"]

#: Median measured span / fitted window below which the campaign does not cover the window.
#: Soft bounds approach a bound as exp(-n dw_min / window): a train that covers 80 % of the
#: window still leaves the bound identified from its curvature.
MIN_COVERAGE = 0.8


def window_coverage(conductance_s: np.ndarray, device_ids: np.ndarray, fit: Any) -> float:
    """Median over fitted devices of (max - min measured conductance) / (w_max - w_min).

    ``conductance_s``: (n_devices, n_reads) traces (siemens, NaN for missing reads) of the
    devices ``device_ids``; ``fit``: a :class:`fitting.PulseResponseFit`. NaN if unknown.
    """
    per = getattr(fit, "per_device", {}) or {}
    if "w_max" in per and "w_min" in per and "device_id" in per:
        ids = np.asarray(per["device_id"])
        window = np.asarray(per["w_max"], dtype=float) - np.asarray(per["w_min"], dtype=float)
        rows = {int(d): k for k, d in enumerate(np.asarray(device_ids))}
        take = np.array([rows.get(int(d), -1) for d in ids])
        keep = take >= 0
        g = np.asarray(conductance_s, dtype=float)[take[keep]]
        window = window[keep]
    else:
        params = getattr(fit, "parameters", {})
        if "w_max" not in params or "w_min" not in params:
            return float("nan")
        g = np.asarray(conductance_s, dtype=float)
        window = np.full(g.shape[0], float(params["w_max"]) - float(params["w_min"]))
    if g.size == 0:
        return float("nan")
    with np.errstate(all="ignore"):  # fmax/fmin skip NaN reads without an all-NaN warning
        span = np.fmax.reduce(g, axis=1) - np.fmin.reduce(g, axis=1)
        ratio = span / window
    ratio = ratio[np.isfinite(ratio) & (window > 0)]
    return float(np.median(ratio)) if ratio.size else float("nan")


def coverage_note(
    coverage: float, n_up: int | None = None, default_n_up: int | None = None
) -> str | None:
    """The note to record when ``coverage`` is below :data:`MIN_COVERAGE`, else None.

    ``n_up``: pulses per direction of the campaign; ``default_n_up``: the technology's
    default, suggested only when the campaign used fewer pulses than that.
    """
    if not np.isfinite(coverage) or coverage >= MIN_COVERAGE:
        return None
    longer = f" (now {n_up} per direction)" if n_up else ""
    if default_n_up and (not n_up or n_up < default_n_up):
        longer += f", e.g. the technology's defaults ({default_n_up} per direction)"
    return (
        f"the pulse trains cover only {coverage:.0%} of the fitted window w_max - w_min "
        f"(median over devices; {MIN_COVERAGE:.0%} needed): the bounds are extrapolated; "
        f"measure longer trains{longer}"
    )
