"""The composition root: the probe, the SLO side and alerting wired into one process.

``Service`` is ``bytewatch run``: a source of exchanges (the live probe or a replay) feeds the
aggregator on the main thread; a scheduler job flushes the counts to the store and evaluates
every SLO each tick, handing the verdicts to the alert pipeline, whose notifications a delivery
thread sends from the durable outbox; uvicorn serves the API on another thread. ``backtest``
runs the same aggregation, store, evaluator and alert state machine on a simulated clock.

This module and ``slo/cli.py`` (and ``slo/settings.py``, which validates the whole
configuration) are the only ones that import all three packages.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from alerts.errors import AlertingError, InvalidSilence, SilenceError, SilenceNotFound
from alerts.model import AlertState, Notification, WindowBurn
from alerts.outbox import Outbox
from alerts.pipeline import AlertPipeline, AlertStateStore, default_timing_for
from alerts.receivers import build_notifiers, new_http_client
from alerts.routing import RootRouteConfig, RouteConfig, build_route_tree, parse_matchers
from alerts.silences import Silence, SilenceStore
from alerts.state import BurnEvaluation, Transition
from probe.errors import ProbeUnavailable
from probe.model import HttpExchange
from probe.routes import Router
from probe.semantics import Classifier
from probe.source import (
    ExchangeSource,
    LiveProbeSource,
    ProbeFilters,
    ProbeStats,
    ReplaySource,
    tune_gc_for_throughput,
)
from slo import api as api_module
from slo.aggregate import DEFAULT_BOUNDS_S, Aggregator, merge_thresholds
from slo.errors import InvalidSpec, Problem
from slo.evaluator import Evaluator, SloEvaluation
from slo.health import HealthConfig, HealthScorer, LatencyTargets
from slo.metrics import (
    BytewatchCollector,
    NotificationSample,
    OutboxSample,
    SloCollector,
    SloSample,
)
from slo.model import EndpointSli, Severity, Slo
from slo.settings import Config
from slo.spec import LoadOptions, SloSet, load_paths
from slo.store import SqliteSliStore
from slo.windows import format_duration

log = logging.getLogger("bytewatch")

DUE_CHECK_S = 1.0  # how often group timers and silences are looked at between ticks
TOP_ERROR_TYPES_EVERY_S = 60.0  # a burning SLO's top error types are a database read (~5 ms):
# once a minute per SLO, not on every tick of every burning SLO
KEEP_FIRING_FOR = {
    Severity.PAGE: timedelta(minutes=10),
    Severity.TICKET: timedelta(hours=1),
}


def keep_firing_for(config: Config) -> dict[Severity, timedelta]:
    alerting = config.settings.alerting
    return {
        Severity.PAGE: timedelta(seconds=alerting.page_keep_firing_for),
        Severity.TICKET: timedelta(seconds=alerting.ticket_keep_firing_for),
    }


# --- from SLO verdicts to alert evaluations -----------------------------------------------------


def burn_evaluations(
    evaluation: SloEvaluation,
    *,
    top_error_types: tuple[tuple[str, int], ...] = (),
    external_url: str = "",
) -> list[BurnEvaluation]:
    """One ``BurnEvaluation`` per severity the SLO alerts on."""
    slo, status = evaluation.slo, evaluation.status
    out = []
    for alert in slo.alerting.alerts:
        result = status.result(alert.severity)
        if result is None:
            continue
        burns = tuple(
            WindowBurn(
                long_window_s=check.window.long_window_s,
                short_window_s=check.window.short_window_s,
                factor=check.window.factor,
                long_burn=check.long_burn or 0.0,
                short_burn=check.short_burn or 0.0,
            )
            for check in result.checks
        )
        labels = {**dict(slo.labels), **dict(alert.labels), "alertname": alert.name}
        annotations = {**dict(slo.annotations), **dict(alert.annotations)}
        annotations.setdefault(
            "summary", f"{slo.service} {slo.name}: the error budget is burning too fast"
        )
        if slo.description:
            annotations.setdefault("description", slo.description)
        out.append(
            BurnEvaluation(
                slo=slo.id,
                severity=alert.severity,
                condition_holds=result.tripped,
                service=slo.service,
                objective=slo.objective,
                period_s=slo.period_s,
                burns=burns,
                budget_remaining=status.budget_remaining,
                time_to_exhaustion_s=status.time_to_exhaustion_s,
                sli=status.sli,
                top_error_types=top_error_types,
                labels=tuple(sorted(labels.items())),
                annotations=tuple(sorted(annotations.items())),
                generator_url=f"{external_url.rstrip('/')}/api/v1/slos/{slo.id}"
                if external_url
                else "",
            )
        )
    return out


def with_external_url(config: Config) -> Any:
    """The receivers, with the service's ``alerting.external_url`` where a webhook or
    Alertmanager receiver sets none of its own (it fills ``externalURL`` in their bodies)."""
    url = config.settings.alerting.external_url
    receivers = config.receivers
    if not url:
        return receivers
    updated = [
        r.model_copy(update={"external_url": url}) if getattr(r, "external_url", None) == "" else r
        for r in receivers.receivers
    ]
    return receivers.model_copy(update={"receivers": updated})


def hold_for(slos: Iterable[Slo]) -> Callable[[str, Severity], float]:
    """Each SLO's own ``for:`` per severity, as the alert state machine's hold."""
    holds = {
        (slo.id, alert.severity.value): alert.for_s for slo in slos for alert in slo.alerting.alerts
    }

    def hold(slo_id: str, severity: Severity) -> float:
        return holds.get((slo_id, severity.value), 0.0)

    return hold


def route_tree_for(config: Config, slos: Sequence[Slo]) -> RootRouteConfig | None:
    """The configured routing tree, with a route in front for each SLO that names receivers:
    its alerts go to those receivers (and on, with ``continue``, to any route that matches)."""
    root = config.route
    own: list[RouteConfig] = []
    for slo in slos:
        for alert in slo.alerting.alerts:
            for receiver in alert.receivers:
                matchers = [f'slo="{slo.id}"', f'severity="{alert.severity.value}"']
                own.append(
                    RouteConfig.model_validate(
                        {"matchers": matchers, "receiver": receiver, "continue": True}
                    )
                )
    if not own:
        return root
    if root is None:
        root = RootRouteConfig(receiver=own[0].receiver, group_by=["slo", "severity"])
    return root.model_copy(update={"routes": [*own, *root.routes]})


# --- loading --------------------------------------------------------------------------------------


def load_slos(config: Config) -> SloSet:
    """The SLO files the configuration names, globs expanded and relative paths taken from the
    config file's directory (raises ``InvalidSpec`` with every problem)."""
    import glob

    base = config.file.parent if config.file is not None else Path.cwd()
    paths: list[str] = []
    for pattern in config.settings.slos.files:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
        if not matches:
            raise InvalidSpec([_no_match(config, pattern)])
        paths.extend(matches)
    if not paths:
        return SloSet(slos=(), files=0)
    return load_paths(paths, LoadOptions())


