"""The outbox: nothing lost, nothing paged twice, retries that respect the receiver.

Receivers are real HTTP servers on loopback that record what they get, stamped with the test's
simulated clock; the outbox is driven event by event (jump to the next due time, deliver), so
a ten-minute outage takes milliseconds and every request's time is known exactly.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.alertmanager import AlertmanagerNotifier
from alerts.config import AlertmanagerReceiver, PagerDutyReceiver, WebhookReceiver
from alerts.errors import OutboxError
from alerts.model import Notification, NotifyReason
from alerts.notifier import Delivered, Notifier, build_test_notification
from alerts.outbox import (
    Outbox,
    RetryPolicy,
    backoff_s,
    notification_from_json,
    notification_to_json,
    retry_delay_s,
)
from alerts.pagerduty import PagerDutyNotifier
from alerts.webhook import WebhookNotifier
from tests.alerts.receiver import OK, Received, RecordingReceiver, Reply
from tests.alerts.samples import (
    T0,
    SimulatedClock,
    alert,
    alert_names,
    notification,
    numbered,
    resolved,
)

SEED = 7
DOWN = Reply(status=503, body=b"down for maintenance")


# --- when to retry (pure) ------------------------------------------------------------------


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("failures", "draw", "expected"),
    [
        pytest.param(1, 0.0, 1.0, id="the first retry waits the initial backoff"),
        pytest.param(2, 0.0, 2.0, id="each failure doubles it"),
        pytest.param(5, 0.0, 16.0, id="the fifth waits sixteen seconds"),
        pytest.param(9, 0.0, 256.0, id="the ninth waits 256 seconds"),
        pytest.param(10, 0.0, 300.0, id="then it stays at the cap"),
        pytest.param(10_000, 0.0, 300.0, id="a very long outage does not overflow"),
        pytest.param(5, 1.0, 8.0, id="jitter takes off up to half"),
        pytest.param(5, 0.5, 12.0, id="jitter is spread between"),
    ],
)
def test_backoff_is_exponential_capped_and_jittered(
    failures: int, draw: float, expected: float
) -> None:
    assert backoff_s(RetryPolicy(), failures, FixedRandom(draw)) == expected


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        pytest.param(None, 4.0, id="no Retry-After: the backoff"),
        pytest.param(30.0, 30.0, id="a longer Retry-After wins"),
        pytest.param(1.0, 4.0, id="a shorter Retry-After does not shorten the backoff"),
        pytest.param(86400.0, 3600.0, id="an absurd Retry-After is capped at an hour"),
    ],
)
def test_retry_after_is_a_floor_under_the_backoff(
    retry_after: float | None, expected: float
) -> None:
    assert retry_delay_s(RetryPolicy(), 3, retry_after, FixedRandom(0.0)) == expected


# --- what is stored ------------------------------------------------------------------------


def stored_kinds() -> list[Any]:
    cases = [pytest.param(notification(alert(n)), id=f"{n} firing") for n in alert_names()]
    cases += [
        pytest.param(notification(resolved(alert(n))), id=f"{n} resolved") for n in alert_names()
    ]
    cases.append(pytest.param(build_test_notification("team", T0), id="test notification"))
    return cases


@pytest.mark.parametrize("note", stored_kinds())
def test_a_stored_notification_reads_back_equal(note: Notification) -> None:
    assert notification_from_json(notification_to_json(note)) == note


# --- a rig: a receiver, an outbox, a simulated clock --------------------------------------


@dataclass
class Rig:
    path: Path
    clock: SimulatedClock
    receiver: RecordingReceiver
    client: httpx.Client
    notifiers: dict[str, Notifier] = field(default_factory=dict)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = self.open()

    def open(self) -> Outbox:
        return Outbox(
            self.path, self.notifiers, self.client, policy=self.policy, rng=random.Random(SEED)
        )

    def restart(self) -> Outbox:
        """What a process restart leaves: the database, nothing from memory."""
        self.outbox.close()
        self.outbox = self.open()
        return self.outbox

    def drain(self, until_s: float = 7200.0, before_each: Callable[[], None] | None = None) -> None:
        """Jump to each due time and deliver, until nothing is due or ``until_s`` from now."""
        deadline = self.clock() + timedelta(seconds=until_s)
        for _ in range(10_000):
            due = self.outbox.next_due_at()
            if due is None or due > deadline:
                return
            if due > self.clock():
                self.clock.set(due)
            if before_each is not None:
                before_each()
            self.outbox.deliver_due(self.clock())
        raise AssertionError("the outbox keeps saying something is due but sends nothing")

    def times(self, received: list[Received] | None = None) -> list[float]:
        """When each request arrived, in seconds after T0."""
        got = self.receiver.received if received is None else received
        return [(r.at - T0).total_seconds() for r in got]


def webhook(name: str, url: str, **extra: Any) -> WebhookNotifier:
    return WebhookNotifier(
        WebhookReceiver.model_validate({"name": name, "type": "webhook", "url": url, **extra})
    )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = SimulatedClock()
    with RecordingReceiver(clock=clock) as receiver, httpx.Client() as client:
        built = Rig(
            path=tmp_path / "outbox.db",
            clock=clock,
            receiver=receiver,
            client=client,
            notifiers={"team": webhook("team", f"{receiver.url}/team", timeout_s=0.3)},
        )
        yield built
        built.outbox.close()


def group_of(got: Received) -> str:
    return str(got.json()["groupKey"])


# --- delivery ---------------------------------------------------------------------------------


def test_a_2xx_delivers_once_and_is_done(rig: Rig) -> None:
    note = notification(alert("checkout_fast_burn"))
    assert rig.outbox.enqueue(note, rig.clock())
    rig.drain()
    (got,) = rig.receiver.received
    assert got.json()["alerts"][0]["fingerprint"] == alert("checkout_fast_burn").fingerprint
    (record,) = rig.outbox.records()
    assert (record.status, record.attempts, record.last_error) == ("delivered", 1, None)
    assert rig.outbox.next_due_at() is None


def test_enqueueing_the_same_notification_again_sends_nothing_more(rig: Rig) -> None:
    note = notification(alert("checkout_fast_burn"))
    assert rig.outbox.enqueue(note, rig.clock()) is True
    assert rig.outbox.enqueue(note, rig.clock()) is False
    rig.drain()
    assert rig.outbox.enqueue(note, rig.clock() + timedelta(hours=1)) is False
    rig.restart()
    assert rig.outbox.enqueue(note, rig.clock()) is False, "a restart forgets nothing"
    rig.drain()
    assert len(rig.receiver.received) == 1


def test_a_final_rejection_is_kept_logged_and_counted_not_retried(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.receiver.answer(Reply(400, b"invalid_payload"))
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    with caplog.at_level(logging.ERROR, logger="alerts.outbox"):
        rig.drain()
    rig.clock.advance(3600)
    rig.outbox.deliver_due(rig.clock())
    assert len(rig.receiver.received) == 1
    (record,) = rig.outbox.records()
    assert record.status == "failed"
    assert record.last_error == "receiver 'team': HTTP 400: invalid_payload"
    assert "HTTP 400: invalid_payload" in caplog.text
    stats = rig.outbox.stats(rig.clock()).for_receiver("team")
    assert (stats.sent, stats.retried, stats.failed_final, stats.queue_depth) == (0, 0, 1, 0)


def test_a_5xx_is_retried_with_exponential_backoff_until_it_succeeds(rig: Rig) -> None:
    rig.receiver.answer(DOWN, DOWN, DOWN)
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    rig.drain()
    draws = random.Random(SEED)
    gaps = [backoff_s(RetryPolicy(), failures, draws) for failures in (1, 2, 3)]
    expected = [0.0, gaps[0], gaps[0] + gaps[1], gaps[0] + gaps[1] + gaps[2]]
    assert rig.times() == pytest.approx(expected)
    assert [r.status for r in rig.receiver.received] == [503, 503, 503, 200]
    assert 0.5 <= gaps[0] <= 1 and 1 <= gaps[1] <= 2 and 2 <= gaps[2] <= 4
    stats = rig.outbox.stats(rig.clock()).for_receiver("team")
    assert (stats.sent, stats.retried, stats.failed_final) == (1, 3, 0)
    assert rig.outbox.records()[0].attempts == 4


def test_a_429_waits_exactly_the_seconds_it_asks(rig: Rig) -> None:
    rig.receiver.answer(Reply(429, b"rate_limited", headers=(("Retry-After", "30"),)))
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    rig.drain()
    assert rig.times() == [0.0, 30.0]
    assert [r.status for r in rig.receiver.received] == [429, 200]


def test_a_retry_after_date_is_honoured_against_the_injected_clock(rig: Rig) -> None:
    rig.clock.advance(5)
    until = format_datetime(rig.clock() + timedelta(seconds=45), usegmt=True)
    rig.receiver.answer(Reply(503, b"", headers=(("Retry-After", until),)))
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    rig.drain()
    assert rig.times() == [5.0, 50.0]


def test_a_receiver_that_hangs_times_out_and_is_retried(rig: Rig) -> None:
    rig.receiver.answer(Reply(hang=True))
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    started = time.monotonic()
    rig.drain()
    assert time.monotonic() - started < 3
    assert [r.status for r in rig.receiver.received] == [None, 200]
    (record,) = rig.outbox.records()
    assert (record.status, record.attempts) == ("delivered", 2)


def test_a_resolution_never_overtakes_the_firing_it_resolves(rig: Rig) -> None:
    firing = alert("checkout_fast_burn")
    rig.receiver.answer(DOWN, DOWN)
    rig.outbox.enqueue(notification(firing), rig.clock())
    rig.clock.advance(0.1)
    rig.outbox.enqueue(notification(resolved(firing)), rig.clock())
    rig.drain()
    got = rig.receiver.received
    assert [(r.json()["status"], r.status) for r in got] == [
        ("firing", 503),
        ("firing", 503),
        ("firing", 200),
        ("resolved", 200),
    ]


def test_a_failing_receiver_is_probed_once_per_backoff_not_once_per_notification(
    rig: Rig,
) -> None:
    rig.receiver.responder = lambda r: DOWN if rig.clock.elapsed() < 60 else OK
    crowd = [numbered(alert("search_slow_burn"), i) for i in range(5)]
    rig.outbox.enqueue_many([notification(a) for a in crowd], rig.clock())
    rig.drain()
    during = [r for r in rig.receiver.received if r.status == 503]
    after = [r for r in rig.receiver.received if r.status == 200]
    assert len({r.at for r in during}) == len(during), "one request per attempt time"
    assert len(during) <= 7
    assert sorted(group_of(r) for r in after) == sorted(notification(a).group_key for a in crowd)
    assert len({r.at for r in after}) == 1, "all five go out together once it is back"


def test_a_healthy_receiver_is_not_held_up_by_a_failing_one(rig: Rig, tmp_path: Path) -> None:
    with RecordingReceiver(clock=rig.clock) as healthy:
        healthy_notifier = webhook("healthy", f"{healthy.url}/h")
        rig.notifiers["healthy"] = healthy_notifier
        rig.restart()
        rig.receiver.responder = lambda r: DOWN
        rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
        rig.outbox.enqueue(notification(alert("search_slow_burn"), receiver="healthy"), rig.clock())
        rig.drain(until_s=100)
        assert rig.times(healthy.received) == [0.0]
        assert len(rig.receiver.received) >= 5


def test_a_receiver_down_for_ten_minutes_gets_everything_once_it_is_back(
    rig: Rig, tmp_path: Path
) -> None:
    """Nothing listens on the port for ten simulated minutes (connection refused), then a
    receiver starts there. Every notification arrives once, at the first retry after 600s."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down_url = f"http://127.0.0.1:{port}/team"
    rig.notifiers["team"] = webhook("team", down_url)
    rig.restart()
    later = RecordingReceiver(clock=rig.clock)
    attempts: list[float] = []

    notes = [notification(numbered(alert("checkout_fast_burn"), i)) for i in range(3)]

    def before_each() -> None:
        attempts.append(rig.clock.elapsed())
        if rig.clock.elapsed() >= 200 and len(rig.outbox.records()) == 1:
            rig.outbox.enqueue_many(notes[1:], rig.clock())  # more arrive during the outage
        if rig.clock.elapsed() >= 600 and later._server is None:
            later.start(port)

    rig.outbox.enqueue(notes[0], rig.clock())
    try:
        rig.drain(before_each=before_each)
        got = later.received
    finally:
        later.stop()

    draws = random.Random(SEED)
    expected, t = [0.0], 0.0
    failures = 0
    while t < 600:
        failures += 1
        t += backoff_s(RetryPolicy(), failures, draws)
        expected.append(t)
    assert attempts == pytest.approx(expected), "the backoff schedule, exactly"
    back = expected[-1]
    assert 600 <= back <= 900, "the first attempt after the outage, within one max backoff"
    assert [group_of(r) for r in got] == [n.group_key for n in notes], "in order, once each"
    assert rig.times(got) == pytest.approx([back] * 3)
    stats = rig.outbox.stats(rig.clock())
    assert (stats.sent, stats.failed_final, stats.queue_depth) == (3, 0, 0)
    assert stats.retried == len(expected) - 1


