"""Exchanges to per-endpoint counts per time bucket: the hot path between probe and store.

``Aggregator.add`` takes batches of ``HttpExchange`` and counts them per (bucket, endpoint,
status class) in plain mutable accumulators; ``drain`` hands the closed counts to the store as
``BucketCounts`` (one per bucket and endpoint), every flush interval. The same accumulators,
summed over the process lifetime, are what ``/metrics`` exports (``traffic``): counting each
exchange once serves both.

Everything that becomes a label is bounded here, whatever the input: the method is one of the
HTTP methods or ``_OTHER`` (as OpenTelemetry does), an endpoint's business error types are the
first ``max_error_types`` seen, then ``other``, and beyond ``max_endpoints`` a new endpoint's
route becomes ``:overflow`` (the route cap of ``probe.routes`` should make that never happen).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from probe.model import HttpExchange
from slo.model import OTHER_ERROR_TYPE, BucketCounts, Counts, EndpointKey

DEFAULT_BOUNDS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
"""Prometheus' default histogram buckets, in seconds; latency thresholds are merged in."""

DEFAULT_BUCKET_S = 10
OVERFLOW_ROUTE = ":overflow"  # the same value as probe.routes.OVERFLOW
OTHER_METHOD = "_OTHER"
UNKNOWN_ERROR_TYPE: Final = "unknown"  # a business error whose detector named no type

HTTP_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "none")
SERVER_ERROR_CLASSES = frozenset(("5xx", "none"))
_CLASS_OF_STATUS: Final = tuple(
    STATUS_CLASSES[status // 100 - 1] if 100 <= status <= 599 else "none" for status in range(1000)
)


def status_class(status: int, complete: bool) -> str:
    """``1xx``..``5xx``; ``none`` when the exchange never completed or its status is invalid."""
    if not complete or not 0 <= status < 1000:
        return "none"
    return _CLASS_OF_STATUS[status]


def merge_thresholds(
    bounds: Sequence[float] = DEFAULT_BOUNDS_S, thresholds: Iterable[float] = ()
) -> tuple[float, ...]:
    """Histogram bounds that include every latency threshold in use, so that "answered within
    the threshold" is an exact count (here and in PromQL), never an interpolation."""
    merged = set()
    for value in (*bounds, *thresholds):
        number = float(value)
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"latency bound {value!r}: expected a positive number of seconds")
        merged.add(number)
    if not merged:
        raise ValueError("a latency histogram needs at least one bound")
    return tuple(sorted(merged))


class _Acc:
    """Counts of one (bucket or lifetime, endpoint, status class): mutable, hot path only."""

    __slots__ = (
        "bucket",
        "clean_hist",
        "clean_sum_s",
        "cls",
        "count",
        "errors",
        "hist",
        "key",
        "sum_s",
    )

    def __init__(self, slots: int, key: EndpointKey, cls: str, bucket: int = 0) -> None:
        self.key = key
        self.cls = cls
        self.bucket = bucket
        self.count = 0
        self.sum_s = 0.0
        self.clean_sum_s = 0.0
        self.hist = [0] * slots  # non-cumulative; the last slot is +Inf
        self.clean_hist = [0] * slots
        self.errors: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class ClassTraffic:
    """Lifetime traffic of one endpoint and status class, as ``/metrics`` exports it.

    ``latency_le``/``clean_le`` are cumulative per bound of ``Traffic.bounds``; the +Inf
    counts are ``requests`` and ``clean``. ``*_sum_s`` are the histograms' sums.
    """

    key: EndpointKey
    status_class: str
    requests: int
    latency_le: tuple[int, ...]
    latency_sum_s: float
    clean: int
    clean_le: tuple[int, ...]
    clean_sum_s: float


@dataclass(frozen=True, slots=True)
class Traffic:
    """A snapshot of everything counted since the aggregator was made."""

    bounds: tuple[float, ...]
    classes: tuple[ClassTraffic, ...]
    business_errors: tuple[tuple[EndpointKey, str, int], ...]  # (endpoint, error type, count)


