"""Pure rendering: TrainingRuns, RetrainPolicies and Events as the API returns them (plain dicts,
camelCase) -> rich renderables. No API calls and no clock reads here: `now` is always passed in,
so tests feed dicts and read the text from a recording Console.

Every status field is optional: a run just created has no status, and fields added by newer
operators (progress.phase, progress.metricName, status.resources) may be absent. Absent shows "—".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pitwall_api import duration_seconds, quantity_value
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

DASH = "—"
ACTIVE_STATES = ("Running", "Pending")
# Metrics where a smaller value wins (the trainer's log_loss, brier, mae_laps, and the usual others).
LOWER_IS_BETTER = re.compile(r"(^|_)(log_loss|loss|mae|mse|rmse|brier|error)(_|$)")
STATE_STYLE = {"Running": "bold cyan", "Pending": "yellow", "Suspended": "magenta",
               "Succeeded": "bold green", "Failed": "bold red"}
BAR_WIDTH = 32


# --- small formatting helpers ------------------------------------------------------------------


def get(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., None as soon as a level is missing or not a dict."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (as the API writes it) as an aware datetime; None when absent or bad."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def fmt_duration(seconds: float | None, parts: int = 2) -> str:
    """190 -> '3m 10s', 7500 -> '2h 5m', 45 -> '45s'; None -> '—'."""
    if seconds is None:
        return DASH
    seconds = max(0, int(round(seconds)))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    out: list[str] = []
    for suffix, size in units:
        if seconds >= size or (suffix == "s" and not out):
            amount, seconds = divmod(seconds, size)
            out.append(f"{amount}{suffix}")
        elif out:  # keep adjacent units only: '1h 0m', never '1h 5s'
            out.append(f"0{suffix}")
        if len(out) == parts:
            break
    return " ".join(out)


def fmt_age(value: Any, now: datetime) -> str:
    when = parse_time(value)
    if when is None:
        return DASH
    return fmt_duration((now - when).total_seconds()) + " ago"


def fmt_bytes(value: Any) -> str:
    """Bytes in binary units, as kubectl shows memory: 536870912 -> '512Mi'."""
    number = as_float(value)
    if number is None:
        return DASH
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if abs(number) >= size:
            scaled = number / size
            return f"{scaled:.0f}{suffix}" if scaled >= 100 or scaled.is_integer() else f"{scaled:.1f}{suffix}"
    return f"{number:.0f}B"


def fmt_cores(value: Any) -> str:
    number = as_float(value)
    if number is None:
        return DASH
    return f"{number:.2f}".rstrip("0").rstrip(".") if number else "0"


def fmt_metric(value: Any) -> str:
    number = as_float(value)
    return DASH if number is None else f"{number:.3f}"


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        try:
            return float(quantity_value(str(value)))
        except ValueError:
            return None


def lower_is_better(metric: str) -> bool:
    """log_loss, brier, mae_laps, rmse ... : smaller wins. Accuracy, spearman, ndcg ...: larger wins."""
    return bool(LOWER_IS_BETTER.search(metric.lower()))


def beats(model: float, baseline: float, metric: str) -> bool | None:
    """True when the model's value is better than the baseline's, False when worse, None on a tie."""
    if model == baseline:
        return None
    return model < baseline if lower_is_better(metric) else model > baseline


def run_state(run: dict[str, Any]) -> str:
    """status.state; a run with no state yet is waiting for the operator, i.e. Pending."""
    return get(run, "status", "state") or "Pending"


def _name(obj: dict[str, Any], with_namespace: bool) -> str:
    name = get(obj, "metadata", "name") or "?"
    return f"{get(obj, 'metadata', 'namespace')}/{name}" if with_namespace else name


def _text(value: Any, style: str = "") -> Text:
    """User-supplied strings as Text: never parsed as rich markup."""
    return Text(DASH if value in (None, "") else str(value), style=style)


# --- events ------------------------------------------------------------------------------------


def event_time(event: dict[str, Any]) -> datetime | None:
    """When an Event last happened: the newest of its timestamps (core/v1 keeps several)."""
    times = [parse_time(get(event, *path)) for path in (("lastTimestamp",), ("series", "lastObservedTime"),
                                                          ("eventTime",), ("firstTimestamp",),
                                                          ("metadata", "creationTimestamp"))]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def events_for(run: dict[str, Any], events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events about this TrainingRun (by uid when both have one, else by namespace and name), oldest first."""
    uid, name, namespace = get(run, "metadata", "uid"), get(run, "metadata", "name"), get(run, "metadata", "namespace")
    found = []
    for event in events:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        if involved.get("kind") not in (None, "TrainingRun"):
            continue
        if uid and involved.get("uid"):
            if involved["uid"] != uid:
                continue
        elif involved.get("name") != name or (namespace and involved.get("namespace", namespace) != namespace):
            continue
        found.append(event)
    epoch = datetime.min.replace(tzinfo=datetime.now().astimezone().tzinfo)
    return sorted(found, key=lambda e: event_time(e) or epoch)


