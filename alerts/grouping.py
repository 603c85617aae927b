"""Aggregation groups, as Alertmanager's dispatcher keeps them: which notifications are due now.

``dispatch(groups, alerts, tree, now, silenced=...)`` is pure. It takes the groups as the last
call left them, every alert the state machine tracks, the compiled routing tree and the injected
``now``; it returns the groups to keep, the ``Notification``s to enqueue and ``next_due_at``, the
earliest time a notification becomes due if nothing else changes. The service calls it after
every evaluation tick and at ``next_due_at`` (and when a silence starts or ends).

The rules are Alertmanager's:

- A firing alert goes to the group of each route it matches; the group key is the route's key
  and the values of the route's ``group_by`` labels (``...`` groups by all labels). Groups are
  created and joined by firing alerts; a resolution only updates an alert its group holds.
- A new group is flushed ``group_wait`` after it was created, then every ``group_interval``.
  At a flush the group notifies when it holds firing alerts its receiver was not told about
  (reason ``firing``), when alerts it was told about have resolved (``resolved``), or, with
  nothing changed, when ``repeat_interval`` has passed since the last notification (``repeat``).
  A group whose alerts all fired and resolved between two flushes sends nothing: the receiver
  never heard of them.
- A resolved alert is sent once and then dropped from its group; a group with no alerts left is
  deleted (the next firing alert starts a new one, with ``group_wait``). A firing alert that
  disappears from the input (its SLO was deleted) is resolved.
- Muted alerts (silenced, or inhibited: a firing page inhibits the ticket of the same SLO) are
  left out of notifications, as in Alertmanager's mute stage; if they resolve while muted the
  receiver is not told. They stay in their groups.

Calling. The service calls ``dispatch`` after every evaluation tick (alerts change only then),
at ``next_due_at``, and when a silence starts or ends (``silences.next_change_at``). Flushes it
slept through because nothing was due are caught up with the alerts (and their muting) as they
were, before the new alerts are taken in, so the answers do not depend on how often it calls.

Deliberate differences: there is no ``send_resolved`` switch (receivers always get resolutions;
a notifier may drop them); flushes are on a fixed grid (``group_wait`` after creation, then every
``group_interval``), not on timers reset by slow sends; an alert that started long before its
group existed (after a restart that lost the groups) still waits ``group_wait``: the outbox's
deduplication key keeps that from paging twice. Persist ``GroupState.to_data()`` next to the
alert records to carry groups across restarts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from alerts.errors import CorruptAlertState
from alerts.model import Alert, AlertState, Labels, Notification, NotifyReason, Severity
from alerts.routing import Route, group_key, group_labels, match_routes
from alerts.state import DataReader, alert_from_data, alert_to_data

DATA_VERSION = 1


@dataclass(frozen=True, slots=True)
class GroupState:
    """One aggregation group between two calls of ``dispatch``.

    ``notified_firing``/``notified_resolved`` are the incident keys of the last notification
    (Alertmanager's notification log); ``muted`` the fingerprints of members muted at the last
    call, so that a flush slept through is caught up with the muting of its time.
    """

    key: str
    route_key: str
    labels: Labels
    members: tuple[Alert, ...]
    next_flush_at: datetime
    last_notified_at: datetime | None = None
    notified_firing: frozenset[str] = frozenset()
    notified_resolved: frozenset[str] = frozenset()
    muted: frozenset[str] = frozenset()

    def to_data(self) -> dict[str, Any]:
        return {
            "version": DATA_VERSION,
            "key": self.key,
            "route_key": self.route_key,
            "labels": dict(self.labels),
            "members": [alert_to_data(a) for a in self.members],
            "next_flush_at": self.next_flush_at.isoformat(),
            "last_notified_at": _iso(self.last_notified_at),
            "notified_firing": sorted(self.notified_firing),
            "notified_resolved": sorted(self.notified_resolved),
            "muted": sorted(self.muted),
        }

    @classmethod
    def from_data(cls, data: object) -> GroupState:
        read = DataReader(data, "group")
        version = read.field("version", int)
        if version != DATA_VERSION:
            raise CorruptAlertState(
                f"group: version {version} is not supported (expected {DATA_VERSION})"
            )
        return cls(
            key=read.field("key", str),
            route_key=read.field("route_key", str),
            labels=read.labels("labels"),
            members=tuple(_member(i, a) for i, a in enumerate(read.field("members", list))),
            next_flush_at=read.time("next_flush_at"),
            last_notified_at=read.optional_time("last_notified_at"),
            notified_firing=frozenset(read.strings("notified_firing")),
            notified_resolved=frozenset(read.strings("notified_resolved")),
            muted=frozenset(read.strings("muted")),
        )


def _member(index: int, data: object) -> Alert:
    try:
        return alert_from_data(data)
    except CorruptAlertState as exc:
        raise CorruptAlertState(f"group: members[{index}]: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Dispatch:
    groups: tuple[GroupState, ...]  # hand these to the next call
    notifications: tuple[Notification, ...]  # enqueue these
    next_due_at: datetime | None  # call again by then (None: nothing is waiting)


def inhibitions(alerts: Iterable[Alert]) -> dict[str, str]:
    """Ticket fingerprint → the fingerprint of the firing page of the same SLO that mutes it."""
    alerts = list(alerts)
    pages = {
        a.slo: a.fingerprint
        for a in alerts
        if a.severity is Severity.PAGE and a.state is AlertState.FIRING
    }
    return {
        a.fingerprint: pages[a.slo]
        for a in alerts
        if a.severity is Severity.TICKET and a.slo in pages
    }


def dispatch(
    groups: Iterable[GroupState],
    alerts: Sequence[Alert],
    tree: Route,
    now: datetime,
    *,
    silenced: Collection[str] = frozenset(),
) -> Dispatch:
    """Advance every group to ``now``. ``silenced`` holds fingerprints muted by silences."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now.isoformat()}")
    routes = {route.key: route for route in tree.walk()}
    muted = frozenset(silenced) | inhibitions(alerts).keys()
    live = [a for a in alerts if a.state in (AlertState.FIRING, AlertState.RESOLVED)]
    current = {a.incident_key for a in live}

    arriving: dict[str, _Arrival] = {}
    for alert in live:
        for route in match_routes(tree, alert.labels):
            labels = group_labels(route, alert.labels)
            key = group_key(route, labels)
            arriving.setdefault(key, _Arrival(route, labels, [])).alerts.append(alert)

    previous = {group.key: group for group in groups}
    kept: list[GroupState] = []
    notifications: list[Notification] = []
    due: list[datetime] = []
    for key in sorted(previous.keys() | arriving.keys()):
        group, sent = _advance(
            key,
            previous.get(key),
            arriving.get(key),
            routes=routes,
            now=now,
            current=current,
            muted=muted,
        )
        notifications.extend(sent)
        if group is not None:
            kept.append(group)
            if (when := _next_due(group, routes[group.route_key], muted)) is not None:
                due.append(when)
    return Dispatch(tuple(kept), tuple(notifications), min(due, default=None))