def test_queue_depth_and_oldest_age_describe_what_waits(rig: Rig) -> None:
    rig.receiver.responder = lambda r: DOWN
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    rig.clock.advance(30)
    rig.outbox.enqueue(notification(alert("search_slow_burn")), rig.clock())
    rig.drain(until_s=90)
    stats = rig.outbox.stats(T0 + timedelta(seconds=90))
    assert stats.queue_depth == 2
    assert stats.oldest_age_s == 90.0
    assert stats.sent == 0 and stats.retried >= 3


def test_notifications_waiting_at_a_restart_are_sent_after_it_keeping_their_backoff(
    rig: Rig,
) -> None:
    rig.receiver.answer(DOWN)
    rig.outbox.enqueue_many(
        [notification(numbered(alert("search_slow_burn"), i)) for i in range(3)], rig.clock()
    )
    rig.outbox.deliver_due(rig.clock())
    (record, *_) = rig.outbox.records()
    waits_until = record.next_attempt_at
    outbox = rig.restart()
    assert outbox.deliver_due(rig.clock()).attempted == 0, "the backoff survives the restart"
    assert outbox.next_due_at() == waits_until
    rig.drain()
    assert [r.status for r in rig.receiver.received] == [503, 200, 200, 200]
    assert all(r.status == "delivered" for r in outbox.records())


