"""Run independent tasks on a Dask cluster (``dask.distributed``), or in this process.

``--scheduler SPEC`` of the commands that fan out work:

* omitted (and no ``--workers``): everything runs in this process, as always;
* ``local`` (the default when ``--workers N`` is given): a ``LocalCluster`` of N worker
  processes on this machine, one thread each, started and closed with the command;
* ``tcp://HOST:PORT``: an existing scheduler (``dask scheduler`` + ``dask worker`` on a
  cluster); the workers must see the same files at the same paths. Dask's protocol is
  unauthenticated pickle: whoever runs the scheduler (or can reach its port) can run code
  here and on the workers, so use only a scheduler you trust, on a network you trust.
  An address that does not answer as a Dask scheduler fails after ``CONNECT_TIMEOUT_S``.

The local cluster listens on loopback only and serves no dashboard unless asked
(``dashboard=True``, ``--dashboard``: on 127.0.0.1, a free port). Dask's own log lines
(INFO on every worker start and stop, tracebacks of connections closed at shutdown) are
hidden unless the root logger is at DEBUG (``calib -v`` shows ours, not Dask's chatter).

Tasks are mapped with :func:`map_tasks`: results come back in the order of the tasks,
progress is shown from the futures as they complete, and a task whose worker dies is
rescheduled by Dask (up to ``distributed.scheduler.allowed-failures`` times) while one that
raises is retried ``retries`` times. Tasks carry file paths and row ranges, never traces:
the workers read their own data.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from calib.errors import CalibError

__all__ = [
    "ClusterSpec",
    "cluster_client",
    "map_like",
    "map_tasks",
    "parse_scheduler",
    "task_mapper",
]

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 2
NANNY_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
#: Seconds an existing scheduler has to answer before the command stops with one line.
CONNECT_TIMEOUT_S = 10.0
LOOPBACK = "127.0.0.1"
#: Loggers of Dask and the libraries it runs on, quiet during a run (see the module docstring).
DASK_LOGGERS = ("distributed", "tornado", "bokeh", "asyncio")
#: Key in click's context ``meta`` set by ``--dashboard`` (calib.cli.scheduler_options).
DASHBOARD_META = "calib.dask_dashboard"


@dataclass(frozen=True)
class ClusterSpec:
    """Where tasks run: ``kind`` is ``inprocess``, ``local`` or ``address``."""

    kind: str
    workers: int | None = None
    address: str | None = None
    dashboard: bool | None = None  # None: as the command line asked (--dashboard)

    def describe(self) -> str:
        if self.kind == "local":
            return f"local Dask cluster of {self.workers} worker processes"
        if self.kind == "address":
            return f"Dask scheduler {self.address}"
        return "this process"


def parse_scheduler(spec: str | None, workers: int | None = None) -> ClusterSpec:
    """Parse ``--scheduler`` / ``--workers`` into a :class:`ClusterSpec` (one-line errors)."""
    if workers is not None and workers < 1:
        raise CalibError(f"--workers must be >= 1, got {workers}")
    if spec is None or spec == "":
        if workers is None:
            return ClusterSpec("inprocess")
        return ClusterSpec("local", workers=workers)
    spec = spec.strip()
    if spec == "local":
        return ClusterSpec("local", workers=workers or max(os.cpu_count() or 1, 1))
    if spec.startswith(("tcp://", "tls://", "inproc://")):
        rest = spec.split("://", 1)[1]
        if not rest or (spec.startswith(("tcp", "tls")) and ":" not in rest):
            raise CalibError(f"--scheduler {spec!r}: expected tcp://HOST:PORT")
        if workers is not None:
            raise CalibError(
                "--workers applies to a local cluster; an existing scheduler has its own workers"
            )
        return ClusterSpec("address", address=spec)
    raise CalibError(f"--scheduler {spec!r}: use 'local' or an address tcp://HOST:PORT")


@contextlib.contextmanager
def cluster_client(
    spec: ClusterSpec | str | None,
    workers: int | None = None,
    local_directory: str | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` (``None`` for in-process), closed on exit.

    A local cluster has ``workers`` processes with one thread each (the numerical code is
    vectorized; threads would contend for the GIL and for BLAS), a dashboard on a free port, and its
    spill directory in ``local_directory`` (a temporary folder by default).
    """
    if not isinstance(spec, ClusterSpec):
        spec = parse_scheduler(spec, workers)
    if spec.kind == "inprocess":
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a declared dependency
        raise CalibError(
            "distributed runs need dask.distributed: pip install distributed"
        ) from None
    if spec.kind == "address":
        with _quiet_dask():
            client = _connect(str(spec.address), CONNECT_TIMEOUT_S)
            try:
                yield client
            finally:
                client.close()
        return
    dashboard = spec.dashboard if spec.dashboard is not None else _dashboard_requested()
    with contextlib.ExitStack() as stack:
        folder = local_directory or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="calib-dask-")
        )
        import dask

        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers: glibc then returns
        # every large numpy temporary to the OS at once, and the per-device fits ran 2x
        # slower than in this process (benchmarks/RESULTS.md); keep glibc's default.
        stack.enter_context(_quiet_dask())
        with dask.config.set({NANNY_TRIM: None}):
            cluster = LocalCluster(
                n_workers=spec.workers,
                threads_per_worker=1,
                processes=True,
                host=LOOPBACK,
                dashboard_address=f"{LOOPBACK}:0" if dashboard else None,
                worker_dashboard_address=None,
                # the scheduler always serves HTTP (health, metrics; the dashboard only when
                # asked): on loopback and a free port, not on 8787 of every interface
                scheduler_kwargs={"dashboard_address": f"{LOOPBACK}:0"},
                local_directory=folder,
                silence_logs=logging.CRITICAL if _quiet() else False,
            )
        if dashboard:
            log.warning("Dask dashboard at %s", cluster.dashboard_link)
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


