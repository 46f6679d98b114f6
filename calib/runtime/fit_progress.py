"""Progress of a pulse-response fit, stage by stage, on stderr.

The fit (:func:`fitting.pulse_response.fit_pulse_response_source`) maps its per-device work
through ``map_tasks``; :class:`FitStages` is such a mapper that shows each stage as it
runs: screening (one bar over the screening pieces), the choice of the device family and
its shared shape (between screening and the per-device fits), the per-device fits (one bar
over the chunks of devices), then population statistics, bootstrap and the predictive check
(until the fit returns). Stages without a count show their elapsed time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.progress import Progress, TaskID

from calib.runtime.progress import stage_progress

__all__ = ["FitStages"]

MapTasks = Callable[[Callable[..., Any], Sequence[tuple]], list]

#: stage of the tasks a fit maps, by task function name
MAPPED = {"screen_piece": "screening devices", "fit_piece": "per-device fits"}
#: what runs, unmapped, after each mapped stage
AFTER = {
    "screen_piece": "choosing the device family and its shared shape",
    "fit_piece": "population, bootstrap, predictive check",
}


class FitStages:
    """A ``map_tasks`` that reports the stages of a fit (use as a context manager)."""

    def __init__(self, inner: MapTasks | None = None, model: str = "auto") -> None:
        self._inner = inner
        self._model = model
        self._progress: Progress | None = None
        self._open: TaskID | None = None

    def __enter__(self) -> FitStages:
        self._progress = stage_progress()
        self._progress.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._close()
        if self._progress is not None:
            if exc_type is not None:  # an error stays one line: withdraw the stages
                self._progress.live.transient = True
            self._progress.stop()

    def _close(self) -> None:
        if self._progress is not None and self._open is not None:
            task = self._progress.tasks[self._open]
            total = task.total if task.total is not None else 1
            self._progress.update(self._open, total=total, completed=total)
        self._open = None

    def _stage(self, label: str, total: int | None) -> TaskID | None:
        self._close()
        if self._progress is None:
            return None
        self._open = self._progress.add_task(label, total=total, start=True)
        return self._open

    def __call__(self, func: Callable[..., Any], tasks: Sequence[tuple]) -> list:
        name = getattr(func, "__name__", "")
        label = MAPPED.get(name, name or "tasks")
        tasks = list(tasks)
        task = self._stage(label, len(tasks))
        if self._inner is not None:  # a Dask mapper: results come back together
            results = self._inner(func, tasks)
        else:
            results = []
            for t in tasks:
                results.append(func(*t))
                if task is not None and self._progress is not None:
                    self._progress.advance(task)
        if name in AFTER:
            self._stage(AFTER[name], None)
        return results
