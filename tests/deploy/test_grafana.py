"""The Grafana dashboard is valid JSON and its PromQL queries only metrics bytewatch exports.

The exported names are listed here by hand from slo/metrics.py as it stands on the sli-store
branch (its module docstring is the contract), plus the SLO and notification families announced
for the evaluator and the outbox. Once slo/metrics.py is on this branch, the last test checks
the list against what its collector describes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from slo.metrics import (
    BytewatchCollector,
    NotificationSample,
    OutboxSample,
    SloCollector,
    SloSample,
)
from tests.deploy.files import DEPLOY

DASHBOARD = json.loads((DEPLOY / "grafana" / "bytewatch-dashboard.json").read_text())

COUNTERS = {
    "api_requests", "api_business_errors", "api_client_requests",
    "bytewatch_probe_kernel_records", "bytewatch_probe_lost_records",
    "bytewatch_probe_truncated_messages", "bytewatch_probe_missed_syscalls",
    "bytewatch_probe_records", "bytewatch_probe_abi_errors", "bytewatch_probe_exchanges",
    "bytewatch_probe_incomplete_exchanges", "bytewatch_probe_parse_errors",
    "bytewatch_probe_lost_starts", "bytewatch_probe_unmatched_responses",
    "bytewatch_probe_dropped_requests", "bytewatch_probe_abandoned_requests",
    "bytewatch_probe_evicted_connections", "bytewatch_probe_filtered_exchanges",
    "bytewatch_probe_overflowed_routes", "bytewatch_probe_spilled_records",
    "bytewatch_probe_resequenced_records", "bytewatch_probe_late_records",
    "bytewatch_probe_reader_raised", "bytewatch_probe_http2_connections",
    "bytewatch_probe_cut_heads", "bytewatch_probe_io_uring_operations",
}  # fmt: skip
HISTOGRAMS = {
    "api_http_duration_seconds",
    "api_clean_duration_seconds",
    "api_client_http_duration_seconds",
}
GAUGES = {"api_health_score", "api_service_health_score", "bytewatch_probe_connections"}
# SloCollector's families: the evaluator's SLO gauges and the outbox's counters.
ANNOUNCED_GAUGES = {
    "slo_sli_ratio", "slo_burn_rate", "slo_error_budget_remaining_ratio",
    "slo_time_to_exhaustion_seconds", "slo_objective_ratio", "slo_alert_firing",
    "bytewatch_notifications_queue_depth",
}  # fmt: skip
ANNOUNCED_COUNTERS = {
    "bytewatch_notifications_sent",
    "bytewatch_notifications_retried",
    "bytewatch_notifications_failed",
}


def sample_names(counters: set[str], histograms: set[str], gauges: set[str]) -> set[str]:
    """The series names Prometheus stores for metric families of these types."""
    names = {f"{c}_total" for c in counters} | gauges
    names |= {f"{h}{suffix}" for h in histograms for suffix in ("_bucket", "_sum", "_count")}
    return names


EXPORTED = sample_names(COUNTERS | ANNOUNCED_COUNTERS, HISTOGRAMS, GAUGES | ANNOUNCED_GAUGES)

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names or values, grouping labels, durations or Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # $service, $__rate_interval
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function or an aggregation, or an operator
        if match.start() > 0 and (
            text[match.start() - 1].isdigit() or text[match.start() - 1] == "."
        ):
            continue  # the exponent or unit of a number
        names.add(word)
    return names


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and templating query."""
    for panel in panels(DASHBOARD):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            yield f"variable {variable['name']}", inner.group(1) if inner else query


EXPRESSIONS = list(expressions())


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        pytest.param('sum by (service) (rate(a_total{x="b c"}[5m]))', {"a_total"}, id="rate"),
        pytest.param(
            "histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))",
            {"h_bucket"},
            id="a quantile",
        ),
        pytest.param("sum(a) / on(instance) group_left(x) b > 1e3", {"a", "b"}, id="matching"),
        pytest.param('max by (slo) (g{service=~"$service"}) > 0', {"g"}, id="a comparison"),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_query_uses_only_metrics_bytewatch_exports(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    assert names <= EXPORTED, f"{where}: {sorted(names - EXPORTED)} are not exported"


@pytest.mark.parametrize(
    "metric",
    [
        pytest.param("api_health_score", id="health score per endpoint"),
        pytest.param("slo_burn_rate", id="burn rates"),
        pytest.param("slo_error_budget_remaining_ratio", id="budget left"),
        pytest.param("api_business_errors_total", id="business errors by type"),
        pytest.param("api_requests_total", id="request rate per route"),
        pytest.param("api_http_duration_seconds_bucket", id="latency percentiles"),
        pytest.param("bytewatch_probe_lost_records_total", id="probe loss"),
        pytest.param("bytewatch_probe_parse_errors_total", id="parse errors"),
        pytest.param("bytewatch_notifications_failed_total", id="notifications"),
    ],
)
def test_the_dashboard_shows(metric: str) -> None:
    assert any(metric in metric_names(expr) for _, expr in EXPRESSIONS)


def test_latency_is_shown_as_three_percentiles_per_route() -> None:
    quantiles = {
        q
        for _, expr in EXPRESSIONS
        if "api_http_duration_seconds_bucket" in expr
        for q in re.findall(r"histogram_quantile\((0\.\d+),", expr)
    }
    assert quantiles == {"0.5", "0.95", "0.99"}


def test_panels_have_unique_ids_a_datasource_and_fit_the_grid() -> None:
    ids = [panel["id"] for panel in panels(DASHBOARD)]
    assert len(ids) == len(set(ids))
    for panel in panels(DASHBOARD):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and panel["title"] and panel["description"]


def test_the_list_matches_what_slo_metrics_describes() -> None:
    collector = BytewatchCollector(
        traffic=object(),  # type: ignore[arg-type]
        health=SimpleNamespace(windows_s=(300.0,)),
        probe_stats=object,  # type: ignore[arg-type]
        route_overflows=dict,
    )
    described: dict[str, set[str]] = {"counter": set(), "histogram": set(), "gauge": set()}
    for family in collector.describe():
        described[family.type].add(family.name)
    assert described["counter"] >= COUNTERS
    assert described["histogram"] >= HISTOGRAMS
    assert described["gauge"] >= GAUGES


def test_the_slo_and_notification_families_are_what_the_slo_collector_exports() -> None:
    collector = SloCollector(
        slos=lambda: [SloSample("s", "svc", 0.999, 0.5, 3600.0, (("5m", 0.99, 10.0),))],
        firing=lambda: [("s", "svc", "page")],
        outbox=lambda: OutboxSample((NotificationSample("r", 1, 0, 0),), 0, 0.0),
    )
    exported: dict[str, set[str]] = {"counter": set(), "gauge": set()}
    for family in collector.collect():
        exported[family.type].add(family.name)
    assert exported["gauge"] >= ANNOUNCED_GAUGES
    assert exported["counter"] >= ANNOUNCED_COUNTERS
