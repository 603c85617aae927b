"""Aggregation groups over time: batching, group and repeat intervals, resolutions, muting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.errors import CorruptAlertState
from alerts.grouping import Dispatch, GroupState, dispatch, inhibitions
from alerts.model import Alert, AlertState, Notification, NotifyReason, Severity, labels_of
from alerts.routing import RootRouteConfig, Route, build_route_tree, parse_duration
from alerts.state import AlertRecord, AlertTiming, BurnEvaluation, step

DATA = Path(__file__).parent / "data" / "grouping"
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text())


def tree_from(config: dict[str, Any]) -> Route:
    def receivers(node: dict[str, Any]) -> set[str]:
        found = {node["receiver"]} if "receiver" in node else set()
        for child in node.get("routes", []):
            found |= receivers(child)
        return found

    return build_route_tree(RootRouteConfig.model_validate(config), receivers(config))


def make_alert(labels: dict[str, str], state: AlertState, started: datetime) -> Alert:
    return Alert(
        slo=labels["slo"],
        severity=Severity(labels["severity"]),
        state=state,
        labels=labels_of(labels),
        annotations=(),
        service=labels["service"],
        objective=0.999,
        period_s=30 * 86400,
        sli=0.99,
        burns=(),
        budget_remaining=0.5,
        time_to_exhaustion_s=None,
        top_error_types=(),
        incident_started_at=started,
    )


# --- the harness ------------------------------------------------------------------------------

Sent = tuple[timedelta, str, str, tuple[tuple[str, tuple[str, ...]], ...]]


@dataclass
class Scenario:
    """A scenario from scenarios.yml: what the state machine reports at any moment."""

    data: dict[str, Any]
    tree: Route = field(init=False)

    def __post_init__(self) -> None:
        self.tree = tree_from(self.data["route"])
        self.until = parse_duration(self.data["until"])
        self.events = [
            (parse_duration(e["at"]), {k: v for k, v in e.items() if k != "at"})
            for e in self.data["events"]
        ]
        self.silences = [
            (parse_duration(s["from"]), parse_duration(s["to"]), set(s["alerts"]))
            for s in self.data.get("silences", [])
        ]

    def alerts_at(self, moment: timedelta) -> list[Alert]:
        # A state continues the incident when it follows this one; otherwise a new one starts.
        continues = {"resolved": AlertState.FIRING, "firing": AlertState.PENDING}
        current: dict[str, Alert] = {}
        for at, changes in self.events:
            if at > moment:
                break
            for name, state in changes.items():
                before = current.get(name)
                if state == "gone":
                    del current[name]
                elif before is not None and before.state is continues.get(state):
                    ended = START + at if state == "resolved" else None
                    current[name] = replace(before, state=AlertState(state), ended_at=ended)
                else:
                    labels = self.data["alerts"][name]
                    current[name] = make_alert(labels, AlertState(state), START + at)
        return list(current.values())

    def silenced_at(self, moment: timedelta, alerts: list[Alert]) -> frozenset[str]:
        names = {n for start, end, ns in self.silences if start <= moment < end for n in ns}
        wanted = {labels_of(self.data["alerts"][n]) for n in names}
        return frozenset(a.fingerprint for a in alerts if a.labels in wanted)

    def name_of(self, alert: Alert) -> str:
        for name, labels in self.data["alerts"].items():
            if labels_of(labels) == alert.labels:
                return str(name)
        raise AssertionError(alert.labels)

    def changes(self) -> list[timedelta]:
        moments = {at for at, _ in self.events}
        moments |= {t for start, end, _ in self.silences for t in (start, end)}
        return sorted(moments)


def summary(scenario: Scenario, at: timedelta, note: Notification) -> Sent:
    states: dict[str, list[str]] = {}
    for alert in note.alerts:
        states.setdefault(scenario.name_of(alert), []).append(alert.state.value)
    return (
        at,
        note.receiver,
        note.reason.value,
        tuple(sorted((k, tuple(v)) for k, v in states.items())),
    )


def expected_of(scenario: Scenario) -> list[Sent]:
    out: list[Sent] = []
    for note in scenario.data["notifications"]:
        alerts = {
            name: tuple(state if isinstance(state, list) else [state])
            for name, state in note["alerts"].items()
        }
        out.append(
            (
                parse_duration(note["at"]),
                note["receiver"],
                note["reason"],
                tuple(sorted(alerts.items())),
            )
        )
    return sorted(out)


@dataclass
class Service:
    """The calls a service makes; the groups go through JSON between calls, as after a restart."""

    scenario: Scenario
    groups: tuple[GroupState, ...] = ()
    sent: list[Sent] = field(default_factory=list)
    next_due_at: datetime | None = None

    def call(self, at: timedelta) -> None:
        alerts = self.scenario.alerts_at(at)
        result = dispatch(
            self.groups,
            alerts,
            self.scenario.tree,
            START + at,
            silenced=self.scenario.silenced_at(at, alerts),
        )
        self.sent.extend(summary(self.scenario, at, n) for n in result.notifications)
        self.groups = tuple(
            GroupState.from_data(json.loads(json.dumps(g.to_data()))) for g in result.groups
        )
        self.next_due_at = result.next_due_at


def every_ten_seconds(scenario: Scenario) -> list[Sent]:
    service = Service(scenario)
    at = timedelta(0)
    while at <= scenario.until:
        service.call(at)
        at += timedelta(seconds=10)
    return sorted(service.sent)


def only_when_needed(scenario: Scenario) -> list[Sent]:
    """Call when an alert or a silence changes, and at ``next_due_at``; nothing more."""
    service = Service(scenario)
    changes = scenario.changes()
    at: timedelta | None = timedelta(0)
    while at is not None and at <= scenario.until:
        service.call(at)
        wakeups = [c for c in changes if c > at]
        if service.next_due_at is not None:
            assert service.next_due_at > START + at, "next_due_at must lie in the future"
            wakeups.append(service.next_due_at - START)
        at = min(wakeups, default=None)
    return sorted(service.sent)


SCENARIOS = [pytest.param(s, id=s["id"]) for s in load("scenarios.yml")]


@pytest.mark.parametrize("data", SCENARIOS)
def test_the_dispatcher_sends_exactly_these_notifications(data: dict[str, Any]) -> None:
    scenario = Scenario(data)
    assert every_ten_seconds(scenario) == expected_of(scenario)


@pytest.mark.parametrize("data", SCENARIOS)
def test_calling_only_at_changes_and_at_next_due_sends_the_same(data: dict[str, Any]) -> None:
    scenario = Scenario(data)
    assert only_when_needed(scenario) == expected_of(scenario)


# --- the decision half end to end -------------------------------------------------------------


def expand(segments: list[Any], tick: timedelta) -> Iterator[bool]:
    for segment in segments:
        if isinstance(segment, dict):
            for _ in range(segment["repeat"]):
                yield from expand(segment["of"], tick)
            continue
        kind, length = segment
        for _ in range(parse_duration(length) // tick):
            yield kind == "holds"


def burn(holds: bool) -> BurnEvaluation:
    return BurnEvaluation(
        slo="checkout-availability",
        severity=Severity.PAGE,
        condition_holds=holds,
        service="checkout",
        objective=0.999,
        period_s=30 * 86400,
        burns=(),
        budget_remaining=0.5,
    )


def pipeline(case: dict[str, Any], timing: AlertTiming) -> list[tuple[timedelta, str]]:
    """Evaluate every tick, step the alert, dispatch: what a service's loop does."""
    tick = parse_duration(case["tick"])
    tree = tree_from(case["route"])
    record: AlertRecord | None = None
    groups: tuple[GroupState, ...] = ()
    sent: list[tuple[timedelta, str]] = []
    for index, holds in enumerate(expand(case["condition"], tick)):
        now = START + index * tick
        record = step(record, burn(holds), now, timing).record
        alerts = [] if record is None else [record.alert]
        result = dispatch(groups, alerts, tree, now)
        groups = result.groups
        sent.extend((index * tick, n.reason.value) for n in result.notifications)
    return sent


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in load("pipeline.yml")])
def test_state_machine_and_dispatcher_together_send_exactly_these(case: dict[str, Any]) -> None:
    timing = AlertTiming(
        parse_duration(case["timing"]["hold"]), parse_duration(case["timing"]["keep_firing_for"])
    )
    expected = [(parse_duration(n["at"]), n["reason"]) for n in case["notifications"]]
    assert pipeline(case, timing) == expected


