"""The wired service (``slo.app.Service``) end to end, on a simulated clock.

Each test builds the service from the configuration in data/app/ with a real store, outbox,
alert state and silences in a temporary directory, a webhook receiver on loopback that records
what it gets by the simulated clock, and the API through FastAPI's TestClient. Time moves in
10 s ticks, as ``bytewatch run`` ticks with default settings: traffic up to the tick goes in,
``Service.tick`` runs, and the outbox delivers what is due.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from alerts.model import AlertState, Severity
from probe.model import HttpExchange
from probe.source import ReplaySource
from slo.app import Service, TickReport
from slo.model import Severity as SloSeverity
from tests.alerts.receiver import Received, RecordingReceiver
from tests.slo.app_scenario import (
    CREATE_PAYMENT,
    REFUNDS,
    REFUNDS_SLO,
    T0,
    TICK_S,
    WEBHOOK_PATH,
    Outage,
    environment,
    load,
    traffic,
    write_history,
)

OUTAGE = Outage(T0 + 8, T0 + 308)  # five minutes, starting 8 s after a tick
TOKEN = "bw-test-token-4b1d93"  # checked never to leak
KEEP_FIRING_FOR_S = 600.0  # alerting.page_keep_firing_for's default
GROUP_INTERVAL_S = 300.0  # the default route's group_interval


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Clock:
    now: float = float(T0)

    def __call__(self) -> float:
        return self.now

    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@dataclass
class Run:
    """A ``Service`` driven tick by tick, as ``Service.run`` drives it, on a simulated clock."""

    service: Service
    clock: Clock
    exchanges: Iterator[HttpExchange]
    reports: list[TickReport] = field(default_factory=list)
    _next: HttpExchange | None = None

    def until(self, end: float) -> None:
        while self.clock.now + TICK_S <= end:
            self.clock.now += TICK_S
            self.service.ingest(self._before(self.clock.now))
            self.reports.append(self.service.tick())
            self.service.pipeline.due(self.clock.moment())
            self.service.outbox.deliver_due(self.clock.moment())

    def _before(self, now: float) -> list[HttpExchange]:
        batch: list[HttpExchange] = []
        while True:
            item = self._next if self._next is not None else next(self.exchanges, None)
            self._next = None
            if item is None:
                return batch
            if item.ts >= now:
                self._next = item
                return batch
            batch.append(item)

    def transitions(self, slo: str = CREATE_PAYMENT) -> list[tuple[float, str, str, str]]:
        return [
            (r.at, t.alert.severity.value, t.previous.value, t.alert.state.value)
            for r in self.reports
            for t in r.transitions
            if t.alert.slo == slo
        ]

    def tripped_at(self, severity: SloSeverity, slo: str = CREATE_PAYMENT) -> list[float]:
        return [
            r.at
            for r in self.reports
            for e in r.evaluations
            if e.slo.id == slo and e.tripped(severity)
        ]

    def api(self) -> TestClient:
        return TestClient(self.service.api_app())


def start_service(
    state: Path, receiver: RecordingReceiver, clock: Clock, **options: Any
) -> Service:
    config, slos = load(environment(state, receiver.url + WEBHOOK_PATH, **options))
    empty = ReplaySource(io.StringIO(""), "no traffic but the test's")
    return Service(config, slos, source=empty, clock=clock)


def page_alerts(body: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["labels"]["slo"], a["labels"]["severity"], a["status"]) for a in body["alerts"]]


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(
    samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# --- one outage, played once for the tests below ---------------------------------------------


@dataclass
class OutageRun:
    run: Run
    received: list[Received]
    during: dict[str, Any]  # API answers while the page fires and the ticket is inhibited
    after: dict[str, Any]  # API answers once the page has resolved


def api_snapshot(run: Run) -> dict[str, Any]:
    client = run.api()
    return {
        "slos": client.get("/api/v1/slos").json(),
        "slo": client.get(f"/api/v1/slos/{CREATE_PAYMENT}").json(),
        "alerts": client.get("/api/v1/alerts").json(),
        "metrics": metric_samples(client.get("/metrics").text),
        "healthz": client.get("/healthz").status_code,
    }


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutageRun]:
    state = tmp_path_factory.mktemp("outage")
    clock = Clock(T0 - 3600)
    write_history(state / "bytewatch.db", T0 - 3600)
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(state, receiver, clock)
        try:
            run = Run(service, clock, traffic(T0 - 3600, T0 + 3 * 3600, outages=[OUTAGE]))
            run.until(OUTAGE.start + 400)
            during = api_snapshot(run)
            run.until(OUTAGE.end + 3600)
            after = api_snapshot(run)
        finally:
            service.close()
        yield OutageRun(run, receiver.received, during, after)


def test_the_page_fires_at_the_first_tick_52_seconds_into_a_silent_200_outage(
    outage: OutageRun,
) -> None:
    pages = [t for t in outage.run.transitions() if t[1] == "page"]
    assert pages[0] == (OUTAGE.start + 52, "page", "inactive", "firing")
    assert min(outage.run.tripped_at(SloSeverity.PAGE)) == OUTAGE.start + 52
    # The tick before saw 42 s of errors: 420 of 36,000 requests in the hour, a burn of 11.7.
    before = next(r for r in outage.run.reports if r.at == OUTAGE.start + 42)
    [evaluation] = [e for e in before.evaluations if e.slo.id == CREATE_PAYMENT]
    hour = next(c for c in evaluation.status.results[0].checks if c.window.long_window_s == 3600)
    assert hour.long_burn == pytest.approx(420 / 36000 / 0.001)
    assert not hour.tripped


def test_the_webhook_receiver_gets_the_page_at_once_in_alertmanager_v4_shape(
    outage: OutageRun, conformance: Path
) -> None:
    first = outage.received[0]
    assert first.at == datetime.fromtimestamp(OUTAGE.start + 52, UTC)
    assert first.path == WEBHOOK_PATH
    body = first.json()
    canonical = json.loads(
        (conformance / "alertmanager" / "_synthesized-canonical-v4-latest.json").read_text()
    )
    assert set(body) <= set(canonical)
    assert set(body["alerts"][0]) == set(canonical["alerts"][0])
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "oncall"
    assert page_alerts(body) == [(CREATE_PAYMENT, "page", "firing")]
    alert = body["alerts"][0]
    assert alert["labels"] == {
        "alertname": "ErrorBudgetBurn",
        "service": "payments",
        "severity": "page",
        "slo": CREATE_PAYMENT,
        "team": "payments",
    }
    assert alert["startsAt"] == rfc3339(OUTAGE.start + 52)
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"] == f"http://bytewatch.test:9477/api/v1/slos/{CREATE_PAYMENT}"


def test_the_ticket_fires_later_but_the_firing_page_inhibits_it(outage: OutageRun) -> None:
    tickets = [t for t in outage.run.transitions() if t[1] == "ticket"]
    assert tickets[0][2:] == ("inactive", "firing")
    assert OUTAGE.start + 52 < tickets[0][0] < OUTAGE.end
    alerts = {a["severity"]: a for a in outage.during["alerts"]["alerts"]}
    assert (alerts["page"]["state"], alerts["page"]["inhibited"]) == ("firing", False)
    assert (alerts["ticket"]["state"], alerts["ticket"]["inhibited"]) == ("firing", True)
    page_resolved_at = next(t[0] for t in outage.run.transitions() if t[3] == "resolved")
    told = [
        alert
        for r in outage.received
        if r.at < datetime.fromtimestamp(page_resolved_at, UTC)
        for alert in page_alerts(r.json())
    ]
    assert told == [(CREATE_PAYMENT, "page", "firing")]


def test_the_page_resolves_keep_firing_for_after_its_last_burning_tick(
    outage: OutageRun,
) -> None:
    last_burning = max(outage.run.tripped_at(SloSeverity.PAGE))
    # The 6h/30m pair tripped too (five minutes of errors is 1.4 % of six hours): it burns
    # until the errors leave its 30 minute short window.
    assert OUTAGE.end < last_burning <= OUTAGE.end + 1800
    resolved = [t for t in outage.run.transitions() if t[1] == "page" and t[3] == "resolved"]
    expected = min(r.at for r in outage.run.reports if r.at >= last_burning + KEEP_FIRING_FOR_S)
    assert resolved == [(expected, "page", "firing", "resolved")]


def test_the_receiver_gets_the_resolution_at_the_groups_next_flush(outage: OutageRun) -> None:
    resolved_at = next(t[0] for t in outage.run.transitions() if t[3] == "resolved")
    later = [r for r in outage.received if r.at >= datetime.fromtimestamp(resolved_at, UTC)]
    # The default route groups by SLO and severity: the page's group and the ticket's.
    assert len(outage.received) == 3 and len(later) == 2
    by_severity = {
        alert["labels"]["severity"]: (r, alert) for r in later for alert in r.json()["alerts"]
    }
    resolution, page = by_severity["page"]
    elapsed = (resolution.at - datetime.fromtimestamp(resolved_at, UTC)).total_seconds()
    assert 0 <= elapsed <= GROUP_INTERVAL_S
    assert page["status"] == "resolved"
    assert page["endsAt"] == rfc3339(resolved_at)
    assert page["startsAt"] == rfc3339(OUTAGE.start + 52)
    # Once the page is over, nothing inhibits the ticket that still burns (3d/6h): it is
    # told now, as Alertmanager tells an alert whose inhibiting alert resolved.
    told, ticket = by_severity["ticket"]
    assert ticket["status"] == "firing"
    assert told.at >= resolution.at


def test_the_api_shows_the_burning_slo_and_its_alerts(outage: OutageRun) -> None:
    [listed, _] = outage.during["slos"]["slos"]
    assert listed["id"] == CREATE_PAYMENT
    assert (listed["status"], listed["tripped"]) == ("burning", ["page", "ticket"])
    one = outage.during["slo"]
    assert one["objective"] == 0.999
    five_minutes = next(w for w in one["windows"] if w["window"] == "5m")
    assert five_minutes["burn_rate"] > 14.4
    assert any(c["tripped"] and c["long_window"] == "1h" for c in one["checks"])
    alerts = outage.during["alerts"]["alerts"]
    assert [(a["slo"], a["severity"], a["silenced"]) for a in alerts] == [
        (CREATE_PAYMENT, "page", False),
        (CREATE_PAYMENT, "ticket", False),
    ]
    assert alerts[0]["started_at"] == datetime.fromtimestamp(OUTAGE.start + 52, UTC).isoformat()
    assert alerts[0]["top_error_types"] == [["card_declined", 3000]]
    assert outage.during["healthz"] == 200
    after = outage.after["alerts"]["alerts"]
    assert [(a["severity"], a["state"], a["inhibited"]) for a in after] == [
        ("ticket", "firing", False)
    ]


def test_an_slo_whose_endpoints_saw_no_request_says_no_data_rather_than_ok(
    outage: OutageRun,
) -> None:
    # Nothing calls /refunds in this run: a selector with a typo would look the same, and
    # must not look healthy.
    [_, refunds] = outage.during["slos"]["slos"]
    assert (refunds["id"], refunds["status"], refunds["sli"]) == (REFUNDS_SLO, "no data", None)
    assert refunds["tripped"] == []


def test_metrics_export_the_slo_gauges_and_the_firing_page(outage: OutageRun) -> None:
    during, after = outage.during["metrics"], outage.after["metrics"]
    slo = {"slo": CREATE_PAYMENT, "service": "payments"}
    assert sample(during, "slo_alert_firing", **slo, severity="page") == 1.0
    assert sample(during, "slo_alert_firing", **slo, severity="ticket") == 1.0
    assert sample(during, "slo_objective_ratio", **slo) == 0.999
    burn = sample(during, "slo_burn_rate", **slo, window="5m")
    assert burn is not None and burn > 14.4
    # The 30 d budget over the traffic seen: 3 days of history, then 4,000 s of live ticks
    # until the snapshot, 10 requests/s, 3,000 of them bad. Five minutes of a total outage
    # overspend three days' worth of budget.
    requests = (3 * 86400 + 4000) * 10
    budget = sample(during, "slo_error_budget_remaining_ratio", **slo)
    assert budget == pytest.approx(1 - (3000 / requests) / 0.001)
    assert sample(during, "bytewatch_notifications_sent_total", receiver="oncall") == 1.0
    assert sample(after, "slo_alert_firing", **slo, severity="page") is None
    assert (
        sample(after, "bytewatch_notifications_sent_total", receiver="oncall") == 3.0
    )  # + the ticket, uninhibited


# --- silences through the API ----------------------------------------------------------------


SILENCE = {
    "matchers": [f'slo="{CREATE_PAYMENT}"', 'severity="page"'],
    "duration": "2h",
    "created_by": "sre@example.com",
    "comment": "known issue, fix rolling out",
}


@pytest.fixture
def history(tmp_path: Path) -> Path:
    write_history(tmp_path / "bytewatch.db", T0 - 600)
    return tmp_path


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no Authorization header"),
        pytest.param({"Authorization": "Bearer not-the-token"}, id="a wrong token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="the token in another scheme"),
    ],
)
def test_creating_a_silence_without_the_bearer_token_is_refused_with_401(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    clock = Clock()
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(tmp_path, receiver, clock, token=TOKEN)
        try:
            client = TestClient(service.api_app())
            response = client.post("/api/v1/silences", json=SILENCE, headers=headers)
            assert response.status_code == 401
            assert response.json() == {"detail": "a valid bearer token is required"}
            assert response.headers["www-authenticate"] == "Bearer"
            assert client.get("/api/v1/silences").json() == {"silences": []}
        finally:
            service.close()


def test_without_a_configured_token_no_silence_can_be_created_at_all(tmp_path: Path) -> None:
    clock = Clock()
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(tmp_path, receiver, clock)
        try:
            client = TestClient(service.api_app())
            response = client.post(
                "/api/v1/silences", json=SILENCE, headers={"Authorization": "Bearer anything"}
            )
            assert response.status_code == 403
            assert "api.token" in response.json()["detail"]
        finally:
            service.close()


def test_a_silenced_page_sends_nothing_shows_as_silenced_and_is_sent_once_expired(
    history: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock(T0 - 600)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    seen: list[str] = []
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(history, receiver, clock, token=TOKEN)
        try:
            run = Run(service, clock, traffic(T0 - 600, T0 + 3600, outages=[OUTAGE]))
            client = run.api()
            created = client.post("/api/v1/silences", json=SILENCE, headers=auth)
            seen.append(created.text)
            assert created.status_code == 201
            silence = created.json()
            assert (silence["state"], silence["created_by"]) == ("active", "sre@example.com")

            run.until(OUTAGE.start + 120)
            assert ("page", "inactive", "firing") in [t[1:] for t in run.transitions()]
            assert receiver.received == []
            alerts = client.get("/api/v1/alerts")
            seen.append(alerts.text)
            page = alerts.json()["alerts"][0]
            assert (page["severity"], page["state"], page["silenced"]) == ("page", "firing", True)

            expired = client.delete(f"/api/v1/silences/{silence['id']}", headers=auth)
            seen.append(expired.text)
            assert (expired.status_code, expired.json()["state"]) == (200, "expired")
            expired_at = clock.now
            run.until(expired_at + GROUP_INTERVAL_S)
            [told] = receiver.received
            assert page_alerts(told.json()) == [(CREATE_PAYMENT, "page", "firing")]
            assert told.at <= datetime.fromtimestamp(expired_at + GROUP_INTERVAL_S, UTC)
            again = client.delete(f"/api/v1/silences/{silence['id']}", headers=auth)
            assert again.status_code == 409
            for path in ("/api/v1/silences", "/api/v1/alerts", "/api/v1/slos", "/metrics"):
                seen.append(client.get(path).text)
            seen.append(client.get("/openapi.json").text)
            seen += [repr(service), repr(service.outbox), repr(service.config.settings)]
        finally:
            service.close()
    secrets = (TOKEN, WEBHOOK_PATH)
    records = [f"{r.getMessage()} {vars(r)}" for r in caplog.records]
    assert records, "the service logs its transitions and notifications"
    assert [text for text in seen + records if any(s in text for s in secrets)] == []


def test_the_configuration_repr_carries_no_secret_from_the_environment(tmp_path: Path) -> None:
    config, _ = load(environment(tmp_path, "http://127.0.0.1:9" + WEBHOOK_PATH, token=TOKEN))
    assert TOKEN not in repr(config)
    assert WEBHOOK_PATH not in repr(config)


# --- reload -----------------------------------------------------------------------------------


def test_a_reload_keeps_counts_and_alert_state_and_resolves_the_alert_of_a_removed_slo(
    tmp_path: Path,
) -> None:
    routes = ("/payments", REFUNDS)
    write_history(tmp_path / "bytewatch.db", T0 - 600, routes=routes)
    clock = Clock(T0 - 600)
    outages = [OUTAGE, Outage(OUTAGE.start, OUTAGE.end, REFUNDS)]
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(tmp_path, receiver, clock)
        try:
            run = Run(service, clock, traffic(T0 - 600, T0 + 3600, routes=routes, outages=outages))
            run.until(OUTAGE.start + 120)
            firing = {(a.slo, a.severity) for a in firing_alerts(service, clock)}
            assert firing == {(CREATE_PAYMENT, Severity.PAGE), (REFUNDS_SLO, Severity.PAGE)}
            [before] = [a for a in firing_alerts(service, clock) if a.slo == CREATE_PAYMENT]
            windows = evaluation_windows(run.reports[-1])
            told = len(receiver.received)

            config, slos = load(
                environment(tmp_path, receiver.url + WEBHOOK_PATH, slo_files=["slos-reloaded.yaml"])
            )
            service.reload(config, slos)
            report = service.tick()  # the same instant: no new traffic
            assert evaluation_windows(report) == {
                (CREATE_PAYMENT, w): counts
                for (slo, w), counts in windows.items()
                if slo == CREATE_PAYMENT
            }
            [listed] = TestClient(service.api_app()).get("/api/v1/slos").json()["slos"]
            assert (listed["id"], listed["objective"]) == (CREATE_PAYMENT, 0.995)

            run.until(clock.now + GROUP_INTERVAL_S)
            [after] = firing_alerts(service, clock)
            assert (after.slo, after.severity) == (CREATE_PAYMENT, Severity.PAGE)
            assert after.incident_started_at == before.incident_started_at
            notified = [page_alerts(r.json()) for r in receiver.received[told:]]
            # Groups are per SLO and severity: only the removed SLO's group has news.
            assert notified == [[(REFUNDS_SLO, "page", "resolved")]]
        finally:
            service.close()


def test_a_receiver_added_by_a_reload_gets_the_pages_routed_to_it(history: Path) -> None:
    clock = Clock(T0 - 600)
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(history, receiver, clock)
        try:
            run = Run(service, clock, traffic(T0 - 600, T0 + 3600, outages=[OUTAGE]))
            run.until(OUTAGE.start - 100)
            receivers = (
                f"[{{name: oncall, type: webhook, url: {receiver.url}{WEBHOOK_PATH}}}, "
                f"{{name: payments-team, type: webhook, url: {receiver.url}/payments-team}}]"
            )
            config, slos = load(
                environment(
                    history,
                    receiver.url + WEBHOOK_PATH,
                    alerting__receivers=receivers,
                    alerting__route="{receiver: payments-team}",
                )
            )
            service.reload(config, slos)
            run.until(OUTAGE.start + 120)
            assert [r.path for r in receiver.received] == ["/payments-team"]
        finally:
            service.close()


def firing_alerts(service: Service, clock: Clock) -> list[Any]:
    return [
        view.alert
        for view in service.pipeline.alerts(clock.moment())
        if view.alert.state is AlertState.FIRING and view.alert.severity is Severity.PAGE
    ]


def evaluation_windows(report: TickReport) -> dict[tuple[str, float], tuple[int, int]]:
    return {
        (e.slo.id, w.window_s): (w.good, w.total) for e in report.evaluations for w in e.windows
    }


# --- liveness --------------------------------------------------------------------------------


def test_healthz_is_ok_before_the_first_tick_and_unhealthy_when_ticks_stop_coming(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(tmp_path, receiver, clock)
        try:
            client = TestClient(service.api_app())
            assert client.get("/healthz").json() == {"status": "ok", "problems": []}
            clock.now += 3 * TICK_S + 1
            response = client.get("/healthz")
            assert response.status_code == 503
            assert response.json()["problems"] == ["the evaluator has not completed a tick"]
            service.tick()
            assert client.get("/healthz").status_code == 200
        finally:
            service.close()


def test_healthz_turns_unhealthy_when_ticks_stop_after_the_first_one(tmp_path: Path) -> None:
    """The Kubernetes liveness probe reads /healthz: a wedged evaluator must show there."""
    clock = Clock()
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(tmp_path, receiver, clock)
        try:
            client = TestClient(service.api_app())
            service.tick()
            clock.now += 3 * TICK_S
            assert client.get("/healthz").status_code == 200
            clock.now += 1
            response = client.get("/healthz")
            assert response.status_code == 503
            assert response.json()["problems"] == ["the evaluator has not completed a tick for 31s"]
        finally:
            service.close()


# --- crashes ------------------------------------------------------------------------------------


class Crash(Exception):
    """The process dying at a chosen instruction."""


def test_a_crash_right_after_a_page_is_queued_neither_loses_the_incident_nor_pages_twice(
    history: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(T0 - 600)
    exchanges = traffic(T0 - 600, T0 + 3600, outages=[OUTAGE])
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(history, receiver, clock)
        queue = service.outbox.enqueue_many

        def queue_then_die(notifications: Any, now: datetime) -> int:
            queue(notifications, now)  # committed to the outbox
            raise Crash  # and the process is gone before anything else is written

        monkeypatch.setattr(service.outbox, "enqueue_many", queue_then_die)
        run = Run(service, clock, exchanges)
        with pytest.raises(Crash):
            run.until(OUTAGE.start + 120)
        crashed_at = clock.now
        service.close()

        restarted = start_service(history, receiver, clock)
        try:
            again = Run(restarted, clock, exchanges)
            again.until(crashed_at + GROUP_INTERVAL_S)
            [page] = receiver.received
            assert page_alerts(page.json()) == [(CREATE_PAYMENT, "page", "firing")]
            assert page.json()["alerts"][0]["startsAt"] == rfc3339(crashed_at)
            [alert] = firing_alerts(restarted, clock)
            assert alert.incident_started_at == datetime.fromtimestamp(crashed_at, UTC)
        finally:
            restarted.close()


# --- cost during an incident ---------------------------------------------------------------------


def test_a_burning_slo_reads_its_top_error_types_from_the_store_once_a_minute_not_every_tick(
    history: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Top error types are a database query (about 5 ms); on every tick of every burning SLO
    they made the tick of a 50-SLO incident 250 ms slower (bench/evaluator.py)."""
    clock = Clock(T0 - 600)
    with RecordingReceiver(clock=clock.moment) as receiver:
        service = start_service(history, receiver, clock)
        try:
            read = service.evaluator.top_error_types
            reads: list[float] = []

            def counted(slo: Any, window_s: float, now: float) -> Any:
                reads.append(now)
                return read(slo, window_s, now)

            monkeypatch.setattr(service.evaluator, "top_error_types", counted)
            run = Run(service, clock, traffic(T0 - 600, T0 + 3600, outages=[OUTAGE]))
            run.until(OUTAGE.start + 600)
            burning_ticks = len(run.tripped_at(SloSeverity.PAGE))
            assert burning_ticks > 50
            assert len(reads) <= 600 / 60 + 1
            [page, _] = run.api().get("/api/v1/alerts").json()["alerts"]
            assert page["top_error_types"] == [["card_declined", 3000]]
        finally:
            service.close()
