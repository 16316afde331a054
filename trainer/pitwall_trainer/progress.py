"""Progress reporting: a rich bar on a terminal, silence otherwise, plus optional sinks.

Long work (fetching, backtests, tuning) calls `Progress.advance`; the terminal bar and any extra
sink see the same figures, so the CLI and the cluster show the same progress.

A run also goes through phases (Loading, Features, Tuning, Evaluating, Training, Registering,
Promoting, Done: `pitwall_api.trainingrun.PHASES`). The code that does the work says so with one
call, `phase("Evaluating", total=4)` then `step(...)` per fold; a `Progress` opened with
`phase="Tuning"` does the same for each trial. `TRACKER` folds these into one overall percent
that only goes up (each phase owns a share of what is left, by weight), an ETA from the measured
step times, and the best metric, and hands each update to its listeners (the TrainingRun's
status reporter in a pod). Without listeners the calls cost next to nothing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pitwall_api.trainingrun import PHASES
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
    phase: str | None = None
    metric_name: str | None = None
    overall: float | None = None  # percent over all phases, when the update comes from the tracker

    @property
    def percent(self) -> float:
        if self.overall is not None:
            return self.overall
        return 100.0 * self.done / self.total if self.total else 0.0


ProgressSink = Callable[[ProgressUpdate], None]


@dataclass
class Progress:
    """Track `total` steps; show a bar when `show` (default: stderr is a terminal)."""

    total: int
    description: str = ""
    show: bool | None = None
    sinks: list[ProgressSink] = field(default_factory=list)
    phase: str | None = None  # set: entering the bar enters this phase, each advance is one of its steps
    metric_name: str | None = None
    _done: int = 0
    _best: float | None = None
    _started: float = field(default_factory=time.monotonic)
    _bar: RichProgress | None = None
    _task: int | None = None

    def __enter__(self) -> Progress:
        if self.phase is not None:
            phase(self.phase, total=self.total, metric_name=self.metric_name)
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
        if self.phase is not None:
            TRACKER.step(message, metric=metric, best=self._best, done=self._done, total=self.total)
        return update


log = logging.getLogger(__name__)

# Share of the run each phase takes when it happens; a phase that does not happen (no tuning)
# leaves its share to the ones after it, so the percent never jumps back or sticks.
PHASE_WEIGHTS = {"Loading": 4, "Features": 8, "Tuning": 45, "Evaluating": 25, "Training": 6,
                 "Registering": 7, "Promoting": 5, "Done": 0}
STEP_LABELS = {"Tuning": "trial", "Evaluating": "fold"}


def _figure(value: float) -> str:
    return f"{value:.3f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3g}"


class RunTracker:
    """One run's phases folded into an overall percent, an ETA and the best metric (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.listeners: list[ProgressSink] = []
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.started = self.clock()
        self.phase: str | None = None
        self.index = -1  # furthest phase of PHASES reached
        self.start, self.width = 0.0, 0.0  # the current phase's band of the overall percent
        self.percent = 0.0
        self.done, self.total = 0, 0
        self.step_times: list[float] = []
        self._last_step = self.started
        self.metric_name: str | None = None
        self.current: float | None = None
        self.best: float | None = None
        self.message = ""

    def listen(self, sink: ProgressSink) -> None:
        if sink not in self.listeners:
            self.listeners.append(sink)

    def unlisten(self, sink: ProgressSink) -> None:
        if sink in self.listeners:
            self.listeners.remove(sink)

    def enter(self, name: str, total: int | None = None, message: str = "",
              metric_name: str | None = None) -> ProgressUpdate:
        """Start phase `name` with `total` steps (None: one step, done when the next phase starts)."""
        if name not in PHASE_WEIGHTS:
            raise ValueError(f"unknown phase {name!r}; one of {', '.join(PHASES)}")
        with self._lock:
            now = self.clock()
            self.percent = max(self.percent, self.start + self.width)  # the previous phase is complete
            position = PHASES.index(name)
            self.index = max(self.index, position)
            later = sum(PHASE_WEIGHTS[p] for p in PHASES[self.index + 1:])
            weight = PHASE_WEIGHTS[name]
            share = weight / (weight + later) if weight + later else 1.0
            self.phase, self.start = name, self.percent
            self.width = (100.0 - self.percent) * share if name != "Done" else 0.0
            if name == "Done":
                self.percent = 100.0
            self.done, self.total = 0, max(0, int(total or 0))
            self.step_times, self._last_step = [], now
            if metric_name:
                self.metric_name = metric_name
            if name == "Tuning":  # its best is the Best column until the final metric replaces it
                self.current = self.best = None
            self.message = message or (name if name != "Done" else "done")
            update = self._update(now)
        self._emit(update)
        return update

    def step(self, message: str = "", *, metric: float | None = None, best: float | None = None,
             done: int | None = None, total: int | None = None) -> ProgressUpdate | None:
        """One more step of the current phase done (or `done` of `total`); None before any phase."""
        with self._lock:
            if self.phase is None:
                return None
            now = self.clock()
            if total is not None:
                self.total = max(0, int(total))
            done = self.done + 1 if done is None else int(done)
            if done > self.done:
                per_step = (now - self._last_step) / (done - self.done)
                self.step_times.extend([per_step] * (done - self.done))
                self._last_step = now
            self.done = min(done, self.total) if self.total else done
            if self.total:
                self.percent = max(self.percent, self.start + self.width * self.done / self.total)
            if metric is not None:
                self.current = float(metric)
            if best is not None:
                self.best = float(best)
            self.message = self._message(message)
            update = self._update(now)
        self._emit(update)
        return update

    def _message(self, note: str) -> str:
        label = STEP_LABELS.get(self.phase or "")
        if label is None:
            return note or (self.phase or "")
        text = f"{label} {self.done}/{self.total}" if self.total else f"{label} {self.done}"
        if self.phase == "Evaluating":  # a fold's figure, not a best: folds are not candidates
            text += f" ({note})" if note and not note.startswith(label) else ""
            if self.current is not None:
                text += f", {self.metric_name or 'metric'} {_figure(self.current)}"
        elif self.best is not None:
            text += f", best {_figure(self.best)}"
        return text

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left: this phase's remaining steps at its mean measured step time, plus the later
        phases at the pace (seconds per percent) of the run so far."""
        now = self.clock() if now is None else now
        if self.phase == "Done":
            return 0.0
        elapsed = now - self.started
        pace = elapsed / self.percent if self.percent > 0 else None
        end = self.start + self.width
        if self.step_times and self.total:
            mean = sum(self.step_times) / len(self.step_times)
            here = mean * max(0, self.total - self.done)
            return here + (pace * (100.0 - end) if pace is not None else 0.0)
        return pace * (100.0 - self.percent) if pace is not None else None

    def _update(self, now: float) -> ProgressUpdate:
        return ProgressUpdate(
            self.done, self.total, self.message, self.current, self.best, self.eta(now),
            phase=self.phase, metric_name=self.metric_name, overall=min(100.0, self.percent),
        )

    def _emit(self, update: ProgressUpdate) -> None:
        for sink in list(self.listeners):
            try:
                sink(update)
            except Exception:  # noqa: BLE001 - reporting must never stop training
                log.warning("progress listener failed", exc_info=True)


TRACKER = RunTracker()


def phase(name: str, total: int | None = None, message: str = "", metric_name: str | None = None) -> None:
    """The run enters phase `name` (see `RunTracker.enter`)."""
    TRACKER.enter(name, total, message, metric_name)


def step(message: str = "", *, metric: float | None = None, best: float | None = None) -> None:
    """One more step of the current phase (a fold, a trial)."""
    TRACKER.step(message, metric=metric, best=best)
