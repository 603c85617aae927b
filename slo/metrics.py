"""What ``/metrics`` exports: a Prometheus ``Collector`` over the aggregator, the health score
and the probe's own counters.

This is a contract: the Prometheus rules ``bytewatch rules`` writes and the Grafana dashboard
query these names and labels.

=====================================  ========  =============================================
``api_requests_total``                 counter   service, method, route, status_class
``api_business_errors_total``          counter   service, method, route, error_type
``api_http_duration_seconds``          histogram service, method, route, status_class
``api_clean_duration_seconds``         histogram service, method, route
``api_client_requests_total``          counter   service, method, route, status_class
``api_client_http_duration_seconds``   histogram service, method, route, status_class
``api_health_score``                   gauge     service, route
``api_service_health_score``           gauge     service
``bytewatch_probe_*_total``            counter   (``bytewatch_probe_overflowed_routes_total``:
                                                 service)
``bytewatch_probe_connections``        gauge
=====================================  ========  =============================================

The ``api_*`` families describe what services *serve* (server side); the ``api_client_*``
ones mirror them for outbound calls and are never mixed in. ``status_class`` is ``1xx`` ..
``5xx``, or ``none`` when the exchange never completed. ``api_clean_duration_seconds`` counts
only requests with no server error and no business error, so that "good = clean and within
the threshold" is one exact bucket in PromQL: ``api_clean_duration_seconds_bucket{le="0.3"}``
over ``api_requests_total``. An exchange that never completed is in the +Inf bucket only (its
time until the connection ended still adds to ``_sum``). The health gauges cover the first
health window (5 minutes by default); a route or service with no request in it has no sample.
No user id, request id or raw path is ever a label: routes are templates, error types are
bounded per endpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from probe.source import ProbeStats
from slo.aggregate import Traffic
from slo.errors import StoreError
from slo.model import SERVER_SIDE, HealthScore, ServiceHealth

log = logging.getLogger(__name__)

_go_float: Callable[[float], str] = floatToGoString  # typed alias of an untyped helper


def le_label(bound_s: float) -> str:
    """The ``le`` label value of a histogram bound, exactly as ``/metrics`` writes it
    (``0.3``, ``1.0``, ``+Inf``): Prometheus rules must match it character for character."""
    return _go_float(bound_s)


PROBE_COUNTERS: Mapping[str, tuple[str, str]] = {
    # ProbeStats field: (metric name without _total, help)
    "kernel_records": ("bytewatch_probe_kernel_records", "Records the kernel probe emitted."),
    "lost_records": (
        "bytewatch_probe_lost_records",
        "Records lost because both ring buffers refused them.",
    ),
    "spilled_records": (
        "bytewatch_probe_spilled_records",
        "Records the main ring buffer refused and the spill ring took.",
    ),
    "truncated_messages": (
        "bytewatch_probe_truncated_messages",
        "HTTP messages cut at the capture size (expected for large bodies).",
    ),
    "missed_syscalls": (
        "bytewatch_probe_missed_syscalls",
        "Reads and writes missed because the kernel's in-flight table was full.",
    ),
    "http2_connections": (
        "bytewatch_probe_http2_connections",
        "Connection ends that began with HTTP/2's preface: seen, not decoded (HTTP/1.x only).",
    ),
    "io_uring_operations": (
        "bytewatch_probe_io_uring_operations",
        "Socket operations submitted through io_uring: seen, not decoded.",
    ),
    "records": ("bytewatch_probe_records", "Records read from the ring buffer."),
    "abi_errors": ("bytewatch_probe_abi_errors", "Records that did not decode."),
    "exchanges": ("bytewatch_probe_exchanges", "HTTP exchanges observed."),
    "incomplete": (
        "bytewatch_probe_incomplete_exchanges",
        "Exchanges whose response never completed.",
    ),
    "parse_errors": ("bytewatch_probe_parse_errors", "HTTP messages that did not parse."),
    "lost_starts": (
        "bytewatch_probe_lost_starts",
        "Messages whose start was never seen (the probe attached mid-stream, or records lost).",
    ),
    "cut_heads": (
        "bytewatch_probe_cut_heads",
        "Message heads longer than the capture size (large cookies or tokens): paired, but "
        "headers past the cut are unknown.",
    ),
    "unmatched_responses": (
        "bytewatch_probe_unmatched_responses",
        "Responses without a request to pair them with.",
    ),
    "dropped_requests": (
        "bytewatch_probe_dropped_requests",
        "Requests dropped because too many were pending on one connection.",
    ),
    "abandoned_requests": (
        "bytewatch_probe_abandoned_requests",
        "Requests in flight when records of their connection were lost.",
    ),
    "resequenced_records": (
        "bytewatch_probe_resequenced_records",
        "Records that arrived ahead of their turn (through the spill ring) and waited for it.",
    ),
    "late_records": (
        "bytewatch_probe_late_records",
        "Records that arrived after their turn was given up; dropped, their connection resynced.",
    ),
    "reader_raised": (
        "bytewatch_probe_reader_raised",
        "Times the agent's reading thread fell behind or was starved of CPU, and left "
        "SCHED_IDLE for its nice value.",
    ),
    "evicted_connections": (
        "bytewatch_probe_evicted_connections",
        "Connections forgotten because too many were tracked.",
    ),
    "filtered": (
        "bytewatch_probe_filtered_exchanges",
        "Exchanges left out by the pid, process or port filters.",
    ),
}
PROBE_GAUGES: Mapping[str, tuple[str, str]] = {
    "connections": ("bytewatch_probe_connections", "Connections tracked right now."),
}


class TrafficSource(Protocol):
    """``slo.aggregate.Aggregator``."""

    def traffic(self) -> Traffic: ...


class HealthSource(Protocol):
    """``slo.health.HealthScorer``."""

    @property
    def windows_s(self) -> tuple[float, ...]: ...

    def services(
        self,
        *,
        now: float | None = None,
        windows_s: tuple[float, ...] | None = None,
        error_types: bool = True,
    ) -> list[ServiceHealth]: ...


class BytewatchCollector:
    """Register on an injected registry: ``registry.register(BytewatchCollector(...))``.

    Every source is optional, so that each part can be exported (and tested) alone.
    """

    def __init__(
        self,
        *,
        traffic: TrafficSource | None = None,
        health: HealthSource | None = None,
        probe_stats: Callable[[], ProbeStats] | None = None,
        route_overflows: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self._traffic = traffic
        self._health = health
        self._probe_stats = probe_stats
        self._route_overflows = route_overflows

    def describe(self) -> Iterable[Metric]:
        """The families, without samples: lets the registry reject a duplicate name."""
        if self._traffic is not None:
            yield from _traffic_families().all()
        if self._health is not None:
            yield from _health_families(self._health.windows_s[0])
        if self._probe_stats is not None:
            yield from _probe_families()
        if self._route_overflows is not None:
            yield _overflow_family()

    def collect(self) -> Iterable[Metric]:
        if self._traffic is not None:
            yield from _traffic_metrics(self._traffic.traffic())
        if self._health is not None:
            yield from self._health_metrics(self._health)
        if self._probe_stats is not None:
            yield from _probe_metrics(self._probe_stats())
        if self._route_overflows is not None:
            family = _overflow_family()
            for service, count in sorted(self._route_overflows().items()):
                family.add_metric([service], count)
            yield family

    def _health_metrics(self, health: HealthSource) -> Iterator[Metric]:
        window = health.windows_s[0]
        routes, services = _health_families(window)
        try:
            found = health.services(windows_s=(window,), error_types=False)
        except StoreError as exc:
            # A scrape must not fail for the store: the other families still go out.
            log.warning("health scores left out of /metrics: %s", exc)
            found = []
        for service in found:
            _add_score(services, [service.service], service.windows[0])
            per_route: dict[str, HealthScore] = {}
            for endpoint in service.endpoints:
                route = endpoint.key.route
                score = endpoint.windows[0]
                per_route[route] = per_route[route] + score if route in per_route else score
            for route, score in sorted(per_route.items()):
                _add_score(routes, [service.service, route], score)
        yield routes
        yield services


def _add_score(family: GaugeMetricFamily, labels: list[str], score: HealthScore) -> None:
    value = score.score
    if value is not None:  # no request, no score: absent, never 1 or 0
        family.add_metric(labels, value)


_ENDPOINT = ["service", "method", "route"]


@dataclasses.dataclass(frozen=True, slots=True)
class _TrafficFamilies:
    requests: CounterMetricFamily
    business: CounterMetricFamily
    duration: HistogramMetricFamily
    clean: HistogramMetricFamily
    client_requests: CounterMetricFamily
    client_duration: HistogramMetricFamily

    def all(self) -> tuple[Metric, ...]:
        return (
            self.requests,
            self.business,
            self.duration,
            self.clean,
            self.client_requests,
            self.client_duration,
        )


def _traffic_families() -> _TrafficFamilies:
    return _TrafficFamilies(
        requests=CounterMetricFamily(
            "api_requests",
            "Requests served, by status class (none: the response never completed).",
            labels=[*_ENDPOINT, "status_class"],
        ),
        business=CounterMetricFamily(
            "api_business_errors",
            "Responses that reported a business error in their body (server errors excluded).",
            labels=[*_ENDPOINT, "error_type"],
        ),
        duration=HistogramMetricFamily(
            "api_http_duration_seconds",
            "Time from request start to response end, of every request served.",
            labels=[*_ENDPOINT, "status_class"],
        ),
        clean=HistogramMetricFamily(
            "api_clean_duration_seconds",
            "Time from request start to response end, of requests with no server error and "
            "no business error.",
            labels=_ENDPOINT,
        ),
        client_requests=CounterMetricFamily(
            "api_client_requests",
            "Outbound requests made, by status class (none: the response never completed).",
            labels=[*_ENDPOINT, "status_class"],
        ),
        client_duration=HistogramMetricFamily(
            "api_client_http_duration_seconds",
            "Time from request start to response end, of outbound requests.",
            labels=[*_ENDPOINT, "status_class"],
        ),
    )


def _traffic_metrics(traffic: Traffic) -> Iterator[Metric]:
    out = _traffic_families()
    les = [le_label(b) for b in traffic.bounds]
    clean_by_endpoint: dict[tuple[str, str, str], tuple[list[int], float, int]] = {}
    for item in traffic.classes:
        key = item.key
        labels = [key.service, key.method, key.route, item.status_class]
        buckets = [*zip(les, item.latency_le, strict=True), ("+Inf", item.requests)]
        if key.direction != SERVER_SIDE:
            out.client_requests.add_metric(labels, item.requests)
            out.client_duration.add_metric(labels, buckets, item.latency_sum_s)
            continue
        out.requests.add_metric(labels, item.requests)
        out.duration.add_metric(labels, buckets, item.latency_sum_s)
        ident = (key.service, key.method, key.route)
        le, total_s, count = clean_by_endpoint.get(ident, ([0] * len(les), 0.0, 0))
        clean_by_endpoint[ident] = (
            [a + b for a, b in zip(le, item.clean_le, strict=True)],
            total_s + item.clean_sum_s,
            count + item.clean,
        )
    for (service, method, route), (le, total_s, count) in clean_by_endpoint.items():
        buckets = [*zip(les, le, strict=True), ("+Inf", count)]
        out.clean.add_metric([service, method, route], buckets, total_s)
    for key, error_type, count in traffic.business_errors:
        if key.direction == SERVER_SIDE:
            out.business.add_metric([key.service, key.method, key.route, error_type], count)
    yield from out.all()


def _health_families(window_s: float) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    over = f"over the last {window_s:g} s"
    return (
        GaugeMetricFamily(
            "api_health_score",
            f"Share of a route's requests that were good (no 5xx, no business error, within "
            f"the latency target), {over}; absent without requests.",
            labels=["service", "route"],
        ),
        GaugeMetricFamily(
            "api_service_health_score",
            f"Share of a service's requests that were good, {over}; absent without requests.",
            labels=["service"],
        ),
    )


def _probe_families() -> Iterator[Metric]:
    for name, doc in PROBE_COUNTERS.values():
        yield CounterMetricFamily(name, doc)
    for name, doc in PROBE_GAUGES.values():
        yield GaugeMetricFamily(name, doc)


def _probe_metrics(stats: ProbeStats) -> Iterator[Metric]:
    values = dataclasses.asdict(stats)
    for field, (name, doc) in PROBE_COUNTERS.items():
        yield CounterMetricFamily(name, doc, value=values[field])
    for field, (name, doc) in PROBE_GAUGES.items():
        yield GaugeMetricFamily(name, doc, value=values[field])


def _overflow_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "bytewatch_probe_overflowed_routes",
        "Requests whose path got the :overflow route because the service hit its route cap.",
        labels=["service"],
    )


# --- SLOs and notifications ---------------------------------------------------------------------
#
# ``slo_sli_ratio{slo,service,window}``, ``slo_burn_rate{slo,service,window}``,
# ``slo_objective_ratio{slo,service}``, ``slo_error_budget_remaining_ratio{slo,service}``,
# ``slo_time_to_exhaustion_seconds{slo,service}`` (absent when not burning),
# ``slo_alert_firing{slo,service,severity}`` (1 while firing), and the outbox's
# ``bytewatch_notifications_{sent,retried,failed}_total{receiver}`` and
# ``bytewatch_notifications_queue_depth`` / ``_oldest_age_seconds``.


@dataclasses.dataclass(frozen=True, slots=True)
class SloSample:
    """One SLO at the last tick, as plain values (``slo.evaluator`` fills it)."""

    slo: str
    service: str
    objective: float
    budget_remaining: float
    time_to_exhaustion_s: float | None
    windows: tuple[tuple[str, float | None, float | None], ...]  # (window, sli, burn)


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationSample:
    receiver: str
    sent: int
    retried: int
    failed: int


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxSample:
    receivers: tuple[NotificationSample, ...]
    queue_depth: int
    oldest_age_s: float


class SloCollector:
    """SLO gauges and notification counters from the service's last known state."""

    def __init__(
        self,
        *,
        slos: Callable[[], Iterable[SloSample]],
        firing: Callable[[], Iterable[tuple[str, str, str]]],
        outbox: Callable[[], OutboxSample] | None = None,
    ) -> None:
        self._slos = slos
        self._firing = firing
        self._outbox = outbox

    def collect(self) -> Iterable[Metric]:
        labels = ["slo", "service"]
        sli = GaugeMetricFamily("slo_sli_ratio", "SLI over each window", labels=[*labels, "window"])
        burn = GaugeMetricFamily(
            "slo_burn_rate", "Error-budget burn rate over each window", labels=[*labels, "window"]
        )
        objective = GaugeMetricFamily("slo_objective_ratio", "SLO objective", labels=labels)
        budget = GaugeMetricFamily(
            "slo_error_budget_remaining_ratio",
            "Share of the period's error budget left (negative when overspent)",
            labels=labels,
        )
        exhaustion = GaugeMetricFamily(
            "slo_time_to_exhaustion_seconds",
            "Seconds until the error budget is spent at the current burn",
            labels=labels,
        )
        for sample in self._slos():
            key = [sample.slo, sample.service]
            objective.add_metric(key, sample.objective)
            budget.add_metric(key, sample.budget_remaining)
            if sample.time_to_exhaustion_s is not None:
                exhaustion.add_metric(key, sample.time_to_exhaustion_s)
            for window, ratio, rate in sample.windows:
                if ratio is not None:
                    sli.add_metric([*key, window], ratio)
                if rate is not None:
                    burn.add_metric([*key, window], rate)
        firing = GaugeMetricFamily(
            "slo_alert_firing",
            "1 while the SLO's alert of this severity fires",
            labels=[*labels, "severity"],
        )
        for slo, service, severity in self._firing():
            firing.add_metric([slo, service, severity], 1.0)
        yield from (sli, burn, objective, budget, exhaustion, firing)
        if self._outbox is not None:
            yield from _outbox_metrics(self._outbox())


def _outbox_metrics(sample: OutboxSample) -> Iterator[Metric]:
    sent = CounterMetricFamily(
        "bytewatch_notifications_sent", "Notifications delivered", labels=["receiver"]
    )
    retried = CounterMetricFamily(
        "bytewatch_notifications_retried", "Delivery attempts to retry later", labels=["receiver"]
    )
    failed = CounterMetricFamily(
        "bytewatch_notifications_failed",
        "Notifications a receiver refused for good (4xx other than 408/429)",
        labels=["receiver"],
    )
    for r in sample.receivers:
        sent.add_metric([r.receiver], r.sent)
        retried.add_metric([r.receiver], r.retried)
        failed.add_metric([r.receiver], r.failed)
    depth = GaugeMetricFamily(
        "bytewatch_notifications_queue_depth", "Notifications waiting to be delivered"
    )
    depth.add_metric([], sample.queue_depth)
    age = GaugeMetricFamily(
        "bytewatch_notifications_oldest_age_seconds", "Age of the oldest waiting notification"
    )
    age.add_metric([], sample.oldest_age_s)
    yield from (sent, retried, failed, depth, age)
