"""The life of one alert (one SLO at one severity): inactive → pending → firing → resolved.

``step(previous, evaluation, now, timing)`` is pure: it takes the alert as it was (``None`` when
inactive), the evaluator's verdict for this tick (``BurnEvaluation``) and the injected ``now``,
and returns the alert as it is now and the transition, if one happened.

    inactive ─holds─▶ pending ─held for hold─▶ firing ─clear for keep_firing_for─▶ resolved
        ▲                │   ▲                   │  ▲  dips shorter than            │
        └──── clear ─────┘   │                   └──┘  keep_firing_for              │
                             └──────────── holds again: a new incident ────────────┘

Flapping guard. Two timers, both like Prometheus' alerting rules:

- ``hold`` (Prometheus' ``for``): the condition must hold on every evaluation for this long
  before the alert fires; a spike shorter than that never pages. A pending alert whose condition
  stops holding goes back to inactive at once. With a hold of zero an alert fires at once.
- ``keep_firing_for`` (Prometheus' ``keep_firing_for``): a firing alert resolves only after its
  condition has been clear for this long. A dip shorter than that does not resolve it, so a
  condition that flickers around its threshold gives one firing notification, not a storm.

An alert can therefore flip at most once per ``hold + keep_firing_for``; the routing layer's
``group_interval`` batches what is left. Repeats of a firing alert are the routing layer's
business too (each route has its ``repeat_interval``, as in Alertmanager), and so is the rule
that a firing page suppresses the ticket of the same SLO (``grouping.inhibitions``): the
ticket keeps its own state here, so the API can show it as inhibited.

Identity. ``Alert.fingerprint`` hashes the labels (``slo``, ``severity``, ``service`` and the
SLO's own labels), and ``incident_started_at`` is when the condition began to hold (the start of
pending), fixed for the whole incident. Both survive a restart because ``AlertRecord`` converts to
and from plain JSON-ready data (``to_data``/``from_data``). Storing it is left to the service: one
row per (slo, severity) holding ``json.dumps(record.to_data())``, written after each tick.

When the evaluator cannot evaluate (no data, store unavailable) it should not call ``step``: an
unknown is not a recovery. After a gap (a restart), ``step`` trusts the last record: a pending
alert whose hold has elapsed fires on the first evaluation that still holds.

Exceptions (in ``alerts/errors.py``):

    AlertStateError
    ├── InvalidEvaluation   the evaluation does not belong to this alert, or a time is naive
    └── CorruptAlertState   persisted data does not describe an alert; the message names the field
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from alerts.errors import CorruptAlertState, InvalidEvaluation
from alerts.model import Alert, AlertState, Labels, Severity, WindowBurn, labels_of

DATA_VERSION = 1

_T = TypeVar("_T")
_E = TypeVar("_E", Severity, AlertState)


@dataclass(frozen=True, slots=True)
class AlertTiming:
    """The flapping guard of one severity (see the module docstring)."""

    hold: timedelta
    keep_firing_for: timedelta

    def __post_init__(self) -> None:
        if self.hold < timedelta(0) or self.keep_firing_for < timedelta(0):
            raise ValueError("hold and keep_firing_for cannot be negative")


# A page should reach someone within minutes, but not for a two-minute blip; a ticket can wait.
DEFAULT_TIMINGS: Mapping[Severity, AlertTiming] = MappingProxyType(
    {
        Severity.PAGE: AlertTiming(
            hold=timedelta(minutes=2), keep_firing_for=timedelta(minutes=10)
        ),
        Severity.TICKET: AlertTiming(
            hold=timedelta(minutes=15), keep_firing_for=timedelta(hours=1)
        ),
    }
)


@dataclass(frozen=True, slots=True)
class BurnEvaluation:
    """What the evaluator decided for one SLO at one severity on one tick.

    ``condition_holds`` is the evaluator's verdict: normally ``any(b.tripped for b in burns)``,
    but it may also apply rules of its own (a minimum number of requests, say). The other fields
    describe the SLO right now and are copied onto the alert for the notifications.
    """

    slo: str
    severity: Severity
    condition_holds: bool
    service: str
    objective: float
    period_s: float
    burns: tuple[WindowBurn, ...]
    budget_remaining: float
    time_to_exhaustion_s: float | None = None
    sli: float | None = None
    top_error_types: tuple[tuple[str, int], ...] = ()
    labels: Labels = ()  # the SLO's own labels (team, tier, ...)
    annotations: Labels = ()  # summary, description, runbook_url, ...
    generator_url: str = ""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert that is not inactive, with what its timers need.

    ``last_held_at`` is the last evaluation at which the condition held (``keep_firing_for``
    counts from it); ``fired_at`` is when it started firing (``None`` while pending).
    """

    alert: Alert
    last_held_at: datetime
    fired_at: datetime | None = None

    @property
    def state(self) -> AlertState:
        return self.alert.state

    def to_data(self) -> dict[str, Any]:
        """Plain, JSON-ready data; ``from_data`` reads it back to an equal record."""
        return {
            "version": DATA_VERSION,
            "alert": alert_to_data(self.alert),
            "last_held_at": self.last_held_at.isoformat(),
            "fired_at": None if self.fired_at is None else self.fired_at.isoformat(),
        }

    @classmethod
    def from_data(cls, data: object) -> AlertRecord:
        read = DataReader(data, "alert record")
        version = read.field("version", int)
        if version != DATA_VERSION:
            raise CorruptAlertState(
                f"alert record: version {version} is not supported (expected {DATA_VERSION})"
            )
        return cls(
            alert=alert_from_data(read.field("alert", dict)),
            last_held_at=read.time("last_held_at"),
            fired_at=read.optional_time("fired_at"),
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, for the logs, the metrics and the API's history."""

    previous: AlertState
    alert: Alert  # as of this step; ``alert.state`` is the new state
    at: datetime

    @property
    def current(self) -> AlertState:
        return self.alert.state


@dataclass(frozen=True, slots=True)
class Step:
    """``record`` is ``None`` when the alert is (back to) inactive."""

    record: AlertRecord | None
    transition: Transition | None = None


def step(
    previous: AlertRecord | None,
    evaluation: BurnEvaluation,
    now: datetime,
    timing: AlertTiming,
) -> Step:
    """Advance one alert by one evaluation. Pure: the same inputs give the same answer."""
    _check(previous, evaluation, now)
    holds = evaluation.condition_holds
    if previous is None or previous.state in (AlertState.INACTIVE, AlertState.RESOLVED):
        if not holds:
            return Step(previous)
        was = AlertState.INACTIVE if previous is None else previous.state
        if timing.hold <= timedelta(0):
            fired = AlertRecord(_alert(evaluation, AlertState.FIRING, now), now, fired_at=now)
            return Step(fired, Transition(was, fired.alert, now))
        pending = AlertRecord(_alert(evaluation, AlertState.PENDING, now), now)
        return Step(pending, Transition(was, pending.alert, now))

    started = previous.alert.incident_started_at
    if previous.state is AlertState.PENDING:
        if not holds:
            cleared = _alert(evaluation, AlertState.INACTIVE, started, ended_at=now)
            return Step(None, Transition(AlertState.PENDING, cleared, now))
        if now - started >= timing.hold:
            fired = AlertRecord(_alert(evaluation, AlertState.FIRING, started), now, fired_at=now)
            return Step(fired, Transition(AlertState.PENDING, fired.alert, now))
        return Step(AlertRecord(_alert(evaluation, AlertState.PENDING, started), now))

    # Firing: stays so while the condition holds, and through dips shorter than keep_firing_for.
    last_held_at = now if holds else previous.last_held_at
    if holds or now - last_held_at < timing.keep_firing_for:
        alert = _alert(evaluation, AlertState.FIRING, started)
        return Step(AlertRecord(alert, last_held_at, previous.fired_at))
    resolved = _alert(evaluation, AlertState.RESOLVED, started, ended_at=now)
    record = AlertRecord(resolved, last_held_at, previous.fired_at)
    return Step(record, Transition(AlertState.FIRING, resolved, now))


def alert_labels(evaluation: BurnEvaluation) -> Labels:
    """The identity of the alert: the SLO's labels plus slo, severity and service."""
    return labels_of(
        dict(evaluation.labels),
        slo=evaluation.slo,
        severity=evaluation.severity.value,
        service=evaluation.service,
    )


def _alert(
    evaluation: BurnEvaluation,
    state: AlertState,
    started: datetime,
    *,
    ended_at: datetime | None = None,
) -> Alert:
    return Alert(
        slo=evaluation.slo,
        severity=evaluation.severity,
        state=state,
        labels=alert_labels(evaluation),
        annotations=labels_of(dict(evaluation.annotations)),
        service=evaluation.service,
        objective=evaluation.objective,
        period_s=evaluation.period_s,
        sli=evaluation.sli,
        burns=evaluation.burns,
        budget_remaining=evaluation.budget_remaining,
        time_to_exhaustion_s=evaluation.time_to_exhaustion_s,
        top_error_types=evaluation.top_error_types,
        incident_started_at=started,
        ended_at=ended_at,
        generator_url=evaluation.generator_url,
    )


def _check(previous: AlertRecord | None, evaluation: BurnEvaluation, now: datetime) -> None:
    if now.tzinfo is None:
        raise InvalidEvaluation(f"now must be timezone-aware, got {now.isoformat()}")
    if previous is None:
        return
    alert = previous.alert
    if (alert.slo, alert.severity) != (evaluation.slo, evaluation.severity):
        raise InvalidEvaluation(
            f"the evaluation of {evaluation.slo}/{evaluation.severity.value} was given the "
            f"alert of {alert.slo}/{alert.severity.value}"
        )


# --- plain data -------------------------------------------------------------------------------


def alert_to_data(alert: Alert) -> dict[str, Any]:
    """An ``Alert`` as JSON-ready data (labels as objects, times as ISO 8601 with offset)."""
    return {
        "slo": alert.slo,
        "severity": alert.severity.value,
        "state": alert.state.value,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "service": alert.service,
        "objective": alert.objective,
        "period_s": alert.period_s,
        "sli": alert.sli,
        "burns": [
            {
                "long_window_s": b.long_window_s,
                "short_window_s": b.short_window_s,
                "factor": b.factor,
                "long_burn": b.long_burn,
                "short_burn": b.short_burn,
            }
            for b in alert.burns
        ],
        "budget_remaining": alert.budget_remaining,
        "time_to_exhaustion_s": alert.time_to_exhaustion_s,
        "top_error_types": [[name, count] for name, count in alert.top_error_types],
        "incident_started_at": alert.incident_started_at.isoformat(),
        "ended_at": None if alert.ended_at is None else alert.ended_at.isoformat(),
        "generator_url": alert.generator_url,
    }


def alert_from_data(data: object) -> Alert:
    """Read ``alert_to_data``'s output back; ``CorruptAlertState`` names the bad field."""
    read = DataReader(data, "alert")
    burns = tuple(
        WindowBurn(
            long_window_s=b.number("long_window_s"),
            short_window_s=b.number("short_window_s"),
            factor=b.number("factor"),
            long_burn=b.number("long_burn"),
            short_burn=b.number("short_burn"),
        )
        for b in read.items("burns")
    )
    top_errors: list[tuple[str, int]] = []
    for index, pair in enumerate(read.field("top_error_types", list)):
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], int)
        ):
            raise CorruptAlertState(
                f"alert: top_error_types[{index}]: expected [error type, count], got {pair!r}"
            )
        top_errors.append((pair[0], pair[1]))
    return Alert(
        slo=read.field("slo", str),
        severity=read.enum("severity", Severity),
        state=read.enum("state", AlertState),
        labels=read.labels("labels"),
        annotations=read.labels("annotations"),
        service=read.field("service", str),
        objective=read.number("objective"),
        period_s=read.number("period_s"),
        sli=read.optional_number("sli"),
        burns=burns,
        budget_remaining=read.number("budget_remaining"),
        time_to_exhaustion_s=read.optional_number("time_to_exhaustion_s"),
        top_error_types=tuple(top_errors),
        incident_started_at=read.time("incident_started_at"),
        ended_at=read.optional_time("ended_at"),
        generator_url=read.field("generator_url", str),
    )