@dataclass(frozen=True, slots=True)
class _Arrival:
    """The alerts routed to one group key on this call."""

    route: Route
    labels: Labels
    alerts: list[Alert]


def _advance(
    key: str,
    group: GroupState | None,
    arrival: _Arrival | None,
    *,
    routes: dict[str, Route],
    now: datetime,
    current: set[str],
    muted: frozenset[str],
) -> tuple[GroupState | None, list[Notification]]:
    """One group's part of ``dispatch``: the group afterwards (None: deleted) and what it sent."""
    sent: list[Notification] = []

    def flush(
        group: GroupState, route: Route, muted: frozenset[str], next_after: datetime
    ) -> GroupState | None:
        group, notification = _flush(group, route, now, muted, next_after)
        if notification is not None:
            sent.append(notification)
        return group if group.members else None

    route = None if group is None else routes.get(group.route_key)
    if group is not None and route is None:
        return None, sent  # its route is gone with a configuration change
    if group is not None and route is not None and group.next_flush_at < now:
        # Catch up on a flush slept through, with the alerts and muting as they were then.
        group = flush(group, route, group.muted, now - timedelta.resolution)
    incoming = [] if arrival is None else arrival.alerts
    if group is None or route is None:
        if arrival is None or not any(a.state is AlertState.FIRING for a in incoming):
            return None, sent
        route = arrival.route
        group = GroupState(key, route.key, arrival.labels, (), now + route.group_wait)
    group = _take_in(group, incoming, current, now)
    group = replace(group, muted=muted & {m.fingerprint for m in group.members})
    if now >= group.next_flush_at:
        return flush(group, route, muted, now), sent
    return group, sent


