"""The SLI store at its design load: 1,000 endpoints, 30 days, 1,000 SLOs x 8 windows.

Run from the project root: ``python bench/store.py [--endpoints 1000] [--days 30]``. Prints a
table and writes bench/results/store.json. Targets: <= 200 MB on disk after 30 days of 1,000
endpoints; (good, total) of 1,000 SLOs over 8 windows in <= 200 ms; flushes far faster than
one per 10 s.

The 30 days are simulated through the ordinary write path with a moving clock, so retention
and pruning run as in production, but not every 10 s flush of the 30 days is replayed (that
would take hours): each stretch of time is written at the resolution of the finest tier that
still keeps it (hourly batches for the oldest days, then 10 min, 1 min and 10 s ones), which
leaves the file with the same rows as a real 30 days of 10 s flushes.

Traffic: per endpoint a rate drawn log-uniformly between 0.05 and 50 requests/s (about 5 on
average), latencies spread over the default buckets, ~2 % server errors, ~1 % business
errors of a handful of types.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import write_results
from slo.aggregate import DEFAULT_BOUNDS_S
from slo.health import HealthScorer
from slo.model import BucketCounts, Counts, EndpointKey
from slo.series import SeriesSpec
from slo.store import DAY, HOUR, MINUTE, SqliteSliStore, endpoint_selector, sli_measure

BOUNDS = DEFAULT_BOUNDS_S
WINDOWS = (300, 1800, HOUR, 2 * HOUR, 6 * HOUR, DAY, 3 * DAY)  # and the period
SIZE_TARGET_MB = 200
READ_TARGET_MS = 200
T_END = 1_767_225_600  # 2026-01-01T00:00:00Z


class Endpoint:
    """One endpoint's traffic shape: a rate and a latency distribution over the buckets."""

    def __init__(self, key: EndpointKey, rng: random.Random) -> None:
        self.key = key
        self.rate = math.exp(rng.uniform(math.log(0.05), math.log(50)))
        centre = rng.uniform(1, len(BOUNDS) - 3)
        weights = [math.exp(-((i - centre) ** 2) / 3) for i in range(len(BOUNDS) + 1)]
        total = sum(weights)
        self.shares = [w / total for w in weights]
        self.rng = rng

    def counts(self, seconds: int) -> Counts:
        rng = self.rng
        n = max(0, round(self.rate * seconds * rng.uniform(0.7, 1.3)))
        per_bucket = [round(n * share * rng.uniform(0.8, 1.2)) for share in self.shares]
        n = sum(per_bucket)
        server = round(n * 0.02 * rng.random())
        business = min(round(n * 0.01 * rng.random()), n - server)
        le: list[int] = []
        running = 0
        for value in per_bucket[:-1]:
            running += value
            le.append(running)
        clean_share = (n - server - business) / n if n else 0
        clean = tuple(math.floor(v * clean_share) for v in le)
        types: tuple[tuple[str, int], ...] = ()
        if business:
            first = rng.randint(1, business)
            types = (("insufficient_balance", first),)
            if business > first:
                types += ((rng.choice(["card_declined", "limit", "frozen"]), business - first),)
        return Counts(BOUNDS, n, server, business, tuple(le), clean, types)


