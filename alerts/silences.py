"""Silences: mute the notifications of matching alerts for a while, as in Alertmanager.

A silence has matchers (Alertmanager's syntax, ``routing.parse_matchers``), a start, an end, an
author and a comment. It is pending before its start, active until its end, expired after.
Matching is pure (``Silence.mutes``, ``silenced_by``, ``silenced_fingerprints``); a muted alert
still exists and the API shows which silences mute it. ``SilenceStore`` keeps silences in SQLite
(injected path and clock) so they survive restarts; expiring a silence sets its end to now and
keeps the record, as Alertmanager does.

What the HTTP API and the CLI call::

    matchers = parse_matchers('service="checkout", severity=~"page|ticket"')
    store = SilenceStore(path, clock)
    silence = store.create(matchers, ends_at=..., created_by="ana", comment="deploy")
    store.list()                      # every silence, newest start first
    store.list(SilenceState.ACTIVE)   # only those muting alerts now
    store.expire(silence.id)

Exceptions (in ``alerts/errors.py``):

    SilenceError
    ├── InvalidSilence          bad input: no matchers, matchers that match everything,
    │                           end before start or in the past, blank author or comment
    ├── SilenceNotFound         no silence has this id
    ├── SilenceAlreadyExpired   expiring a silence that has ended
    └── SilenceStoreError       the database cannot be read or written, or holds a bad row
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from alerts.errors import (
    InvalidSilence,
    MatcherSyntaxError,
    SilenceAlreadyExpired,
    SilenceNotFound,
    SilenceStoreError,
)
from alerts.model import Alert, Labels
from alerts.routing import Matcher, format_matchers, parse_matchers


class SilenceState(StrEnum):
    PENDING = "pending"  # starts in the future
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    updated_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return SilenceState.PENDING
        if now < self.ends_at:
            return SilenceState.ACTIVE
        return SilenceState.EXPIRED

    def mutes(self, labels: Labels | Mapping[str, str], now: datetime) -> bool:
        """Active and every matcher matches (a missing label matches as the empty string)."""
        if self.state(now) is not SilenceState.ACTIVE:
            return False
        lookup = labels if isinstance(labels, Mapping) else dict(labels)
        return all(m.matches_labels(lookup) for m in self.matchers)


def silenced_by(
    labels: Labels | Mapping[str, str], silences: Iterable[Silence], now: datetime
) -> tuple[str, ...]:
    """The ids of the silences muting an alert with these labels now (sorted)."""
    return tuple(sorted(s.id for s in silences if s.mutes(labels, now)))


def silenced_fingerprints(
    alerts: Iterable[Alert], silences: Iterable[Silence], now: datetime
) -> frozenset[str]:
    """The fingerprints of the alerts some active silence mutes: ``grouping.dispatch``'s input."""
    active = [s for s in silences if s.state(now) is SilenceState.ACTIVE]
    return frozenset(a.fingerprint for a in alerts if any(s.mutes(a.labels, now) for s in active))


def next_change_at(silences: Iterable[Silence], now: datetime) -> datetime | None:
    """The next start or end of a silence after ``now``: muting changes then, so dispatch."""
    moments = [t for s in silences for t in (s.starts_at, s.ends_at) if t > now]
    return min(moments, default=None)


def validate_new_silence(
    matchers: Sequence[Matcher],
    *,
    starts_at: datetime,
    ends_at: datetime,
    created_by: str,
    comment: str,
    now: datetime,
) -> None:
    """Raise ``InvalidSilence`` unless this silence may be created at ``now``."""
    for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment.tzinfo is None:
            raise InvalidSilence(f"{name}: {moment.isoformat()} needs a UTC offset")
    if not matchers:
        raise InvalidSilence("matchers: a silence needs at least one matcher")
    if all(m.matches("") for m in matchers):
        raise InvalidSilence(
            f"matchers: {format_matchers(matchers)} also match alerts without these labels, "
            "so this silence would mute every alert; add a matcher that needs a label value"
        )
    if ends_at <= now:
        raise InvalidSilence(f"ends_at: {ends_at.isoformat()} is in the past")
    if ends_at <= starts_at:
        raise InvalidSilence(
            f"ends_at: {ends_at.isoformat()} is not after starts_at {starts_at.isoformat()}"
        )
    if not created_by.strip():
        raise InvalidSilence("created_by: say who creates the silence")
    if not comment.strip():
        raise InvalidSilence("comment: say why the alerts are silenced")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,      -- JSON list of matcher strings, e.g. ["service=\\"checkout\\""]
    starts_at TEXT NOT NULL,     -- ISO 8601 with offset
    ends_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""
