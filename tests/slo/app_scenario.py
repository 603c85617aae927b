"""The outage the service tests and the alerting bench play: steady traffic, then a silent 200.

Payments answers ``POST /payments`` at a steady rate; during an outage every answer is a 200
whose body reports a business error, which only a health SLO counts as bad. Requests fall at
``start + (k + 0.5) / rate``, never on a tick, so that a tick at ``t`` has seen exactly
``rate * seconds`` requests of any whole number of seconds before it and the burn-rate math in
the tests is exact: with 10 requests/s, a 1 h window holds 36,000 requests, and the 1h/5m page
pair (factor 14.4 for a 99.9 % objective) trips once more than 0.0144 x 36,000 = 518.4 of them
failed, that is 52 s into the outage.

The alert windows reach back three days (the 3d/6h ticket pair), so a service that pages on
the textbook schedule needs that much history behind it: ``write_history`` puts three days of
good traffic in the store the way 10 s flushes would have left it, in seconds rather than the
days a tick-by-tick replay would take.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from probe import jsonl
from probe.model import HttpExchange
from slo.aggregate import DEFAULT_BOUNDS_S
from slo.app import load_slos
from slo.model import BucketCounts, Counts, EndpointKey
from slo.settings import Config, load_config
from slo.spec import SloSet
from slo.store import SqliteSliStore
from tests.slo.exchange_data import exchange

DATA = Path(__file__).resolve().parent / "data" / "app"
CONFIG = DATA / "bytewatch.yaml"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z: on the 10 s tick grid
TICK_S = 10.0  # the default evaluator interval and flush interval
RATE_PER_S = 10
LATENCY_S = 0.004  # well within the SLOs' 500 ms and within every histogram bound
ERROR_TYPE = "card_declined"
PAYMENTS = "/payments"
REFUNDS = "/refunds"
CREATE_PAYMENT = "payments-create-payment"
REFUNDS_SLO = "payments-refunds"
WEBHOOK_PATH = "/alerts/hook-6f1c2a9e"  # the secret part of the receiver's URL


@dataclass(frozen=True, slots=True)
class Outage:
    """Every request to ``route`` in [start, end) answers 200 with a business error."""

    start: float
    end: float
    route: str = PAYMENTS

    def covers(self, route: str, ts: float) -> bool:
        return route == self.route and self.start <= ts < self.end


def traffic(
    start: float,
    end: float,
    *,
    rate: float = RATE_PER_S,
    routes: Iterable[str] = (PAYMENTS,),
    outages: Iterable[Outage] = (),
) -> Iterator[HttpExchange]:
    """``rate`` requests a second to each route over [start, end), in time order."""
    routes = tuple(routes)
    outages = tuple(outages)
    for k in range(math.ceil((end - start) * rate - 0.5)):
        ts = start + (k + 0.5) / rate
        for route in routes:
            bad = any(o.covers(route, ts) for o in outages)
            yield exchange(
                ts,
                service="payments",
                method="POST",
                route=route,
                latency_s=LATENCY_S,
                business_error=ERROR_TYPE if bad else None,
            )


def write_jsonl(path: Path, exchanges: Iterable[HttpExchange]) -> int:
    """The exchanges as ``bytewatch trace --format jsonl`` writes them; returns how many."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for item in exchanges:
            out.write(jsonl.dumps(item) + "\n")
            count += 1
    return count


def write_history(
    path: Path,
    end: float,
    *,
    days: float = 3,
    rate: float = RATE_PER_S,
    routes: Iterable[str] = (PAYMENTS,),
) -> None:
    """Good traffic to each route for ``days`` before ``end``, written through the store's
    ordinary write path at the resolution of the finest tier that still keeps each stretch
    (10 min buckets, 1 min over the last 6 h, 10 s over the last hour), which leaves the same
    rows as that many days of 10 s flushes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clock = [0.0]
    store = SqliteSliStore(path, clock=lambda: clock[0])
    keys = [EndpointKey("payments", "server", "POST", route) for route in routes]
    at = int(end - days * 86400)
    for until, width in ((end - 6 * 3600, 600), (end - 3600, 60), (end, 10)):
        while at < until:
            n = round(rate * width)
            good = (n,) * len(DEFAULT_BOUNDS_S)
            counts = Counts(DEFAULT_BOUNDS_S, n, 0, 0, good, good)
            clock[0] = at + width
            store.write([BucketCounts(at, key, counts) for key in keys])
            at += width
    store.close()


def environment(
    state: Path,
    webhook_url: str,
    *,
    token: str | None = None,
    slo_files: Iterable[str] | None = None,
    **settings: str,
) -> dict[str, str]:
    """The variables that point the test configuration at this run: its state directory,
    its receiver, and any ``BYTEWATCH_*`` setting given as ``section__key=value``."""
    environ = {
        "BYTEWATCH_STORE__PATH": str(state / "bytewatch.db"),
        "ONCALL_WEBHOOK_URL": webhook_url,
    }
    if token is not None:
        environ["BYTEWATCH_API__TOKEN"] = token
    if slo_files is not None:
        environ["BYTEWATCH_SLOS__FILES"] = "[" + ", ".join(slo_files) + "]"
    environ.update({f"BYTEWATCH_{name.upper()}": value for name, value in settings.items()})
    return environ


def load(environ: Mapping[str, str], config_file: Path = CONFIG) -> tuple[Config, SloSet]:
    config = load_config(config_file, environ=environ)
    return config, load_slos(config)