def test_the_same_flickering_burn_without_the_flapping_guard_would_be_a_storm() -> None:
    case = load("pipeline.yml")[0]
    guarded = pipeline(case, AlertTiming(timedelta(minutes=2), timedelta(minutes=5)))
    unguarded = pipeline(case, AlertTiming(timedelta(0), timedelta(0)))

    def changes(sent: list[tuple[timedelta, str]]) -> int:
        return sum(reason in ("firing", "resolved") for _, reason in sent)

    assert changes(guarded) == 2
    assert changes(unguarded) >= 10


# --- inhibition, restarts, configuration changes ----------------------------------------------


@pytest.mark.parametrize(
    ("alerts", "inhibited"),
    [
        pytest.param(
            [("s", "page", "firing"), ("s", "ticket", "firing")],
            {("s", "ticket"): ("s", "page")},
            id="a firing page inhibits the ticket of its SLO",
        ),
        pytest.param(
            [("s", "page", "firing"), ("t", "ticket", "firing")],
            {},
            id="a page does not inhibit the ticket of another SLO",
        ),
        pytest.param(
            [("s", "page", "pending"), ("s", "ticket", "firing")],
            {},
            id="a pending page does not inhibit",
        ),
        pytest.param(
            [("s", "page", "resolved"), ("s", "ticket", "firing")],
            {},
            id="a resolved page does not inhibit",
        ),
        pytest.param(
            [("s", "page", "firing"), ("s", "ticket", "resolved")],
            {("s", "ticket"): ("s", "page")},
            id="a ticket's resolution is inhibited too",
        ),
    ],
)
def test_which_tickets_a_page_inhibits(
    alerts: list[tuple[str, str, str]], inhibited: dict[tuple[str, str], tuple[str, str]]
) -> None:
    built = {
        (slo, severity): make_alert(
            {"slo": slo, "severity": severity, "service": "shop"}, AlertState(state), START
        )
        for slo, severity, state in alerts
    }
    expected = {built[t].fingerprint: built[s].fingerprint for t, s in inhibited.items()}
    assert inhibitions(built.values()) == expected


