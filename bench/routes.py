"""How fast is ``Router.route`` and how much memory does a flood of random paths cost?

Run from the project root: ``python bench/routes.py``. Prints a table and writes
bench/results/routes.json. Target: well under 5 µs per call for typical paths.
"""

from __future__ import annotations

import random
import string
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import write_results
from probe.routes import Router

CALLS = 200_000
FLOOD = 1_000_000
B62 = string.ascii_letters + string.digits


def stripe_id(rng: random.Random) -> str:
    return "cus_" + "".join(rng.choices(B62, k=14))


WORKLOADS: dict[str, Callable[[random.Random, int], str]] = {
    "repeated paths (cache hits)": lambda rng, i: f"/api/v1/users/{i % 50}/orders",
    "new number each call": lambda rng, i: f"/api/v1/users/{i}/orders",
    "new UUID each call": lambda rng, i: f"/orders/{uuid.UUID(int=rng.getrandbits(128))}/items",
    "new Stripe-style id each call": lambda rng, i: f"/v1/customers/{stripe_id(rng)}/charges",
    "new GraphQL-style POST (fixed path)": lambda rng, i: "/graphql",
}


def per_call_us(make: Callable[[random.Random, int], str]) -> float:
    rng = random.Random(1)
    paths = [make(rng, i) for i in range(CALLS)]
    router = Router()
    router.route("svc", paths[0])
    start = time.perf_counter()
    for path in paths:
        router.route("svc", path)
    return (time.perf_counter() - start) / CALLS * 1e6


def flood() -> dict[str, float]:
    """A million random paths for time and caps, then traced memory over 100,000 more."""
    rng = random.Random(2)

    def random_path() -> str:
        words = (
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(3)
        )
        return "/" + "/".join(words)

    router = Router()
    paths = [random_path() for _ in range(FLOOD)]
    start = time.perf_counter()
    for path in paths:
        router.route("svc", path)
    elapsed = time.perf_counter() - start
    admitted, overflowed = router.route_counts()["svc"], router.overflow_counts()["svc"]
    more = [random_path() for _ in range(FLOOD // 10)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for path in more:
        router.route("svc", path)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {
        "paths": FLOOD,
        "us_per_call": round(elapsed / FLOOD * 1e6, 2),
        "routes_admitted": admitted,
        "overflowed": overflowed,
        "memory_growth_over_next_100k_kib": round(grown / 1024, 1),
    }


def main() -> None:
    rows = {name: round(per_call_us(make), 3) for name, make in WORKLOADS.items()}
    print(f"{'workload':40s} {'µs/call':>8s}")
    for name, us in rows.items():
        print(f"{name:40s} {us:8.2f}")
    attack = flood()
    print(f"\nflood of {FLOOD:,} random 3-segment paths: {attack}")
    write_results("routes", {"us_per_call": rows, "flood": attack})


if __name__ == "__main__":
    main()