def _event_line(event: dict[str, Any] | None, now: datetime) -> Text:
    if event is None:
        return Text(DASH, style="dim")
    style = "red" if event.get("type") == "Warning" else ""
    when = event_time(event)
    line = Text()
    line.append(str(event.get("reason") or DASH), style=f"bold {style}".strip())
    line.append(": ")
    line.append(str(event.get("message") or event.get("note") or ""), style=style)
    count = event.get("count") or get(event, "series", "count")
    if isinstance(count, int) and count > 1:
        line.append(f" (x{count})", style="dim")
    line.append(f"  {fmt_duration((now - when).total_seconds()) + ' ago' if when else DASH}", style="dim")
    return line


# --- the dashboard -----------------------------------------------------------------------------


def counts(runs: Iterable[dict[str, Any]], now: datetime) -> dict[str, int]:
    """Active (Running), queued (Pending), suspended, and succeeded/failed with a completionTime today.

    "Today" is the local calendar day of `now` (the viewer's time zone), not the last 24 hours.
    """
    today = now.astimezone().date()
    out = {"active": 0, "queued": 0, "suspended": 0, "succeeded_today": 0, "failed_today": 0}
    for run in runs:
        state = run_state(run)
        if state == "Running":
            out["active"] += 1
        elif state == "Pending":
            out["queued"] += 1
        elif state == "Suspended":
            out["suspended"] += 1
        elif state in ("Succeeded", "Failed"):
            done = parse_time(get(run, "status", "completionTime"))
            if done is not None and done.astimezone().date() == today:
                out["succeeded_today" if state == "Succeeded" else "failed_today"] += 1
    return out


def header(runs: list[dict[str, Any]], now: datetime, scope: str, errors: dict[str, str] | None = None) -> Panel:
    c = counts(runs, now)
    line = Text()
    for label, key, style in (("Active", "active", "bold cyan"), ("Queued", "queued", "yellow"),
                              ("Suspended", "suspended", "magenta"), ("Succeeded today", "succeeded_today", "green"),
                              ("Failed today", "failed_today", "red")):
        if line:
            line.append("   │   ", style="dim")
        line.append(f"{label} ")
        line.append(str(c[key]), style=style if c[key] else "dim")
    body: list[RenderableType] = [line]
    for what, message in sorted((errors or {}).items()):
        body.append(Text(f"{what}: {message}", style="bold red"))
    title = f"PitWall · {scope} · {now.astimezone().strftime('%Y-%m-%d %H:%M:%S')}"
    return Panel(Group(*body), title=title, title_align="left", border_style="blue")


def _bar(fraction: float | None) -> RenderableType:
    if fraction is None:
        return Text(" " * BAR_WIDTH)
    return ProgressBar(total=100.0, completed=max(0.0, min(1.0, fraction)) * 100, width=BAR_WIDTH)


def _with_bar(bar: RenderableType, text: Text) -> Table:
    """A bar of fixed width and its text beside it, aligned from one row to the next."""
    row = Table.grid(padding=(0, 1))
    row.add_column(width=BAR_WIDTH, no_wrap=True)
    row.add_column()
    row.add_row(bar, text)
    return row


def _quantity(resources: Any, kind: str, name: str) -> float | None:
    value = get(resources, kind, name)
    if value is None:
        return None
    try:
        return float(quantity_value(str(value)))
    except ValueError:
        return None


def _limit_or_request(spec_resources: Any, name: str) -> tuple[float | None, str]:
    for kind, label in (("limits", "limit"), ("requests", "request")):
        value = _quantity(spec_resources, kind, name)
        if value:
            return value, label
    return None, ""