def _no_match(config: Config, pattern: str) -> Problem:
    from slo.errors import Position

    where = Position(str(config.file or "<config>"), 1, 1)
    return Problem(where, "slos.files", f"{pattern!r} matches no file")


def histogram_bounds(config: Config, slos: Iterable[Slo]) -> tuple[float, ...]:
    health = config.settings.health
    thresholds = {health.latency_target} | {t.target for t in health.latency_targets}
    for slo in slos:
        if isinstance(slo.sli, EndpointSli) and slo.sli.latency_threshold_s is not None:
            thresholds.add(slo.sli.latency_threshold_s)
    base = tuple(health.buckets) if health.buckets else DEFAULT_BOUNDS_S
    return merge_thresholds(base, thresholds)


def health_config(config: Config) -> HealthConfig:
    health = config.settings.health
    per_service = {t.service: t.target for t in health.latency_targets if t.route is None}
    per_route = {
        (t.service, t.route): t.target for t in health.latency_targets if t.route is not None
    }
    return HealthConfig(
        windows_s=tuple(health.windows),
        targets=LatencyTargets(health.latency_target, per_service, per_route),
    )


def slo_latency_target(slos: Sequence[Slo]) -> Callable[[Any], float | None]:
    """An endpoint's latency target from the tightest SLO covering it, if any."""

    def target(key: Any) -> float | None:
        found = [
            slo.sli.latency_threshold_s
            for slo in slos
            if isinstance(slo.sli, EndpointSli)
            and slo.sli.latency_threshold_s is not None
            and slo.sli.selector.service == key.service
            and slo.sli.selector.route in (None, key.route)
            and slo.sli.selector.method in (None, key.method)
        ]
        return min(found) if found else None

    return target


