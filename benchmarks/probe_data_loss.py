"""Data-loss probes (issue 18): faults and misuse against every writer and campaign kind.

Each probe is classified:

* ``refused``: a one-line error, and every file involved is unchanged (hash);
* ``kept``: the fault stopped the work, the file kept every complete chunk (equal to the
  start of an uninterrupted run), and ``--resume`` reproduced the uninterrupted run;
* ``lost``: an input or measured data changed or disappeared;
* ``wrong``: a result that is silently not what an uninterrupted run on the same chip gives.

Run: ``.venv/bin/python benchmarks/probe_data_loss.py`` (about 3 minutes on 2 cores). The
tally goes to benchmarks/RELIABILITY.md by hand, with the date and machine.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import h5py

from calib.cli import main
from calib.errors import CalibError
from calib.io.hdf5 import read_campaign
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator
from instruments.visa_transport import InstrumentError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fault_tools import CAMPAIGNS, ConnectionDropRelay, first_difference, run_campaign  # noqa: E402

EXAMPLES = ROOT / "datasets" / "examples"
TALLY: Counter = Counter()
LOG: list[str] = []


def record(name: str, outcome: str) -> None:
    TALLY[outcome] += 1
    print(f"{outcome:8s} {name}", flush=True)


def digest(paths: list[Path]) -> list[str]:
    out = []
    for p in paths:
        if p.is_dir():
            out.append(str(sorted((q.name, digest([q])[0]) for q in p.iterdir() if q.is_file())))
        else:
            out.append(hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-")
    return out


def cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


def probe_cli(name: str, argv: list[str], watched: list[Path]) -> None:
    """Run one CLI probe on fresh copies of the fixtures (an earlier probe that destroyed a
    file must not make a later one fail for that reason)."""
    if RESTORE is not None:
        RESTORE()
    before = digest(watched)
    code, err = cli(*argv)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("calib")]
    if digest(watched) != before:
        record(name, "lost")
    elif code != 0 and len(lines) == 1:
        record(name, "refused")
    else:
        record(name, f"other(exit {code})")


RESTORE = None


def output_probes(tmp: Path) -> None:
    global RESTORE
    data = tmp / "data.h5"
    shutil.copy(EXAMPLES / "reram_pulse_response.h5", data)
    link = tmp / "link.h5"
    link.symlink_to(data)
    preset = tmp / "p.json"
    shutil.copy(EXAMPLES / "reram_truth.json", preset)
    mine = tmp / "hand_edited.json"
    mine.write_text('{"mine": 1}\n')
    pcm = []
    for n in ("pcm_programming.h5", "pcm_drift.h5", "pcm_read_noise.h5"):
        shutil.copy(EXAMPLES / n, tmp / n)
        pcm.append(tmp / n)
    csv = tmp / "d.csv"
    csv.write_text("device,pulse,conductance\n0,0,1e-5\n0,1,1.1e-5\n0,2,1.2e-5\n")
    report = tmp / "report"
    report.mkdir()
    (report / "summary.md").write_text("an earlier report")
    clash = report / "summary.json"  # an input where the report writes a file
    shutil.copy(data, clash)
    dies = tmp / "dies"
    dies.mkdir()
    for k in range(2):
        shutil.copy(EXAMPLES / "reram_pulse_response.h5", dies / f"c{k}.h5")
    wafer = tmp / "wafer"
    wafer.mkdir()
    (wafer / "wafer_summary.json").write_text("{}")
    manifest = tmp / "manifests" / "wafer_chips.csv"
    manifest.parent.mkdir()
    manifest.write_text("path\n../dies/c0.h5\n../dies/c1.h5\n")
    vdir = tmp / "v"
    vdir.mkdir()
    vpreset = vdir / "report.json"
    shutil.copy(preset, vpreset)
    vdir2 = tmp / "v2"
    vdir2.mkdir()
    (vdir2 / "report.md").write_text("an earlier validation")
    snapshot = tmp.parent / (tmp.name + "_snapshot")
    shutil.copytree(tmp, snapshot, symlinks=True)

    def restore() -> None:
        shutil.rmtree(tmp)
        shutil.copytree(snapshot, tmp, symlinks=True)

    RESTORE = restore
    fr = ["fit", "pulse-response", str(data)]
    for extra in ([], ["--overwrite"]):
        probe_cli(f"fit pulse-response -o INPUT {extra}", [*fr, "-o", str(data), *extra], [data])
    probe_cli(
        "fit pulse-response -o symlink-to-input", [*fr, "-o", str(link), "--overwrite"], [data]
    )
    probe_cli("fit pulse-response -o unrelated file", [*fr, "-o", str(mine)], [mine])
    probe_cli(
        "fit --report holding an earlier report",
        [*fr, "-o", str(tmp / "n.json"), "--report", str(report)],
        [report],
    )
    args = ["fit", "pulse-response", str(clash), "-o", str(tmp / "n.json")]
    probe_cli(
        "fit --report where the input is",
        [*args, "--report", str(report), "--overwrite"],
        [clash],
    )
    for k, target in enumerate(pcm):
        probe_cli(
            f"fit pcm -o input {k}",
            ["fit", "pcm", *map(str, pcm), "-o", str(target), "--overwrite"],
            pcm,
        )
    probe_cli("fit pcm -o unrelated", ["fit", "pcm", *map(str, pcm), "-o", str(mine)], [mine])
    for extra in ([], ["--overwrite"]):
        for to in ("aihwkit", "python"):
            probe_cli(
                f"export --to {to} -o PRESET {extra}",
                ["export", str(preset), "--to", to, "-o", str(preset), *extra],
                [preset],
            )
    probe_cli(
        "export -o unrelated", ["export", str(preset), "--to", "aihwkit", "-o", str(mine)], [mine]
    )
    probe_cli("emulator truth -o campaign", ["emulator", "truth", "-o", str(data)], [data])
    custom = ["emulator", "truth", "--chip", "custom", "--params", str(preset)]
    probe_cli(
        "emulator truth --params P -o P", [*custom, "-o", str(preset), "--overwrite"], [preset]
    )
    imp = ["import", "csv", str(csv), "--kind", "pulse-response"]
    probe_cli("import csv -o CSV --overwrite", [*imp, "-o", str(csv), "--overwrite"], [csv])
    probe_cli("import csv -o existing h5", [*imp, "-o", str(data)], [data])
    probe_cli(
        "fit-many -o earlier output", ["fit-many", str(dies / "*.h5"), "-o", str(wafer)], [wafer]
    )
    probe_cli(
        "fit-many manifest where it writes",
        ["fit-many", str(manifest), "-o", str(manifest.parent), "--overwrite"],
        [manifest],
    )
    probe_cli(
        "validate preset where it writes --overwrite",
        ["validate", str(vpreset), "-o", str(vdir), "--overwrite"],
        [vpreset],
    )
    probe_cli("validate -o earlier report", ["validate", str(preset), "-o", str(vdir2)], [vdir2])
    probe_cli(
        "measure -o existing",
        ["measure", "pulse-response", "--devices", "4", "-o", str(data)],
        [data],
    )
    RESTORE = None


# --------------------------------------------------------------------------- campaigns
def run(kind: str, path: Path, chip_kind: str = "reram", seed: int = 7, wrap=None, **kw) -> None:
    run_campaign(kind, path, chip_kind, seed, wrap, **kw)


def same(a: Path, b: Path, group: str, prefix: bool = False) -> bool:
    return first_difference(a, b, group, prefix) is None


def fault_then_resume(name: str, kind: str, ref: Path, path: Path, fault) -> None:
    try:
        _fault_then_resume(name, kind, ref, path, fault)
    except Exception as exc:  # an unexpected error type is itself a finding
        record(name, f"crash({type(exc).__name__})")


def _fault_then_resume(name: str, kind: str, ref: Path, path: Path, fault) -> None:
    t0 = time.perf_counter()
    try:
        fault(path)
        record(name, "other(no fault)")
        return
    except (CalibError, InstrumentError, KeyboardInterrupt) as exc:
        if "\n" in str(exc):
            record(name, "other(multi-line)")
            return
        if "closed" in name and time.perf_counter() - t0 > 10:
            LOG.append(f"         ({name}: noticed only after the I/O timeout)")
    if path.exists() and read_campaign(path, kind).n_devices and not same(ref, path, kind, True):
        record(name, "wrong")
        return
    run(kind, path, resume=path.exists())  # no file: nothing was measured, run again
    ok = read_campaign(path, kind).attrs["status"] == "complete" and same(ref, path, kind)
    record(name, "kept" if ok else "lost")


def campaign_probes(tmp: Path) -> None:
    refs = {}
    for kind in CAMPAIGNS:
        refs[kind] = tmp / f"ref_{kind}.h5"
        run(kind, refs[kind])
    for kind, (measure, params) in CAMPAIGNS.items():
        # resume on another chip
        for chip_kind, seed in (("ecram", 7), ("pcm", 7), ("reram", 8)):
            path = tmp / f"{kind}_other_{chip_kind}{seed}.h5"
            with contextlib.suppress(KeyboardInterrupt):
                run(
                    kind,
                    path,
                    progress=lambda d, t: d >= 32 and (_ for _ in ()).throw(KeyboardInterrupt()),
                )
            before = digest([path])
            try:
                run(kind, path, chip_kind, seed, resume=True)
                record(f"{kind}: resume on {chip_kind} seed {seed}", "wrong")
            except CalibError as exc:
                ok = digest([path]) == before and "\n" not in str(exc)
                record(f"{kind}: resume on {chip_kind} seed {seed}", "refused" if ok else "lost")
        # a second writer while the first holds the file
        path = tmp / f"{kind}_two.h5"
        with contextlib.suppress(KeyboardInterrupt):
            run(
                kind,
                path,
                progress=lambda d, t: d >= 32 and (_ for _ in ()).throw(KeyboardInterrupt()),
            )
        from calib.io.hdf5 import CampaignWriter

        holder = CampaignWriter.resume(path, kind)
        before = digest([path])
        try:
            run(kind, path, resume=True)
            record(f"{kind}: second writer", "wrong")
        except CalibError:
            record(f"{kind}: second writer", "refused" if digest([path]) == before else "lost")
        holder.finish("interrupted")
        # dropped connection after 1 and 3 chunks
        for after in (16, 48):
            path = tmp / f"{kind}_drop{after}.h5"

            def drop(p: Path, after=after, measure=measure, params=params) -> None:
                with running_emulator("reram", seed=7, shape=(32, 32)) as res:
                    proxy = ConnectionDropRelay(res)
                    with ScpiCrossbarChip(proxy.resource, timeout_s=20.0) as c:
                        measure(c, params, p, progress=lambda d, t: d >= after and proxy.drop())
                    proxy.listener.close()

            fault_then_resume(
                f"{kind}: connection closed after {after}", kind, refs[kind], path, drop
            )
        # disk full at three points
        for writes in (3, 12, 25):
            path = tmp / f"{kind}_full{writes}.h5"
            original = h5py.Dataset.__setitem__

            def full(p: Path, writes=writes, kind=kind, original=original) -> None:
                left = [writes]

                def setitem(ds, key, value):
                    left[0] -= 1
                    if left[0] < 0:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    return original(ds, key, value)

                h5py.Dataset.__setitem__ = setitem
                try:
                    run(kind, p)
                finally:
                    h5py.Dataset.__setitem__ = original

            fault_then_resume(
                f"{kind}: disk full after {writes} writes", kind, refs[kind], path, full
            )
        # a file stopped in the middle of a chunk reads as its complete chunks
        path = tmp / f"{kind}_mid.h5"
        shutil.copy(refs[kind], path)
        with h5py.File(path, "r+") as f:
            f[kind].attrs["rows_complete"] = 40
            f[kind].attrs["status"] = "running"
        data = read_campaign(path, kind)
        record(f"{kind}: read mid-chunk file", "kept" if data.n_devices == 40 else "wrong")


def signal_probes(tmp: Path) -> None:
    def rows(p: Path) -> int:
        try:
            with h5py.File(p, "r", locking=False) as f:
                return int(next(iter(f.values())).attrs["rows_complete"])
        except Exception:  # a file being created reads as garbage for a moment
            return 0

    for kind in ("pulse-response", "programming", "drift", "read-noise"):
        group = kind.replace("-", "_")
        args = ["measure", kind, "--devices", "6144", "--chunk", "64", "--seed", "3"]
        if kind == "pulse-response":
            args += ["--n-up", "40", "--n-down", "40", "--cycles", "1"]
        else:
            args += ["--levels", "3e-5,5e-5,7e-5,9e-5"]
        if kind == "drift":
            args += ["--t-max", "1000", "--n-times", "6"]
        whole = tmp / f"sig_whole_{group}.h5"
        subprocess.run(
            [sys.executable, "-m", "calib", *args, "-o", str(whole)],
            check=True,
            capture_output=True,
        )
        for signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            path = tmp / f"sig_{group}_{signum}.h5"
            proc = subprocess.Popen(
                [sys.executable, "-m", "calib", *args, "-o", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            while rows(path) < 192 and proc.poll() is None:
                time.sleep(0.01)
            proc.send_signal(signal.SIGSTOP)
            proc.send_signal(signum)
            proc.send_signal(signal.SIGCONT)
            err = proc.communicate()[1]
            name = f"{kind}: {signal.Signals(signum).name}"
            if not same(whole, path, group, prefix=True):
                record(name, "wrong")
                continue
            cmd = [*args, "-o", str(path), "--resume"]
            if signum != signal.SIGKILL:
                line = (
                    err.split("resume with: ")[-1].splitlines()[0] if "resume with: " in err else ""
                )
                cmd = shlex.split(line)[1:] or cmd
            done = subprocess.run(
                [sys.executable, "-m", "calib", *cmd], capture_output=True, text=True
            )
            ok = done.returncode == 0 and same(whole, path, group)
            record(name, "kept" if ok else "lost")


def main_probe() -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "o").mkdir()
        (tmp / "c").mkdir()
        (tmp / "s").mkdir()
        output_probes(tmp / "o")
        campaign_probes(tmp / "c")
        signal_probes(tmp / "s")
    for line in LOG:
        print(line)
    total = sum(TALLY.values())
    print(f"probes {total}: " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main_probe()
