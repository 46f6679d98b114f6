"""What ``calib measure`` does before a campaign and when one is stopped.

* The output is checked before anything is started (``--resume`` needs the file, a new
  campaign must not replace one without ``--overwrite``).
* SIGTERM (``kill``, a batch scheduler) is handled like Ctrl-C: the campaign marks its
  file ``interrupted``.
* An interrupted campaign says what the file kept and the exact command that resumes it.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from calib.errors import CalibError
from calib.runtime.chips import BENCH_PREFIX
from calib.runtime.invocation import current_command

__all__ = ["check_campaign_output", "interrupted_message", "resume_command", "stop_on_sigterm"]


def check_campaign_output(
    output: Path, resume: bool, overwrite: bool, other_chip: bool, resource: str | None = None
) -> None:
    """One-line refusal of an output that cannot be written, before the chip is opened."""
    if resource is not None and resource.startswith(BENCH_PREFIX):
        from calib.runtime.outputs import same_file

        bench = Path(resource[len(BENCH_PREFIX) :])
        if same_file(output, bench):
            raise CalibError(f"{output}: -o names the bench file {bench}; write to another file")
    if resume and overwrite:
        raise CalibError("--resume continues OUTPUT and --overwrite replaces it: give one")
    if other_chip and not resume:
        raise CalibError("--resume-on-other-chip only applies with --resume")
    if resume and not output.is_file():
        raise CalibError(f"{output}: file not found; nothing to resume")
    if not resume and output.exists() and not overwrite:
        raise CalibError(f"{output}: exists; use --resume to continue it or --overwrite")


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_command() -> str:
    """The running command with ``--resume`` (and without ``--overwrite``)."""
    argv = [a for a in shlex.split(current_command()) if a != "--overwrite"]
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(argv)


def interrupted_message(output: Path, n_devices: int) -> str:
    """``saved 320 of 4096 devices in FILE; resume with: calib measure ... --resume``."""
    from calib.io.hdf5 import PARTIAL, open_dataset

    try:
        with open_dataset(output) as f:
            group = next(iter(f.values()))
            rows = int(group.attrs.get("rows_complete", 0))
            partial = _partial_text(output, group.get(PARTIAL))
    except (CalibError, StopIteration, OSError):
        return f"nothing was saved ({output} holds no measured device); rerun the command"
    if rows == 0 and not partial:
        return f"no device finished yet; {output} keeps the settings; resume with: " + (
            resume_command()
        )
    return (
        f"saved {rows} of {n_devices} devices in {output}{partial}; resume with: {resume_command()}"
    )


def _partial_text(output: Path, partial: Any) -> str:
    """``, plus K of T read times of the next D devices (kept in FILE:/drift/partial)``."""
    if partial is None or "device_index" not in partial or "n_times" not in partial.attrs:
        return ""
    done, total = partial.attrs.get("times_complete", 0), partial.attrs["n_times"]
    n = int(partial["device_index"].shape[0])
    return (
        f", plus {int(done)} of {int(total)} read times of the next {n} devices "
        f"(kept in {output}:{partial.name}; the chunk is measured again on resume)"
    )