def retention_for(slos: Iterable[Slo]) -> int:
    periods = [slo.period_s for slo in slos]
    return int(max(periods, default=30 * 86400)) + 86400


# --- the API's view of SLOs and alerts -----------------------------------------------------------


def slo_json(slo: Slo, evaluation: SloEvaluation | None) -> dict[str, object]:
    out: dict[str, object] = {
        "id": slo.id,
        "service": slo.service,
        "name": slo.name,
        "objective": slo.objective,
        "period": format_duration(slo.period_s),
        "sli_type": slo.sli.kind.value if isinstance(slo.sli, EndpointSli) else "query",
        "source": str(slo.source) if slo.source else None,
    }
    if evaluation is None:
        out["status"] = "no data yet"
        return out
    status = evaluation.status
    burning = [s.value for s in Severity if evaluation.tripped(s)]
    # Without a single request in the period there is nothing to call ok (a selector with a
    # typo matches nothing and must not look healthy).
    quiet = status.sli is None
    out.update(
        {
            "status": "burning" if burning else "no data" if quiet else "ok",
            "tripped": burning,
            "evaluated_at": datetime.fromtimestamp(evaluation.at, UTC).isoformat(),
            "sli": status.sli,
            "budget_remaining": status.budget_remaining,
            "current_burn": status.current_burn,
            "time_to_exhaustion_s": status.time_to_exhaustion_s,
            "windows": [
                {
                    "window": format_duration(w.window_s),
                    "good": w.good,
                    "total": w.total,
                    "sli": w.sli,
                    "burn_rate": None if w.sli is None else (1.0 - w.sli) / (1.0 - slo.objective),
                }
                for w in evaluation.windows
            ],
            "checks": [
                {
                    "severity": result.severity.value,
                    "long_window": format_duration(c.window.long_window_s),
                    "short_window": format_duration(c.window.short_window_s),
                    "factor": c.window.factor,
                    "long_burn": c.long_burn,
                    "short_burn": c.short_burn,
                    "enough_events": c.enough_events,
                    "tripped": c.tripped,
                }
                for result in status.results
                for c in result.checks
            ],
        }
    )
    return out


def silence_json(silence: Silence, now: datetime) -> dict[str, object]:
    return {
        "id": silence.id,
        "matchers": [str(m) for m in silence.matchers],
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "state": silence.state(now).value,
    }


# --- the service ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did, for logs, the console and the benchmarks."""

    at: float
    evaluations: tuple[SloEvaluation, ...]
    transitions: tuple[Transition, ...]
    flush_s: float
    evaluate_s: float


