"""Progress reporting: a rich bar on a terminal, silence otherwise, plus optional sinks.

Long work (fetching, backtests, tuning) calls `Progress.update`; the terminal bar and any extra
sink (for instance the reporter that writes a TrainingRun's status from a pod) see the same
figures, so the CLI and the cluster show the same progress.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


@dataclass
class ProgressUpdate:
    """One snapshot of progress; `percent` is 0-100, metrics are optional."""

    done: int
    total: int
    message: str = ""
    current_metric: float | None = None
    best_metric: float | None = None
    eta_seconds: float | None = None

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0


ProgressSink = Callable[[ProgressUpdate], None]


@dataclass
class Progress:
    """Track `total` steps; show a bar when `show` (default: stderr is a terminal)."""

    total: int
    description: str = ""
    show: bool | None = None
    sinks: list[ProgressSink] = field(default_factory=list)
    _done: int = 0
    _best: float | None = None
    _started: float = field(default_factory=time.monotonic)
    _bar: RichProgress | None = None
    _task: int | None = None

    def __enter__(self) -> Progress:
        show = sys.stderr.isatty() if self.show is None else self.show
        if show:
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, note="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(
        self,
        steps: int = 1,
        message: str = "",
        metric: float | None = None,
        best: float | None = None,
    ) -> ProgressUpdate:
        """Mark `steps` more done; `metric` is the latest figure, `best` the best so far."""
        self._done = min(self.total, self._done + steps)
        if best is not None:
            self._best = best
        elapsed = time.monotonic() - self._started
        eta = elapsed / self._done * (self.total - self._done) if self._done else None
        update = ProgressUpdate(self._done, self.total, message, metric, self._best, eta)
        if self._bar is not None and self._task is not None:
            note = message if metric is None else f"{message} {metric:.3f}".strip()
            self._bar.update(self._task, completed=self._done, note=note)
        for sink in self.sinks:
            sink(update)
        return update
