"""The records of ``slo``: what an SLO is, and what evaluating one produces.

Everything here is a frozen value: it hashes, compares, and never changes after it is built.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from operator import add

# --- measurements (sli-store): what the probe's exchanges add up to ---------------------------
#
# Imports this section needs: math, bisect.bisect_right, dataclasses.dataclass, operator.add.
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