class Service:
    """Everything ``bytewatch run`` runs; ``run`` blocks until ``stop``."""

    def __init__(
        self,
        config: Config,
        slos: SloSet,
        *,
        source: ExchangeSource | None = None,
        clock: Callable[[], float] = time.time,
        http_client: Any = None,  # an httpx.Client (tests pass one with a mock transport)
        on_tick: Callable[[TickReport], None] | None = None,
    ) -> None:
        settings = config.settings
        self.config = config
        self._clock = clock
        self._on_tick = on_tick
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._slos = slos.slos
        self._last: dict[str, SloEvaluation] = {}
        self._top_errors: dict[str, tuple[float, tuple[tuple[str, int], ...]]] = {}
        self._ticks = 0
        self._started = clock()  # `run` starts the clock again; /healthz reads it before that
        self._last_tick_at = self._started

        self.router = Router(config.routes)
        self.classifier = Classifier(config.semantics)
        self.aggregator = Aggregator(histogram_bounds(config, self._slos))
        settings.store.path.parent.mkdir(parents=True, exist_ok=True)
        self.store = SqliteSliStore(
            settings.store.path, clock=clock, retention_s=retention_for(self._slos)
        )
        self.health = HealthScorer(
            self.store,
            health_config(config),
            slo_target=slo_latency_target(self._slos),
            clock=clock,
        )
        self.evaluator = Evaluator(self.store)
        self.evaluator.set_slos(self._slos)

        self._http = http_client or new_http_client()
        notifiers = build_notifiers(with_external_url(config), self._now)
        self.outbox = Outbox(config.outbox_path, notifiers, self._http)
        self.silences = SilenceStore(config.silences_path, self._now)
        tree_config = route_tree_for(config, self._slos)
        self.pipeline = AlertPipeline(
            store=AlertStateStore(config.silences_path.with_name("alerts.db")),
            tree=build_route_tree(tree_config, config.receivers.names) if tree_config else None,
            timing_for=default_timing_for(hold_for(self._slos), keep_firing_for(config)),
            enqueue=self._enqueue,
            silences=self.silences,
        )
        self.source = source or self._live_source()

        self.registry = CollectorRegistry()
        self.registry.register(
            BytewatchCollector(
                traffic=self.aggregator,
                health=self.health,
                probe_stats=self._probe_stats,
                route_overflows=self.router.overflow_counts,
            )
        )
        self.registry.register(
            SloCollector(slos=self._slo_samples, firing=self._firing, outbox=self._outbox_sample)
        )

    # --- building ----------------------------------------------------------------------------

    def _live_source(self) -> ExchangeSource:
        probe = self.config.settings.probe
        if probe.source == "replay":
            if probe.replay_file is None:
                raise ProbeUnavailable("probe.source is replay but probe.replay_file is not set")
            return ReplaySource.open(probe.replay_file)
        filters = ProbeFilters(
            pids=frozenset(probe.filters.pids),
            comms=frozenset(probe.filters.comms),
            ports=frozenset(probe.filters.ports),
        )
        source = LiveProbeSource(
            filters=filters,
            services=self.config.services,
            router=self.router,
            judge=self.classifier,
            capture_bytes=probe.capture_bytes,
            tls=probe.tls,
            tls_binaries=frozenset(str(p) for p in probe.tls_binaries),
            idle_reader_nice=probe.nice if probe.idle_reader else None,
        )
        if probe.tls:
            log.info("TLS plaintext watched in %s", ", ".join(source.tls_targets) or "nothing")
        try:
            os.nice(probe.nice)  # the services come first on a saturated host; loss is counted
        except OSError:
            log.warning("could not lower the agent's priority (nice %d)", probe.nice)
        return source

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _probe_stats(self) -> ProbeStats:
        return self.source.stats()

    # --- the work ----------------------------------------------------------------------------

    def ingest(self, exchanges: Sequence[HttpExchange]) -> None:
        if exchanges:
            self.aggregator.add(exchanges)

    def tick(self) -> TickReport:
        """Flush the counts to the store, evaluate every SLO, and step the alerts."""
        with self._lock:
            started = time.perf_counter()
            now = self._clock()
            self.store.write(self.aggregator.drain())
            flushed = time.perf_counter()
            evaluations = self.evaluator.tick(now)
            self._last = {e.slo.id: e for e in evaluations}
            burns: list[BurnEvaluation] = []
            for evaluation in evaluations:
                top: tuple[tuple[str, int], ...] = ()
                if any(evaluation.tripped(s) for s in Severity):
                    top = self._top_error_types(evaluation.slo, now)
                burns += burn_evaluations(
                    evaluation,
                    top_error_types=top,
                    external_url=self.config.settings.alerting.external_url,
                )
            transitions = self.pipeline.observe(burns, self._now())
            done = time.perf_counter()
            self._ticks += 1
            self._last_tick_at = now
        for transition in transitions:
            alert = transition.alert
            log.info(
                "alert %s/%s %s -> %s",
                alert.slo,
                alert.severity.value,
                transition.previous.value,
                alert.state.value,
                extra={
                    "event": "alert_transition",
                    "slo": alert.slo,
                    "severity": alert.severity.value,
                    "state": alert.state.value,
                },
            )
        report = TickReport(
            now, tuple(evaluations), tuple(transitions), flushed - started, done - flushed
        )
        if self._on_tick is not None:
            self._on_tick(report)
        return report

    def _top_error_types(self, slo: Slo, now: float) -> tuple[tuple[str, int], ...]:
        cached = self._top_errors.get(slo.id)
        if cached is not None and 0 <= now - cached[0] < TOP_ERROR_TYPES_EVERY_S:
            return cached[1]
        top = self.evaluator.top_error_types(slo, 3600.0, now)
        self._top_errors[slo.id] = (now, top)
        return top

    def _enqueue(self, notifications: Sequence[Notification], now: datetime) -> int:
        queued = self.outbox.enqueue_many(notifications, now)
        for n in notifications:
            log.info(
                "notify %s: %s (%d alerts)",
                n.receiver,
                n.reason.value,
                len(n.alerts),
                extra={"event": "notification", "receiver": n.receiver, "reason": n.reason.value},
            )
        return queued

    def reload(self, config: Config, slos: SloSet) -> None:
        """SIGHUP: new SLO files and routes; counts, series and alert state are kept."""
        with self._lock:
            self.config = config
            self._slos = slos.slos
            self.aggregator.set_bounds(histogram_bounds(config, self._slos))
            self.evaluator.set_slos(self._slos)
            self._top_errors.clear()  # an edited selector has other endpoints
            self.health.set_slo_target(slo_latency_target(self._slos))
            tree_config = route_tree_for(config, self._slos)
            tree = build_route_tree(tree_config, config.receivers.names) if tree_config else None
            self.pipeline.reconfigure(
                tree, default_timing_for(hold_for(self._slos), keep_firing_for(config))
            )
            self.outbox.set_notifiers(build_notifiers(with_external_url(config), self._now))
        log.info("reloaded: %d SLOs", len(self._slos), extra={"event": "reload"})

    # --- what the API and metrics read -----------------------------------------------------

    def _slo_samples(self) -> list[SloSample]:
        out = []
        for evaluation in list(self._last.values()):
            slo, status = evaluation.slo, evaluation.status
            windows = tuple(
                (
                    format_duration(w.window_s),
                    w.sli,
                    None if w.sli is None else (1.0 - w.sli) / (1.0 - slo.objective),
                )
                for w in evaluation.windows
            )
            out.append(
                SloSample(
                    slo.id,
                    slo.service,
                    slo.objective,
                    status.budget_remaining,
                    status.time_to_exhaustion_s,
                    windows,
                )
            )
        return out

    def _firing(self) -> list[tuple[str, str, str]]:
        return [
            (v.alert.slo, v.alert.service, v.alert.severity.value)
            for v in self.pipeline.alerts(self._now())
            if v.alert.state is AlertState.FIRING
        ]

    def _outbox_sample(self) -> OutboxSample:
        stats = self.outbox.stats(self._now())
        receivers = tuple(
            NotificationSample(r.receiver, r.sent, r.retried, r.failed_final)
            for r in stats.receivers
        )
        return OutboxSample(receivers, stats.queue_depth, stats.oldest_age_s)

    def slos_json(self) -> list[dict[str, object]]:
        return [slo_json(slo, self._last.get(slo.id)) for slo in self._slos]

    def slo_json(self, name: str) -> dict[str, object] | None:
        for slo in self._slos:
            if name in (slo.id, slo.name):
                return slo_json(slo, self._last.get(slo.id))
        return None

    def alerts_json(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for view in self.pipeline.alerts(self._now()):
            a = view.alert
            out.append(
                {
                    "slo": a.slo,
                    "severity": a.severity.value,
                    "state": a.state.value,
                    "service": a.service,
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "fingerprint": a.fingerprint,
                    "started_at": a.incident_started_at.isoformat(),
                    "silenced": view.silenced,
                    "inhibited": view.inhibited,
                    "budget_remaining": a.budget_remaining,
                    "time_to_exhaustion_s": a.time_to_exhaustion_s,
                    "burns": [
                        {
                            "long_window": format_duration(b.long_window_s),
                            "short_window": format_duration(b.short_window_s),
                            "factor": b.factor,
                            "long_burn": b.long_burn,
                            "short_burn": b.short_burn,
                        }
                        for b in a.burns
                    ],
                    "top_error_types": [list(t) for t in a.top_error_types],
                }
            )
        return out

    def silences_json(self) -> list[dict[str, object]]:
        now = self._now()
        return [silence_json(s, now) for s in self.silences.list()]

    def create_silence(self, request: api_module.SilenceIn) -> dict[str, object]:
        now = self._now()
        try:
            matchers = parse_matchers(",".join(request.matchers))
            ends_at = request.ends_at
            if ends_at is None:
                if request.duration is None:
                    raise InvalidSilence("give ends_at or duration")
                from alerts.routing import parse_duration

                ends_at = (request.starts_at or now) + parse_duration(request.duration)
            silence = self.silences.create(
                matchers,
                ends_at=ends_at,
                created_by=request.created_by,
                comment=request.comment,
                starts_at=request.starts_at,
            )
        except (SilenceError, ValueError) as exc:
            raise api_module.ProviderError(400, str(exc)) from exc
        log.info(
            "silence %s created by %s",
            silence.id,
            silence.created_by,
            extra={"event": "silence_created", "silence": silence.id},
        )
        return silence_json(silence, now)

    def expire_silence(self, silence_id: str) -> dict[str, object]:
        try:
            silence = self.silences.expire(silence_id)
        except SilenceNotFound as exc:
            raise api_module.ProviderError(404, str(exc)) from exc
        except SilenceError as exc:
            raise api_module.ProviderError(409, str(exc)) from exc
        return silence_json(silence, self._now())

    # --- running -----------------------------------------------------------------------------

    def api_app(self) -> Any:
        token = self.config.settings.api.token
        slo_provider = _SloProvider(self)
        alerts_provider = _AlertsProvider(self)
        return api_module.create_app(
            health=self.health,
            registry=self.registry,
            clock=self._clock,
            routers=[
                api_module.slo_router(slo_provider),
                api_module.alerts_router(
                    alerts_provider, token.get_secret_value() if token else None
                ),
            ],
            checks=[self._ticking],
        )

    def _ticking(self) -> str | None:
        since = self._clock() - (self._last_tick_at if self._ticks else self._started)
        if since <= 3 * self._interval():
            return None
        if self._ticks == 0:
            return "the evaluator has not completed a tick"
        return f"the evaluator has not completed a tick for {since:.0f}s"

    def _interval(self) -> float:
        settings = self.config.settings
        return min(settings.evaluator.interval, settings.store.flush_interval)

    def run(self, *, serve_api: bool = True) -> None:
        """Ingest until ``stop``; ticks, delivery and the API run on their own threads."""
        # What exists now (configuration, SLOs, series rings) lives as long as the process:
        # keep it out of the collector's way, and collect the per-exchange garbage less often.
        tune_gc_for_throughput()
        self._started = self._clock()
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._safe_tick,
            "interval",
            seconds=self._interval(),
            max_instances=1,
            coalesce=True,
            id="tick",
        )
        scheduler.add_job(
            self._safe_due,
            "interval",
            seconds=DUE_CHECK_S,
            max_instances=1,
            coalesce=True,
            id="due",
        )
        scheduler.start()
        delivery = threading.Thread(
            target=self.outbox.run, args=(self._stop, self._now), name="outbox", daemon=True
        )
        delivery.start()
        server = None
        if serve_api:
            server = self._start_api()
        try:
            while not self._stop.is_set():
                self.ingest(self.source.poll(0.2))
                if self.source.exhausted:
                    self._stop.wait(0.5)
        finally:
            scheduler.shutdown(wait=True)
            if server is not None:
                server.should_exit = True
            self._safe_tick()  # SIGTERM flushes the store and queues what is due
            self._stop.set()
            delivery.join(timeout=5)
            self.close()

    def _start_api(self) -> uvicorn.Server:
        host, _, port = self.config.settings.api.listen.rpartition(":")
        config = uvicorn.Config(
            self.api_app(),
            host=host or "127.0.0.1",
            port=int(port),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        server = uvicorn.Server(config)  # off the main thread, it leaves signals to us
        threading.Thread(target=server.run, name="api", daemon=True).start()
        return server

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception:  # one bad tick must not stop the service; the next one retries
            log.exception("tick failed")

    def _safe_due(self) -> None:
        try:
            self.pipeline.due(self._now())
        except Exception:
            log.exception("alert dispatch failed")

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.source.close()
        self.pipeline.close()
        self.outbox.close()
        self.store.close()
        self._http.close()


class _SloProvider:
    def __init__(self, service: Service) -> None:
        self._service = service

    def slos(self) -> list[dict[str, object]]:
        return self._service.slos_json()

    def slo(self, name: str) -> dict[str, object] | None:
        return self._service.slo_json(name)


class _AlertsProvider:
    def __init__(self, service: Service) -> None:
        self._service = service

    def alerts(self) -> list[dict[str, object]]:
        return self._service.alerts_json()

    def silences(self) -> list[dict[str, object]]:
        return self._service.silences_json()

    def create_silence(self, request: api_module.SilenceIn) -> dict[str, object]:
        return self._service.create_silence(request)

    def expire_silence(self, silence_id: str) -> dict[str, object]:
        return self._service.expire_silence(silence_id)


def install_signal_handlers(service: Service, reload: Callable[[], tuple[Config, SloSet]]) -> None:
    """SIGTERM/SIGINT stop cleanly; SIGHUP reloads configuration and SLOs, keeping state."""

    def stop(_sig: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"event": "stop"})
        service.stop()

    def hup(_sig: int, _frame: FrameType | None) -> None:
        try:
            config, slos = reload()
        except Exception as exc:  # a broken edit must not take the running service down
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        threading.Thread(target=service.reload, args=(config, slos), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hup)


