"""/metrics: the names, labels and values other modules rely on, on a fresh registry."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from probe.source import ProbeStats
from slo.aggregate import Aggregator
from slo.health import HealthConfig, HealthScorer, LatencyTargets
from slo.metrics import PROBE_COUNTERS, PROBE_GAUGES, BytewatchCollector, le_label
from slo.store import SqliteSliStore
from tests.ci import require_binary
from tests.slo.exchange_data import SAMPLE_BOUNDS, T0, expected, sample_exchanges

SAMPLES = expected("metrics_expected.json")["samples"]
NOW = T0 + 20


@pytest.fixture
def aggregator() -> Aggregator:
    aggregator = Aggregator(SAMPLE_BOUNDS)
    aggregator.add(sample_exchanges())
    return aggregator


@pytest.fixture
def registry(aggregator: Aggregator) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(BytewatchCollector(traffic=aggregator))
    return registry


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["id"] for s in SAMPLES])
def test_the_recorded_sample_is_exported_as_the_contract_says(
    registry: CollectorRegistry, sample: dict[str, Any]
) -> None:
    value = registry.get_sample_value(sample["name"], sample["labels"])
    if sample["value"] is None:
        assert value is None
    else:
        assert value == pytest.approx(sample["value"])


def test_counts_drained_to_the_store_stay_in_the_counters(
    aggregator: Aggregator, registry: CollectorRegistry
) -> None:
    labels = {"service": "payments", "method": "GET", "route": "/users/:int", "status_class": "2xx"}
    aggregator.drain()
    assert registry.get_sample_value("api_requests_total", labels) == 4


def test_no_label_carries_a_raw_path(registry: CollectorRegistry) -> None:
    text = generate_latest(registry).decode()
    raw_paths = {e.path for e in sample_exchanges()} - {e.route for e in sample_exchanges()}
    assert raw_paths and not any(f'"{path}"' in text for path in raw_paths)


def test_every_probe_counter_is_exported() -> None:
    stats = ProbeStats(**{f.name: i + 1 for i, f in enumerate(dataclasses.fields(ProbeStats))})
    registry = CollectorRegistry()
    registry.register(BytewatchCollector(probe_stats=lambda: stats))
    assert set(PROBE_COUNTERS) | set(PROBE_GAUGES) == {f.name for f in dataclasses.fields(stats)}
    for field, (name, _) in PROBE_COUNTERS.items():
        assert registry.get_sample_value(f"{name}_total") == getattr(stats, field)
    assert registry.get_sample_value("bytewatch_probe_connections") == stats.connections


def test_overflowed_routes_are_counted_per_service() -> None:
    registry = CollectorRegistry()
    registry.register(BytewatchCollector(route_overflows=lambda: {"payments": 7}))
    value = registry.get_sample_value(
        "bytewatch_probe_overflowed_routes_total", {"service": "payments"}
    )
    assert value == 7


@pytest.fixture
def store(tmp_path: Path, aggregator: Aggregator) -> Iterator[SqliteSliStore]:
    store = SqliteSliStore(tmp_path / "sli.db", clock=lambda: NOW)
    store.write(aggregator.drain())
    yield store
    store.close()


def scorer(store: SqliteSliStore, now: float = NOW) -> HealthScorer:
    config = HealthConfig(targets=LatencyTargets(default_s=0.3))
    return HealthScorer(store, config, clock=lambda: now)


def test_health_scores_are_exported_per_route_and_per_service(store: SqliteSliStore) -> None:
    registry = CollectorRegistry()
    registry.register(BytewatchCollector(health=scorer(store)))
    route = {"service": "payments", "route": "/users/:int"}
    assert registry.get_sample_value("api_health_score", route) == pytest.approx(3 / 8)
    service = {"service": "payments"}
    assert registry.get_sample_value("api_service_health_score", service) == pytest.approx(4 / 10)


def test_a_route_without_requests_has_no_health_sample(store: SqliteSliStore) -> None:
    registry = CollectorRegistry()
    registry.register(BytewatchCollector(health=scorer(store, now=NOW + 3600)))
    route = {"service": "payments", "route": "/users/:int"}
    assert registry.get_sample_value("api_health_score", route) is None
    assert registry.get_sample_value("api_service_health_score", {"service": "payments"}) is None


@pytest.mark.parametrize(
    ("bound", "label"),
    [(0.3, "0.3"), (1.0, "1.0"), (10.0, "10.0"), (0.005, "0.005"), (float("inf"), "+Inf")],
)
def test_le_labels_are_spelled_as_the_exposition_spells_them(bound: float, label: str) -> None:
    assert le_label(bound) == label


def test_a_registry_refuses_the_same_families_twice(aggregator: Aggregator) -> None:
    registry = CollectorRegistry()
    registry.register(BytewatchCollector(traffic=aggregator))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(BytewatchCollector(traffic=aggregator))


def test_promtool_accepts_the_exposition(store: SqliteSliStore, aggregator: Aggregator) -> None:
    promtool = require_binary("promtool", "Debian's prometheus; setup.sh --dev installs it")
    aggregator.add(sample_exchanges())
    registry = CollectorRegistry()
    stats = ProbeStats(lost_records=3)
    registry.register(
        BytewatchCollector(traffic=aggregator, health=scorer(store), probe_stats=lambda: stats)
    )
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