class Aggregator:
    """Counts exchanges per endpoint, per ``bucket_s`` bucket of their start time.

    Thread-safe: the probe loop calls ``add`` and ``drain``, the metrics endpoint ``traffic``.
    """

    def __init__(
        self,
        bounds: Sequence[float] = DEFAULT_BOUNDS_S,
        *,
        bucket_s: int = DEFAULT_BUCKET_S,
        max_error_types: int = 10,
        max_endpoints: int = 10_000,
    ) -> None:
        if bucket_s <= 0:
            raise ValueError("bucket_s must be positive")
        self._lock = threading.Lock()
        self._bucket_s = bucket_s
        self._max_error_types = max_error_types
        self._max_endpoints = max_endpoints
        self._bounds = merge_thresholds(bounds)
        # Everything exported keeps every bound ever used, so a cumulative bucket never shrinks.
        self._export_bounds = self._bounds
        # open[(bucket, service, direction, method, route, class)] -> accumulator of the bucket
        self._open: dict[tuple[int, str, str, str, str, str], _Acc] = {}
        self._closed: list[tuple[int, EndpointKey, str, _Acc, tuple[float, ...]]] = []
        self._keys: dict[tuple[str, str, str, str], EndpointKey] = {}
        self._error_types: dict[EndpointKey, set[str]] = {}
        self._lifetime: dict[tuple[EndpointKey, str], _Acc] = {}

    @property
    def bounds(self) -> tuple[float, ...]:
        return self._bounds

    @property
    def bucket_s(self) -> int:
        return self._bucket_s

    def add(self, exchanges: Iterable[HttpExchange]) -> None:
        """Count a batch of exchanges (the hot path: no validation, no allocation per call
        beyond a new accumulator per new bucket, endpoint and class)."""
        with self._lock:
            self._add(exchanges)

    def _add(self, exchanges: Iterable[HttpExchange]) -> None:
        accs = self._open
        bounds = self._bounds
        inf_slot = len(bounds)
        width = self._bucket_s
        classes = _CLASS_OF_STATUS
        for ex in exchanges:
            status = ex.status
            cls = classes[status] if ex.complete and 0 <= status < 1000 else "none"
            raw = (int(ex.ts // width), ex.service, ex.direction, ex.method, ex.route, cls)
            acc = accs.get(raw)
            if acc is None:
                acc = self._open_acc(raw)
            latency = ex.latency_s
            acc.count += 1
            acc.sum_s += latency
            if not ex.complete:
                acc.hist[inf_slot] += 1
                continue
            slot = bisect_left(bounds, latency)
            acc.hist[slot] += 1
            if cls == "5xx" or cls == "none":  # noqa: PLR1714 (faster than a set on this path)
                continue
            verdict = ex.verdict
            if verdict.business_error:
                errors = acc.errors
                if errors is None:
                    errors = acc.errors = {}
                kind = verdict.error_type or UNKNOWN_ERROR_TYPE
                if kind not in errors:
                    kind = self._admit_error_type(acc.key, kind)
                errors[kind] = errors.get(kind, 0) + 1
            else:
                acc.clean_hist[slot] += 1
                acc.clean_sum_s += latency

    def _endpoint(self, service: str, direction: str, method: str, route: str) -> EndpointKey:
        ident = (service, direction, method, route)
        key = self._keys.get(ident)
        if key is None:
            method_label = method if method in HTTP_METHODS else OTHER_METHOD
            if len(self._keys) >= self._max_endpoints:
                route = OVERFLOW_ROUTE
            key = EndpointKey(service, str(direction), method_label, route)
            if len(self._keys) < self._max_endpoints:
                self._keys[ident] = key
        return key

    def _open_acc(self, raw: tuple[int, str, str, str, str, str]) -> _Acc:
        bucket, service, direction, method, route, cls = raw
        key = self._endpoint(service, direction, method, route)
        # Raw identities may share an endpoint (a method outside the list, the overflow
        # route): they share one accumulator per bucket and class.
        canonical = (bucket, key.service, key.direction, key.method, key.route, cls)
        acc = self._open.get(canonical)
        if acc is None:
            acc = self._open[canonical] = _Acc(len(self._bounds) + 1, key, cls, bucket)
        if raw != canonical and (service, direction, method, route) in self._keys:
            self._open[raw] = acc  # a shortcut, for known endpoints only: memory stays bounded
        return acc

    def _admit_error_type(self, key: EndpointKey, kind: str) -> str:
        admitted = self._error_types.setdefault(key, set())
        if kind in admitted:
            return kind
        if len(admitted) < self._max_error_types:
            admitted.add(kind)
            return kind
        return OTHER_ERROR_TYPE

    def set_bounds(self, bounds: Sequence[float]) -> None:
        """Change the histogram bounds (an SLO with a new threshold was loaded). Counts so far
        keep their old bounds; the exported histograms keep every bound ever used."""
        merged = merge_thresholds(bounds)
        with self._lock:
            if merged == self._bounds:
                return
            self._close_open()
            self._bounds = merged
            union = tuple(sorted(set(self._export_bounds) | set(merged)))
            if union != self._export_bounds:
                for acc in self._lifetime.values():
                    acc.hist = _rebin(acc.hist, self._export_bounds, union)
                    acc.clean_hist = _rebin(acc.clean_hist, self._export_bounds, union)
                self._export_bounds = union

    def drain(self) -> list[BucketCounts]:
        """Everything counted since the last drain, one record per (bucket, endpoint)."""
        with self._lock:
            self._close_open()
            closed, self._closed = self._closed, []
        per_endpoint: dict[tuple[int, EndpointKey], list[tuple[str, _Acc, tuple[float, ...]]]]
        per_endpoint = {}
        for bucket, key, cls, acc, bounds in closed:
            per_endpoint.setdefault((bucket, key), []).append((cls, acc, bounds))
        out = [
            BucketCounts(bucket * self._bucket_s, key, _counts_of(parts))
            for (bucket, key), parts in per_endpoint.items()
        ]
        out.sort(key=lambda bc: (bc.start_s, bc.key))
        return out

    def _close_open(self) -> None:
        """Move open accumulators to the closed list and into the lifetime totals."""
        export = self._export_bounds
        for acc in _unique(self._open.values()):
            self._closed.append((acc.bucket, acc.key, acc.cls, acc, self._bounds))
            life = self._lifetime.get((acc.key, acc.cls))
            if life is None:
                life = self._lifetime[(acc.key, acc.cls)] = _Acc(len(export) + 1, acc.key, acc.cls)
            _accumulate(life, acc, self._bounds, export)
        self._open = {}

    def traffic(self) -> Traffic:
        """Lifetime counts (including what is not drained yet), for ``/metrics``."""
        with self._lock:
            export = self._export_bounds
            totals: dict[tuple[EndpointKey, str], _Acc] = {}
            for ident, life in self._lifetime.items():
                total = totals[ident] = _Acc(len(export) + 1, life.key, life.cls)
                _accumulate(total, life, export, export)
            for acc in _unique(self._open.values()):
                into = totals.get((acc.key, acc.cls))
                if into is None:
                    into = totals[(acc.key, acc.cls)] = _Acc(len(export) + 1, acc.key, acc.cls)
                _accumulate(into, acc, self._bounds, export)
        classes: list[ClassTraffic] = []
        errors: dict[tuple[EndpointKey, str], int] = {}
        for (key, cls), acc in sorted(totals.items(), key=lambda item: item[0]):
            classes.append(
                ClassTraffic(
                    key,
                    cls,
                    acc.count,
                    _cumulative(acc.hist)[:-1],
                    acc.sum_s,
                    sum(acc.clean_hist),
                    _cumulative(acc.clean_hist)[:-1],
                    acc.clean_sum_s,
                )
            )
            for kind, count in (acc.errors or {}).items():
                errors[(key, kind)] = errors.get((key, kind), 0) + count
        business = tuple((key, kind, count) for (key, kind), count in sorted(errors.items()))
        return Traffic(export, tuple(classes), business)


def _accumulate(
    into: _Acc, acc: _Acc, bounds: tuple[float, ...], target: tuple[float, ...]
) -> None:
    """Add ``acc`` (on ``bounds``) into ``into`` (on ``target``, a superset of ``bounds``)."""
    into.count += acc.count
    into.sum_s += acc.sum_s
    into.clean_sum_s += acc.clean_sum_s
    if bounds is target or bounds == target:
        hist, clean = acc.hist, acc.clean_hist
    else:
        hist, clean = _rebin(acc.hist, bounds, target), _rebin(acc.clean_hist, bounds, target)
    for i, n in enumerate(hist):
        into.hist[i] += n
    for i, n in enumerate(clean):
        into.clean_hist[i] += n
    if acc.errors:
        errors = into.errors if into.errors is not None else {}
        into.errors = errors
        for kind, n in acc.errors.items():
            errors[kind] = errors.get(kind, 0) + n


def _rebin(hist: list[int], bounds: tuple[float, ...], target: tuple[float, ...]) -> list[int]:
    """A non-cumulative histogram moved to other bounds: each count goes to the slot of the
    smallest target bound at or above its own bound (+Inf stays +Inf). Conservative: a count
    never moves to a smaller bound."""
    out = [0] * (len(target) + 1)
    for i, n in enumerate(hist):
        if n:
            slot = len(target) if i >= len(bounds) else bisect_left(target, bounds[i])
            out[slot] += n
    return out


def _cumulative(hist: list[int]) -> tuple[int, ...]:
    running = 0
    out = []
    for n in hist:
        running += n
        out.append(running)
    return tuple(out)


def _counts_of(parts: list[tuple[str, _Acc, tuple[float, ...]]]) -> Counts:
    """One endpoint's counts in one bucket, from its per-class accumulators."""
    bounds = parts[0][2]
    if any(b is not bounds and b != bounds for _, _, b in parts):
        union = tuple(sorted({x for _, _, b in parts for x in b}))
        parts = [(cls, _rebinned_acc(acc, b, union), union) for cls, acc, b in parts]
        bounds = union
    slots = len(bounds) + 1
    hist = [0] * slots
    clean = [0] * slots
    total = server = business = 0
    errors: dict[str, int] = {}
    for cls, acc, _ in parts:
        total += acc.count
        if cls in SERVER_ERROR_CLASSES:
            server += acc.count
        for i in range(slots):
            hist[i] += acc.hist[i]
            clean[i] += acc.clean_hist[i]
        if acc.errors:
            for kind, n in acc.errors.items():
                errors[kind] = errors.get(kind, 0) + n
                business += n
    ranked = tuple(sorted(errors.items(), key=lambda item: (-item[1], item[0])))
    return Counts(
        bounds,
        total,
        server,
        business,
        _cumulative(hist)[:-1],
        _cumulative(clean)[:-1],
        ranked,
    )


def _unique(accs: Iterable[_Acc]) -> Iterator[_Acc]:
    seen: set[int] = set()
    for acc in accs:
        if id(acc) not in seen:
            seen.add(id(acc))
            yield acc


def _rebinned_acc(acc: _Acc, bounds: tuple[float, ...], target: tuple[float, ...]) -> _Acc:
    out = _Acc(len(target) + 1, acc.key, acc.cls, acc.bucket)
    _accumulate(out, acc, bounds, target)
    return out
