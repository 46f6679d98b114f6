"""The validation report: ``report.json`` (machine-readable), ``report.md`` (for people).

Accuracies are fractions in the JSON (``sources.<name>.mean``/``std``/``accuracy`` per time)
and percentages in the Markdown; gaps are percentage points. Gap standard errors: fitted -
truth is *paired* (both sources see the same random draws for a repeat, so the SE is the std
of the per-repeat differences over √n); fitted - chip is unpaired (√(s_f²/n + s_c²/n)).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calib.runtime.json_values import plain_json
from calib.validate.plots import format_time

__all__ = [
    "SCHEMA",
    "TARGETS_PP",
    "accuracy_table",
    "gap_statistics",
    "source_statistics",
    "target_lines",
    "training_verdict",
    "verdict_lines",
    "write_report",
]

SCHEMA = "aimc-calib-validation"
SCHEMA_VERSION = 1
#: |fitted - truth| and |fitted - chip| limits of issue 8, percentage points
TARGETS_PP = {"fitted - truth": 1.0, "fitted - chip": 2.0}


def source_statistics(acc: np.ndarray) -> dict[str, Any]:
    """Mean/std per time of accuracies (n_times, n_repeats), and the raw values."""
    acc = np.asarray(acc, dtype=float)
    std = acc.std(axis=1, ddof=1) if acc.shape[1] > 1 else np.zeros(acc.shape[0])
    return {
        "mean": acc.mean(axis=1).tolist(),
        "std": std.tolist(),
        "n": int(acc.shape[1]),
        "accuracy": acc.tolist(),
    }


def gap_statistics(a: np.ndarray, b: np.ndarray, paired: bool) -> dict[str, Any]:
    """Gap a - b per time in percentage points, with its standard error."""
    a, b = 100 * np.asarray(a, dtype=float), 100 * np.asarray(b, dtype=float)
    n = a.shape[1]
    if paired:
        d = a - b
        se = d.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(a.shape[0])
    else:
        var = lambda x: x.var(axis=1, ddof=1) if n > 1 else np.zeros(x.shape[0])  # noqa: E731
        se = np.sqrt(var(a) / n + var(b) / n)
    mean = a.mean(axis=1) - b.mean(axis=1)
    return {
        "mean": mean.tolist(),
        "standard_error": np.asarray(se).tolist(),
        "paired": paired,
        "max_abs": float(np.max(np.abs(mean))),
    }


#: A network "learned" when its accuracy keeps at least this fraction of the float
#: reference's margin over chance (digits: chance 10 %, float ~97 % -> at least ~53 %).
LEARNED_FRACTION = 0.5
#: ... and the float reference itself must reach this fraction of the way from chance to 100 %.
REFERENCE_FRACTION = 0.2


def training_verdict(
    fitted_accuracy: float, float_reference: float, n_classes: int, time_s: float
) -> dict[str, Any]:
    """Did training learn? ``fitted_accuracy``: mean accuracy (fraction) at ``time_s``.

    Fails when the float reference itself stays near chance (1/``n_classes``: the network,
    data set or epochs cannot show anything), or when the fitted preset's accuracy keeps
    less than :data:`LEARNED_FRACTION` of the float reference's margin over chance (at
    chance, or far below the reference).
    """
    chance = 1.0 / n_classes
    reasons = []
    if float_reference < chance + REFERENCE_FRACTION * (1.0 - chance):
        reasons.append(
            f"the float reference reaches only {_pct(float_reference)} % (chance "
            f"{_pct(chance)} % for {n_classes} classes): more epochs or another network"
        )
    floor = chance + LEARNED_FRACTION * max(float_reference - chance, 0.0)
    if fitted_accuracy < floor:
        where = (
            "at chance level"
            if fitted_accuracy < chance + 0.1 * (1.0 - chance)
            else "far below the float reference"
        )
        reasons.append(
            f"training did not learn: fitted accuracy {_pct(fitted_accuracy)} % at "
            f"{format_time(time_s)} is {where} (chance {_pct(chance)} % for {n_classes} "
            f"classes, float reference {_pct(float_reference)} %, needs >= {_pct(floor)} %)"
        )
    return {
        "learned": not reasons,
        "reasons": reasons,
        "fitted_accuracy": float(fitted_accuracy),
        "float_reference_accuracy": float(float_reference),
        "chance_accuracy": chance,
        "min_accuracy": floor,
        "time_s": float(time_s),
        "rule": f"fitted accuracy at the first time >= chance + {LEARNED_FRACTION:g} x "
        "(float reference - chance), and float reference >= chance + "
        f"{REFERENCE_FRACTION:g} x (1 - chance)",
    }


def verdict_lines(report: Mapping[str, Any]) -> list[str]:
    """One line: whether training learned (and why not)."""
    verdict = report.get("verdict")
    if not verdict:
        return []
    if verdict["learned"]:
        return [
            f"training learned: fitted {_pct(verdict['fitted_accuracy'])} % at "
            f"{format_time(verdict['time_s'])}, float reference "
            f"{_pct(verdict['float_reference_accuracy'])} %, chance "
            f"{_pct(verdict['chance_accuracy'])} %"
        ]
    return [f"validation FAILED: {'; '.join(verdict['reasons'])}"]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def accuracy_table(
    report: Mapping[str, Any], compact: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: time, accuracy (%) mean ± std per source, gaps ± 95 % half-width.

    ``compact`` (for terminals): no spaces around ±, gap columns named ``fit-truth``.
    """
    sources, gaps = report["sources"], report["gaps_pp"]
    pm = "±" if compact else " ± "
    names = [g.replace("fitted - ", "fit-") if compact else f"{g} (pp)" for g in gaps]
    header = ["time", *sources, *names]
    rows = []
    for k, t in enumerate(report["times_s"]):
        row = [format_time(float(t))]
        row += [f"{_pct(s['mean'][k])}{pm}{_pct(s['std'][k])}" for s in sources.values()]
        row += [
            f"{g['mean'][k]:+.2f}{pm}{1.96 * g['standard_error'][k]:.2f}" for g in gaps.values()
        ]
        rows.append(row)
    return header, rows