def firing(slo: str, started: datetime = START) -> Alert:
    return make_alert(
        {"slo": slo, "severity": "page", "service": "shop"}, AlertState.FIRING, started
    )


def test_a_restart_that_loses_the_groups_sends_the_same_deduplication_key_again() -> None:
    tree = tree_from({"receiver": "oncall", "group_wait": "30s"})
    alerts = [firing("a"), firing("b")]
    first = dispatch([], alerts, tree, START)
    first = dispatch(first.groups, alerts, tree, START + timedelta(seconds=30))
    after_restart = dispatch([], alerts, tree, START + timedelta(minutes=1))
    after_restart = dispatch(
        after_restart.groups, alerts, tree, START + timedelta(minutes=1, seconds=30)
    )
    assert len(first.notifications) == 1
    assert len(after_restart.notifications) == 1
    assert after_restart.notifications[0].dedup_key == first.notifications[0].dedup_key


def test_repeats_of_one_incident_have_distinct_deduplication_keys() -> None:
    tree = tree_from({"receiver": "oncall", "repeat_interval": "1h"})
    alerts = [firing("a")]
    keys: list[str] = []
    groups: tuple[GroupState, ...] = ()
    for minutes in (0, 1, 61, 121):
        result = dispatch(groups, alerts, tree, START + timedelta(minutes=minutes))
        groups = result.groups
        keys.extend(n.dedup_key for n in result.notifications)
    assert len(keys) == 3 and len(set(keys)) == 3


def test_a_group_whose_route_was_removed_is_dropped_without_a_notification() -> None:
    old_tree = tree_from(
        {
            "receiver": "oncall",
            "group_wait": "30s",
            "routes": [{"matchers": ['slo="a"'], "receiver": "team"}],
        }
    )
    new_tree = tree_from({"receiver": "oncall", "group_wait": "30s"})
    alerts = [firing("a")]
    before = dispatch([], alerts, old_tree, START)
    after = dispatch(before.groups, alerts, new_tree, START + timedelta(minutes=1))
    assert [g.route_key for g in before.groups] == ['{}/{slo="a"}']
    assert [g.route_key for g in after.groups] == ["{}"]
    assert after.notifications == ()


def test_next_due_is_none_when_nothing_is_waiting() -> None:
    tree = tree_from({"receiver": "oncall"})
    assert dispatch([], [], tree, START) == Dispatch((), (), None)


def test_a_new_group_is_due_after_group_wait() -> None:
    tree = tree_from({"receiver": "oncall", "group_wait": "45s"})
    result = dispatch([], [firing("a")], tree, START)
    assert result.next_due_at == START + timedelta(seconds=45)
    assert result.notifications == ()


def test_a_notification_carries_receiver_group_and_alerts() -> None:
    tree = tree_from({"receiver": "oncall", "group_by": ["service"], "group_wait": "0s"})
    alert = firing("a")
    result = dispatch([], [alert], tree, START)
    assert result.notifications == (
        Notification(
            receiver="oncall",
            reason=NotifyReason.FIRING,
            group_key='{}:{service="shop"}',
            group_labels=(("service", "shop"),),
            alerts=(alert,),
            created_at=START,
        ),
    )


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dispatch([], [], tree_from({"receiver": "a"}), START.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"version": 9}, "group: version 9 is not supported", id="a future version"),
        pytest.param({"next_flush_at": "soon"}, "group: next_flush_at: 'soon'", id="a bad time"),
        pytest.param({"muted": "abc"}, "group: muted: expected list", id="a set that is text"),
        pytest.param(
            {"members": [{}]},
            r"group: members\[0\]: alert: burns: missing",
            id="a member without fields",
        ),
    ],
)
def test_a_corrupt_persisted_group_is_reported(change: dict[str, Any], message: str) -> None:
    tree = tree_from({"receiver": "oncall"})
    data = dispatch([], [firing("a")], tree, START).groups[0].to_data()
    data.update(change)
    with pytest.raises(CorruptAlertState, match=message):
        GroupState.from_data(data)