# --- backtest ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BacktestTransition:
    time: float
    slo: str
    severity: str
    state: str
    previous: str
    burns: tuple[WindowBurn, ...]


@dataclass(frozen=True, slots=True)
class BacktestSummary:
    exchanges: int
    start: float | None
    end: float | None
    ticks: int
    transitions: int
    pages: int
    tickets: int
    final_budget: dict[str, float]


def backtest(
    exchanges: Iterable[HttpExchange],
    slos: Sequence[Slo],
    *,
    db_path: Path,
    tick_s: float = 10.0,
    on_transition: Callable[[BacktestTransition], None] = lambda t: None,
    on_progress: Callable[[float], None] = lambda ts: None,
) -> BacktestSummary:
    """Replay exchanges (in time order) through aggregation, the store, the evaluator and the
    alert state machine on a simulated clock that advances with the exchanges' timestamps."""
    now = [0.0]

    def clock() -> float:
        return now[0]

    bounds = merge_thresholds(
        DEFAULT_BOUNDS_S,
        {
            s.sli.latency_threshold_s
            for s in slos
            if isinstance(s.sli, EndpointSli) and s.sli.latency_threshold_s is not None
        },
    )
    aggregator = Aggregator(bounds)
    store = SqliteSliStore(db_path, clock=clock, retention_s=retention_for(slos))
    evaluator = Evaluator(store)
    evaluator.set_slos(slos)
    pipeline = AlertPipeline(
        store=AlertStateStore(None),
        tree=None,
        timing_for=default_timing_for(hold_for(slos), KEEP_FIRING_FOR),
        enqueue=lambda notifications, at: 0,
    )
    count = ticks = transitions = pages = tickets = 0
    first: float | None = None
    next_tick: float | None = None
    last_status: dict[str, float] = {}

    def run_tick(at: float) -> None:
        nonlocal ticks, transitions, pages, tickets
        now[0] = at
        store.write(aggregator.drain())
        evaluations = evaluator.tick(at)
        burns: list[BurnEvaluation] = []
        for evaluation in evaluations:
            last_status[evaluation.slo.id] = evaluation.status.budget_remaining
            burns += burn_evaluations(evaluation)
        for t in pipeline.observe(burns, datetime.fromtimestamp(at, UTC)):
            transitions += 1
            if t.alert.state is AlertState.FIRING:
                pages += t.alert.severity is Severity.PAGE
                tickets += t.alert.severity is Severity.TICKET
            on_transition(
                BacktestTransition(
                    at,
                    t.alert.slo,
                    t.alert.severity.value,
                    t.alert.state.value,
                    t.previous.value,
                    t.alert.burns,
                )
            )
        ticks += 1
        on_progress(at)

    batch: list[HttpExchange] = []
    for exchange in exchanges:
        count += 1
        if first is None:
            first = exchange.ts
            next_tick = (exchange.ts // tick_s + 1) * tick_s
        assert next_tick is not None
        while exchange.ts >= next_tick:
            aggregator.add(batch)
            batch = []
            run_tick(next_tick)
            next_tick += tick_s
        batch.append(exchange)
        now[0] = exchange.ts
    if next_tick is not None:
        aggregator.add(batch)
        run_tick(next_tick)
    store.close()
    pipeline.close()
    return BacktestSummary(
        count,
        first,
        now[0] if first is not None else None,
        ticks,
        transitions,
        pages,
        tickets,
        last_status,
    )


def iter_replay(source: ReplaySource) -> Iterator[HttpExchange]:
    while not source.exhausted:
        yield from source.poll(0.0)


__all__ = [
    "AlertingError",
    "InvalidSpec",
    "Service",
    "backtest",
    "burn_evaluations",
    "install_signal_handlers",
    "load_slos",
    "replace",
]
