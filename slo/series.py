"""Running window sums kept in memory: how 1,000 SLOs x 8 windows are read in milliseconds.

A ``Series`` is a few integer columns (for an SLO: good and total) per time bucket, for the
endpoints its selector picks, at every store tier its windows need. Each tier is a ring of
buckets: the store adds each flush's counts to it, and a window's sum is a slice sum over the
ring (C speed). The store rebuilds a series from its stored history when it is tracked, so
adding or editing an SLO evaluates it over the history at once.

Which tier answers a window: the finest one whose span covers it. Which buckets a window of
``W`` seconds at ``now`` sums: every bucket from the one holding ``now - W`` to the one holding
``now``; the window therefore covers between ``W`` and ``W`` + one bucket width (10 s for
windows up to 1 h, 1 min up to 6 h, 10 min up to 3 d, 1 h beyond).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from slo.model import Counts, EndpointKey


@dataclass(frozen=True, slots=True)
class Tier:
    """Buckets of ``width_s`` seconds that serve windows up to ``span_s``."""

    width_s: int
    span_s: int

    @property
    def slots(self) -> int:
        """Buckets a ring keeps: the span, the bucket holding its start, and the current one."""
        return -(-self.span_s // self.width_s) + 2

    @property
    def retention_s(self) -> int:
        return self.slots * self.width_s


Measure = Callable[[Counts], Sequence[int]]
"""Counts to the columns a series sums. Must be linear (the measure of a sum is the sum of the
measures), as ``good_of`` is: the store feeds it each flush's counts, not totals."""

Selects = Callable[[EndpointKey], bool]


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """What to track: a name (its identity in the store), which endpoints, which columns.

    ``max_window_s`` bounds the windows that will be asked, so that only the tiers they need
    are kept (a health series asking 5m and 1h keeps the 10 s tier only).
    """

    name: str
    selects: Selects
    measure: Measure
    columns: int
    max_window_s: float


class _Ring:
    """Column sums per bucket over the last ``size`` buckets of one tier."""

    __slots__ = ("cols", "head", "size", "width")

    def __init__(self, width: int, size: int, columns: int) -> None:
        self.width = width
        self.size = size
        self.head: int | None = None  # index (start // width) of the newest bucket
        # int64 arrays: 8 bytes a slot, where a list of large ints costs 36.
        self.cols = [_zeros(size) for _ in range(columns)]

    def add(self, index: int, values: Sequence[int]) -> None:
        head = self.head
        if head is None or index > head:
            self._advance(index)
        elif index <= head - self.size:
            return  # older than the ring: beyond every window this tier serves
        slot = index % self.size
        for col, value in zip(self.cols, values, strict=True):
            col[slot] += value

    def _advance(self, index: int) -> None:
        head = self.head
        if head is None or index - head >= self.size:
            self.cols = [_zeros(self.size) for _ in self.cols]
        else:
            for i in range(head + 1, index + 1):
                slot = i % self.size
                for col in self.cols:
                    col[slot] = 0
        self.head = index

    def sums(self, first: int, last: int) -> tuple[int, ...]:
        head = self.head
        if head is None:
            return (0,) * len(self.cols)
        lo = max(first, head - self.size + 1)
        hi = min(last, head)
        if lo > hi:
            return (0,) * len(self.cols)
        a, b = lo % self.size, hi % self.size
        if a <= b:
            return tuple(sum(col[a : b + 1]) for col in self.cols)
        return tuple(sum(col[a:]) + sum(col[: b + 1]) for col in self.cols)


def _zeros(size: int) -> array[int]:
    return array("q", bytes(8 * size))


class Series:
    """Window sums of one ``SeriesSpec``. Made by the store (``SliStore.track``), fed by it.

    Reading is thread-safe against the store's flushes.
    """

    def __init__(self, spec: SeriesSpec, tiers: Sequence[Tier], lock: threading.Lock) -> None:
        self.spec = spec
        self._lock = lock
        covering = tier_for(tiers, spec.max_window_s)
        kept = tiers[: tiers.index(covering) + 1]
        self._tiers = tuple(kept)
        self._rings = tuple(_Ring(t.width_s, t.slots, spec.columns) for t in kept)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers

    def add(self, start_s: int, values: Sequence[int]) -> None:
        """Add one bucket's column values to the ring of every tier."""
        for ring in self._rings:
            ring.add(start_s // ring.width, values)

    def add_to_tier(self, tier_index: int, start_s: int, values: Sequence[int]) -> None:
        """Add a bucket of one tier's stored history (the store rebuilding this series)."""
        ring = self._rings[tier_index]
        ring.add(start_s // ring.width, values)

    def sums(self, window_s: float, now: float) -> tuple[int, ...]:
        """Column sums over the window of ``window_s`` seconds that ends at ``now``."""
        tier = tier_for(self._tiers, window_s)
        ring = self._rings[self._tiers.index(tier)]
        first = int((now - window_s) // ring.width)
        last = int(now // ring.width)
        with self._lock:
            return ring.sums(first, last)

    def good_total(self, window_s: float, now: float) -> tuple[int, int]:
        """For a two-column (good, total) series: the window's (good, total)."""
        good, total = self.sums(window_s, now)[:2]
        return good, total


def tier_for(tiers: Sequence[Tier], window_s: float) -> Tier:
    """The finest tier whose span covers the window (the coarsest one when none does)."""
    for tier in tiers:
        if tier.span_s >= window_s:
            return tier
    return tiers[-1]


def coarse_tier_for(tiers: Sequence[Tier], window_s: float, buckets: int = 30) -> Tier:
    """The coarsest tier that covers the window in at least ``buckets`` buckets (else the
    finest covering one): for answers that need not be exact to the bucket, such as a top
    list of error types, at a fraction of the rows."""
    found = tier_for(tiers, window_s)
    for tier in tiers[tiers.index(found) + 1 :]:
        if tier.span_s >= window_s and tier.width_s * buckets <= window_s:
            found = tier
    return found