class DataReader:
    """Typed access to one persisted JSON object; errors name the field (``CorruptAlertState``)."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise CorruptAlertState(f"{where}: expected an object, got {type(data).__name__}")
        self.data: dict[str, object] = data
        self.where = where

    def fail(self, name: str, message: str) -> CorruptAlertState:
        return CorruptAlertState(f"{self.where}: {name}: {message}")

    def field(self, name: str, kind: type[_T]) -> _T:
        if name not in self.data:
            raise self.fail(name, "missing")
        value = self.data[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(name, f"expected {kind.__name__}, got {value!r}")
        return value

    def number(self, name: str) -> float:
        value = self.field(name, object)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"expected a number, got {value!r}")
        return float(value)

    def optional_number(self, name: str) -> float | None:
        return None if self.data.get(name) is None else self.number(name)

    def enum(self, name: str, kind: type[_E]) -> _E:
        value = self.field(name, str)
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise self.fail(name, f"{value!r} is not one of {allowed}") from None

    def time(self, name: str) -> datetime:
        text = self.field(name, str)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(name, f"{text!r} is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise self.fail(name, f"{text!r} has no UTC offset")
        return parsed

    def optional_time(self, name: str) -> datetime | None:
        return None if self.data.get(name) is None else self.time(name)

    def labels(self, name: str) -> Labels:
        value = self.field(name, dict)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise self.fail(name, "expected an object of strings")
        return labels_of(value)

    def strings(self, name: str) -> list[str]:
        values = self.field(name, list)
        if not all(isinstance(v, str) for v in values):
            raise self.fail(name, "expected a list of strings")
        return values

    def items(self, name: str) -> list[DataReader]:
        values = self.field(name, list)
        return [DataReader(v, f"{self.where}: {name}[{i}]") for i, v in enumerate(values)]