def target_lines(report: Mapping[str, Any]) -> list[str]:
    """One verdict line per target: met or not, and the largest gap."""
    return [
        f"target |{name}| <= {t['limit_pp']:g} pp at every time: "
        f"{'met' if t['met'] else 'NOT met'} (largest {t['max_abs_gap_pp']:.2f} pp)"
        for name, t in report.get("targets", {}).items()
    ]


def _markdown(report: Mapping[str, Any]) -> str:
    net, opts, inputs = report["network"], report["options"], report["inputs"]
    lines = [
        f"# Validation by inference: {Path(inputs['preset']['path']).name}",
        "",
        f"- preset: `{inputs['preset']['path']}` ({inputs['preset']['kind']} preset, "
        f"technology {inputs['preset'].get('technology') or 'unknown'})",
    ]
    if inputs.get("truth"):
        lines.append(f"- truth: `{inputs['truth']['path']}`")
    if inputs.get("chip"):
        chip = inputs["chip"]
        where = f"`{chip['resource']}`"
        if chip.get("embedded_emulator"):
            emu = chip["embedded_emulator"]
            where = f"the embedded {emu['kind']} emulator (seed {emu['seed']}) at {where}"
        lines.append(f"- chip: {where} ({chip.get('idn', '')}); mapping: {chip['mapping']}")
    lines += [
        f"- network: {net['kind']} on {net['dataset']} ({net['n_parameters']} weights, "
        f"{net['n_tiles']} tiles); trained {net['training']['method']}, "
        f"{net['training']['epochs']} epochs: float test accuracy "
        f"{_pct(net['float_test_accuracy'])} %",
        f"- {opts['repeats']} repeats per source and time, seed {opts['seed']}; "
        f"defective devices {'cancelled' if opts['prune_defects'] else 'kept'}; "
        f"drift compensation {'on' if opts['drift_compensation'] else 'off'}",
        f"- time convention: {report['time_convention']}",
        "",
        "## Test accuracy (%, mean ± std over repeats; time after programming)",
        "",
    ]
    header, rows = accuracy_table(report)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Gaps: mean ± 95 % confidence half-width.", ""]
    lines += [f"- {line}" for line in target_lines(report) + verdict_lines(report)]
    prog = report.get("chip_programming")
    if prog:
        lines += [
            "",
            f"Chip programming ({prog['n_devices']} devices per repeat): "
            f"{prog['mean_not_converged']:.1f} did not converge, {prog['mean_pruned']:.1f} "
            f"cancelled as defective, {prog['mean_iterations']:.1f} iterations on average; "
            f"verify band ±{prog['tolerance_s'] * 1e9:.3g} nS, final verify reads of the "
            f"converged devices {prog['error_mean_s'] * 1e9:+.3g} ± "
            f"{prog['error_std_s'] * 1e9:.3g} nS from their targets (mean ± std; the "
            "simulated sources write pulsed devices with the same band).",
        ]
    check = report.get("predictive_check")
    lines += ["", "## Predictive check of the preset's campaign", ""]
    if check:
        lines.append(
            f"`{check['source']}` ({check['campaign']}, {check['n_devices']} devices): "
            f"discrepancy score {check['score']:.2%} of the span "
            f"(sampling floor {check['sampling_floor']:.2%}); {check['score_definition']}."
        )
    else:
        lines.append(report.get("predictive_note", "not run"))
    lines += ["", "## Figures", ""]
    for label, name in report["plots"].items():
        lines.append(f"![{label}]({name})")
    for note in report.get("notes", []):
        lines.append(f"\nNote: {note}")
    prov = report["provenance"]
    lines += [
        "",
        f"aimc-calib {prov['software_version']}, {prov['created']}: `{prov['command']}` "
        f"({report['seconds']['total']:.1f} s)",
        "",
    ]
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(plain_json(report), indent=1, allow_nan=False) + "\n")
    md_path.write_text(_markdown(report))
    return json_path, md_path