def resource_rows(run: dict[str, Any]) -> list[tuple[str, RenderableType, Text]]:
    """(label, bar, text) for CPU, memory and (when reported) GPU, from status.resources."""
    usage = get(run, "status", "resources") or {}
    spec_resources = get(run, "spec", "resources") or {}
    rows: list[tuple[str, RenderableType, Text]] = []

    cpu, peak_cpu = as_float(usage.get("cpuCores")), as_float(usage.get("peakCpuCores"))
    scale, label = _limit_or_request(spec_resources, "cpu")
    if scale is None:
        scale, label = (peak_cpu, "peak") if peak_cpu else (1.0, "")
    text = Text(f"{fmt_cores(cpu)} / {fmt_cores(scale)} cores" if cpu is not None else DASH)
    if label and cpu is not None:
        text.append(f" ({label})", style="dim")
    if peak_cpu is not None:
        text.append(f"  peak {fmt_cores(peak_cpu)}", style="dim")
    rows.append(("CPU", _bar(cpu / scale if cpu is not None and scale else None), text))

    memory, peak_memory = as_float(usage.get("memoryBytes")), as_float(usage.get("peakMemoryBytes"))
    scale, label = _limit_or_request(spec_resources, "memory")
    if scale is None and peak_memory:
        scale, label = peak_memory, "peak"
    if memory is None:
        text = Text(DASH)
    else:
        text = Text(fmt_bytes(memory) + (f" / {fmt_bytes(scale)}" if scale else ""))
        if label:
            text.append(f" ({label})", style="dim")
    if peak_memory is not None:
        text.append(f"  peak {fmt_bytes(peak_memory)}", style="dim")
    rows.append(("Memory", _bar(memory / scale if memory is not None and scale else None), text))

    gpu = as_float(usage.get("gpuUtilization"))
    if gpu is not None:
        text = Text(f"{gpu:.0f}%")
        if usage.get("gpuMemoryBytes") is not None:
            text.append(f"  mem {fmt_bytes(usage.get('gpuMemoryBytes'))}")
        peaks = [f"{as_float(usage['peakGpuUtilization']):.0f}%" if as_float(usage.get("peakGpuUtilization")) is not None else "",
                 fmt_bytes(usage["peakGpuMemoryBytes"]) if usage.get("peakGpuMemoryBytes") is not None else ""]
        if any(peaks):
            text.append(f"  peak {' '.join(p for p in peaks if p)}", style="dim")
        rows.append(("GPU", _bar(gpu / 100), text))
    return rows


def metric_text(progress: dict[str, Any]) -> Text:
    name = progress.get("metricName")
    text = Text()
    text.append("current ")
    text.append(fmt_metric(progress.get("currentMetric")), style="bold")
    text.append("  best ")
    text.append(fmt_metric(progress.get("bestMetric")), style="bold green")
    if name:
        text.append(f"  ({name})", style="dim")
    return text


def run_panel(run: dict[str, Any], events: Iterable[dict[str, Any]], now: datetime,
              with_namespace: bool = False) -> Panel:
    """One active TrainingRun: what it trains, where it is, how fast, what it uses, what was said last."""
    status = run.get("status") or {}
    progress = status.get("progress") or {}
    spec = run.get("spec") or {}
    state = run_state(run)

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()

    what = Text()
    what.append(str(spec.get("model") or DASH), style="bold")
    what.append(" · ")
    what.append(str(spec.get("algorithm") or DASH))
    if get(spec, "tuning", "engine"):
        what.append(f" · tuning {get(spec, 'tuning', 'engine')}", style="dim")
    grid.add_row("Model", what)

    phase = Text(str(progress.get("phase") or state), style=STATE_STYLE.get(state, ""))
    if progress.get("phase"):
        phase.append(f" ({state})", style="dim")
    grid.add_row("Phase", phase)

    percent = as_float(progress.get("percent"))
    pct = Text(f"{percent:.0f}%" if percent is not None else DASH, style="bold")
    if progress.get("message"):
        pct.append("  ")
        pct.append(str(progress["message"]))
    elif progress.get("step") is not None and progress.get("totalSteps"):
        pct.append(f"  step {progress['step']}/{progress['totalSteps']}")
    grid.add_row("Progress", _with_bar(_bar(percent / 100 if percent is not None else None), pct))
    grid.add_row("Metric", metric_text(progress))
    eta = as_float(progress.get("etaSeconds"))
    eta_text = Text(fmt_duration(eta) if eta is not None else DASH)
    updated = parse_time(progress.get("updatedAt"))
    if updated is not None:
        eta_text.append(f"  (reported {fmt_duration((now - updated).total_seconds())} ago)", style="dim")
    grid.add_row("ETA", eta_text)
    for label, bar, text in resource_rows(run):
        grid.add_row(label, _with_bar(bar, text))
    run_events = events_for(run, events)
    grid.add_row("Event", _event_line(run_events[-1] if run_events else None, now))

    started = parse_time(status.get("startTime")) or parse_time(get(run, "metadata", "creationTimestamp"))
    subtitle = f"started {fmt_duration((now - started).total_seconds())} ago" if started else None
    title = Text()
    title.append(_name(run, with_namespace), style="bold")
    title.append(f"  {state}", style=STATE_STYLE.get(state, ""))
    return Panel(grid, title=title, title_align="left", subtitle=subtitle, subtitle_align="right",
                 border_style="cyan" if state == "Running" else "yellow")


