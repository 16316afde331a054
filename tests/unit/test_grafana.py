"""The Grafana dashboard shipped in the chart: rendered only when asked, and every series it graphs
is one the operator exports (a renamed metric fails here, not on a platform team's empty panel)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pitwall_operator import metrics

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (the dev extra) renders the chart")

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pitwall"
DASHBOARD = CHART / "dashboards" / "pitwall.json"
RELEASE, NAMESPACE = "pitwall", "pitwall-system"
ENABLED = {"grafanaDashboard": {"enabled": True, "labels": {"team": "ml-platform"},
                                "annotations": {"grafana_folder": "PitWall"}}}

# PromQL words that are not metric names
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "inf", "nan"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@cache
def _render(enabled: bool) -> tuple[dict[str, Any], ...]:
    values = ENABLED if enabled else {}
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return tuple(doc for path, text in sorted(rendered.items()) if path.endswith(".yaml")
                 for doc in yaml.safe_load_all(text) if doc)


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: label matchers, grouping labels, ranges,
    strings and numbers removed; an identifier followed by `(` is a function."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings (label values, legend-like literals)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(), text[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS or word.startswith("$"):
            continue
        if match.start() > 0 and text[match.start() - 1] in "$.0123456789":
            continue  # part of a variable ($window) or a number (1e3)
        names.add(word)
    return names


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def panel_exprs() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def test_metric_names_are_extracted_from_promql() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, model) (rate(pitwall_run_duration_seconds_bucket'
            '{model=~"$model",state="x"}[$window]))) / on (model) group_left sum(up{job="a"})')
    assert metric_names(expr) == {"pitwall_run_duration_seconds_bucket", "up"}
    assert metric_names('sum by (reason) (increase(pitwall_trainingrun_failures_total[1h])) > 0') == {
        "pitwall_trainingrun_failures_total"}


def test_every_panel_graphs_series_the_operator_exports() -> None:
    exported = metrics.exported_names()
    seen: set[str] = set()
    for title, expr in panel_exprs():
        names = {base_name(n) for n in metric_names(expr)}
        assert names, f"panel {title!r}: no metric in {expr!r}"
        missing = names - exported
        assert not missing, f"panel {title!r} graphs {sorted(missing)}, which the operator does not export"
        seen |= names
    # and the other way round: what a platform team alerts on is on the board
    for name in ("pitwall_trainingruns", "pitwall_run_duration_seconds", "pitwall_queue_wait_seconds",
                 "pitwall_promotions_total", "pitwall_regressions_total", "pitwall_trainingrun_failures_total",
                 "pitwall_reconcile_errors_total", "pitwall_reconcile_duration_seconds"):
        assert name in seen, f"{name} is on no panel"


def test_the_panels_the_issue_asks_for() -> None:
    board = dashboard()
    titles = [panel["title"] for panel in board["panels"]]
    assert titles == ["Runs by state", "Runs by model", "Run duration p50 / p95", "Queue wait p95",
                      "Promotions vs regressions", "Failures by reason", "Reconcile errors", "Reconcile latency"]
    assert len({panel["id"] for panel in board["panels"]}) == len(titles)
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"  # the data source is chosen on the board
        assert all(t["refId"] for t in panel["targets"])
    variables = {v["name"] for v in board["templating"]["list"]}
    used = {m for _, expr in panel_exprs() for m in re.findall(r"\$(\w+)", expr)} - {"__rate_interval"}
    assert used <= variables, used - variables


def test_not_rendered_by_default() -> None:
    assert not [d for d in _render(False) if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["grafanaDashboard"]["enabled"] is False


def test_rendered_as_a_configmap_the_grafana_sidecar_loads() -> None:
    (config_map,) = [d for d in _render(True) if d["kind"] == "ConfigMap"
                     and d["metadata"]["name"] == f"{RELEASE}-grafana-dashboard"]
    meta = config_map["metadata"]
    assert meta["labels"]["grafana_dashboard"] == "1" and meta["labels"]["team"] == "ml-platform"
    assert meta["annotations"] == {"grafana_folder": "PitWall"} and meta["namespace"] == NAMESPACE
    assert json.loads(config_map["data"]["pitwall.json"]) == dashboard()  # the file, byte for byte in JSON terms
    kubernetes_validate.validate(config_map, "1.34", strict=True)


def test_lint_strict_with_the_dashboard() -> None:
    report = helm.lint(str(CHART), ENABLED, strict=True, namespace=NAMESPACE, kube_version="v1.34.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_the_namespace_value_is_checked() -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"grafanaDashboard": {"enabled": True, "namespace": "Not_Valid"}})
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"grafanaDashboard": {"enable": True}})  # a typo fails, as for every key
