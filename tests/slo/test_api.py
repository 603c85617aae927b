"""The HTTP API, through FastAPI's TestClient, over a store holding the recorded sample."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from slo.aggregate import Aggregator
from slo.api import create_app, format_window, parse_window
from slo.errors import StoreUnavailable
from slo.health import HealthConfig, HealthScorer, LatencyTargets
from slo.metrics import BytewatchCollector
from slo.model import ServiceHealth
from slo.store import SqliteSliStore
from tests.slo.exchange_data import SAMPLE_BOUNDS, T0, sample_exchanges

NOW = T0 + 20


@pytest.fixture
def scorer(tmp_path: Path) -> Iterator[HealthScorer]:
    store = SqliteSliStore(tmp_path / "sli.db", clock=lambda: NOW)
    aggregator = Aggregator(SAMPLE_BOUNDS)
    aggregator.add(sample_exchanges())
    store.write(aggregator.drain())
    config = HealthConfig(targets=LatencyTargets(default_s=0.3))
    yield HealthScorer(store, config, clock=lambda: NOW)
    store.close()


@pytest.fixture
def client(scorer: HealthScorer) -> TestClient:
    registry = CollectorRegistry()
    registry.register(BytewatchCollector(health=scorer))
    extra = APIRouter()

    @extra.get("/api/v1/slos")
    def slos() -> list[str]:
        return ["payments-availability"]

    app = create_app(health=scorer, registry=registry, clock=lambda: NOW, routers=[extra])
    return TestClient(app)


def test_health_scores_list_every_service_with_its_endpoints_per_window(
    client: TestClient,
) -> None:
    response = client.get("/health-score")
    assert response.status_code == 200
    body = response.json()
    assert body["windows"] == ["5m", "1h"]
    assert [s["service"] for s in body["services"]] == ["ledger", "payments"]
    payments = body["services"][1]
    assert [w["window"] for w in payments["windows"]] == ["5m", "1h"]
    users = payments["endpoints"][0]
    assert (users["method"], users["route"], users["latency_target_seconds"]) == (
        "GET",
        "/users/:int",
        0.3,
    )
    five_minutes = users["windows"][0]
    assert five_minutes["requests"] == 8
    assert five_minutes["score"] == pytest.approx(3 / 8)
    assert five_minutes["availability"] == pytest.approx(5 / 8)
    assert five_minutes["top_error_types"] == [
        {"error_type": "insufficient_balance", "count": 1},
        {"error_type": "unknown", "count": 1},
    ]


def test_one_window_can_be_asked_for(client: TestClient) -> None:
    body = client.get("/health-score", params={"window": "1h"}).json()
    assert body["windows"] == ["1h"]
    assert all(len(s["windows"]) == 1 for s in body["services"])


def test_a_window_that_is_not_configured_is_a_clear_400(client: TestClient) -> None:
    response = client.get("/health-score", params={"window": "7m"})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "window '7m' is not a health window; use one of: 5m, 1h",
    }


def test_one_service(client: TestClient) -> None:
    body = client.get("/health-score/ledger").json()
    assert body["service"] == "ledger"
    assert [e["route"] for e in body["endpoints"]] == ["/entries", "/coffee"]


def test_an_unknown_service_is_a_404_with_a_json_error(client: TestClient) -> None:
    response = client.get("/health-score/nobody")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "unknown service 'nobody'" in response.json()["detail"]


def test_metrics_are_the_registry_in_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'api_health_score{route="/users/:int",service="payments"} 0.375' in response.text


def test_metrics_speak_openmetrics_when_asked(client: TestClient) -> None:
    response = client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_healthz_is_ok_and_names_failing_checks(scorer: HealthScorer) -> None:
    app = create_app(health=scorer, registry=CollectorRegistry(), checks=[lambda: None])
    assert TestClient(app).get("/healthz").json() == {"status": "ok", "problems": []}
    failing = create_app(
        health=scorer, registry=CollectorRegistry(), checks=[lambda: "probe detached"]
    )
    response = TestClient(failing).get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "problems": ["probe detached"]}


class BrokenStore:
    """A health provider whose store has gone away."""

    windows_s = (300.0,)

    def services(
        self,
        *,
        now: float | None = None,
        windows_s: tuple[float, ...] | None = None,
        error_types: bool = True,
    ) -> list[ServiceHealth]:
        raise StoreUnavailable("/var/lib/bytewatch/sli.db: cannot read counts: disk I/O error")

    def service(
        self,
        name: str,
        *,
        now: float | None = None,
        windows_s: tuple[float, ...] | None = None,
        error_types: bool = True,
    ) -> ServiceHealth | None:
        return self.services()[0]


@pytest.mark.parametrize("path", ["/health-score", "/health-score/payments"])
def test_a_store_failure_is_a_503_with_its_reason(path: str) -> None:
    app = create_app(health=BrokenStore(), registry=CollectorRegistry())
    response = TestClient(app).get(path)
    assert response.status_code == 503
    assert "disk I/O error" in response.json()["detail"]


def test_routers_passed_in_are_served_and_documented(client: TestClient) -> None:
    assert client.get("/api/v1/slos").json() == ["payments-availability"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health-score", "/health-score/{service}", "/metrics", "/healthz"} <= set(paths)
    assert "/api/v1/slos" in paths


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300, "5m"), (3600, "1h"), (5400, "1h30m"), (86400, "1d"), (45, "45s")],
)
def test_windows_are_written_and_read_as_prometheus_durations(seconds: float, text: str) -> None:
    assert format_window(seconds) == text
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5x", "-5m"])
def test_what_is_not_a_duration_is_not_read_as_one(text: str) -> None:
    assert parse_window(text) is None
