"""The decision half of alerting, kept across restarts: evaluations in, notifications queued.

Each tick the service hands over one ``BurnEvaluation`` per SLO and severity. The pipeline
steps every alert's state machine (``state.step``), keeps the records and the aggregation groups
in SQLite so that alert identity and timers survive a restart, asks the dispatcher which
notifications are due (``grouping.dispatch``, with silences and page-over-ticket inhibition),
and hands them to ``enqueue`` (the durable outbox). Between ticks ``due`` catches group timers
and silences that start or end.

Nothing here sends anything or reads a clock: ``now`` is always given, which is what lets a
backtest replay days of traffic through the same code in seconds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from alerts.errors import AlertStateError, CorruptAlertState
from alerts.grouping import GroupState, dispatch
from alerts.model import Alert, AlertState, Notification, Severity
from alerts.routing import Route
from alerts.silences import SilenceStore, next_change_at, silenced_fingerprints
from alerts.state import AlertRecord, AlertTiming, BurnEvaluation, Transition, step

Enqueue = Callable[[Sequence[Notification], datetime], int]
TimingFor = Callable[[BurnEvaluation], AlertTiming]
AlertKey = tuple[str, str]  # (slo, severity)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_records (slo TEXT, severity TEXT, data TEXT NOT NULL,
                                          PRIMARY KEY (slo, severity));
CREATE TABLE IF NOT EXISTS alert_groups (key TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as the API shows it."""

    alert: Alert
    silenced: bool
    inhibited: bool


class AlertStateStore:
    """Alert records and group states in SQLite (or in memory with ``path=None``)."""

    def __init__(self, path: Path | None) -> None:
        target = ":memory:" if path is None else str(path)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise AlertStateError(f"cannot open the alert state at {target}: {exc}") from exc

    def load(self) -> tuple[dict[AlertKey, AlertRecord], list[GroupState]]:
        records: dict[AlertKey, AlertRecord] = {}
        for slo, severity, data in self._db.execute(
            "SELECT slo, severity, data FROM alert_records"
        ):
            try:
                records[(slo, severity)] = AlertRecord.from_data(json.loads(data))
            except (ValueError, CorruptAlertState) as exc:
                raise CorruptAlertState(f"alert {slo}/{severity}: {exc}") from exc
        groups = []
        for (data,) in self._db.execute("SELECT data FROM alert_groups ORDER BY key"):
            try:
                groups.append(GroupState.from_data(json.loads(data)))
            except ValueError as exc:
                raise CorruptAlertState(f"alert group: {exc}") from exc
        return records, groups

    def save(self, records: Mapping[AlertKey, AlertRecord], groups: Iterable[GroupState]) -> None:
        rows = [(k[0], k[1], json.dumps(r.to_data())) for k, r in records.items()]
        group_rows = [(g.key, json.dumps(g.to_data())) for g in groups]
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute("DELETE FROM alert_records")
            db.executemany("INSERT INTO alert_records VALUES (?, ?, ?)", rows)
            db.execute("DELETE FROM alert_groups")
            db.executemany("INSERT INTO alert_groups VALUES (?, ?)", group_rows)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise AlertStateError(f"cannot save the alert state: {exc}") from exc

    def close(self) -> None:
        self._db.close()


class AlertPipeline:
    """Thread-safe: the evaluator's tick and the API may call it from different threads."""

    def __init__(
        self,
        *,
        store: AlertStateStore,
        tree: Route | None,
        timing_for: TimingFor,
        enqueue: Enqueue,
        silences: SilenceStore | None = None,
    ) -> None:
        self._store = store
        self._tree = tree
        self._timing_for = timing_for
        self._enqueue = enqueue
        self._silences = silences
        self._lock = threading.Lock()
        self._records, self._groups = store.load()
        self._next_due: datetime | None = None

    def reconfigure(self, tree: Route | None, timing_for: TimingFor) -> None:
        """A reload changed the routing tree or the SLOs' holds; the alerts keep their state."""
        with self._lock:
            self._tree = tree
            self._timing_for = timing_for

    def observe(self, evaluations: Sequence[BurnEvaluation], now: datetime) -> list[Transition]:
        """Step every alert by this tick's evaluations, then notify what is due."""
        transitions: list[Transition] = []
        with self._lock:
            seen: set[AlertKey] = set()
            for evaluation in evaluations:
                key = (evaluation.slo, evaluation.severity.value)
                seen.add(key)
                result = step(self._records.get(key), evaluation, now, self._timing_for(evaluation))
                if result.record is None:
                    self._records.pop(key, None)
                else:
                    self._records[key] = result.record
                if result.transition is not None:
                    transitions.append(result.transition)
            # An SLO that was removed (or stopped alerting) takes its alerts with it.
            for key in [k for k in self._records if k not in seen]:
                del self._records[key]
            # The alerts are durable before anything they cause is queued: after a crash in
            # between, the restart carries on the same incidents and queues the same
            # notifications (same dedup keys) instead of starting new incidents.
            self._store.save(self._records, self._groups)
            self._dispatch(now)
        return transitions

    def due(self, now: datetime) -> None:
        """Send what group timers or silences made due since the last call."""
        with self._lock:
            if self._next_due is not None and now >= self._next_due:
                self._dispatch(now)

    @property
    def next_due_at(self) -> datetime | None:
        return self._next_due

    def _dispatch(self, now: datetime) -> None:
        alerts = [record.alert for record in self._records.values()]
        silences = self._silences.list() if self._silences is not None else ()
        muted = silenced_fingerprints(alerts, silences, now)
        if self._tree is None:
            self._groups = []
            self._next_due = next_change_at(silences, now)
        else:
            result = dispatch(self._groups, alerts, self._tree, now, silenced=muted)
            self._groups = list(result.groups)
            if result.notifications:
                self._enqueue(result.notifications, now)
            moments = [m for m in (result.next_due_at, next_change_at(silences, now)) if m]
            self._next_due = min(moments, default=None)
        # Resolved alerts have been handed to the dispatcher once; they are done.
        for key in [k for k, r in self._records.items() if r.state is AlertState.RESOLVED]:
            del self._records[key]
        self._store.save(self._records, self._groups)

    def alerts(self, now: datetime) -> list[AlertView]:
        """Pending and firing alerts, with whether a silence or a firing page mutes them."""
        with self._lock:
            alerts = [r.alert for r in self._records.values()]
        silences = self._silences.list() if self._silences is not None else ()
        muted = silenced_fingerprints(alerts, silences, now)
        pages = {
            a.slo for a in alerts if a.severity is Severity.PAGE and a.state is AlertState.FIRING
        }
        return [
            AlertView(
                alert=a,
                silenced=a.fingerprint in muted,
                inhibited=a.severity is Severity.TICKET and a.slo in pages,
            )
            for a in sorted(alerts, key=lambda a: (a.slo, a.severity.value))
            if a.state in (AlertState.PENDING, AlertState.FIRING)
        ]

    def close(self) -> None:
        self._store.close()


def default_timing_for(
    hold_for: Callable[[str, Severity], float],
    keep_firing_for: Mapping[Severity, timedelta],
) -> TimingFor:
    """Timings from the SLO's own ``for:`` per severity and a keep-firing time per severity."""

    def timing(evaluation: BurnEvaluation) -> AlertTiming:
        hold = timedelta(seconds=hold_for(evaluation.slo, evaluation.severity))
        return AlertTiming(hold=hold, keep_firing_for=keep_firing_for[evaluation.severity])

    return timing
