"""The alert state machine: transitions, the flapping guard, identity and persistence."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.errors import CorruptAlertState, InvalidEvaluation
from alerts.model import Alert, AlertState, Severity, WindowBurn, labels_of
from alerts.routing import parse_duration
from alerts.state import (
    DEFAULT_TIMINGS,
    AlertRecord,
    AlertTiming,
    BurnEvaluation,
    Step,
    alert_from_data,
    alert_to_data,
    step,
)

DATA = Path(__file__).parent / "data" / "state"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text())


def offset(text: str) -> timedelta:
    """``-2m`` → minus two minutes."""
    if text.startswith("-"):
        return -parse_duration(text[1:])
    return parse_duration(text)


def timing_from(data: dict[str, str]) -> AlertTiming:
    return AlertTiming(parse_duration(data["hold"]), parse_duration(data["keep_firing_for"]))


def evaluation(holds: bool, **changes: Any) -> BurnEvaluation:
    data = load("evaluation.yml")
    base = BurnEvaluation(
        slo=data["slo"],
        severity=Severity(data["severity"]),
        condition_holds=holds,
        service=data["service"],
        objective=data["objective"],
        period_s=data["period_s"],
        sli=data["sli"],
        labels=labels_of(data["labels"]),
        annotations=labels_of(data["annotations"]),
        burns=tuple(WindowBurn(**b) for b in data["burns"]),
        budget_remaining=data["budget_remaining"],
        time_to_exhaustion_s=data["time_to_exhaustion_s"],
        top_error_types=tuple((name, count) for name, count in data["top_error_types"]),
        generator_url=data["generator_url"],
    )
    return replace(base, **changes)


def an_alert(state: AlertState, started: datetime, ended: datetime | None = None) -> Alert:
    fired = step(None, evaluation(True), started, AlertTiming(timedelta(0), timedelta(0)))
    assert fired.record is not None
    return replace(fired.record.alert, state=state, ended_at=ended)


def previous_record(spec: dict[str, str] | None) -> AlertRecord | None:
    if spec is None:
        return None
    ended = NOW + offset(spec["ended"]) if "ended" in spec else None
    alert = an_alert(AlertState(spec["state"]), NOW + offset(spec["started"]), ended)
    fired = NOW + offset(spec["fired"]) if "fired" in spec else None
    return AlertRecord(alert, NOW + offset(spec["last_held"]), fired)


TRANSITIONS = load("transitions.yml")


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in TRANSITIONS["cases"]])
def test_one_evaluation_moves_the_alert_like_this(case: dict[str, Any]) -> None:
    timing = timing_from(case.get("timing", TRANSITIONS["timing"]))
    result = step(previous_record(case["previous"]), evaluation(case["holds"]), NOW, timing)
    expect = case["expect"]

    state = AlertState.INACTIVE if result.record is None else result.record.state
    assert state is AlertState(expect["state"])
    if expect["transition"] is None:
        assert result.transition is None
    else:
        assert result.transition is not None
        was, now = expect["transition"].split("->")
        assert (result.transition.previous, result.transition.current) == (
            AlertState(was),
            AlertState(now),
        )
        assert result.transition.at == NOW
    if result.record is None:
        return
    alert = result.record.alert
    if "started" in expect:
        assert alert.incident_started_at == NOW + offset(expect["started"])
    if "ended" in expect:
        ended = expect["ended"]
        assert alert.ended_at == (None if ended is None else NOW + offset(ended))
    if "fired" in expect:
        assert result.record.fired_at == NOW + offset(expect["fired"])
    if "last_held" in expect:
        assert result.record.last_held_at == NOW + offset(expect["last_held"])


# --- simulated timelines ----------------------------------------------------------------------


def expand(segments: list[Any], tick: timedelta) -> Iterator[bool]:
    for segment in segments:
        if isinstance(segment, dict):
            for _ in range(segment["repeat"]):
                yield from expand(segment["of"], tick)
            continue
        kind, length = segment
        for _ in range(parse_duration(length) // tick):
            yield kind == "holds"


def run(
    conditions: list[bool], tick: timedelta, timing: AlertTiming
) -> list[tuple[timedelta, AlertState]]:
    record: AlertRecord | None = None
    seen: list[tuple[timedelta, AlertState]] = []
    for index, holds in enumerate(conditions):
        result = step(record, evaluation(holds), NOW + index * tick, timing)
        record = result.record
        if result.transition is not None:
            seen.append((index * tick, result.transition.current))
    return seen


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in load("timelines.yml")])
def test_a_simulated_timeline_makes_exactly_these_transitions(case: dict[str, Any]) -> None:
    tick = parse_duration(case["tick"])
    seen = run(list(expand(case["condition"], tick)), tick, timing_from(case["timing"]))
    if "transitions" in case:
        expected = [(parse_duration(t["at"]), AlertState(t["to"])) for t in case["transitions"]]
        assert seen == expected
    if "counts" in case:
        counts = Counter(state.value for _, state in seen)
        assert {name: counts[name] for name in case["counts"]} == case["counts"]


# --- what the alert carries -------------------------------------------------------------------


def test_a_firing_alert_carries_the_latest_numbers_but_keeps_its_identity() -> None:
    timing = AlertTiming(timedelta(0), timedelta(minutes=5))
    first = step(None, evaluation(True), NOW, timing)
    later = step(
        first.record, evaluation(True, budget_remaining=0.4), NOW + timedelta(minutes=5), timing
    )
    assert first.record is not None and later.record is not None
    assert later.record.alert.budget_remaining == 0.4
    assert later.record.alert.fingerprint == first.record.alert.fingerprint
    assert later.record.alert.incident_key == first.record.alert.incident_key


def test_alert_labels_are_the_slo_labels_plus_slo_severity_and_service() -> None:
    result = step(None, evaluation(True), NOW, DEFAULT_TIMINGS[Severity.PAGE])
    assert result.record is not None
    assert dict(result.record.alert.labels) == {
        "slo": "checkout-availability",
        "severity": "page",
        "service": "checkout",
        "team": "payments",
        "tier": "gold",
    }


def test_an_slo_label_cannot_override_the_identity_labels() -> None:
    sneaky = evaluation(True, labels=labels_of(severity="ticket", team="payments"))
    result = step(None, sneaky, NOW, DEFAULT_TIMINGS[Severity.PAGE])
    assert result.record is not None
    assert result.record.alert.label("severity") == "page"


def test_a_new_incident_of_the_same_alert_has_the_same_fingerprint_and_a_new_key() -> None:
    timing = AlertTiming(timedelta(0), timedelta(0))
    first = step(None, evaluation(True), NOW, timing)
    resolved = step(first.record, evaluation(False), NOW + timedelta(minutes=10), timing)
    again = step(resolved.record, evaluation(True), NOW + timedelta(minutes=20), timing)
    assert first.record and again.record
    assert again.record.alert.fingerprint == first.record.alert.fingerprint
    assert again.record.alert.incident_key != first.record.alert.incident_key


def test_the_default_timings_hold_a_page_less_than_a_ticket() -> None:
    page, ticket = DEFAULT_TIMINGS[Severity.PAGE], DEFAULT_TIMINGS[Severity.TICKET]
    assert timedelta(0) < page.hold < ticket.hold
    assert timedelta(0) < page.keep_firing_for < ticket.keep_firing_for


def test_negative_timers_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        AlertTiming(timedelta(seconds=-1), timedelta(0))


def test_an_evaluation_of_another_alert_is_refused() -> None:
    record = previous_record({"state": "firing", "started": "-5m", "last_held": "0s"})
    ticket = evaluation(True, severity=Severity.TICKET)
    with pytest.raises(InvalidEvaluation, match="checkout-availability/ticket was given the alert"):
        step(record, ticket, NOW, DEFAULT_TIMINGS[Severity.TICKET])


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(InvalidEvaluation, match="timezone-aware"):
        step(None, evaluation(True), NOW.replace(tzinfo=None), DEFAULT_TIMINGS[Severity.PAGE])


# --- persistence ------------------------------------------------------------------------------


def test_a_record_survives_a_trip_through_json() -> None:
    record = previous_record(
        {
            "state": "resolved",
            "started": "-1h",
            "fired": "-58m",
            "last_held": "-40m",
            "ended": "-35m",
        }
    )
    assert record is not None
    restored = AlertRecord.from_data(json.loads(json.dumps(record.to_data())))
    assert restored == record
    assert restored.alert.fingerprint == record.alert.fingerprint


def test_an_alert_with_unknown_values_survives_a_trip_through_json() -> None:
    alert = replace(
        an_alert(AlertState.PENDING, NOW), sli=None, time_to_exhaustion_s=None, burns=()
    )
    assert alert_from_data(json.loads(json.dumps(alert_to_data(alert)))) == alert


def test_a_restart_between_evaluations_changes_nothing() -> None:
    timing = AlertTiming(timedelta(minutes=2), timedelta(minutes=5))
    conditions = [False] * 4 + [True] * 20 + [False] * 20
    tick = timedelta(seconds=30)
    uninterrupted = run(conditions, tick, timing)

    record: AlertRecord | None = None
    seen: list[tuple[timedelta, AlertState]] = []
    keys: set[str] = set()
    for index, holds in enumerate(conditions):
        if record is not None:  # the service stops and starts again: only the JSON remains
            record = AlertRecord.from_data(json.loads(json.dumps(record.to_data())))
        result: Step = step(record, evaluation(holds), NOW + index * tick, timing)
        record = result.record
        if record is not None and record.state is not AlertState.PENDING:
            keys.add(record.alert.incident_key)
        if result.transition is not None:
            seen.append((index * tick, result.transition.current))
    assert seen == uninterrupted
    assert len(keys) == 1


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in load("corruptions.yml")])
def test_corrupt_persisted_state_is_reported_with_the_field(case: dict[str, Any]) -> None:
    path: list[str] = case["path"]
    record = previous_record({"state": "firing", "started": "-5m", "last_held": "0s"})
    assert record is not None
    data = copy.deepcopy(record.to_data())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = case["value"]
    with pytest.raises(CorruptAlertState) as caught:
        AlertRecord.from_data(data)
    assert case["error"] in str(caught.value)


def test_persisted_state_that_is_not_an_object_is_reported() -> None:
    with pytest.raises(CorruptAlertState, match="alert record: expected an object, got list"):
        AlertRecord.from_data([])
