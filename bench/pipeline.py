"""Exchanges through aggregation: how many per second on one core, and how much memory.

Run from the project root: ``python bench/pipeline.py [--exchanges 500000]``. Prints a table
and writes bench/results/pipeline.json. Target: at least 100,000 exchanges/s aggregated.

Five measurements:

- *from records*: the whole user-space pipeline (decode, connection tracking and HTTP parsing,
  route, body verdict, aggregation) on the ring-buffer records the kernel would emit. Target
  (issue 3): at least 50,000 exchanges/s, judged on the median of ``--repeats`` runs;
- *aggregate*: recorded-like exchanges (10 services, 20 routes each, realistic status, latency
  and business-error mix) through ``Aggregator.add``, one core;
- *route + aggregate*: the same with ``probe.routes.Router`` turning each raw path into its
  route first, when that module is present (it is written in parallel);
- *replay*: the same exchanges written as ``bytewatch trace --format jsonl`` and read back
  through ``probe.jsonl`` into the aggregator (what a backtest does);
- *flood*: a million distinct random paths. Without a router every path would be a route: the
  aggregator's own endpoint cap (``max_endpoints``) is then what bounds series and memory.
  With ``probe.routes`` the router's cap bounds them first.

``probe.semantics`` (body → verdict) runs before aggregation in the probe; apart from *from
records*, verdicts here are pre-decided, so its cost is not included (its own bench measures it).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import io
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import write_results
from probe import jsonl
from probe.model import NOT_INSPECTED, Direction, HttpExchange, ResponseView, Verdict
from slo.aggregate import Aggregator

ROOT = Path(__file__).resolve().parent.parent
TARGET_PER_S = 100_000
T0 = 1_767_225_600.0
ERROR_TYPES = ("insufficient_balance", "card_declined", "limit_exceeded", "frozen", "invalid")
SHAPES = (
    "/api/v1/users/{n}",
    "/api/v1/users/{n}/orders",
    "/api/v1/orders/{n}/items/{m}",
    "/api/v1/products/{n}",
    "/healthz",
)


def make_exchanges(count: int, rng: random.Random) -> list[HttpExchange]:
    """Exchanges over 10 services x 20 routes, one second of traffic every 100k exchanges."""
    routes = [
        (f"svc{s}", method, shape.replace("{n}", ":int").replace("{m}", ":int") + f"/v{r}", shape)
        for s in range(10)
        for r in range(20)
        for method, shape in [(rng.choice(["GET", "POST", "PUT"]), rng.choice(SHAPES))]
    ]
    out = []
    for i in range(count):
        service, method, route, shape = rng.choice(routes)
        roll = rng.random()
        complete = roll > 0.005
        status = 503 if roll < 0.02 else 404 if roll < 0.05 else 200
        verdict = NOT_INSPECTED
        if status == 200 and rng.random() < 0.01:
            verdict = Verdict(True, rng.choice(ERROR_TYPES), "bench")
        elif status == 200:
            verdict = Verdict(False)
        n = rng.randint(1, 10**6)
        path = shape.replace("{n}", str(n)).replace("{m}", str(n % 97)) + route[route.rfind("/") :]
        out.append(
            HttpExchange(
                ts=T0 + i / 100_000,
                pid=1000 + hash(service) % 100,
                comm=service,
                service=service,
                direction=Direction.SERVER if rng.random() < 0.8 else Direction.CLIENT,
                method=method,
                path=path,
                route=route,
                status=status,
                latency_s=rng.lognormvariate(-3.5, 1.0),
                request_bytes=200,
                response_bytes=1200,
                verdict=verdict,
                complete=complete,
            )
        )
    return out


def rates(run: Callable[[], object], count: int, repeats: int) -> list[float]:
    """Exchanges/s of each of ``repeats`` runs."""
    out = []
    for _ in range(repeats):
        gc.collect()
        began = time.perf_counter()
        run()
        out.append(count / (time.perf_counter() - began))
    return out


def rate(run: Callable[[], object], count: int, repeats: int = 3) -> float:
    """Best exchanges/s of a few runs (the machine is shared: the best is the least disturbed)."""
    return max(rates(run, count, repeats))


def aggregate_in_batches(exchanges: list[HttpExchange], batch: int = 10_000) -> int:
    """Aggregate in probe-sized batches with a flush every 10 s of traffic; returns the count."""
    aggregator = Aggregator()
    counted = 0
    for i in range(0, len(exchanges), batch):
        aggregator.add(exchanges[i : i + batch])
        if i % 1_000_000 == 0:
            counted += sum(bc.counts.total for bc in aggregator.drain())
    return counted + sum(bc.counts.total for bc in aggregator.drain())


def _ours(module: str) -> bool:
    """Whether ``module`` exists in this checkout (an editable install may find another's)."""
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.origin is not None and spec.origin.startswith(str(ROOT))


RouteFn = Callable[[str, str], str]
JudgeFn = Callable[[HttpExchange, bytes], object]
BODIES = (
    b'{"id": 42, "name": "Ada", "orders": [1, 2, 3], "balance": "12.50", "active": true}',
    b'{"data": {"user": {"id": "u_1", "email": "ada@example.com"}}, "meta": {"took": 3}}',
    b'[{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}]',
    b'{"ok": false, "error": "insufficient_balance"}',
    b'{"errcode": 40013, "errmsg": "invalid appid"}',
)
BODY_WEIGHTS = (49, 30, 19, 1, 1)


def router_or_none() -> RouteFn | None:
    """``probe.routes.Router().route`` when that module exists (it is written in parallel)."""
    if not _ours("probe.routes"):
        return None
    routes = importlib.import_module("probe.routes")
    route: RouteFn = routes.Router().route
    return route


def judge_or_none() -> JudgeFn | None:
    """``probe.semantics.Classifier().classify`` when that module exists, on a JSON response
    whose headers are looked up as the probe looks them up in a parsed head."""
    if not _ours("probe.semantics"):
        return None
    classifier = importlib.import_module("probe.semantics").Classifier()

    def header(name: str) -> str | None:
        return "application/json" if name == "content-type" else None

    def judge(exchange: HttpExchange, body: bytes) -> object:
        view = (exchange.service, exchange.route, exchange.method, exchange.status, (), body)
        return classifier.classify(ResponseView(*view, False, header))

    return judge


def flood(count: int, with_router: bool, rng: random.Random) -> dict[str, object]:
    """A million distinct random paths on one service, aggregated; memory and series after."""
    route_of = router_or_none() if with_router else None
    tokens = [f"{rng.getrandbits(64):016x}{i}" for i in range(count)]
    tracemalloc.start()
    aggregator = Aggregator()
    batch: list[HttpExchange] = []
    began = time.perf_counter()
    for i, token in enumerate(tokens):
        path = f"/files/{token}"
        route = route_of("files", path) if route_of is not None else path
        batch.append(
            HttpExchange(
                T0 + i / 100_000,
                1,
                "files",
                "files",
                Direction.SERVER,
                "GET",
                path,
                route,
                200,
                0.01,
                0,
                0,
            )
        )
        if len(batch) == 10_000:
            aggregator.add(batch)
            batch = []
            if i % 100_000 < 10_000:
                aggregator.drain()  # a flush every 10 s of this traffic, as in production
    aggregator.add(batch)
    aggregator.drain()
    took = time.perf_counter() - began
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    traffic = aggregator.traffic()
    return {
        "paths": count,
        "router": route_of is not None,
        "series_exported": len(traffic.classes),
        "endpoints": len({c.key for c in traffic.classes}),
        "overflow_requests": sum(c.requests for c in traffic.classes if c.key.route == ":overflow"),
        "memory_after_mb": round(current / 1e6, 1),
        "memory_peak_mb": round(peak / 1e6, 1),
        "exchanges_per_s": round(count / took),
    }


def raw_records(count: int, rng: random.Random) -> list[bytes]:
    """Ring-buffer records for ``count`` request/response pairs, as the kernel emits them, over
    100 keep-alive connections: realistic paths, status mix and JSON bodies, some of them
    silent-200 failures and some gzip-encoded."""
    import gzip

    from tests.probe.kernel_sim import IN, OUT, SimConnection

    bodies = [
        (200, b'{"id":4211,"name":"ada","orders":[{"id":1,"total":12.5}],"status":"active"}'),
        (200, b'{"ok":true,"items":[],"next":null}'),
        (200, b'{"error":"insufficient_balance","message":"balance too low"}'),
        (200, b'{"ok":false,"error":"invalid_auth"}'),
        (404, b'{"error":"not_found"}'),
        (500, b'{"error":"boom"}'),
    ]
    weights = [70, 20, 4, 2, 2, 2]
    # Ids as the kernel makes them: a pid and ports past CPython's cached small ints, and
    # connection ids that are the kernel's clock in nanoseconds when tracking began.
    conns = [
        SimConnection(
            tgid=48_213, fd=10 + i, conn_id=5_000_000_000_000 + i * 7919, remote_port=40_000 + i
        )
        for i in range(100)
    ]
    out: list[bytes] = []
    ts = 1_000_000_000
    for i in range(count):
        conn = conns[i % len(conns)]
        shape = SHAPES[rng.randrange(len(SHAPES))].format(
            n=rng.randrange(1, 10**6), m=rng.randrange(1, 99)
        )
        request = (
            f"GET {shape}?page={i % 7} HTTP/1.1\r\nHost: api.internal:8080\r\n"
            "User-Agent: client/1.0\r\nAccept: application/json\r\n\r\n"
        ).encode()
        status, body = rng.choices(bodies, weights)[0]
        encoding = ""
        if i % 10 == 0:
            body = gzip.compress(body)
            encoding = "Content-Encoding: gzip\r\n"
        head = (
            f"HTTP/1.1 {status} X\r\nServer: nginx\r\nDate: Thu, 26 Nov 2026 03:00:00 GMT\r\n"
            f"Content-Type: application/json\r\n{encoding}Content-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode()
        ts += 50_000
        out += conn.emit(IN, request, ts)
        ts += rng.randrange(100_000, 5_000_000)
        out += conn.emit(OUT, head + body, ts)
    return out


def pipeline_from_records(blobs: list[bytes]) -> int:
    """Ring-buffer records through a fresh tracker, builder and aggregator, in batches of 2,000
    as the agent reads them; how many exchanges came out. Self-contained (its imports inside):
    bench/pipeline_against.py runs its source in another checkout."""
    from probe.abi import decode_records
    from probe.conn import ConnectionTracker, ObservedExchange
    from probe.exchanges import ExchangeBuilder, WallClock
    from probe.routes import Router
    from probe.semantics import Classifier
    from slo.aggregate import Aggregator

    tracker = ConnectionTracker()
    builder = ExchangeBuilder(
        WallClock(0.0), router=Router(), judge=Classifier(), comm_of=lambda pid: "api"
    )
    aggregator = Aggregator()
    # As the agent feeds them; revisions before feed_into (a2d1e57 and older) only had feed.
    feed_into = getattr(tracker, "feed_into", None)
    seen = 0
    for start in range(0, len(blobs), 2_000):
        observed: list[ObservedExchange] = []
        for blob in blobs[start : start + 2_000]:
            for record in decode_records(blob):
                if feed_into is not None:
                    feed_into(record, observed)
                else:
                    observed += tracker.feed(record)
        exchanges = [builder.build(o) for o in observed]
        aggregator.add(exchanges)
        seen += len(exchanges)
    return seen


def from_records(count: int, repeats: int = 7) -> dict[str, object]:
    """The whole user-space pipeline on one core: decode → connection tracking and HTTP parsing
    → route → body verdict → aggregation, from the records the kernel would emit. Reports the
    median of ``repeats`` runs (and the best and worst)."""
    from probe.source import tune_gc_for_throughput

    blobs = raw_records(count, random.Random(9))
    tune_gc_for_throughput()  # as the agent does at start

    def run() -> int:
        return pipeline_from_records(blobs)

    if run() != count:
        raise SystemExit("the pipeline lost exchanges: the numbers below would mean nothing")
    # The target is judged on the median of several runs, not the best: on a shared machine the
    # best of three can pass on one lucky run.
    runs = rates(run, count, repeats)
    per_s = statistics.median(runs)
    return {
        "exchanges": count,
        "ring_buffer_records": len(blobs),
        "runs": repeats,
        "parse_route_judge_aggregate_per_s": round(per_s),
        "best_per_s": round(max(runs)),
        "worst_per_s": round(min(runs)),
        "us_per_exchange": round(1e6 / per_s, 1),
        "target_per_s": 50_000,
        "target_met": per_s >= 50_000,
    }


def throughput(exchanges: list[HttpExchange]) -> dict[str, object]:
    """Exchanges/s of aggregation, of routing + aggregation, and of a JSONL replay."""
    n = len(exchanges)
    if aggregate_in_batches(exchanges) != n:
        raise SystemExit("the aggregator lost exchanges: the numbers below would mean nothing")
    aggregate_per_s = rate(lambda: aggregate_in_batches(exchanges), n)
    results: dict[str, object] = {"exchanges": n, "cores_used": 1}
    results["aggregate_per_s"] = round(aggregate_per_s)
    results["target_per_s"] = TARGET_PER_S
    results["target_met"] = aggregate_per_s >= TARGET_PER_S

    route_of = router_or_none()
    route_per_s: float | None = None
    results["routes_module"] = route_of is not None
    if route_of is not None:
        paths = [(e.service, e.path) for e in exchanges]

        def route_all() -> None:
            for service, path in paths:
                route_of(service, path)

        route_per_s = rate(route_all, n)
        results["route_per_s"] = round(route_per_s)
        results["route_and_aggregate_per_s"] = round(1 / (1 / route_per_s + 1 / aggregate_per_s))

    judge = judge_or_none()
    results["semantics_module"] = judge is not None
    if judge is not None:
        rng = random.Random(5)
        bodies = rng.choices(BODIES, BODY_WEIGHTS, k=n)
        pairs = list(zip(exchanges, bodies, strict=True))

        def judge_all() -> None:
            for exchange, body in pairs:
                judge(exchange, body)

        judge_per_s = rate(judge_all, n)
        results["judge_per_s"] = round(judge_per_s)
        per_exchange = 1 / aggregate_per_s + 1 / judge_per_s
        if route_per_s is not None:
            per_exchange += 1 / route_per_s
        results["route_judge_and_aggregate_per_s"] = round(1 / per_exchange)

    replayed = exchanges[:200_000]
    data = "".join(jsonl.dumps(exchange) + "\n" for exchange in replayed)

    def replay() -> None:
        aggregator = Aggregator()
        batch: list[HttpExchange] = []
        for exchange in jsonl.read(io.StringIO(data), "bench"):
            batch.append(exchange)
            if len(batch) == 10_000:
                aggregator.add(batch)
                batch = []
        aggregator.add(batch)
        aggregator.drain()

    results["replay_jsonl_per_s"] = round(rate(replay, len(replayed), repeats=1))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=500_000)
    parser.add_argument("--flood", type=int, default=1_000_000)
    parser.add_argument(
        "--records",
        type=int,
        default=100_000,
        help="request/response pairs for the from-records pipeline",
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="runs of the from-records pipeline (median kept)"
    )
    args = parser.parse_args()
    rng = random.Random(3)
    results: dict[str, object] = {"from_records": from_records(args.records, args.repeats)}
    results.update(throughput(make_exchanges(args.exchanges, rng)))
    results["flood_without_router"] = flood(args.flood, False, rng)
    if results["routes_module"]:
        results["flood_with_router"] = flood(args.flood, True, rng)

    for name, value in results.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                print(f"{name + '.' + sub:<36}  {inner}")
        else:
            print(f"{name:<36}  {value}")
    write_results("pipeline", results)


if __name__ == "__main__":
    main()