def _next_trigger(policy: dict[str, Any], now: datetime) -> Text:
    spec, status = policy.get("spec") or {}, policy.get("status") or {}
    if spec.get("suspend"):
        return Text("suspended", style="magenta")
    explicit = parse_time(status.get("nextScheduleTime") or status.get("nextCheckTime"))
    text = Text()
    if explicit is not None:
        text.append(f"in {fmt_duration((explicit - now).total_seconds())}" if explicit > now else "due")
    else:
        last = parse_time(status.get("lastCheckTime"))
        try:
            interval = duration_seconds(spec.get("checkInterval") or "15m")
        except (ValueError, TypeError):
            interval = None
        if last is not None and interval:
            due = last + timedelta(seconds=interval)
            text.append(f"check in {fmt_duration((due - now).total_seconds())}" if due > now else "check due")
        else:
            text.append(DASH)
    if spec.get("schedule"):
        text.append(f"  cron {spec['schedule']}", style="dim")
    return text


def policies_table(policies: list[dict[str, Any]], now: datetime, with_namespace: bool = False) -> Table:
    table = Table(title="RetrainPolicies", title_justify="left", expand=True, border_style="blue")
    for column in ("Name", "Model", "Next trigger", "Champion", "Last run"):
        table.add_column(column)
    for policy in sorted(policies, key=lambda p: _name(p, True)):
        status = policy.get("status") or {}
        champion = status.get("champion") or {}
        champ = Text(f"v{champion['version']}" if champion.get("version") else DASH, style="bold")
        if champion.get("value") is not None:
            champ.append(f" {champion.get('metric') or ''} {fmt_metric(champion['value'])}".rstrip(), style="dim")
        last = Text()
        active = status.get("activeRuns") or []
        if active:
            last.append(", ".join(active), style="cyan")
            last.append(" running", style="dim")
        elif status.get("lastSuccessfulRun"):
            last.append(status["lastSuccessfulRun"])
        else:
            last.append(DASH)
        if status.get("lastTriggerTime"):
            last.append(f"  triggered {fmt_age(status['lastTriggerTime'], now)}", style="dim")
        table.add_row(_text(_name(policy, with_namespace), "bold"),
                      _text(get(policy, "spec", "template", "spec", "model")),
                      _next_trigger(policy, now), champ, last)
    if not policies:
        table.add_row(Text("none", style="dim"), "", "", "", "")
    return table


def _created(obj: dict[str, Any]) -> str:
    return get(obj, "metadata", "creationTimestamp") or ""


def dashboard(state: dict[str, Any], now: datetime) -> RenderableType:
    """The whole screen from a snapshot {runs, policies, events, namespace (None = all), errors}."""
    runs: list[dict[str, Any]] = list(state.get("runs") or [])
    events: list[dict[str, Any]] = list(state.get("events") or [])
    namespace = state.get("namespace")
    with_namespace = namespace is None
    scope = f"namespace {namespace}" if namespace else "all namespaces"
    if state.get("context"):
        scope = f"{state['context']} · {scope}"
    parts: list[RenderableType] = [header(runs, now, scope, state.get("errors"))]
    active = [r for r in runs if run_state(r) in ACTIVE_STATES]
    active.sort(key=lambda r: (ACTIVE_STATES.index(run_state(r)), _created(r), _name(r, True)))
    if active:
        parts.extend(run_panel(r, events, now, with_namespace) for r in active)
    else:
        parts.append(Panel(Text("No active TrainingRuns.", style="dim"), border_style="dim"))
    parts.append(policies_table(list(state.get("policies") or []), now, with_namespace))
    return Group(*parts)


