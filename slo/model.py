"""The records of ``slo``: what an SLO is, and what evaluating one produces.

Everything here is a frozen value: it hashes, compares, and never changes after ``spec`` built
it. Mappings (labels, annotations) are sorted tuples of pairs for that reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from slo.errors import Position

# --- SLO definitions (issue 4) -----------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]


def labels_of(mapping: dict[str, str] | None = None, **extra: str) -> Labels:
    """A canonical (sorted, deduplicated) label tuple."""
    merged = dict(mapping or {})
    merged.update(extra)
    return tuple(sorted(merged.items()))


class Severity(StrEnum):
    """How urgent a burn is. The same values as ``alerts.model.Severity``."""

    PAGE = "page"  # wake someone up: the budget is burning fast
    TICKET = "ticket"  # look at it during working hours: a slow, steady burn


class SliKind(StrEnum):
    """Which requests count as good, for an SLI measured by the probe."""

    HEALTH = "health"  # no 5xx, no business error, within the latency threshold (if any)
    AVAILABILITY = "availability"  # no 5xx and a complete response
    CORRECTNESS = "correctness"  # no business error in the body
    LATENCY = "latency"  # answered within the latency threshold, whatever the status


@dataclass(frozen=True, slots=True)
class Selector:
    """Which requests an SLO is about: one service, optionally one route and one method.

    ``route`` is an exact route template (``/users/{id}``); ``route_regex`` an RE2 pattern that
    must match the whole route, as Prometheus anchors it. At most one of the two is set; neither
    means every route. ``method`` is an upper-case HTTP method; None means every method.
    """

    service: str
    route: str | None = None
    route_regex: str | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointSli:
    """An SLI that bytewatch measures itself, from the probe's per-endpoint counts."""

    kind: SliKind
    selector: Selector
    latency_threshold_s: float | None = None  # required for LATENCY; optional for HEALTH


@dataclass(frozen=True, slots=True)
class QuerySli:
    """An SLI defined by another system's queries (Sloth, OpenSLO), kept verbatim.

    Exactly one shape is set: ``error_query`` and ``total_query`` (bad events over all),
    ``good_query`` and ``total_query`` (good events over all), ``error_ratio_query`` alone,
    or ``threshold_query`` (an OpenSLO threshold metric, loaded but not evaluated).
    Prometheus queries may contain Sloth's ``{{.window}}`` placeholder for the range.
    ``source`` is ``prometheus`` for Prometheus queries, else the OpenSLO metric source type.
    """

    source: str
    error_query: str | None = None
    good_query: str | None = None
    total_query: str | None = None
    error_ratio_query: str | None = None
    threshold_query: str | None = None


Sli = EndpointSli | QuerySli


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """One row of a multiwindow, multi-burn-rate alert policy.

    The pair trips when both windows burn faster than ``factor``. ``factor`` is derived when
    the SLO is built: budget_fraction * period / long window (``windows.factor``), so that
    spending ``budget_fraction`` of the period's budget within ``long_window_s`` trips it.
    """

    severity: Severity
    long_window_s: float
    short_window_s: float
    budget_fraction: float
    factor: float


@dataclass(frozen=True, slots=True)
class SeverityAlert:
    """How one severity alerts: its alert name, hold time, labels and receivers."""

    severity: Severity
    name: str  # the alert name (Prometheus ``alert:``)
    for_s: float  # the condition must hold this long before the alert fires
    labels: Labels = ()
    annotations: Labels = ()
    receivers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When an SLO alerts. ``windows`` are measured even for a severity with no alert."""

    windows: tuple[BurnWindow, ...]
    alerts: tuple[SeverityAlert, ...]  # one per enabled severity; none: record, never alert
    min_events: int = 0  # a pair trips only if its long window saw at least this many events

    def alert_for(self, severity: Severity) -> SeverityAlert | None:
        return next((a for a in self.alerts if a.severity is severity), None)

    def windows_for(self, severity: Severity) -> tuple[BurnWindow, ...]:
        return tuple(w for w in self.windows if w.severity is severity)


class BudgetingMethod(StrEnum):
    """OpenSLO's budgeting methods. bytewatch evaluates ``Occurrences`` (counts of events)."""

    OCCURRENCES = "Occurrences"
    TIMESLICES = "Timeslices"
    RATIO_TIMESLICES = "RatioTimeslices"


