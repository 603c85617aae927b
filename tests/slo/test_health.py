"""The semantic health score of endpoints and services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.model import Direction
from slo.aggregate import Aggregator, merge_thresholds
from slo.health import HealthConfig, HealthScorer, LatencyTargets
from slo.model import EndpointKey
from slo.store import SqliteSliStore
from tests.slo.exchange_data import SAMPLE_BOUNDS, T0, exchange, sample_exchanges

NOW = T0 + 20  # just after the sample's two buckets
USERS = EndpointKey("payments", "server", "GET", "/users/:int")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteSliStore]:
    store = SqliteSliStore(tmp_path / "sli.db", clock=lambda: NOW)
    aggregator = Aggregator(SAMPLE_BOUNDS)
    aggregator.add(sample_exchanges())
    store.write(aggregator.drain())
    yield store
    store.close()


def scorer(store: SqliteSliStore, **targets: float) -> HealthScorer:
    config = HealthConfig(targets=LatencyTargets(default_s=targets.get("default", 0.3)))
    return HealthScorer(store, config, clock=lambda: NOW)


def test_an_endpoint_scores_the_share_of_good_requests_with_its_components(
    store: SqliteSliStore,
) -> None:
    service = scorer(store).service("payments")
    assert service is not None
    users = next(e for e in service.endpoints if e.key == USERS)
    five_minutes = users.windows[0]
    # 8 requests: 3 server errors (503, 500, never completed), 2 business errors, 3 clean
    # ones (20 ms, 300 ms, 10 ms) all within 300 ms; 7 answered within 300 ms (the one that
    # never completed was not answered at all).
    assert (five_minutes.requests, five_minutes.good) == (8, 3)
    assert five_minutes.score == pytest.approx(3 / 8)
    assert five_minutes.availability == pytest.approx(5 / 8)
    assert five_minutes.correctness == pytest.approx(6 / 8)
    assert five_minutes.latency == pytest.approx(7 / 8)
    assert five_minutes.top_error_types == (("insufficient_balance", 1), ("unknown", 1))


def test_a_service_scores_all_the_endpoints_it_serves_and_not_its_outbound_calls(
    store: SqliteSliStore,
) -> None:
    service = scorer(store).service("payments")
    assert service is not None
    routes = [(e.key.method, e.key.route) for e in service.endpoints]
    assert routes == [("GET", "/users/:int"), ("POST", "/charges")]
    assert service.windows[0].requests == 10
    assert service.windows[0].good == 3 + 1


def test_an_endpoint_without_requests_in_a_window_has_no_score(store: SqliteSliStore) -> None:
    health = HealthScorer(store, clock=lambda: NOW + 3000)
    service = health.service("payments")
    assert service is not None
    five_minutes, hour = service.windows
    assert (five_minutes.requests, five_minutes.score) == (0, None)
    assert hour.score is not None


def test_an_unknown_service_has_no_health(store: SqliteSliStore) -> None:
    assert scorer(store).service("nobody") is None


@pytest.mark.parametrize(
    ("slo", "per_route", "per_service", "expected"),
    [
        pytest.param(0.1, 0.2, 0.3, 0.1, id="an SLO covering the endpoint wins"),
        pytest.param(None, 0.2, 0.3, 0.2, id="then the route's override"),
        pytest.param(None, None, 0.3, 0.3, id="then the service's override"),
        pytest.param(None, None, None, 0.5, id="then the default"),
    ],
)
def test_the_latency_target_of_an_endpoint(
    store: SqliteSliStore,
    slo: float | None,
    per_route: float | None,
    per_service: float | None,
    expected: float,
) -> None:
    targets = LatencyTargets(
        per_service={"payments": per_service} if per_service else {},
        per_route={("payments", "/users/:int"): per_route} if per_route else {},
    )
    health = HealthScorer(store, HealthConfig(targets=targets), slo_target=lambda key: slo)
    assert health.target(USERS) == expected


def test_a_new_target_rescores_the_history(store: SqliteSliStore) -> None:
    health = scorer(store)
    strict: dict[EndpointKey, float] = {}
    health.set_slo_target(strict.get)
    before = health.service("payments")
    strict[USERS] = 0.025  # an SLO with a 25 ms threshold now covers GET /users/:int
    after = health.service("payments")
    assert before is not None and after is not None
    assert before.endpoints[0].windows[0].good == 3
    assert after.endpoints[0].latency_target_s == 0.025
    assert after.endpoints[0].windows[0].good == 2  # 300 ms is no longer good


def test_every_service_is_listed_in_name_order(store: SqliteSliStore) -> None:
    assert [s.service for s in scorer(store).services()] == ["ledger", "payments"]


def test_windows_beyond_the_configured_ones_are_refused(store: SqliteSliStore) -> None:
    with pytest.raises(ValueError, match="up to 3600 s"):
        scorer(store).services(windows_s=(7200.0,))


def test_targets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LatencyTargets(default_s=0)


def test_configured_targets_are_thresholds_the_histograms_must_have() -> None:
    targets = LatencyTargets(default_s=0.5, per_service={"a": 0.2}, per_route={("a", "/x"): 0.9})
    bounds = merge_thresholds(thresholds=targets.thresholds())
    assert {0.2, 0.5, 0.9} <= set(bounds)


def test_client_traffic_alone_makes_no_service(tmp_path: Path) -> None:
    store = SqliteSliStore(tmp_path / "sli.db", clock=lambda: NOW)
    aggregator = Aggregator()
    aggregator.add([exchange(T0, service="worker", direction=Direction.CLIENT)])
    store.write(aggregator.drain())
    assert HealthScorer(store, clock=lambda: NOW).services() == []
    store.close()