def test_an_incident_never_pages_twice_through_retries_restarts_and_repeats(rig: Rig) -> None:
    """The receiver plays PagerDuty: it folds triggers by dedup_key into incidents."""
    incidents: dict[str, list[str]] = {}

    def pagerduty(request: Received) -> Reply:
        event = request.json()
        incidents.setdefault(event["dedup_key"], []).append(event["event_action"])
        return Reply(202, b'{"status":"success"}')

    rig.notifiers["oncall"] = PagerDutyNotifier(
        PagerDutyReceiver.model_validate(
            {
                "name": "oncall",
                "type": "pagerduty",
                "routing_key": "k" * 32,
                "url": f"{rig.receiver.url}/v2/enqueue",
            }
        )
    )
    rig.restart()
    firing = alert("checkout_fast_burn")
    first = notification(firing, receiver="oncall")
    rig.receiver.answer(DOWN, Reply(500, b""))
    rig.receiver.responder = pagerduty
    rig.outbox.enqueue(first, rig.clock())
    rig.drain()
    rig.restart()
    rig.outbox.enqueue(first, rig.clock())  # the evaluator re-emits after its own restart
    repeat = replace(first, reason=NotifyReason.REPEAT, created_at=T0 + timedelta(hours=4))
    rig.clock.set(T0 + timedelta(hours=4))
    rig.outbox.enqueue(repeat, rig.clock())
    rig.outbox.enqueue(notification(resolved(firing), receiver="oncall"), rig.clock())
    rig.drain()
    assert incidents == {firing.incident_key: ["trigger", "trigger", "resolve"]}
    assert [r.status for r in rig.receiver.received] == [503, 500, 202, 202, 202]


