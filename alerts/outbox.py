"""The durable outbox: every notification is delivered, once per key, in order per group.

``enqueue`` writes a notification to SQLite before anything is sent; ``deliver_due`` sends what
is due and records the outcome in the same database. So:

* A notification waiting when the process dies (even ``kill -9``) is sent after the restart:
  WAL with ``synchronous=NORMAL`` survives a process crash (not a power cut, which costs the
  last commits and at worst re-sends them).
* Enqueueing is idempotent by ``Notification.dedup_key``, delivered or not: an evaluator that
  re-emits the same incident after a restart adds nothing. Delivery is at least once: a process
  killed between a receiver's 2xx and our commit sends that one notification again, which
  PagerDuty folds by ``dedup_key`` (the incident key), so nobody is paged twice.
* 2xx is done. 429, 5xx, timeouts and connection errors retry with exponential backoff and
  jitter, never sooner than the receiver's ``Retry-After``; a failing receiver is backed off as
  a whole (one probe per backoff, not one request per queued notification). Other 4xx are
  final: logged, counted and kept with their reason.
* Within one (receiver, group) notifications go out in the order they were enqueued: a
  "resolved" never overtakes the "firing" it resolves.
* Receivers that need a still-firing group re-sent (Alertmanager) get it re-sent every
  ``resend_interval_s`` until the group's latest notification is a resolution.

The database holds notifications, never rendered requests: no URL, routing key or token is
stored, and a rotated secret applies to what is already queued. Clock, HTTP client, notifiers
and randomness are injected; ``run`` is the only loop and ``deliver_due`` the unit tests drive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from alerts.errors import (
    DeliveryFailed,
    FinalDeliveryFailure,
    OutboxError,
    RetryableDeliveryFailure,
)
from alerts.model import (
    Alert,
    AlertState,
    Notification,
    NotifyReason,
    Severity,
    WindowBurn,
)
from alerts.notifier import Notifier

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SCHEMA_VERSION = 1
_MAX_EXPONENT = 64


# --- when to try again (pure) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    multiplier: float = 2.0
    jitter: float = 0.5  # the delay is drawn from [nominal * (1 - jitter), nominal]
    max_retry_after_s: float = 3600.0  # a Retry-After beyond this is capped: trust, within reason
    give_up_after_s: float | None = None  # None: a notification is never dropped for its age


def backoff_s(policy: RetryPolicy, failures: int, rng: random.Random) -> float:
    """The wait after ``failures`` consecutive failures (≥ 1), with jitter."""
    exponent = min(max(failures, 1) - 1, _MAX_EXPONENT)
    nominal = min(policy.max_backoff_s, policy.initial_backoff_s * policy.multiplier**exponent)
    return nominal * (1.0 - policy.jitter * rng.random())


def retry_delay_s(
    policy: RetryPolicy, failures: int, retry_after_s: float | None, rng: random.Random
) -> float:
    """Backoff, but never sooner than the receiver asked (up to ``max_retry_after_s``)."""
    delay = backoff_s(policy, failures, rng)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.max_retry_after_s))
    return delay


# --- what is stored: the notification, as JSON --------------------------------------------


def _alert_to_json(alert: Alert) -> dict[str, Any]:
    return {
        "slo": alert.slo,
        "severity": alert.severity.value,
        "state": alert.state.value,
        "labels": [list(pair) for pair in alert.labels],
        "annotations": [list(pair) for pair in alert.annotations],
        "service": alert.service,
        "objective": alert.objective,
        "period_s": alert.period_s,
        "sli": alert.sli,
        "burns": [
            [b.long_window_s, b.short_window_s, b.factor, b.long_burn, b.short_burn]
            for b in alert.burns
        ],
        "budget_remaining": alert.budget_remaining,
        "time_to_exhaustion_s": alert.time_to_exhaustion_s,
        "top_error_types": [list(pair) for pair in alert.top_error_types],
        "incident_started_at": alert.incident_started_at.isoformat(),
        "ended_at": alert.ended_at.isoformat() if alert.ended_at else None,
        "generator_url": alert.generator_url,
    }


def _alert_from_json(data: dict[str, Any]) -> Alert:
    ended_at = data["ended_at"]
    return Alert(
        slo=data["slo"],
        severity=Severity(data["severity"]),
        state=AlertState(data["state"]),
        labels=tuple((str(k), str(v)) for k, v in data["labels"]),
        annotations=tuple((str(k), str(v)) for k, v in data["annotations"]),
        service=data["service"],
        objective=data["objective"],
        period_s=data["period_s"],
        sli=data["sli"],
        burns=tuple(WindowBurn(*b) for b in data["burns"]),
        budget_remaining=data["budget_remaining"],
        time_to_exhaustion_s=data["time_to_exhaustion_s"],
        top_error_types=tuple((str(t), int(c)) for t, c in data["top_error_types"]),
        incident_started_at=datetime.fromisoformat(data["incident_started_at"]),
        ended_at=datetime.fromisoformat(ended_at) if ended_at else None,
        generator_url=data["generator_url"],
    )


def notification_to_json(notification: Notification) -> str:
    return json.dumps(
        {
            "receiver": notification.receiver,
            "reason": notification.reason.value,
            "group_key": notification.group_key,
            "group_labels": [list(pair) for pair in notification.group_labels],
            "alerts": [_alert_to_json(a) for a in notification.alerts],
            "created_at": notification.created_at.isoformat(),
        },
        separators=(",", ":"),
    )


def notification_from_json(text: str) -> Notification:
    data = json.loads(text)
    return Notification(
        receiver=data["receiver"],
        reason=NotifyReason(data["reason"]),
        group_key=data["group_key"],
        group_labels=tuple((str(k), str(v)) for k, v in data["group_labels"]),
        alerts=tuple(_alert_from_json(a) for a in data["alerts"]),
        created_at=datetime.fromisoformat(data["created_at"]),
    )


# --- what the metrics layer reads ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """Counters since this process opened the outbox; queue figures from the database."""

    receiver: str
    sent: int = 0
    retried: int = 0
    failed_final: int = 0
    queue_depth: int = 0
    oldest_age_s: float = 0.0  # age of the oldest pending notification; 0 when none


@dataclass(frozen=True, slots=True)
class OutboxStats:
    receivers: tuple[ReceiverStats, ...]

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.receivers)

    @property
    def retried(self) -> int:
        return sum(r.retried for r in self.receivers)

    @property
    def failed_final(self) -> int:
        return sum(r.failed_final for r in self.receivers)

    @property
    def queue_depth(self) -> int:
        return sum(r.queue_depth for r in self.receivers)

    @property
    def oldest_age_s(self) -> float:
        return max((r.oldest_age_s for r in self.receivers), default=0.0)

    def for_receiver(self, name: str) -> ReceiverStats:
        return next((r for r in self.receivers if r.receiver == name), ReceiverStats(name))


@dataclass(frozen=True, slots=True)
class Round:
    """What one ``deliver_due`` did."""

    sent: int = 0
    retried: int = 0
    failed_final: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.failed_final


@dataclass(slots=True)
class _Counters:
    sent: int = 0
    retried: int = 0
    failed_final: int = 0


@dataclass(slots=True)
class _ReceiverHealth:
    """In memory only: after a restart the stored ``next_attempt_at`` still holds the backoff."""

    failures: int = 0
    blocked_until_us: int = 0  # the epoch: not blocked


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT NOT NULL UNIQUE,
    receiver        TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    notification    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    firing          INTEGER NOT NULL,  -- any alert firing: Alertmanager gets it re-sent
    attempts        INTEGER NOT NULL DEFAULT 0,
    enqueued_us     INTEGER NOT NULL,  -- microseconds since the epoch: exact, unlike floats
    next_attempt_us INTEGER NOT NULL,
    finished_us     INTEGER,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_group ON outbox (receiver, group_key, status, seq);
CREATE INDEX IF NOT EXISTS outbox_latest ON outbox (receiver, group_key, seq);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_us);
"""

