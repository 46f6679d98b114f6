"""Malformed-input probes (issue 18.6-18.12, 18.18): every reader and option, through the CLI.

Each probe runs one ``calib`` command in this process on one malformed input and is
classified:

* ``refused``: a non-zero exit with a one-line message on stderr, no output file;
* ``sanitized``: accepted on purpose, made safe (a chip name with path separators
  becomes a file name inside OUTDIR);
* ``accepted``: exit 0 on input that should have been refused (silently wrong);
* ``unclean``: refused, but by an internal error (exit 3), a traceback, or not in exactly
  one ``calib...`` line.

The corpora are the regression tests' (tests/calib/io/test_corrupt_csv_refused.py,
tests/calib/io/test_hdf5_checks.py, tests/calib/presets/test_malformed_presets_refused.py),
so the tally and the tests cannot drift apart. Run:
``.venv/bin/python benchmarks/probe_strict_inputs.py`` (about a minute). The tally goes to
benchmarks/RELIABILITY.md (section "Strict inputs").
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
sys.path[:0] = [
    str(ROOT),
    str(TESTS),
    str(TESTS / "calib" / "io"),
    str(TESTS / "calib" / "presets"),
]

import test_corrupt_csv_refused as tcsv  # noqa: E402
import test_hdf5_checks as th5  # noqa: E402
import test_malformed_presets_refused as tpre  # noqa: E402

from calib.cli import cli, main  # noqa: E402

EXAMPLE = ROOT / "datasets" / "examples" / "reram_pulse_response.h5"


def run(args: list[str], out: Path | None = None) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # pragma: no cover - main returns codes
            code = int(exc.code or 0)
    return code, err.getvalue().strip()


def classify(code: int, err: str, out: Path | None = None) -> str:
    if code == 0:
        return "accepted"
    # the error is the one line starting "calib" (a progress bar drawn before it on stderr
    # is not part of the message)
    lines = [line for line in err.splitlines() if line.startswith("calib")]
    if code == 3 or len(lines) != 1 or "Traceback" in err:
        return "unclean"
    if out is not None and out.exists():
        return "unclean"
    return "refused"


def preset_probes(tmp: Path) -> dict[str, str]:
    results = {}
    for name, make in tpre.MALFORMED.items():
        path = tpre._write(tmp, name, make)
        out = tmp / "export.json"
        out.unlink(missing_ok=True)
        code, err = run(["export", path, "--to", "aihwkit", "-o", out])
        results[f"preset: {name}"] = classify(code, err, out)
    return results


def csv_probes(tmp: Path) -> dict[str, str]:
    def doubled(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[frame.index.repeat(2)].reset_index(drop=True)

    def twice(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([frame, frame], ignore_index=True)

    def shuffled(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)

    def edit(frame: pd.DataFrame, row: int, col: str, value) -> pd.DataFrame:
        frame = frame.astype({col: object})
        frame.loc[row, col] = value
        return frame

    p, pn, d = tcsv.pulse_frame, lambda: tcsv.pulse_frame(time=False), tcsv.drift_frame
    cases: dict[str, tuple[Callable[[], pd.DataFrame], str, str]] = {
        "every row duplicated": (lambda: doubled(pn()), "pulse-response", "S"),
        "every row duplicated, with time": (lambda: doubled(p()), "pulse-response", "S"),
        "file pasted twice": (
            lambda: twice(pn()),
            "pulse-response",
            "S",
        ),
        "file pasted twice, with time": (
            lambda: twice(p()),
            "pulse-response",
            "S",
        ),
        "shuffled rows with time": (lambda: shuffled(p()), "pulse-response", "S"),
        "shuffled drift rows": (lambda: shuffled(d()), "drift", "S"),
        "siemens declared as uS": (p, "pulse-response", "uS"),
        "siemens declared as nS (drift)": (d, "drift", "nS"),
        "microsiemens declared as S": (
            lambda: edit(p(), 0, "conductance", 20.0),
            "pulse-response",
            "S",
        ),
        "negative time (pulse response)": (
            lambda: edit(p(), 5, "time", -0.5),
            "pulse-response",
            "S",
        ),
        "negative time (drift)": (lambda: edit(d(), 5, "time", -1.0), "drift", "S"),
        "pulse=1e20": (lambda: edit(p(), 3, "pulse", "1e20"), "pulse-response", "S"),
        "pulse=1.5": (lambda: edit(p(), 3, "pulse", "1.5"), "pulse-response", "S"),
        "drift target changes within a device": (
            lambda: edit(d(), 15, "target", 7e-6),
            "drift",
            "S",
        ),
        "NaN conductance": (lambda: edit(p(), 4, "conductance", "nan"), "pulse-response", "S"),
        "inf conductance": (lambda: edit(p(), 4, "conductance", "inf"), "pulse-response", "S"),
        "negative conductance": (lambda: edit(p(), 4, "conductance", -1e-6), "pulse-response", "S"),
        "empty device id": (lambda: edit(p(), 4, "device", ""), "pulse-response", "S"),
        "non-numeric time": (lambda: edit(d(), 4, "time", "soon"), "drift", "S"),
        "missing column": (lambda: p().drop(columns="pulse"), "pulse-response", "S"),
    }
    results = {}
    for name, (make, kind, units) in cases.items():
        path = tmp / "in.csv"
        make().to_csv(path, index=False)
        out = tmp / "out.h5"
        out.unlink(missing_ok=True)
        args = ["import", "csv", path, "--kind", kind, "--units", units, "-o", out]
        results[f"csv: {name}"] = classify(*run(args), out)
    path = tmp / "ids.csv"
    path.write_text("device,pulse,conductance\n1,0,2e-5\n1,1,2.1e-5\n01,0,3e-5\n01,1,3.2e-5\n")
    out = tmp / "out.h5"
    out.unlink(missing_ok=True)
    code, err = run(["import", "csv", path, "--kind", "pulse-response", "-o", out])
    results["csv: device ids 01 and 1"] = classify(code, err, out)
    return results


def hdf5_probes(tmp: Path) -> dict[str, str]:
    def pulse(name: str, edit) -> tuple[Path, list[str]]:
        return th5.pulse_file(tmp / f"{name}.h5", edit), ["fit", "pulse-response"]

    def pcm(name: str, campaign: str, edit=None, technology="pcm") -> tuple[Path, list[str]]:
        return th5.pcm_file(tmp / f"{name}.h5", campaign, edit, technology), ["fit", "pcm"]

    def reverse(arrays: dict) -> None:
        arrays["time"] = arrays["time"][::-1].copy()

    s = th5._set
    cases = {
        "50 S conductance": lambda: pulse("a", s("conductance", (3, 5), 50.0)),
        "50 S programming read": lambda: pcm("b", "programming", s("conductance", 2, 50.0)),
        "conductance in uS labelled S": lambda: pcm(
            "c", "drift", lambda a: a.update(conductance=a["conductance"] * 1e-6)
        ),
        "duplicate device_index": lambda: pulse("d", s("device_index", 7, 2)),
        "reversed drift time axis": lambda: pcm("e", "drift", reverse),
        "NaN in drift reads": lambda: pcm("f", "drift", s("conductance", (4, 6), np.nan)),
        "NaN in programming reads": lambda: pcm("g", "programming", s("conductance", 9, np.nan)),
        "inf conductance": lambda: pulse("h", s("conductance", (1, 1), np.inf)),
        "NaN inside a pulse trace": lambda: pulse("i", s("conductance", (1, 3), np.nan)),
        "pulse count 2**40": lambda: pulse("j", s("pulses", 4, 2**40)),
        "ReRAM programming fitted as PCM": lambda: pcm("k", "programming", technology="reram"),
    }
    results = {}
    for name, make in cases.items():
        path, cmd = make()
        out = tmp / "out.json"
        out.unlink(missing_ok=True)
        results[f"hdf5: {name}"] = classify(*run([*cmd, path, "-o", out]), out)
    # string-typed conductance, external link, external raw storage, virtual dataset
    path = th5.pulse_file(tmp / "str.h5")
    with h5py.File(path, "a") as f:
        del f["pulse_response/conductance"]
        th5._s(f["pulse_response"], "conductance", np.full((th5.N_DEV, 41), b"2e-5"))
    data = th5.pulse_file(tmp / "data.h5")
    link = tmp / "link.h5"
    with h5py.File(link, "w") as f:
        th5._root(f)
        f["pulse_response"] = h5py.ExternalLink(str(data), "/pulse_response")
    raw = tmp / "raw.bin"
    g = np.full((th5.N_DEV, 41), 2e-5)
    g.tofile(raw)
    ext = th5.pulse_file(tmp / "ext.h5")
    with h5py.File(ext, "a") as f:
        grp = f["pulse_response"]
        del grp["conductance"]
        grp.create_dataset(
            "conductance", shape=g.shape, dtype="f8", external=[(str(raw), 0, g.nbytes)]
        )
        grp["conductance"].attrs["units"] = "S"
    virt = th5.pulse_file(tmp / "virt.h5")
    with h5py.File(virt, "a") as f:
        grp = f["pulse_response"]
        del grp["conductance"]
        layout = h5py.VirtualLayout(shape=g.shape, dtype="f8")
        layout[:] = h5py.VirtualSource(str(data), "pulse_response/conductance", shape=g.shape)
        grp.create_virtual_dataset("conductance", layout).attrs["units"] = "S"
    for name, path in (
        ("string-typed conductance", tmp / "str.h5"),
        ("external link", link),
        ("external raw storage", ext),
        ("virtual dataset", virt),
    ):
        out = tmp / "out.json"
        out.unlink(missing_ok=True)
        results[f"hdf5: {name}"] = classify(*run(["fit", "pulse-response", path, "-o", out]), out)
    return results


def option_probes(tmp: Path) -> dict[str, str]:
    import click

    results = {}

    def walk(cmd: click.Command, path: list[str]):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])
        for p in cmd.params:
            if isinstance(p, click.Option) and isinstance(p.type, click.types.FloatParamType):
                yield path, p

    for path, opt in walk(cli, []):
        for text in ("nan", "inf", "-inf"):
            try:
                opt.type.convert(text, opt, None)
                verdict = "accepted"
            except click.BadParameter:
                verdict = "refused"
            results[f"option: {' '.join(path)} {opt.opts[-1]} {text}"] = verdict
    for args in (
        ["measure", "read-noise", "--read-delay", "-1"],
        ["measure", "drift", "--t-min", "0"],
        ["measure", "pulse-response", "--seed", "-1"],
        ["fit", "pulse-response", EXAMPLE, "--read-noise", "-1"],
        ["fit", "pulse-response", EXAMPLE, "--workers", "0"],
        ["export", "x.json", "--to", "aihwkit", "--scale", "-1"],
        ["validate", "x.json", "--hwa-noise", "-1"],
    ):
        out = tmp / "o.out"
        out.unlink(missing_ok=True)
        code, err = run([*args, "-o", out])
        results[f"option: {' '.join(map(str, args[:2]))} {args[-2]} {args[-1]}"] = classify(
            code, err, out
        )
    return results


def manifest_probes(tmp: Path) -> dict[str, str]:
    results = {}
    shutil.copy(EXAMPLE, tmp / "die.h5")
    for label, names, encoding in (
        ("chip named ../../../escape", ["../../../escape"], "utf-8"),
        ("chip named /tmp/abs-probe", ["/tmp/abs-probe"], "utf-8"),
        ("chips a/b and a_b", ["a/b", "a_b"], "utf-8"),
        ("chips Die1 and die1", ["Die1", "die1"], "utf-8"),
        ("manifest in latin-1", ["Würzburg"], "latin-1"),
    ):
        manifest = tmp / "m.csv"
        rows = ["chip,path"] + [f'"{n}",die.h5' for n in names]
        manifest.write_bytes(("\n".join(rows) + "\n").encode(encoding))
        out = tmp / "deep" / "out"
        shutil.rmtree(tmp / "deep", ignore_errors=True)
        shutil.rmtree(tmp / "escape.json", ignore_errors=True)
        code, err = run(["fit-many", manifest, "-o", out])
        escaped = list(tmp.parent.rglob("escape.json")) + list(Path("/tmp").glob("abs-probe.json"))
        if code == 0:
            verdict = "accepted" if escaped or len(names) > 1 else "sanitized"
        else:
            verdict = classify(code, err)
        results[f"manifest: {label}"] = verdict
    return results


def main_probe() -> dict[str, str]:
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="calib-strict-") as folder:
        for probes in (preset_probes, csv_probes, hdf5_probes, option_probes, manifest_probes):
            sub = Path(folder) / probes.__name__
            sub.mkdir()
            found = probes(sub)
            for name, verdict in found.items():
                print(f"{verdict:9s} {name}", flush=True)
            results.update(found)
    return results


if __name__ == "__main__":
    results = main_probe()
    by_group = Counter()
    for name, verdict in results.items():
        by_group[(name.split(":")[0], verdict)] += 1
    groups = sorted({g for g, _ in by_group})
    print(
        f"{'group':10s} {'tried':>6s} {'refused':>8s} {'sanitized':>10s} {'accepted':>9s} "
        f"{'unclean':>8s}"
    )
    for g in groups:
        counts = [by_group[(g, v)] for v in ("refused", "sanitized", "accepted", "unclean")]
        print(
            f"{g:10s} {sum(counts):6d} "
            + " ".join(f"{c:>{w}d}" for c, w in zip(counts, (8, 10, 9, 8), strict=True))
        )
    total = Counter(results.values())
    print(
        f"total: {len(results)} tried, {total['refused']} refused, {total['sanitized']} "
        f"sanitized, {total['accepted']} accepted, {total['unclean']} unclean"
    )
