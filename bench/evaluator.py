"""The evaluator and the wired service at design load: 1,000 SLOs over 1,000 endpoints, 30 days.

Run from the project root: ``python -m bench.evaluator [--endpoints 1000] [--slos 1000]``.
Prints a table and writes bench/results/evaluator.json. Targets: an evaluation tick of every
SLO (four window pairs each, eight windows) in <= 200 ms; >= 100,000 exchanges/s aggregated;
<= 200 MB on disk after 30 days of 1,000 endpoints.

What runs, in order, on one SQLite file:

1. 30 days of traffic written through the store, simulated as bench/store.py does it (its
   ``Endpoint`` traffic shapes and ``plan`` of flushes, reused): the disk size is read then.
2. 1,000 bytewatch/v1 SLOs (health, availability, latency, correctness in turn, one endpoint
   each, default windows) written to a file and loaded by ``slo.spec``.
3. ``Evaluator.set_slos``: the startup rebuild of every SLO's windows from the history.
   Then ticks of 10 s of simulated time: the store flush of the tick's counts, and
   ``Evaluator.tick``.
4. ``slo.app.Service`` on the same file (its constructor rebuilds the same way), fed real
   ``HttpExchange`` batches through ``Service.ingest`` (the aggregation rate), with a silent-200
   outage on 50 endpoints from the first tick: ``Service.tick`` before and while 50 pages fire,
   split into the store flush, ``Evaluator.tick`` and the rest (burn evaluations, top error
   types, alert state, dispatch, the outbox's enqueue), with the garbage collector's pauses
   during the tick. Nothing is delivered (the outbox thread does not run); bench/alerting.py
   measures delivery.

Time is simulated (an injected clock); every duration is measured wall time on this machine.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import os
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.model import AlertState, Severity  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.store import BOUNDS, Endpoint, plan  # noqa: E402
from probe.model import NOT_INSPECTED, Direction, HttpExchange, Verdict  # noqa: E402
from probe.source import ReplaySource  # noqa: E402
from slo.app import Service  # noqa: E402
from slo.evaluator import Evaluator  # noqa: E402
from slo.model import BucketCounts, Counts, EndpointKey  # noqa: E402
from slo.settings import load_config  # noqa: E402
from slo.spec import SloSet, load_paths  # noqa: E402
from slo.store import DAY, SqliteSliStore  # noqa: E402

TICK_TARGET_MS = 200
INGEST_TARGET_PER_S = 100_000
DISK_TARGET_MB = 200
T_END = 1_767_225_600  # 2026-01-01T00:00:00Z: where the 30 days end and the ticks begin
TICK_S = 10
CRITICAL = 50  # endpoints with clean traffic and a 99.9 % health SLO; they go down during
# the Service ticks (a silent-200 outage) and page
KINDS = ("availability", "latency", "correctness", "health")
# Objectives the other endpoints' traffic (bench/store.py's: up to 2 % server errors, up to
# 1 % business errors, latencies spread over the buckets) meets, so that nothing burns at
# baseline: a bench where every SLO burns would measure an incident, not a day.
OBJECTIVES = {"availability": 0.95, "latency": 0.99, "correctness": 0.97, "health": 0.95}


class CriticalEndpoint(Endpoint):
    """An endpoint whose every request is good and fast (a payments API on a good day)."""

    def counts(self, seconds: int) -> Counts:
        n = round(self.rate * seconds)
        within = (n,) * len(BOUNDS)
        return Counts(BOUNDS, n, 0, 0, within, within)


def make_endpoints(count: int, rng: random.Random) -> list[Endpoint]:
    """bench/store.py's endpoints (40 services, GET or POST, rates 0.05 to 50 requests/s), the
    first ``CRITICAL`` of them clean."""
    endpoints: list[Endpoint] = []
    for i in range(count):
        key = EndpointKey(f"svc{i % 40:02d}", "server", rng.choice(["GET", "POST"]), f"/r{i}")
        endpoints.append((CriticalEndpoint if i < CRITICAL else Endpoint)(key, rng))
    return endpoints


def latency_threshold(endpoint: Endpoint) -> float:
    """The first bound that at least 99.9 % of the endpoint's requests finish within."""
    running = 0.0
    for bound, share in zip(BOUNDS, endpoint.shares, strict=False):
        running += share
        if running >= 0.999:
            return bound
    return BOUNDS[-1]


def write_history(
    store: SqliteSliStore, clock: list[float], endpoints: list[Endpoint], days: int
) -> float:
    began = time.perf_counter()
    for start, seconds in plan(days):
        clock[0] = start + seconds
        store.write([BucketCounts(start, e.key, e.counts(seconds)) for e in endpoints])
    return time.perf_counter() - began