_DUE_HEADS = """
SELECT seq, dedup_key, receiver, notification, attempts, enqueued_us FROM outbox AS o
WHERE status = 'pending' AND next_attempt_us <= :now
  AND NOT EXISTS (
      SELECT 1 FROM outbox AS p
      WHERE p.receiver = o.receiver AND p.group_key = o.group_key
        AND p.status = 'pending' AND p.seq < o.seq)
ORDER BY next_attempt_us, seq
LIMIT :limit
"""

# Groups whose latest notification was delivered and still fires, delivered before :before.
# A pending latest one is on its way; a failed one needs a person before anything more.
_FIRING_GROUPS = """
SELECT {columns} FROM outbox AS o
WHERE o.receiver = :receiver AND o.status = 'delivered' AND o.firing = 1
  AND o.finished_us <= :before
  AND o.seq = (SELECT MAX(p.seq) FROM outbox AS p
               WHERE p.receiver = o.receiver AND p.group_key = o.group_key)
"""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FOREVER_US = 2**62


def _us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly: due times must compare equal after a round trip."""
    return (moment - _EPOCH) // _MICROSECOND


def _us_after(moment: datetime, seconds: float) -> int:
    return _us(moment) + round(seconds * 1_000_000)


def _at(us: int) -> datetime:
    return _EPOCH + us * _MICROSECOND


@dataclass(frozen=True, slots=True)
class _Due:
    seq: int
    dedup_key: str
    receiver: str
    notification: str
    attempts: int
    enqueued_us: int


class Outbox:
    """A durable queue of notifications in one SQLite file (WAL), delivered by ``notifiers``.

    Thread-safe: the evaluator may ``enqueue`` while another thread runs ``run``.
    """

    def __init__(
        self,
        path: Path | str,
        notifiers: Mapping[str, Notifier],
        client: httpx.Client,
        *,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._path = str(path)
        self._notifiers = dict(notifiers)
        self._client = client
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._counters: dict[str, _Counters] = {}
        self._health: dict[str, _ReceiverHealth] = {}
        self._db = self._open(self._path)

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 5000")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                db.close()
                raise OutboxError(
                    f"{path}: outbox schema version {version}; this bytewatch reads "
                    f"{SCHEMA_VERSION} (a newer bytewatch wrote it?)"
                )
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"{path}: cannot open the outbox database: {exc}") from exc
        return db

    def close(self) -> None:
        with self._reading():
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def set_notifiers(self, notifiers: Mapping[str, Notifier]) -> None:
        """A reload changed the receivers: what is queued goes out through the new ones (a
        rotated webhook URL, a receiver added), and what waits for a removed one fails for good
        when its turn comes."""
        with self._lock:
            self._notifiers = dict(notifiers)
        self._wake.set()

    def __repr__(self) -> str:
        return f"Outbox({self._path!r}, receivers={sorted(self._notifiers)})"

    # --- enqueueing ---------------------------------------------------------------------------

    def enqueue(self, notification: Notification, now: datetime) -> bool:
        """Queue ``notification``; False when its ``dedup_key`` was already queued or sent."""
        return self.enqueue_many([notification], now) == 1

    def enqueue_many(self, notifications: Iterable[Notification], now: datetime) -> int:
        """Queue several in one transaction; returns how many were new."""
        rows = [
            (
                n.dedup_key,
                n.receiver,
                n.group_key,
                n.reason.value,
                notification_to_json(n),
                any(a.state is AlertState.FIRING for a in n.alerts),
                _us(now),
                # A receiver that is backed off stays backed off for new arrivals too.
                max(_us(now), self._health.get(n.receiver, _ReceiverHealth()).blocked_until_us),
            )
            for n in notifications
        ]
        with self._writing():
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (dedup_key, receiver, group_key, reason,"
                " notification, firing, status, enqueued_us, next_attempt_us)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                rows,
            )
            added = self._db.total_changes - before
        if added:
            self._wake.set()
        return added

    # --- delivering ---------------------------------------------------------------------------

    def deliver_due(self, now: datetime, limit: int = 500) -> Round:
        """Send every notification that is due at ``now`` (up to ``limit``); record outcomes."""
        self._schedule_resends(now)
        with self._reading():
            due = [
                _Due(*row)
                for row in self._db.execute(_DUE_HEADS, {"now": _us(now), "limit": limit})
            ]
        outcome = Round()
        for row in due:
            health = self._health.setdefault(row.receiver, _ReceiverHealth())
            if health.blocked_until_us > _us(now):
                continue  # this receiver failed earlier in this round: it is backed off already
            outcome = self._deliver_one(row, now, health, outcome)
        return outcome

    def _deliver_one(
        self, row: _Due, now: datetime, health: _ReceiverHealth, outcome: Round
    ) -> Round:
        counters = self._counters.setdefault(row.receiver, _Counters())
        attempt = row.attempts + 1
        notifier = self._notifiers.get(row.receiver)
        try:
            if notifier is None:
                raise FinalDeliveryFailure(row.receiver, "no receiver of this name is configured")
            notification = self._decode(row)
            notifier.send(notification, self._client)
        except RetryableDeliveryFailure as exc:
            if self._expired(row, now):
                return self._fail(row, now, attempt, f"{exc} (gave up: too old)", outcome)
            retry_after = exc.retry_after.seconds_from(now) if exc.retry_after else None
            health.failures = max(health.failures, row.attempts) + 1
            delay = retry_delay_s(self._policy, health.failures, retry_after, self._rng)
            health.blocked_until_us = _us_after(now, delay)
            with self._writing():
                self._db.execute(
                    "UPDATE outbox SET attempts = ?, next_attempt_us = ?, last_error = ?"
                    " WHERE seq = ?",
                    (attempt, health.blocked_until_us, str(exc), row.seq),
                )
                # The whole receiver waits: one probe per backoff, not a request per row.
                self._db.execute(
                    "UPDATE outbox SET next_attempt_us = MAX(next_attempt_us, ?)"
                    " WHERE receiver = ? AND status = 'pending'",
                    (health.blocked_until_us, row.receiver),
                )
            counters.retried += 1
            logger.warning(
                "receiver %r: attempt %d of notification %s failed; next try in %.1fs: %s",
                row.receiver,
                attempt,
                row.dedup_key,
                delay,
                exc.reason,
            )
            return replace(outcome, retried=outcome.retried + 1)
        except FinalDeliveryFailure as exc:
            return self._fail(row, now, attempt, str(exc), outcome)
        except DeliveryFailed as exc:  # a notifier raising the base class: treat as final
            return self._fail(row, now, attempt, str(exc), outcome)
        except Exception as exc:
            # A bug in a payload builder must not stop the other notifications going out.
            logger.exception("receiver %r: notifier crashed on %s", row.receiver, row.dedup_key)
            reason = f"receiver {row.receiver!r}: notifier crashed ({type(exc).__name__})"
            return self._fail(row, now, attempt, reason, outcome)
        health.failures = 0
        health.blocked_until_us = 0
        with self._writing():
            self._db.execute(
                "UPDATE outbox SET status = 'delivered', attempts = ?, finished_us = ?,"
                " last_error = NULL WHERE seq = ?",
                (attempt, _us(now), row.seq),
            )
        counters.sent += 1
        return replace(outcome, sent=outcome.sent + 1)

    def _decode(self, row: _Due) -> Notification:
        try:
            return notification_from_json(row.notification)
        except (ValueError, KeyError, TypeError) as exc:
            raise FinalDeliveryFailure(
                row.receiver, f"stored notification is unreadable ({type(exc).__name__})"
            ) from exc

    def _expired(self, row: _Due, now: datetime) -> bool:
        limit = self._policy.give_up_after_s
        return limit is not None and _us(now) - row.enqueued_us >= limit * 1_000_000

    def _fail(self, row: _Due, now: datetime, attempt: int, reason: str, outcome: Round) -> Round:
        with self._writing():
            self._db.execute(
                "UPDATE outbox SET status = 'failed', attempts = ?, finished_us = ?,"
                " last_error = ? WHERE seq = ?",
                (attempt, _us(now), reason, row.seq),
            )
        self._counters.setdefault(row.receiver, _Counters()).failed_final += 1
        logger.error("notification %s not delivered, for good: %s", row.dedup_key, reason)
        return replace(outcome, failed_final=outcome.failed_final + 1)

    # --- re-sending firing groups (Alertmanager) --------------------------------------------

    def _resending(self) -> list[tuple[str, int]]:
        return [
            (name, round(n.resend_interval_s * 1_000_000))
            for name, n in self._notifiers.items()
            if n.resend_interval_s is not None
        ]

    def _schedule_resends(self, now: datetime) -> None:
        """Re-enqueue, as a repeat of its firing alerts, each group whose re-send is due."""
        repeats: list[Notification] = []
        for name, interval_us in self._resending():
            query = _FIRING_GROUPS.format(columns="o.notification")
            params = {"receiver": name, "before": _us(now) - interval_us}
            with self._reading():
                rows = self._db.execute(query, params).fetchall()
            for (text,) in rows:
                latest = notification_from_json(text)
                firing = tuple(a for a in latest.alerts if a.state is AlertState.FIRING)
                repeats.append(
                    replace(latest, reason=NotifyReason.REPEAT, alerts=firing, created_at=now)
                )
        if repeats:
            self.enqueue_many(repeats, now)

    def next_due_at(self) -> datetime | None:
        """When something is next due (a retry, a new notification or a re-send); None if idle."""
        with self._reading():
            (pending,) = self._db.execute(
                "SELECT MIN(next_attempt_us) FROM outbox WHERE status = 'pending'"
            ).fetchone()
            times = [] if pending is None else [pending]
            for name, interval_us in self._resending():
                query = _FIRING_GROUPS.format(columns="MIN(o.finished_us)")
                params = {"receiver": name, "before": _FOREVER_US}
                (delivered,) = self._db.execute(query, params).fetchone()
                if delivered is not None:
                    times.append(delivered + interval_us)
        return _at(min(times)) if times else None

    # --- running ------------------------------------------------------------------------------

    def run(self, stop: threading.Event, clock: Clock, *, max_idle_s: float = 1.0) -> None:
        """Deliver until ``stop`` is set, sleeping until the next due time or an enqueue."""
        while not stop.is_set():
            try:
                if self.deliver_due(clock()).attempted:
                    continue  # there may be more due right now
                due = self.next_due_at()
            except OutboxError:
                # A full disk or a locked file: keep what is queued and try again shortly.
                logger.exception("outbox: database error; trying again in %gs", max_idle_s)
                due = None
            wait = max_idle_s
            if due is not None:
                wait = min(wait, max(0.0, (due - clock()).total_seconds()))
            self._wake.wait(wait)
            self._wake.clear()
            if stop.is_set():
                break

    # --- inspecting ---------------------------------------------------------------------------

    def stats(self, now: datetime) -> OutboxStats:
        with self._reading():
            queued = {
                receiver: (depth, oldest)
                for receiver, depth, oldest in self._db.execute(
                    "SELECT receiver, COUNT(*), MIN(enqueued_us) FROM outbox"
                    " WHERE status = 'pending' GROUP BY receiver"
                )
            }
        names = sorted(set(self._notifiers) | set(self._counters) | set(queued))
        receivers = []
        for name in names:
            counters = self._counters.get(name, _Counters())
            depth, oldest = queued.get(name, (0, None))
            receivers.append(
                ReceiverStats(
                    receiver=name,
                    sent=counters.sent,
                    retried=counters.retried,
                    failed_final=counters.failed_final,
                    queue_depth=depth,
                    oldest_age_s=max(0, _us(now) - oldest) / 1e6 if oldest is not None else 0.0,
                )
            )
        return OutboxStats(tuple(receivers))

    def records(self) -> list[OutboxRecord]:
        """Every stored notification's delivery record, oldest first (for tests and the API)."""
        with self._reading():
            rows = self._db.execute(
                "SELECT dedup_key, receiver, reason, status, attempts, enqueued_us,"
                " next_attempt_us, finished_us, last_error FROM outbox ORDER BY seq"
            ).fetchall()
        records = []
        for key, receiver, reason, status, attempts, enqueued, due, finished, error in rows:
            records.append(
                OutboxRecord(
                    dedup_key=key,
                    receiver=receiver,
                    reason=reason,
                    status=status,
                    attempts=attempts,
                    enqueued_at=_at(enqueued),
                    next_attempt_at=_at(due),
                    finished_at=None if finished is None else _at(finished),
                    last_error=error,
                )
            )
        return records

    def prune(self, now: datetime, keep_s: float = 7 * 86400) -> int:
        """Forget finished notifications older than ``keep_s`` (their keys stop deduplicating)."""
        with self._writing():
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE status != 'pending' AND finished_us < ?",
                (_us_after(now, -keep_s),),
            )
            return cursor.rowcount

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, to one thread at a time; SQLite errors become ``OutboxError``."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise OutboxError(f"{self._path}: {exc}") from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """As ``_reading``, inside one transaction that commits only if nothing raised."""
        with self._reading() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    dedup_key: str
    receiver: str
    reason: str
    status: str  # pending, delivered, failed
    attempts: int
    enqueued_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None
    last_error: str | None
