"""The terminal summary of a validation: accuracy table, target and verdict lines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from calib.validate.report import accuracy_table, target_lines, verdict_lines

__all__ = ["print_summary"]


def print_summary(console: Console, result: Any, timing: bool = True) -> None:
    """Print ``result`` (:class:`~calib.validate.ValidationResult`) as ``calib validate`` does.

    ``timing``: end with the run time (``done in ... s``).
    """
    report = result.report
    header, rows = accuracy_table(report, compact=True)
    table = Table(title="test accuracy (%, mean±std); gaps (pp, ±95 % half-width)")
    for name in header:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for line in target_lines(report) + verdict_lines(report):
        console.print(line, markup=False, highlight=False)
    if report.get("fit_status"):  # the preset does not fit its measurements: first note
        console.print(report["notes"][0], markup=False, highlight=False)
    check = report.get("predictive_check")
    if check:
        console.print(
            f"predictive check ({check['campaign']}): discrepancy {check['score']:.2%} of the "
            f"span (sampling floor {check['sampling_floor'] or float('nan'):.2%})"
        )
    elif report.get("predictive_note"):
        console.print(report["predictive_note"])
    console.print(f"report: {result.files['report_md'].resolve()}")
    if timing:
        console.print(f"done in {report['seconds']['total']:.1f} s")