def _take_in(
    group: GroupState, incoming: list[Alert], current: set[str], now: datetime
) -> GroupState:
    arriving = {alert.incident_key: alert for alert in incoming}
    members: dict[str, Alert] = {}
    for member in group.members:
        key = member.incident_key
        if key in arriving:
            members[key] = arriving[key]
        elif key in current:
            continue  # the alert now routes elsewhere
        elif member.state is AlertState.FIRING:
            # Gone without resolving (its SLO was removed): tell the receiver it is over.
            members[key] = replace(member, state=AlertState.RESOLVED, ended_at=now)
        else:
            members[key] = member  # resolved and not yet sent
    for key, alert in arriving.items():
        if key not in members and alert.state is AlertState.FIRING:
            members[key] = alert
    ordered = sorted(members.values(), key=lambda a: (a.labels, a.incident_started_at))
    return replace(group, members=tuple(ordered))


def _flush(
    group: GroupState,
    route: Route,
    now: datetime,
    muted: frozenset[str],
    next_after: datetime,
) -> tuple[GroupState, Notification | None]:
    visible = tuple(m for m in group.members if m.fingerprint not in muted)
    firing = frozenset(m.incident_key for m in visible if m.state is AlertState.FIRING)
    resolved = frozenset(m.incident_key for m in visible if m.state is AlertState.RESOLVED)
    reason = _reason(group, firing, resolved, now, route.repeat_interval)
    notification = None
    if reason is not None and visible:
        notification = Notification(
            receiver=route.receiver,
            reason=reason,
            group_key=group.key,
            group_labels=group.labels,
            alerts=visible,
            created_at=now,
        )
        group = replace(
            group, last_notified_at=now, notified_firing=firing, notified_resolved=resolved
        )
    # Resolved alerts are sent (at most) once, then forgotten, as Alertmanager does.
    group = replace(
        group,
        members=tuple(m for m in group.members if m.state is AlertState.FIRING),
        next_flush_at=_tick_after(group.next_flush_at, route.group_interval, next_after),
    )
    return group, notification


def _reason(
    group: GroupState,
    firing: frozenset[str],
    resolved: frozenset[str],
    now: datetime,
    repeat_interval: timedelta,
) -> NotifyReason | None:
    """Alertmanager's dedup decision, against the last notification of this group."""
    if group.last_notified_at is None:
        return NotifyReason.FIRING if firing else None
    if not firing <= group.notified_firing:
        return NotifyReason.FIRING
    if not firing:
        return NotifyReason.RESOLVED if group.notified_firing else None
    if not resolved <= group.notified_resolved:
        return NotifyReason.RESOLVED
    if now - group.last_notified_at >= repeat_interval:
        return NotifyReason.REPEAT
    return None


def _next_due(group: GroupState, route: Route, muted: frozenset[str]) -> datetime | None:
    """When this group will next notify if its alerts stay as they are."""
    visible = [m for m in group.members if m.fingerprint not in muted]
    firing = frozenset(m.incident_key for m in visible if m.state is AlertState.FIRING)
    resolved = frozenset(m.incident_key for m in visible if m.state is AlertState.RESOLVED)
    at = group.next_flush_at
    if visible and _reason(group, firing, resolved, at, route.repeat_interval) is not None:
        return at
    if firing and group.last_notified_at is not None:
        repeat_at = group.last_notified_at + route.repeat_interval
        # the first flush at or after repeat_at
        return _tick_after(at, route.group_interval, repeat_at - timedelta.resolution)
    return None


def _tick_after(anchor: datetime, interval: timedelta, moment: datetime) -> datetime:
    """The first of ``anchor + k * interval`` (k ≥ 0) that is later than ``moment``."""
    if anchor > moment:
        return anchor
    return anchor + ((moment - anchor) // interval + 1) * interval


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
