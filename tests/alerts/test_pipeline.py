"""The alert pipeline: evaluations in, notifications queued, state kept across restarts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.model import AlertState, Notification, NotifyReason, Severity, WindowBurn
from alerts.pipeline import AlertPipeline, AlertStateStore, default_timing_for
from alerts.routing import RootRouteConfig, build_route_tree, parse_matchers
from alerts.silences import SilenceStore
from alerts.state import BurnEvaluation

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TREE = build_route_tree(RootRouteConfig(receiver="oncall", group_by=["slo"]), ["oncall"])


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[datetime, Notification]] = []

    def __call__(self, notifications: Sequence[Notification], now: datetime) -> int:
        self.sent.extend((now, n) for n in notifications)
        return len(notifications)


def evaluation(holds: bool, severity: Severity = Severity.PAGE, slo: str = "pay") -> BurnEvaluation:
    burn = 20.0 if holds else 0.5
    return BurnEvaluation(
        slo=slo,
        severity=severity,
        condition_holds=holds,
        service="payments",
        objective=0.999,
        period_s=30 * 86400,
        burns=(WindowBurn(3600, 300, 14.4, burn, burn),),
        budget_remaining=0.9,
    )


def pipeline(
    path: Path | None, queue: Queue, hold_s: float = 0.0, silences: SilenceStore | None = None
) -> AlertPipeline:
    timing = default_timing_for(
        lambda slo, severity: hold_s,
        {Severity.PAGE: timedelta(minutes=1), Severity.TICKET: timedelta(minutes=1)},
    )
    return AlertPipeline(
        store=AlertStateStore(path), tree=TREE, timing_for=timing, enqueue=queue, silences=silences
    )


def run(p: AlertPipeline, holds_by_second: dict[int, bool], until_s: int) -> None:
    holds = False
    for second in range(0, until_s, 10):
        holds = holds_by_second.get(second, holds)
        now = START + timedelta(seconds=second)
        p.observe([evaluation(holds), evaluation(holds, Severity.TICKET)], now)


def test_a_burn_pages_once_at_the_tick_that_trips_and_resolves_at_the_next_group_flush() -> None:
    queue = Queue()
    run(pipeline(None, queue), {60: True, 120: False}, until_s=400)
    sent = [
        (int((at - START).total_seconds()), n.reason, n.alerts[0].severity) for at, n in queue.sent
    ]
    # The ticket of the same SLO is inhibited while its page fires. The page resolves one
    # minute (keep_firing_for) after the burn stops, and the group tells the receiver at its
    # next flush, group_interval (5 min, as in Alertmanager) after the first notification.
    assert sent == [
        (60, NotifyReason.FIRING, Severity.PAGE),
        (360, NotifyReason.RESOLVED, Severity.PAGE),
    ]


def test_a_hold_keeps_an_alert_pending_until_it_has_held_that_long() -> None:
    queue = Queue()
    p = pipeline(None, queue, hold_s=30)
    run(p, {0: True}, until_s=30)
    assert queue.sent == []
    assert [v.alert.state for v in p.alerts(START + timedelta(seconds=20))] == [
        AlertState.PENDING,
        AlertState.PENDING,
    ]
    run(p, {0: True}, until_s=40)
    assert [n.reason for _, n in queue.sent] == [NotifyReason.FIRING]


def test_a_restart_keeps_the_incident_and_does_not_page_again(tmp_path: Path) -> None:
    queue = Queue()
    first = pipeline(tmp_path / "alerts.db", queue)
    first.observe([evaluation(True)], START)
    first.close()
    again = pipeline(tmp_path / "alerts.db", queue)
    again.observe([evaluation(True)], START + timedelta(seconds=10))
    assert len(queue.sent) == 1
    [view] = again.alerts(START + timedelta(seconds=10))
    assert view.alert.incident_started_at == START


def test_a_silence_mutes_the_page_but_the_alert_still_shows_as_silenced(tmp_path: Path) -> None:
    queue = Queue()
    silences = SilenceStore(tmp_path / "silences.db", clock=lambda: START)
    silences.create(
        parse_matchers('slo="pay"'),
        ends_at=START + timedelta(hours=1),
        created_by="sre",
        comment="known issue",
    )
    p = pipeline(None, queue, silences=silences)
    p.observe([evaluation(True)], START)
    assert queue.sent == []
    [view] = p.alerts(START)
    assert view.silenced and view.alert.state is AlertState.FIRING


def test_a_removed_slo_takes_its_alerts_with_it() -> None:
    queue = Queue()
    p = pipeline(None, queue)
    p.observe([evaluation(True)], START)
    p.observe([], START + timedelta(seconds=10))
    assert p.alerts(START + timedelta(seconds=10)) == []
    assert p.next_due_at == START + timedelta(minutes=5)
    p.due(START + timedelta(minutes=5))
    assert [n.reason for _, n in queue.sent] == [NotifyReason.FIRING, NotifyReason.RESOLVED]
