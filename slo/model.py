"""The records of ``slo``: what an SLO is, and what evaluating one produces.

Everything here is a frozen value: it hashes, compares, and never changes after ``spec`` built
it. Mappings (labels, annotations) are sorted tuples of pairs for that reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from enum import StrEnum
from operator import add
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
    _fingerprint: str = field(default="", init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Computed once: the evaluator reads it for every SLO on every tick.
        object.__setattr__(self, "_fingerprint", self._compute_fingerprint())

    @property
    def id(self) -> str:
        return f"{self.service}-{self.name}"

    @property
    def error_budget(self) -> float:
        """The share of events that may be bad over the period (1 - objective)."""
        return 1.0 - self.objective

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _compute_fingerprint(self) -> str:
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


# --- measurements (sli-store): what the probe's exchanges add up to ---------------------------
#
# Counting rules, shared by the store, the health score and the exported metrics:
# - a *server error* is a 5xx, any other status outside 1xx..4xx, or an exchange that never
#   completed (the caller got no answer);
# - a *business error* is counted only in answers that are not server errors (a 5xx is an
#   availability failure, not a correctness one), so server + business errors <= total;
# - a *clean* request is neither;
# - an exchange that never completed has no latency: it falls in the +Inf bucket (it was not
#   answered within any threshold).

SERVER_SIDE = "server"  # EndpointKey.direction of what a service serves (probe.model.Direction)
CLIENT_SIDE = "client"  # ... of a service's outbound calls


@dataclass(frozen=True, slots=True, order=True)
class EndpointKey:
    """One endpoint as one service sees it. ``route`` is a template, never a raw path.

    ``direction`` is ``"server"`` for what the service serves (SLIs and the ``api_*`` metrics)
    and ``"client"`` for its outbound calls (exported as ``api_client_*`` mirrors only).
    """

    service: str
    direction: str
    method: str
    route: str


@dataclass(frozen=True, slots=True)
class Counts:
    """What one endpoint did during one stretch of time.

    ``bounds`` are the latency histogram's upper bounds in seconds, ascending (+Inf implied).
    ``latency_le[i]`` counts requests answered within ``bounds[i]`` (cumulative, like
    Prometheus' ``le``); ``clean_le`` is the same over clean requests only. ``error_types``
    pairs a business error type with its count, most frequent first (bounded upstream: at
    most a few types per endpoint, the rest under ``other``).
    """

    bounds: tuple[float, ...]
    total: int = 0
    server_errors: int = 0
    business_errors: int = 0
    latency_le: tuple[int, ...] = ()
    clean_le: tuple[int, ...] = ()
    error_types: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.latency_le and not self.clean_le and self.bounds:
            zeros = (0,) * len(self.bounds)
            object.__setattr__(self, "latency_le", zeros)
            object.__setattr__(self, "clean_le", zeros)
        if len(self.latency_le) != len(self.bounds) or len(self.clean_le) != len(self.bounds):
            raise ValueError("Counts: histograms must have one count per bound")

    @property
    def clean(self) -> int:
        """Requests with neither a server error nor a business error."""
        return self.total - self.server_errors - self.business_errors

    def within(self, threshold_s: float, *, clean_only: bool = False) -> int:
        """Requests answered within ``threshold_s`` (only clean ones if ``clean_only``).

        When the threshold is not one of the bounds (history written before an SLO with that
        threshold existed), the largest bound below it is used: the answer is conservative,
        never counting a request as fast that may not have been.
        """
        if math.isinf(threshold_s) and threshold_s > 0:
            return self.clean if clean_only else self.total
        index = bisect_right(self.bounds, threshold_s) - 1
        if index < 0:
            return 0
        return (self.clean_le if clean_only else self.latency_le)[index]

    def rebinned(self, bounds: tuple[float, ...]) -> Counts:
        """The same counts on other bounds; each new bound takes the count of the largest old
        bound at or below it (conservative, as in ``within``)."""
        if bounds == self.bounds:
            return self
        latency = tuple(self.within(b) for b in bounds)
        clean = tuple(self.within(b, clean_only=True) for b in bounds)
        return Counts(
            bounds,
            self.total,
            self.server_errors,
            self.business_errors,
            latency,
            clean,
            self.error_types,
        )

    def __add__(self, other: Counts) -> Counts:
        """Counts of both stretches. Different bounds meet on their union (see ``rebinned``)."""
        a, b = self, other
        if a.bounds is not b.bounds and a.bounds != b.bounds:
            union = tuple(sorted(set(a.bounds) | set(b.bounds)))
            a, b = a.rebinned(union), b.rebinned(union)
        return Counts(
            a.bounds,
            a.total + b.total,
            a.server_errors + b.server_errors,
            a.business_errors + b.business_errors,
            tuple(map(add, a.latency_le, b.latency_le)),  # same bounds, so same lengths
            tuple(map(add, a.clean_le, b.clean_le)),
            merge_error_types(a.error_types, b.error_types),
        )


def merge_error_types(
    *groups: tuple[tuple[str, int], ...], limit: int | None = None
) -> tuple[tuple[str, int], ...]:
    """Sums error-type counts, most frequent first (ties by name); beyond ``limit`` types the
    rest are summed under ``other``."""
    merged: dict[str, int] = {}
    for group in groups:
        for name, count in group:
            merged[name] = merged.get(name, 0) + count
    ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    if limit is None or len(ranked) <= limit:
        return tuple(ranked)
    kept = [item for item in ranked if item[0] != OTHER_ERROR_TYPE][: max(limit - 1, 0)]
    rest = sum(count for name, count in ranked if (name, count) not in kept)
    return (*kept, (OTHER_ERROR_TYPE, rest)) if rest else tuple(kept)


OTHER_ERROR_TYPE = "other"
"""The error type that stands for every type beyond an endpoint's bound."""

SLI_KINDS = ("health", "availability", "correctness", "latency")
"""The values of ``SliKind``: ``good_of`` accepts either the enum or these strings."""


def good_of(counts: Counts, sli_kind: str, threshold_s: float | None = None) -> int:
    """How many requests of ``counts`` were good for an SLI of this kind.

    health        clean (no server error, no business error) and, with a threshold, answered
                  within it
    availability  no server error
    correctness   no business error (a server error is not a correctness failure: it is
                  already an availability one)
    latency       answered within the threshold, whatever the status

    Linear in the counts: the good of a sum is the sum of the goods, which is what lets the
    store keep running (good, total) sums per SLO.
    """
    if sli_kind == "availability":
        return counts.total - counts.server_errors
    if sli_kind == "correctness":
        return counts.total - counts.business_errors
    if sli_kind == "health":
        if threshold_s is None:
            return counts.clean
        return counts.within(threshold_s, clean_only=True)
    if sli_kind == "latency":
        if threshold_s is None:
            raise ValueError("a latency SLI needs a latency threshold")
        return counts.within(threshold_s)
    raise ValueError(f"unknown SLI kind {sli_kind!r}; expected one of {', '.join(SLI_KINDS)}")


@dataclass(frozen=True, slots=True)
class BucketCounts:
    """The counts of one endpoint in one time bucket starting at ``start_s`` (Unix seconds)."""

    start_s: int
    key: EndpointKey
    counts: Counts


@dataclass(frozen=True, slots=True)
class HealthScore:
    """The semantic health of some requests over one window.

    ``score`` is the share of good requests (no server error, no business error, within the
    latency target); ``availability``, ``correctness`` and ``latency`` are its components.
    With no request there is nothing to judge: every ratio is None, never 1.0 or 0.0.
    """

    window_s: float
    requests: int
    available: int  # no server error
    correct: int  # no business error
    fast: int  # answered within the latency target
    good: int  # all three at once
    top_error_types: tuple[tuple[str, int], ...] = ()

    @property
    def score(self) -> float | None:
        return self._ratio(self.good)

    @property
    def availability(self) -> float | None:
        return self._ratio(self.available)

    @property
    def correctness(self) -> float | None:
        return self._ratio(self.correct)

    @property
    def latency(self) -> float | None:
        return self._ratio(self.fast)

    def _ratio(self, part: int) -> float | None:
        return part / self.requests if self.requests > 0 else None

    def __add__(self, other: HealthScore) -> HealthScore:
        if other.window_s != self.window_s:
            raise ValueError("cannot add health scores of different windows")
        return HealthScore(
            self.window_s,
            self.requests + other.requests,
            self.available + other.available,
            self.correct + other.correct,
            self.fast + other.fast,
            self.good + other.good,
            merge_error_types(self.top_error_types, other.top_error_types),
        )


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """One endpoint's health per window (in the configured window order)."""

    key: EndpointKey
    latency_target_s: float
    windows: tuple[HealthScore, ...]


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """A service's health per window (all its served endpoints together) and its endpoints'."""

    service: str
    windows: tuple[HealthScore, ...]
    endpoints: tuple[EndpointHealth, ...]
