"""Silences: what they mute, what may be created, and a store that survives restarts."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.errors import InvalidSilence, SilenceAlreadyExpired, SilenceNotFound, SilenceStoreError
from alerts.model import Alert, AlertState, Severity, labels_of
from alerts.routing import parse_duration, parse_matchers
from alerts.silences import (
    Silence,
    SilenceState,
    SilenceStore,
    next_change_at,
    silenced_by,
    silenced_fingerprints,
)

DATA = Path(__file__).parent / "data" / "silences"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text())


def offset(text: str) -> timedelta:
    if text.startswith("-"):
        return -parse_duration(text[1:])
    return parse_duration(text)


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def a_silence(matchers: str, starts: str = "-1h", ends: str = "1h", id: str = "s1") -> Silence:
    return Silence(
        id=id,
        matchers=parse_matchers(matchers),
        starts_at=NOW + offset(starts),
        ends_at=NOW + offset(ends),
        created_by="ana",
        comment="deploying checkout",
        updated_at=NOW,
    )


def an_alert(**labels: str) -> Alert:
    return Alert(
        slo=labels.get("slo", "availability"),
        severity=Severity(labels.get("severity", "page")),
        state=AlertState.FIRING,
        labels=labels_of(labels),
        annotations=(),
        service=labels.get("service", ""),
        objective=0.999,
        period_s=30 * 86400,
        sli=None,
        burns=(),
        budget_remaining=1.0,
        time_to_exhaustion_s=None,
        top_error_types=(),
        incident_started_at=NOW,
    )


# --- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in load("matching.yml")])
def test_a_silence_mutes_the_alerts_it_matches_while_active(case: dict[str, Any]) -> None:
    silence = a_silence(case["matchers"], case.get("starts", "-1h"), case.get("ends", "1h"))
    assert silence.mutes(labels_of(case["labels"]), NOW) is case["mutes"]


def test_silence_state_follows_the_clock() -> None:
    silence = a_silence('a="b"', starts="1h", ends="2h")
    assert silence.state(NOW) is SilenceState.PENDING
    assert silence.state(NOW + timedelta(hours=1)) is SilenceState.ACTIVE
    assert silence.state(NOW + timedelta(hours=2)) is SilenceState.EXPIRED


def test_the_api_shows_which_silences_mute_an_alert() -> None:
    silences = [
        a_silence('service="checkout"', id="b"),
        a_silence('service="checkout", severity="page"', id="a"),
        a_silence('service="search"', id="c"),
        a_silence('service="checkout"', starts="-2h", ends="-1h", id="d"),
    ]
    alert = an_alert(service="checkout", severity="page")
    assert silenced_by(alert.labels, silences, NOW) == ("a", "b")


def test_silenced_fingerprints_are_those_of_muted_alerts_only() -> None:
    checkout, search = an_alert(service="checkout"), an_alert(service="search")
    muted = silenced_fingerprints([checkout, search], [a_silence('service="checkout"')], NOW)
    assert muted == frozenset({checkout.fingerprint})


def test_the_next_change_is_the_next_start_or_end_of_a_silence() -> None:
    silences = [
        a_silence('a="1"', starts="-1h", ends="3h"),
        a_silence('a="2"', starts="2h", ends="5h"),
        a_silence('a="3"', starts="-3h", ends="-1h"),
    ]
    assert next_change_at(silences, NOW) == NOW + timedelta(hours=2)
    assert next_change_at(silences, NOW + timedelta(hours=5)) is None


# --- creating ---------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SilenceStore:
    return SilenceStore(tmp_path / "bytewatch.db", clock)


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in load("invalid.yml")])
def test_an_invalid_silence_is_refused_with_the_reason(
    store: SilenceStore, case: dict[str, Any]
) -> None:
    with pytest.raises(InvalidSilence) as caught:
        store.create(
            parse_matchers(case["matchers"]),
            starts_at=NOW + offset(case["starts"]) if "starts" in case else None,
            ends_at=NOW + offset(case["ends"]),
            created_by=case.get("created_by", "ana"),
            comment=case.get("comment", "deploy"),
        )
    assert case["error"] in str(caught.value)
    assert store.list() == ()


def test_a_silence_starting_in_the_past_starts_now(store: SilenceStore) -> None:
    silence = store.create(
        parse_matchers('service="checkout"'),
        starts_at=NOW - timedelta(hours=3),
        ends_at=NOW + timedelta(hours=1),
        created_by="ana",
        comment="deploy",
    )
    assert silence.starts_at == NOW
    assert silence.state(NOW) is SilenceState.ACTIVE


def test_a_naive_time_is_refused(store: SilenceStore) -> None:
    with pytest.raises(InvalidSilence, match="needs a UTC offset"):
        store.create(
            parse_matchers('a="b"'),
            ends_at=datetime(2030, 1, 1),  # naive on purpose
            created_by="ana",
            comment="x",
        )


# --- the store --------------------------------------------------------------------------------


def test_silences_survive_a_restart_of_the_store(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "bytewatch.db"
    first = SilenceStore(path, clock)
    created = first.create(
        parse_matchers('service="checkout", severity=~"page|ticket"'),
        ends_at=NOW + timedelta(hours=2),
        created_by="ana",
        comment="checkout deploy, see CHG-1234",
    )
    expired = first.create(
        parse_matchers('service="search"'),
        ends_at=NOW + timedelta(hours=2),
        created_by="bo",
        comment="reindex",
    )
    clock.advance(timedelta(minutes=5))
    first.expire(expired.id)
    del first

    again = SilenceStore(path, clock)
    assert again.get(created.id) == created
    assert again.list(SilenceState.ACTIVE) == (created,)
    assert [s.id for s in again.list(SilenceState.EXPIRED)] == [expired.id]


def test_expiring_an_active_silence_keeps_it_with_its_end_time(
    store: SilenceStore, clock: Clock
) -> None:
    silence = store.create(
        parse_matchers('service="checkout"'),
        ends_at=NOW + timedelta(hours=2),
        created_by="ana",
        comment="deploy",
    )
    clock.advance(timedelta(minutes=30))
    expired = store.expire(silence.id)
    assert (expired.starts_at, expired.ends_at, expired.updated_at) == (
        NOW,
        clock.now,
        clock.now,
    )
    assert store.get(silence.id) == expired
    assert expired.state(clock.now) is SilenceState.EXPIRED
    assert not expired.mutes(labels_of(service="checkout"), clock.now)


def test_expiring_a_pending_silence_ends_it_before_it_starts(
    store: SilenceStore, clock: Clock
) -> None:
    silence = store.create(
        parse_matchers('service="checkout"'),
        starts_at=NOW + timedelta(hours=1),
        ends_at=NOW + timedelta(hours=2),
        created_by="ana",
        comment="maintenance window",
    )
    expired = store.expire(silence.id)
    assert (expired.starts_at, expired.ends_at) == (NOW, NOW)
    assert expired.state(NOW) is SilenceState.EXPIRED


def test_expiring_twice_says_when_it_ended(store: SilenceStore) -> None:
    silence = store.create(
        parse_matchers('a="b"'), ends_at=NOW + timedelta(hours=1), created_by="ana", comment="x"
    )
    store.expire(silence.id)
    with pytest.raises(SilenceAlreadyExpired, match="already ended at 2024-05-01T12:00:00"):
        store.expire(silence.id)


def test_an_unknown_id_is_reported(store: SilenceStore) -> None:
    with pytest.raises(SilenceNotFound, match="no silence has the id 'nope'"):
        store.get("nope")
    with pytest.raises(SilenceNotFound):
        store.expire("nope")


def test_the_list_shows_the_latest_start_first_and_filters_by_state(
    store: SilenceStore, clock: Clock
) -> None:
    made = [
        store.create(
            parse_matchers(f'n="{n}"'),
            starts_at=NOW + timedelta(hours=n),
            ends_at=NOW + timedelta(hours=n + 1),
            created_by="ana",
            comment="x",
        )
        for n in (0, 2, 1)
    ]
    assert [s.matchers for s in store.list()] == [m.matchers for m in (made[1], made[2], made[0])]
    assert store.list(SilenceState.ACTIVE) == (made[0],)
    assert store.list(SilenceState.PENDING) == (made[1], made[2])


def test_a_store_at_an_unusable_path_says_which(tmp_path: Path, clock: Clock) -> None:
    with pytest.raises(SilenceStoreError, match=r"silence database .*missing/x\.db"):
        SilenceStore(tmp_path / "missing" / "x.db", clock)


def test_a_corrupt_row_is_reported_not_raised_as_a_traceback(
    tmp_path: Path, store: SilenceStore
) -> None:
    silence = store.create(
        parse_matchers('a="b"'), ends_at=NOW + timedelta(hours=1), created_by="ana", comment="x"
    )
    with closing(sqlite3.connect(store.path)) as db, db:
        db.execute("UPDATE silences SET matchers = ? WHERE id = ?", ('["a=~\\"(\\""]', silence.id))
    with pytest.raises(SilenceStoreError, match=f"silence {silence.id}: stored row does not parse"):
        store.get(silence.id)


def test_new_ids_come_from_the_injected_source(tmp_path: Path, clock: Clock) -> None:
    ids = iter(["first", "second"])
    store = SilenceStore(tmp_path / "s.db", clock, new_id=lambda: next(ids))
    made = store.create(
        parse_matchers('a="b"'), ends_at=NOW + timedelta(hours=1), created_by="ana", comment="x"
    )
    assert made.id == "first"