@dataclass(frozen=True, slots=True)
class Slo:
    """One service level objective.

    Identity is ``id`` (service and name); two SLOs with the same id cannot be loaded together.
    ``fingerprint`` changes exactly when what the SLO measures or decides changes (SLI,
    objective, period, budgeting, alert windows, minimum events): a stored history must then be
    evaluated again. Labels, annotations, receivers, alert names and descriptions are not part
    of it: they change who hears about a decision, not the decision. ``source`` (where the SLO
    was defined) takes no part in equality or hashing.
    """

    service: str
    name: str
    objective: float  # the target ratio of good events, 0 < objective < 1 (0.999)
    period_s: float  # the rolling period over which the budget is counted
    sli: Sli
    alerting: AlertPolicy
    description: str = ""
    labels: Labels = ()
    annotations: Labels = ()
    budgeting: BudgetingMethod = BudgetingMethod.OCCURRENCES
    calendar: str | None = None  # OpenSLO calendar-aligned window ("<start> <zone>"); None: rolling
    spec: str = "bytewatch/v1"  # the format it was written in
    source: Position | None = field(default=None, compare=False, hash=False)

    @property
    def id(self) -> str:
        return f"{self.service}-{self.name}"

    @property
    def error_budget(self) -> float:
        """The share of events that may be bad over the period (1 - objective)."""
        return 1.0 - self.objective

    @property
    def fingerprint(self) -> str:
        decisive = {
            "sli": _plain(self.sli),
            "sli_type": type(self.sli).__name__,
            "objective": self.objective,
            "period_s": self.period_s,
            "budgeting": self.budgeting.value,
            "calendar": self.calendar,
            "windows": [_plain(w) for w in self.alerting.windows],
            "min_events": self.alerting.min_events,
        }
        text = json.dumps(decisive, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a record, for fingerprints."""
    if isinstance(value, StrEnum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


# --- burn-rate results (issue 4): what ``burn.evaluate`` returns ------------------------------


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """One window pair checked against counts: both burns must exceed ``factor`` to trip.

    A burn is None when its window saw no events (nothing to judge). ``enough_events`` is false
    when the long window saw fewer than the policy's ``min_events``; such a pair never trips.
    """

    window: BurnWindow
    long_burn: float | None
    short_burn: float | None
    long_total: int
    short_total: int
    enough_events: bool

    @property
    def tripped(self) -> bool:
        return (
            self.enough_events
            and self.long_burn is not None
            and self.short_burn is not None
            and self.long_burn > self.window.factor
            and self.short_burn > self.window.factor
        )


@dataclass(frozen=True, slots=True)
class BurnResult:
    """All window pairs of one severity: the severity trips when any of its pairs trips."""

    severity: Severity
    checks: tuple[WindowCheck, ...]

    @property
    def tripped(self) -> bool:
        return any(check.tripped for check in self.checks)


@dataclass(frozen=True, slots=True)
class SloStatus:
    """An SLO evaluated at one instant, from (good, total) counts per window.

    ``sli`` and ``budget_remaining`` cover the whole period; ``budget_remaining`` is the share
    of the period's error budget still unspent (1.0 untouched, 0.0 spent, negative overspent).
    ``current_burn`` is the burn over the policy's shortest long window (1h by default), and
    ``time_to_exhaustion_s`` how long the remaining budget lasts at that burn (0 when already
    spent, None when not burning).
    """

    slo_id: str
    fingerprint: str
    sli: float | None
    budget_remaining: float
    current_burn: float | None
    time_to_exhaustion_s: float | None
    results: tuple[BurnResult, ...]

    def result(self, severity: Severity) -> BurnResult | None:
        return next((r for r in self.results if r.severity is severity), None)
