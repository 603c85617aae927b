"""A process that aggregates and stores as fast as it can, until it is killed (-9).

Run by tests/slo/test_store.py as ``python -m tests.slo.store_writer DB``. Every iteration is
one flush interval of simulated time: it adds BATCH exchanges to the aggregator, says
``added N``, writes the drained counts to the store, says ``flushed N`` (N counts exchanges
since the start, over every run).
"""

from __future__ import annotations

import sys
from pathlib import Path

from probe.model import HttpExchange
from slo.aggregate import Aggregator
from slo.store import SqliteSliStore
from tests.slo.exchange_data import T0, exchange

ENDPOINTS = 100
BATCH = 2 * ENDPOINTS
INTERVAL_S = 10


def batch_at(ts: float) -> list[HttpExchange]:
    return [
        exchange(ts + 1, route=f"/r{i}", status=500 if i == 0 else 200, latency_s=0.01 * (i % 7))
        for i in range(ENDPOINTS)
        for _ in range(2)
    ]


def main(path: Path, start_iteration: int) -> None:
    clock = [float(T0)]
    store = SqliteSliStore(path, clock=lambda: clock[0])
    aggregator = Aggregator()
    iteration = start_iteration
    while True:
        clock[0] = T0 + iteration * INTERVAL_S
        aggregator.add(batch_at(clock[0]))
        print(f"added {(iteration + 1) * BATCH}", flush=True)
        store.write(aggregator.drain())
        print(f"flushed {(iteration + 1) * BATCH}", flush=True)
        iteration += 1


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