def _connect(address: str, timeout_s: float) -> Any:
    """A client of the scheduler at ``address``, or a one-line error after ``timeout_s``.

    ``Client(address, timeout=...)`` can wait forever on a peer that accepts the TCP
    connection but does not speak Dask's protocol (an instrument, a web server): the
    connection is made in a daemon thread that is abandoned when it does not finish.
    """
    from distributed import Client

    result: dict[str, Any] = {}

    def connect() -> None:
        try:
            result["client"] = Client(address, timeout=f"{timeout_s}s")
        except BaseException as exc:  # reported below, in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=connect, name="calib-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout_s + 2.0)  # the client gives up at timeout_s when it can
    if thread.is_alive():
        raise CalibError(
            f"--scheduler {address}: no Dask scheduler answered within {timeout_s:g} s "
            "(wrong address, or not a Dask scheduler?)"
        )
    if "error" in result:
        exc = result["error"]
        first = (str(exc).splitlines() or [""])[0]
        raise CalibError(
            f"cannot reach the Dask scheduler {address}: {type(exc).__name__}: {first}"
        ) from None
    return result["client"]


def _quiet() -> bool:
    return not logging.getLogger().isEnabledFor(logging.DEBUG)


def _dashboard_requested() -> bool:
    try:
        import click
    except ImportError:  # pragma: no cover - click is a dependency
        return False
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(DASHBOARD_META))


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's loggers at CRITICAL while a cluster runs (unless logging at DEBUG)."""
    if not _quiet():
        yield
        return
    loggers = [logging.getLogger(name) for name in DASK_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def map_tasks(
    func: Callable[..., Any],
    tasks: Sequence[tuple],
    client: Any | None = None,
    progress_label: str | None = None,
    retries: int = DEFAULT_RETRIES,
) -> list:
    """``[func(*t) for t in tasks]``, in order: here (``client=None``) or on the cluster.

    ``func`` must be a module-level function and every task small (paths, row ranges,
    options): each is shipped to a worker as it is. ``progress_label`` shows a progress bar
    (rich, on stderr) that advances as futures complete. A worker that dies is replaced and
    its tasks rerun by Dask; a task that raises is retried ``retries`` times, then its
    error is raised here.
    """
    tasks = list(tasks)
    if not tasks:
        return []
    bar = _Bar(progress_label, len(tasks))
    with bar:
        if client is None:
            out = []
            for t in tasks:
                out.append(func(*t))
                bar.advance()
            return out
        from distributed import as_completed

        columns = list(zip(*tasks, strict=True))
        name = getattr(func, "__name__", "task")
        futures = client.map(func, *columns, pure=False, retries=retries, key=_keys(name, tasks))
        try:
            for fut in as_completed(futures):
                if fut.status == "error":
                    fut.result()  # raises the task's exception
                bar.advance()
            return client.gather(futures)
        finally:
            client.cancel(futures)


def task_mapper(client: Any | None, progress_label: str | None = None, retries: int = 2):
    """``map_tasks`` bound to a client: the ``map_tasks`` argument of the fitting code."""

    def mapper(func: Callable[..., Any], tasks: Sequence[tuple]) -> list:
        return map_tasks(func, tasks, client, progress_label, retries)

    return mapper


def map_like(client: Any | None, retries: int = DEFAULT_RETRIES):
    """A drop-in for the builtin ``map(func, items)`` that runs on ``client`` (or here).

    Results are yielded in the order of ``items`` as soon as each is ready (a caller that
    reports progress per result sees it advance); all tasks are submitted at once.
    """

    def mapper(func: Callable[[Any], Any], items: Any) -> Iterator[Any]:
        if client is None:
            yield from map(func, items)
            return
        items = list(items)
        name = getattr(func, "__name__", "task")
        futures = client.map(
            func, items, pure=False, retries=retries, key=_keys(name, [(i,) for i in items])
        )
        try:
            for fut in futures:
                yield fut.result()
        finally:
            client.cancel(futures)

    return mapper


def _keys(name: str, tasks: Sequence[tuple]) -> list[str]:
    import uuid

    run = uuid.uuid4().hex[:8]
    return [f"{name}-{run}-{i}" for i in range(len(tasks))]


class _Bar:
    """A rich progress bar when labelled (and there is more than one task), else nothing."""

    def __init__(self, label: str | None, total: int) -> None:
        self.progress = None
        if label and total > 1:
            from calib.runtime.progress import progress_bar

            self.progress = progress_bar()
            self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)