def plan(days: int) -> list[tuple[int, int]]:
    """(bucket start, seconds it covers) of every simulated flush, oldest first."""
    start = T_END - days * DAY
    steps = [(start, HOUR)]
    for until, step in (
        (T_END - 3 * DAY, HOUR),
        (T_END - 6 * HOUR, 10 * MINUTE),
        (T_END - HOUR, MINUTE),
        (T_END, 10),
    ):
        at = steps[-1][0] + steps[-1][1]
        while at < until:
            steps.append((at, step))
            at += step
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--slos", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(7)
    endpoints = [
        Endpoint(
            EndpointKey(f"svc{i % 40:02d}", "server", rng.choice(["GET", "POST"]), f"/r{i}"), rng
        )
        for i in range(args.endpoints)
    ]
    with tempfile.TemporaryDirectory(prefix="bytewatch-bench-") as tmp:
        path = Path(tmp) / "sli.db"
        clock = [float(T_END - args.days * DAY)]
        store = SqliteSliStore(path, clock=lambda: clock[0], retention_s=args.days * DAY)

        flushes = plan(args.days)
        write_s = 0.0
        fine_flush_s: list[float] = []
        for start, seconds in flushes:
            clock[0] = start + seconds
            batch = [BucketCounts(start, e.key, e.counts(seconds)) for e in endpoints]
            began = time.perf_counter()
            store.write(batch)
            took = time.perf_counter() - began
            write_s += took
            if seconds == 10:
                fine_flush_s.append(took)
        store.close()

        # Size as the file settles: the WAL folded back in.
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = db.execute("SELECT COUNT(*) FROM counts").fetchone()[0]
        size = sum(p.stat().st_size for p in Path(tmp).glob("sli.db*"))
        began = time.perf_counter()
        store = SqliteSliStore(path, clock=lambda: clock[0], retention_s=args.days * DAY)
        open_s = time.perf_counter() - began

        kinds = [("availability", None), ("health", 0.25), ("latency", 0.5), ("correctness", None)]
        specs = []
        for i in range(args.slos):
            key = endpoints[i % len(endpoints)].key
            kind, threshold = kinds[i % len(kinds)]
            specs.append(
                SeriesSpec(
                    name=f"slo-{i}",
                    selects=endpoint_selector(key.service, route=key.route, method=key.method),
                    measure=sli_measure(kind, threshold),
                    columns=2,
                    max_window_s=args.days * DAY,
                )
            )
        began = time.perf_counter()
        series = store.track_many(specs)
        rebuild_s = time.perf_counter() - began
        began = time.perf_counter()
        store.track(specs[0])
        one_rebuild_s = time.perf_counter() - began
        series[0] = store.track(specs[0])

        windows = (*WINDOWS, args.days * DAY)
        reads: list[float] = []
        for _ in range(10):
            now = clock[0]
            began = time.perf_counter()
            for s in series:
                for window in windows:
                    s.good_total(window, now)
            reads.append(time.perf_counter() - began)

        health = HealthScorer(store, clock=lambda: clock[0])
        began = time.perf_counter()
        health.services()
        health_first_s = time.perf_counter() - began
        began = time.perf_counter()
        health.services()
        health_s = time.perf_counter() - began
        began = time.perf_counter()
        health.services(error_types=False, windows_s=(300.0,))
        scrape_s = time.perf_counter() - began
        store.close()

    size_mb = size / 1e6
    read_ms = statistics.median(reads) * 1000
    results = {
        "endpoints": args.endpoints,
        "days": args.days,
        "slos": args.slos,
        "windows_per_slo": len(windows),
        "simulated_flushes": len(flushes),
        "rows": rows,
        "disk_mb": round(size_mb, 1),
        "bytes_per_row": round(size / rows, 1),
        "disk_target_mb": SIZE_TARGET_MB,
        "flush_ms_median": round(statistics.median(fine_flush_s) * 1000, 1),
        "endpoint_buckets_stored_per_s": round(args.endpoints / statistics.median(fine_flush_s)),
        "simulation_write_s": round(write_s, 1),
        "open_s": round(open_s, 2),
        "rebuild_all_slos_s": round(rebuild_s, 2),
        "rebuild_one_slo_ms": round(one_rebuild_s * 1000, 1),
        "read_all_windows_ms_median": round(read_ms, 1),
        "read_target_ms": READ_TARGET_MS,
        "health_first_call_s": round(health_first_s, 2),
        "health_all_endpoints_ms": round(health_s * 1000, 1),
        "health_for_metrics_scrape_ms": round(scrape_s * 1000, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    width = max(len(k) for k in results)
    for name, value in results.items():
        print(f"{name:<{width}}  {value}")
    verdicts = {
        "disk": size_mb <= SIZE_TARGET_MB,
        "read": read_ms <= READ_TARGET_MS,
    }
    print("targets:", ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in verdicts.items()))
    write_results("store", {**results, "targets_met": verdicts})


if __name__ == "__main__":
    main()