_INSERT = (
    "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = "SELECT id, matchers, starts_at, ends_at, created_by, comment, updated_at FROM silences"
_SELECT_ONE = _SELECT + " WHERE id = ?"
_EXPIRE = "UPDATE silences SET starts_at = ?, ends_at = ?, updated_at = ? WHERE id = ?"


class SilenceStore:
    """Silences in an SQLite file; every call is one short transaction, safe across threads."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], datetime],
        *,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.path = path
        self.clock = clock
        self.new_id = new_id
        with self._transaction() as db:
            db.execute(_SCHEMA)

    def create(
        self,
        matchers: Sequence[Matcher],
        *,
        ends_at: datetime,
        created_by: str,
        comment: str,
        starts_at: datetime | None = None,
    ) -> Silence:
        """A new silence; a start in the past (or none) means now, as in Alertmanager."""
        now = self._now()
        start = now if starts_at is None or starts_at < now else starts_at
        validate_new_silence(
            matchers,
            starts_at=start,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            now=now,
        )
        silence = Silence(
            id=self.new_id(),
            matchers=tuple(matchers),
            starts_at=start,
            ends_at=ends_at,
            created_by=created_by.strip(),
            comment=comment.strip(),
            updated_at=now,
        )
        with self._transaction() as db:
            db.execute(_INSERT, _row(silence))
        return silence

    def get(self, silence_id: str) -> Silence:
        with self._transaction() as db:
            row = db.execute(_SELECT_ONE, (silence_id,)).fetchone()
        if row is None:
            raise SilenceNotFound(f"no silence has the id {silence_id!r}")
        return _silence(row)

    def list(self, state: SilenceState | None = None) -> tuple[Silence, ...]:
        """All silences (or those in ``state`` now), the latest start first."""
        with self._transaction() as db:
            rows = db.execute(_SELECT).fetchall()
        silences = sorted(map(_silence, rows), key=lambda s: (s.starts_at, s.id), reverse=True)
        if state is None:
            return tuple(silences)
        now = self._now()
        return tuple(s for s in silences if s.state(now) is state)

    def expire(self, silence_id: str) -> Silence:
        """End a silence now; a pending one ends before it starts. The record is kept."""
        now = self._now()
        with self._transaction() as db:
            row = db.execute(_SELECT_ONE, (silence_id,)).fetchone()
            if row is None:
                raise SilenceNotFound(f"no silence has the id {silence_id!r}")
            silence = _silence(row)
            state = silence.state(now)
            if state is SilenceState.EXPIRED:
                raise SilenceAlreadyExpired(
                    f"silence {silence_id} already ended at {silence.ends_at.isoformat()}"
                )
            start = now if state is SilenceState.PENDING else silence.starts_at
            expired = replace(silence, starts_at=start, ends_at=now, updated_at=now)
            db.execute(
                _EXPIRE,
                (start.isoformat(), now.isoformat(), now.isoformat(), silence_id),
            )
        return expired

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise SilenceStoreError("the store's clock must return timezone-aware times")
        return now

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=5.0)) as db, db:
                yield db
        except sqlite3.Error as exc:
            raise SilenceStoreError(f"silence database {self.path}: {exc}") from exc


def _row(silence: Silence) -> tuple[str, ...]:
    return (
        silence.id,
        json.dumps([str(m) for m in silence.matchers]),
        silence.starts_at.isoformat(),
        silence.ends_at.isoformat(),
        silence.created_by,
        silence.comment,
        silence.updated_at.isoformat(),
    )


def _silence(row: tuple[str, ...]) -> Silence:
    silence_id, matchers, starts_at, ends_at, created_by, comment, updated_at = row
    try:
        texts = json.loads(matchers)
        parsed = tuple(m for text in texts for m in parse_matchers(text))
        return Silence(
            id=silence_id,
            matchers=parsed,
            starts_at=datetime.fromisoformat(starts_at),
            ends_at=datetime.fromisoformat(ends_at),
            created_by=created_by,
            comment=comment,
            updated_at=datetime.fromisoformat(updated_at),
        )
    except (ValueError, TypeError, MatcherSyntaxError) as exc:
        raise SilenceStoreError(f"silence {silence_id}: stored row does not parse: {exc}") from exc