def test_a_notification_for_an_unconfigured_receiver_fails_for_good(rig: Rig) -> None:
    rig.outbox.enqueue(notification(alert("checkout_fast_burn"), receiver="gone"), rig.clock())
    rig.drain()
    (record,) = rig.outbox.records()
    assert record.status == "failed"
    assert record.last_error == "receiver 'gone': no receiver of this name is configured"


def test_a_crashing_notifier_fails_its_notification_and_spares_the_rest(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    @dataclass(frozen=True)
    class Broken:
        name: str = "broken"
        resend_interval_s: float | None = None

        def send(self, notification: Notification, client: httpx.Client) -> Delivered:
            raise ZeroDivisionError("bug")

    rig.notifiers["broken"] = Broken()
    rig.restart()
    rig.outbox.enqueue(notification(alert("checkout_fast_burn"), receiver="broken"), rig.clock())
    rig.outbox.enqueue(notification(alert("search_slow_burn")), rig.clock())
    with caplog.at_level(logging.ERROR):
        rig.drain()
    assert [r.status for r in rig.outbox.records()] == ["failed", "delivered"]
    assert "notifier crashed (ZeroDivisionError)" in (rig.outbox.records()[0].last_error or "")


def test_an_old_notification_is_given_up_only_when_the_policy_says_so(rig: Rig) -> None:
    rig.policy = RetryPolicy(give_up_after_s=60)
    rig.restart()
    rig.receiver.responder = lambda r: DOWN
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    rig.drain()
    (record,) = rig.outbox.records()
    assert record.status == "failed"
    assert record.last_error is not None and record.last_error.endswith("(gave up: too old)")
    assert rig.clock.elapsed() >= 60


def test_alertmanager_gets_a_firing_group_again_every_resend_interval_until_resolved(
    rig: Rig,
) -> None:
    rig.notifiers["am"] = AlertmanagerNotifier(
        AlertmanagerReceiver(
            name="am", type="alertmanager", url=rig.receiver.url, resend_interval_s=60
        ),
        rig.clock,
    )
    rig.restart()
    firing = alert("checkout_fast_burn")
    rig.outbox.enqueue(notification(firing, receiver="am"), rig.clock())
    rig.drain(until_s=200)
    rig.clock.set(T0 + timedelta(seconds=200))
    rig.outbox.enqueue(notification(resolved(firing), receiver="am"), rig.clock())
    rig.drain()
    got = rig.receiver.received
    assert rig.times() == [0.0, 60.0, 120.0, 180.0, 200.0]
    ends = [datetime.fromisoformat(r.json()[0]["endsAt"]) for r in got]
    assert ends[:4] == [T0 + timedelta(seconds=s + 240) for s in (0, 60, 120, 180)]
    assert ends[4] == firing.incident_started_at + timedelta(minutes=42)
    rig.clock.advance(3600)
    assert rig.outbox.deliver_due(rig.clock()).attempted == 0
    assert rig.outbox.next_due_at() is None


def test_no_secret_reaches_the_database_or_the_logs(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = f"{rig.receiver.url}/hooks/T000/B000/WEBHOOKSECRET"
    rig.notifiers["team"] = webhook(
        "team",
        secret_url,
        hmac_secret="HMACSECRET",
        headers={"Authorization": "Bearer TOKENSECRET"},
    )
    rig.restart()
    rig.receiver.answer(Reply(500, b"echoing Bearer TOKENSECRET back"), Reply(400, b"no"))
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    with caplog.at_level(logging.DEBUG):
        rig.drain()
    rig.outbox.close()
    stored = b"".join(p.read_bytes() for p in rig.path.parent.glob("outbox.db*"))
    logged = caplog.text + json.dumps([r.getMessage() for r in caplog.records])
    errors = json.dumps([r.last_error for r in rig.open().records()])
    for secret in ("WEBHOOKSECRET", "HMACSECRET", "TOKENSECRET", "/hooks/T000"):
        assert secret.encode() not in stored
        assert secret not in logged
        assert secret not in errors
    assert "echoing <redacted> back" in logged


def test_a_file_that_is_not_an_outbox_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database, " * 100)
    with httpx.Client() as client, pytest.raises(OutboxError, match=r"notes\.txt: cannot open"):
        Outbox(path, {}, client)


def test_an_outbox_from_a_newer_bytewatch_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "outbox.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with httpx.Client() as client, pytest.raises(OutboxError, match="schema version 99"):
        Outbox(path, {}, client)


def test_the_run_loop_delivers_on_enqueue_and_stops_when_asked(tmp_path: Path) -> None:
    with RecordingReceiver() as receiver, httpx.Client() as client:
        outbox = Outbox(tmp_path / "o.db", {"team": webhook("team", f"{receiver.url}/t")}, client)
        stop = threading.Event()
        loop = threading.Thread(
            target=outbox.run, args=(stop, lambda: datetime.now(UTC)), kwargs={"max_idle_s": 5}
        )
        loop.start()
        try:
            time.sleep(0.05)
            outbox.enqueue(notification(alert("checkout_fast_burn")), datetime.now(UTC))
            (got,) = receiver.wait_for(1, timeout_s=2)
        finally:
            stop.set()
            outbox._wake.set()
            loop.join(timeout=5)
        assert not loop.is_alive()
        assert got.json()["status"] == "firing"
        outbox.close()


def test_pruning_forgets_finished_notifications_but_never_waiting_ones(rig: Rig) -> None:
    rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    rig.drain()
    rig.receiver.responder = lambda r: DOWN
    rig.outbox.enqueue(notification(alert("search_slow_burn")), rig.clock())
    rig.outbox.deliver_due(rig.clock())
    week_later = rig.clock() + timedelta(days=7, seconds=1)
    assert rig.outbox.prune(rig.clock() + timedelta(days=6)) == 0
    assert rig.outbox.prune(week_later) == 1
    assert [r.status for r in rig.outbox.records()] == ["pending"]


def test_a_database_error_is_an_outbox_error_naming_the_file(rig: Rig) -> None:
    rig.outbox.close()
    with pytest.raises(OutboxError, match=r"outbox\.db: Cannot operate on a closed database"):
        rig.outbox.enqueue(notification(alert("checkout_fast_burn")), rig.clock())
    rig.outbox = rig.open()