def slo_file(path: Path, endpoints: list[Endpoint], count: int) -> None:
    """``count`` SLOs, SLO i on endpoint i, default windows (page 1h/5m and 6h/30m, ticket
    1d/2h and 3d/6h), as YAML (JSON is YAML)."""
    services: dict[str, list[dict[str, Any]]] = {}
    for i in range(count):
        endpoint = endpoints[i % len(endpoints)]
        kind = "health" if i < CRITICAL else KINDS[i % len(KINDS)]
        indicator: dict[str, Any] = {"type": kind}
        if kind in ("health", "latency"):
            threshold = 0.25 if i < CRITICAL else latency_threshold(endpoint)
            indicator["latencyThreshold"] = f"{round(threshold * 1000)}ms"
        services.setdefault(endpoint.key.service, []).append(
            {
                "name": f"r{i}-{kind}",
                "selector": {"route": endpoint.key.route, "method": endpoint.key.method},
                "indicator": indicator,
                "target": 0.999 if i < CRITICAL else OBJECTIVES[kind],
            }
        )
    document = {
        "apiVersion": "bytewatch/v1",
        "kind": "SLOs",
        "services": [{"name": name, "slos": slos} for name, slos in sorted(services.items())],
    }
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def exchanges_for(
    endpoints: list[Endpoint], start: float, rng: random.Random, outage: bool
) -> list[HttpExchange]:
    """One tick's requests, in time order: each endpoint at its rate with its latency spread,
    1 % server errors and 0.5 % business errors on average (clean ones: none), and during the
    outage every request of a critical endpoint a 200 that reports a business error."""
    out: list[HttpExchange] = []
    latencies = [*(b * 0.9 for b in BOUNDS), BOUNDS[-1] * 2]
    failed = Verdict(True, "insufficient_balance", "bench")
    for endpoint in endpoints:
        key = endpoint.key
        critical = isinstance(endpoint, CriticalEndpoint)
        n = max(0, round(endpoint.rate * TICK_S * rng.uniform(0.7, 1.3)))
        buckets = [0] * n if critical else rng.choices(range(len(latencies)), endpoint.shares, k=n)
        for j, bucket in enumerate(buckets):
            roll = 1.0 if critical else rng.random()
            bad = (critical and outage) or 0.01 <= roll < 0.015
            out.append(
                HttpExchange(
                    ts=start + (j + 0.5) * TICK_S / n,
                    pid=1,
                    comm=key.service,
                    service=key.service,
                    direction=Direction.SERVER,
                    method=key.method,
                    path=key.route,
                    route=key.route,
                    status=500 if roll < 0.01 else 200,
                    latency_s=latencies[bucket],
                    request_bytes=200,
                    response_bytes=500,
                    verdict=failed if bad else NOT_INSPECTED,
                )
            )
    out.sort(key=lambda e: e.ts)
    return out


