"""The ``bytewatch trace --format jsonl`` format: one JSON object per exchange, per line.

It is also the input of replays and backtests, so it is versioned by its field set: fields may
be added, never renamed or removed. ``ts`` is RFC 3339 in UTC with microseconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from probe.errors import ReplayFormatError
from probe.model import NOT_INSPECTED, Direction, HttpExchange, Verdict

FIELDS = (
    "ts",
    "pid",
    "comm",
    "service",
    "direction",
    "method",
    "path",
    "route",
    "status",
    "latency_ms",
    "request_bytes",
    "response_bytes",
    "business_error",
    "error_type",
    "complete",
)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_json(exchange: HttpExchange) -> dict[str, Any]:
    verdict = exchange.verdict
    return {
        "ts": rfc3339(exchange.ts),
        "pid": exchange.pid,
        "comm": exchange.comm,
        "service": exchange.service,
        "direction": exchange.direction.value,
        "method": exchange.method,
        "path": exchange.path,
        "route": exchange.route,
        "status": exchange.status,
        "latency_ms": round(exchange.latency_s * 1000, 3),
        "request_bytes": exchange.request_bytes,
        "response_bytes": exchange.response_bytes,
        "business_error": verdict.business_error if verdict.inspected else None,
        "error_type": verdict.error_type,
        "complete": exchange.complete,
    }


def dumps(exchange: HttpExchange) -> str:
    return json.dumps(to_json(exchange), separators=(",", ":"), ensure_ascii=False)


def from_json(obj: object, where: str) -> HttpExchange:
    """One exchange from a decoded JSON object; ``where`` (file:line) prefixes every error."""
    if not isinstance(obj, Mapping):
        raise ReplayFormatError(f"{where}: expected a JSON object")

    def need(name: str, kind: type | tuple[type, ...]) -> Any:
        if name not in obj:
            raise ReplayFormatError(f"{where}: {name}: missing")
        value = obj[name]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ReplayFormatError(f"{where}: {name}: expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise ReplayFormatError(
                f"{where}: {name}: expected {_kind_name(kind)}, got {type(value).__name__}"
            )
        return value

    try:
        ts = datetime.fromisoformat(need("ts", str).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ReplayFormatError(f"{where}: ts: not an RFC 3339 timestamp") from exc
    try:
        direction = Direction(obj.get("direction", "server"))
    except ValueError as exc:
        raise ReplayFormatError(f"{where}: direction: expected server or client") from exc
    latency_ms = float(need("latency_ms", (int, float)))
    if not math.isfinite(latency_ms) or latency_ms < 0:
        raise ReplayFormatError(f"{where}: latency_ms: expected a non-negative number")
    status = need("status", int)
    if not 0 <= status <= 999:
        raise ReplayFormatError(f"{where}: status: expected 0 to 999")
    path = need("path", str)
    business = obj.get("business_error")
    error_type = obj.get("error_type")
    if business is not None and not isinstance(business, bool):
        raise ReplayFormatError(f"{where}: business_error: expected true, false or null")
    if error_type is not None and not isinstance(error_type, str):
        raise ReplayFormatError(f"{where}: error_type: expected a string or null")
    verdict = NOT_INSPECTED if business is None else Verdict(business, error_type, "replay")
    comm = obj.get("comm") or ""
    return HttpExchange(
        ts=ts,
        pid=int(obj.get("pid") or 0),
        comm=str(comm),
        service=str(obj.get("service") or comm or "unknown"),
        direction=direction,
        method=need("method", str),
        path=path,
        route=str(obj.get("route") or path),
        status=status,
        latency_s=latency_ms / 1000,
        request_bytes=int(obj.get("request_bytes") or 0),
        response_bytes=int(obj.get("response_bytes") or 0),
        verdict=verdict,
        complete=bool(obj.get("complete", True)),
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "a number", float: "a number", str: "a string", bool: "a boolean"}
    return " or ".join(sorted({names.get(k, k.__name__) for k in kinds}))


def read(stream: IO[str], name: str) -> Iterator[HttpExchange]:
    """Exchanges from a JSONL stream; blank lines are skipped, anything else bad raises."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayFormatError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from exc
        yield from_json(obj, where)