# --- describe ----------------------------------------------------------------------------------


def compare(metrics: dict[str, Any] | None, baselines: dict[str, Any] | None) -> tuple[list[str], list[dict[str, Any]]]:
    """Metrics against baselines: (baseline names, rows).

    Baseline keys are `<baseline>.<metric>` (e.g. `pole_sitter.top1_accuracy`). Each row is
    {metric, lower_is_better, model, baselines: {name: (value, beats)}} where beats is True (the
    model is better), False (worse), None (a tie or no model value); a missing baseline is absent.
    """
    metrics, baselines = metrics or {}, baselines or {}
    by_metric: dict[str, dict[str, float]] = {}
    names: list[str] = []
    for key, value in baselines.items():
        baseline, _, metric = key.partition(".")
        if not metric:  # an unqualified key: the baseline named like the metric itself
            baseline, metric = "baseline", key
        if baseline not in names:
            names.append(baseline)
        number = as_float(value)
        if number is not None:
            by_metric.setdefault(metric, {})[baseline] = number
    rows = []
    for metric in [*metrics, *[m for m in by_metric if m not in metrics]]:
        model = as_float(metrics.get(metric))
        cells = {}
        for baseline, value in by_metric.get(metric, {}).items():
            cells[baseline] = (value, beats(model, value, metric) if model is not None else None)
        rows.append({"metric": metric, "lower_is_better": lower_is_better(metric), "model": model, "baselines": cells})
    return names, rows


def metrics_table(metrics: dict[str, Any] | None, baselines: dict[str, Any] | None) -> Table:
    names, rows = compare(metrics, baselines)
    table = Table(title="Metrics vs baselines", title_justify="left", border_style="blue")
    table.add_column("Metric")
    table.add_column("Better", justify="center")
    table.add_column("Model", justify="right", style="bold")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("Beats", justify="right")
    for row in rows:
        cells: list[RenderableType] = []
        won = compared = 0
        for name in names:
            if name not in row["baselines"]:
                cells.append(Text(DASH, style="dim"))
                continue
            value, result = row["baselines"][name]
            cell = Text(fmt_metric(value) + " ")
            if result is True:
                cell.append("✓ beats", style="green")
            elif result is False:
                cell.append("✗ loses", style="red")
            elif row["model"] is not None:
                cell.append("= tie", style="yellow")
            if row["model"] is not None:
                compared += 1
                won += result is True
            cells.append(cell)
        table.add_row(row["metric"], "lower" if row["lower_is_better"] else "higher", fmt_metric(row["model"]),
                      *cells, f"{won}/{compared}" if compared else DASH)
    if not rows:
        table.add_row(Text("no metrics yet", style="dim"), "", "", *[""] * len(names), "")
    return table


def conditions_table(conditions: list[dict[str, Any]] | None, now: datetime) -> Table:
    table = Table(title="Conditions", title_justify="left", border_style="blue")
    for column in ("Type", "Status", "Reason", "Message", "Age"):
        table.add_column(column, overflow="fold")
    for c in conditions or []:
        style = "green" if c.get("status") == "True" else "dim"
        table.add_row(_text(c.get("type"), "bold"), _text(c.get("status"), style), _text(c.get("reason")),
                      _text(c.get("message")), fmt_age(c.get("lastTransitionTime"), now))
    if not conditions:
        table.add_row(Text("none yet", style="dim"), "", "", "", "")
    return table


def events_table(events: list[dict[str, Any]], now: datetime, last: int = 10) -> Table:
    table = Table(title="Events", title_justify="left", border_style="blue")
    for column in ("Type", "Reason", "Message", "Age"):
        table.add_column(column, overflow="fold")
    for event in events[-last:]:
        when = event_time(event)
        table.add_row(_text(event.get("type"), "red" if event.get("type") == "Warning" else ""),
                      _text(event.get("reason"), "bold"), _text(event.get("message") or event.get("note")),
                      fmt_duration((now - when).total_seconds()) + " ago" if when else DASH)
    if not events:
        table.add_row(Text("none", style="dim"), "", "", "")
    return table


def _kv(rows: list[tuple[str, Any]], title: str | None = None) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text) else _text(value))
    return Panel(grid, title=title, title_align="left", border_style="blue") if title else grid