class Stopwatch:
    """Wraps a callable; ``last`` adds up the seconds it took since it was reset."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self._function = function
        self.last = 0.0

    def __call__(self, *args: Any) -> Any:
        began = time.perf_counter()
        try:
            return self._function(*args)
        finally:
            self.last += time.perf_counter() - began


class GcWatch:
    """Adds up the garbage collector's pauses (``last``, reset by the caller)."""

    def __init__(self) -> None:
        self.last = 0.0
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.last += time.perf_counter() - self._began

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--slos", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=20)
    args = parser.parse_args(argv)
    rng = random.Random(7)
    endpoints = make_endpoints(args.endpoints, rng)
    results: dict[str, Any] = {
        "bench": "evaluator",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "endpoints": args.endpoints,
        "days": args.days,
        "slos": args.slos,
    }
    with tempfile.TemporaryDirectory(prefix="bytewatch-bench-") as tmp:
        workdir = Path(tmp)
        db = workdir / "bytewatch.db"
        clock = [float(T_END - args.days * DAY)]
        store = SqliteSliStore(db, clock=lambda: clock[0], retention_s=args.days * DAY)
        results["history_write_s"] = round(write_history(store, clock, endpoints, args.days), 1)
        store.close()
        with sqlite3.connect(db) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size_mb = sum(p.stat().st_size for p in workdir.glob("bytewatch.db*")) / 1e6
        results["disk_mb_after_30_days"] = round(size_mb, 1)

        slo_path = workdir / "slos.yaml"
        slo_file(slo_path, endpoints, args.slos)
        began = time.perf_counter()
        slos = load_paths([slo_path]).slos
        results["load_slo_file_s"] = round(time.perf_counter() - began, 2)
        windows = {len(slo.alerting.windows) for slo in slos}
        results["window_pairs_per_slo"] = sorted(windows)

        # --- the evaluator alone -------------------------------------------------------------
        clock[0] = float(T_END)
        store = SqliteSliStore(db, clock=lambda: clock[0], retention_s=args.days * DAY)
        evaluator = Evaluator(store)
        began = time.perf_counter()
        evaluator.set_slos(slos)
        results["set_slos_startup_rebuild_s"] = round(time.perf_counter() - began, 1)
        flushes: list[float] = []
        ticks: list[float] = []
        for k in range(args.ticks):
            start = T_END + k * TICK_S
            clock[0] = start + TICK_S
            batch = [BucketCounts(start, e.key, e.counts(TICK_S)) for e in endpoints]
            began = time.perf_counter()
            store.write(batch)
            flushed = time.perf_counter()
            evaluations = evaluator.tick(clock[0])
            ticks.append(time.perf_counter() - flushed)
            flushes.append(flushed - began)
        assert len(evaluations) == args.slos
        store.close()
        del evaluator, evaluations  # the service below builds its own
        gc.collect()
        results["evaluator_tick_ms_median"] = ms(statistics.median(ticks))
        results["evaluator_tick_ms_p95"] = ms(p95(ticks))
        results["store_flush_ms_median"] = ms(statistics.median(flushes))

        # --- the wired service -----------------------------------------------------------
        config_path = workdir / "bytewatch.yaml"
        config_path.write_text(
            json.dumps(
                {
                    "store": {"path": str(db)},
                    "slos": {"files": [str(slo_path)]},
                    "alerting": {
                        "receivers": [
                            {"name": "oncall", "type": "webhook", "url": "http://127.0.0.1:9/x"}
                        ]
                    },
                }
            ),
            encoding="utf-8",
        )
        config = load_config(config_path, environ={})
        service_clock = [float(T_END + args.ticks * TICK_S)]
        began = time.perf_counter()
        service = Service(
            config,
            SloSet(slos=slos, files=1),
            source=ReplaySource(io.StringIO(""), "none"),
            clock=lambda: service_clock[0],
        )
        results["service_startup_s"] = round(time.perf_counter() - began, 1)
        evaluate = Stopwatch(service.evaluator.tick)
        service.evaluator.tick = evaluate  # type: ignore[method-assign,assignment]
        collections = GcWatch()
        ingested = 0
        ingest_s = 0.0
        quiet: list[float] = []
        firing: list[float] = []
        parts: list[tuple[float, float, float]] = []  # flush, evaluator, the rest
        gc_pauses: list[float] = []
        fired = 0
        for _ in range(args.ticks + 10):
            tick_start = service_clock[0]
            polled = exchanges_for(endpoints, tick_start, rng, outage=True)
            began = time.perf_counter()
            service.ingest(polled)
            ingest_s += time.perf_counter() - began
            ingested += len(polled)
            del polled  # as in the service, where a polled batch is gone once aggregated
            service_clock[0] = tick_start + TICK_S
            evaluate.last = collections.last = 0.0
            began = time.perf_counter()
            report = service.tick()
            took = time.perf_counter() - began
            parts.append((report.flush_s, evaluate.last, took - report.flush_s - evaluate.last))
            gc_pauses.append(collections.last)
            fired += sum(1 for t in report.transitions if t.alert.state is AlertState.FIRING)
            now = datetime.fromtimestamp(service_clock[0], UTC)
            paging = any(
                v.alert.severity is Severity.PAGE and v.alert.state is AlertState.FIRING
                for v in service.pipeline.alerts(now)
            )
            (firing if paging else quiet).append(took)
        queued = service.outbox.stats(datetime.fromtimestamp(service_clock[0], UTC)).queue_depth
        results["gc_tracked_objects"] = len(gc.get_objects())  # what a full collection walks
        service.close()
        collections.stop()
        results["service_ingest_per_s"] = round(ingested / ingest_s)
        results["service_exchanges_ingested"] = ingested
        results["service_tick_ms_median_before_alerts"] = ms(statistics.median(quiet))
        results["service_tick_ms_median_with_pages_firing"] = ms(statistics.median(firing))
        results["service_tick_ms_p95"] = ms(p95(quiet + firing))
        results["service_tick_ms_max"] = ms(max(quiet + firing))
        flush, evaluator_part, rest = zip(*parts, strict=True)
        results["service_tick_flush_ms_median"] = ms(statistics.median(flush))
        results["service_tick_evaluator_ms_median"] = ms(statistics.median(evaluator_part))
        results["service_tick_alerting_ms_median"] = ms(statistics.median(rest))
        results["service_tick_gc_pause_ms_median"] = ms(statistics.median(gc_pauses))
        results["alerts_fired"] = fired
        results["notifications_queued"] = queued
    results["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    verdicts = {
        "evaluator_tick_p95_ms<=200": results["evaluator_tick_ms_p95"] <= TICK_TARGET_MS,
        "service_tick_p95_ms<=200": results["service_tick_ms_p95"] <= TICK_TARGET_MS,
        "ingest_per_s>=100k": results["service_ingest_per_s"] >= INGEST_TARGET_PER_S,
        "disk_mb<=200": results["disk_mb_after_30_days"] <= DISK_TARGET_MB,
    }
    width = max(len(name) for name in results)
    for name, value in results.items():
        if name not in ("bench", "machine"):
            print(f"{name:<{width}}  {value}")
    print("targets:", ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in verdicts.items()))
    write_results("evaluator", {**results, "targets_met": verdicts})
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
