"""Exchanges for the SLI tests: the recorded sample in data/, and a builder for one-offs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probe import jsonl
from probe.model import NOT_INSPECTED, Direction, HttpExchange, Verdict
from slo.aggregate import DEFAULT_BOUNDS_S, merge_thresholds

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = DATA / "exchanges.jsonl"
SAMPLE_BOUNDS = merge_thresholds(DEFAULT_BOUNDS_S, [0.3])
T0 = 1_714_564_800  # 2024-05-01T12:00:00Z, the first bucket of the sample


def sample_exchanges() -> list[HttpExchange]:
    with SAMPLE.open(encoding="utf-8") as stream:
        return list(jsonl.read(stream, str(SAMPLE)))


def expected(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def exchange(
    ts: float = T0,
    *,
    service: str = "payments",
    direction: Direction = Direction.SERVER,
    method: str = "GET",
    route: str = "/users/:int",
    status: int = 200,
    latency_s: float = 0.02,
    business_error: str | None = None,
    complete: bool = True,
) -> HttpExchange:
    verdict = NOT_INSPECTED if business_error is None else Verdict(True, business_error, "test")
    return HttpExchange(
        ts=ts,
        pid=1,
        comm=service,
        service=service,
        direction=direction,
        method=method,
        path=route,
        route=route,
        status=status,
        latency_s=latency_s,
        request_bytes=0,
        response_bytes=0,
        verdict=verdict,
        complete=complete,
    )