def promotion_panel(promotion: dict[str, Any] | None) -> RenderableType:
    p = promotion or {}
    if not p:
        return _kv([("Decision", DASH)], "Promotion")
    decision = Text("promoted", style="bold green") if p.get("promoted") else Text("not promoted", style="yellow")
    if p.get("regression"):
        decision.append("  regression: worse than the champion", style="bold red")
    version = f"v{p['version']}" if p.get("version") else DASH
    return _kv([("Decision", decision), ("Alias", p.get("alias")), ("Version", version),
                ("Previous", f"v{p['previousVersion']}" if p.get("previousVersion") else DASH),
                ("Reason", p.get("reason"))], "Promotion")


def resources_panel(run: dict[str, Any]) -> RenderableType:
    usage = get(run, "status", "resources") or {}
    rows: list[tuple[str, Any]] = [
        ("CPU", f"{fmt_cores(usage.get('cpuCores'))} cores (peak {fmt_cores(usage.get('peakCpuCores'))})"),
        ("Memory", f"{fmt_bytes(usage.get('memoryBytes'))} (peak {fmt_bytes(usage.get('peakMemoryBytes'))})"),
    ]
    if usage.get("gpuUtilization") is not None or usage.get("peakGpuUtilization") is not None:
        gpu, peak = as_float(usage.get("gpuUtilization")), as_float(usage.get("peakGpuUtilization"))
        rows.append(("GPU", f"{f'{gpu:.0f}%' if gpu is not None else DASH} (peak {f'{peak:.0f}%' if peak is not None else DASH})"))
        rows.append(("GPU memory", f"{fmt_bytes(usage.get('gpuMemoryBytes'))} (peak {fmt_bytes(usage.get('peakGpuMemoryBytes'))})"))
    rows.append(("Sampled", usage.get("sampledAt")))
    spec_resources = get(run, "spec", "resources") or {}
    for kind in ("requests", "limits"):
        if spec_resources.get(kind):
            rows.append((kind.capitalize(), ", ".join(f"{k}={v}" for k, v in spec_resources[kind].items())))
    return _kv(rows, "Resources (latest, peak)")


def describe(run: dict[str, Any], events: list[dict[str, Any]], now: datetime) -> RenderableType:
    """`kubectl pitwall describe RUN`: the run, conditions, metrics vs baselines, promotion, MLflow, resources, events."""
    spec, status = run.get("spec") or {}, run.get("status") or {}
    progress = status.get("progress") or {}
    state = run_state(run)
    percent = as_float(progress.get("percent"))
    overview = _kv([
        ("Name", _name(run, True)),
        ("Model", f"{spec.get('model') or DASH} · {spec.get('algorithm') or DASH}"),
        ("State", Text(state, style=STATE_STYLE.get(state, ""))),
        ("Phase", progress.get("phase")),
        ("Progress", (f"{percent:.0f}%" if percent is not None else DASH)
         + (f"  {progress['message']}" if progress.get("message") else "")),
        ("Metric", metric_text(progress)),
        ("Seasons", ", ".join(str(s) for s in get(spec, "data", "seasons") or []) or DASH),
        ("Started", fmt_age(status.get("startTime"), now)),
        ("Completed", fmt_age(status.get("completionTime"), now)),
        ("Attempts", status.get("attempts")),
        ("Job", status.get("jobName")),
        ("Ray cluster", status.get("rayClusterName")),
        ("Best params", ", ".join(f"{k}={v}" for k, v in (status.get("bestParams") or {}).items()) or DASH),
    ], f"TrainingRun {_name(run, True)}")
    mlflow = status.get("mlflow") or {}
    mlflow_panel = _kv([("Run", mlflow.get("runUrl") or mlflow.get("runId")), ("Model", mlflow.get("modelUri")),
                        ("Version", mlflow.get("modelVersion"))], "MLflow")
    parts: list[RenderableType] = [overview, conditions_table(status.get("conditions"), now),
                                   metrics_table(status.get("metrics"), status.get("baselines"))]
    if status.get("nonFiniteMetrics"):
        parts.append(Text("Not finite (left out): " + ", ".join(status["nonFiniteMetrics"]), style="yellow"))
    parts += [promotion_panel(status.get("promotion")), mlflow_panel, resources_panel(run),
              events_table(events_for(run, events), now)]
    return Group(*parts)
