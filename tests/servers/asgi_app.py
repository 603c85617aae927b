"""A raw ASGI application (no framework) for the probe's tests, served by uvicorn.

    python -m uvicorn asgi_app:app --app-dir tests/servers --host 127.0.0.1 --port PORT \
        --no-access-log --log-level warning

The endpoints and their bodies are the same in every runtime (see README.md beside this file).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BIG_BYTES = 64 * 1024 * 1024
MAX_PARTS = 10_000
MAX_SLEEP_MS = 60_000
CLOSE_MID_ANNOUNCED = 100_000
CLOSE_MID_SENT = 1000
USER_PATH = re.compile(r"/users/(0|[1-9][0-9]{0,17})")
KNOWN_PATHS = frozenset(
    {"/health", "/hello", "/payments", "/fail", "/big", "/chunked", "/slow", "/close-mid"}
)
PAYMENT_REFUSED = b'{"error":"insufficient_balance","message":"balance too low for this payment"}'
BAD_REQUEST = b'{"error":"bad_request"}'


def big_body(n: int) -> bytes:
    if n < 11:
        return b"x" * n
    return b'{"data":"' + b"x" * (n - 11) + b'"}'


def chunk_part(i: int, parts: int) -> bytes:
    opening = b"[" if i == 0 else b","
    closing = b"]" if i == parts - 1 else b""
    return opening + b'{"part":%d}' % i + closing


def int_param(query: dict[str, list[str]], name: str, default: int, maximum: int) -> int | None:
    """The parameter's value, its default when absent, or None when malformed or too large."""
    values = query.get(name)
    if not values:
        return default
    raw = values[0]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        return None
    value = int(raw)
    return value if value <= maximum else None


async def send_full(
    send: Send, status: int, body: bytes, content_type: bytes = b"application/json"
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_chunked(send: Send, parts: int) -> None:
    # No content-length: uvicorn frames each body message as one chunk.
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i in range(parts):
        await send({"type": "http.response.body", "body": chunk_part(i, parts), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def close_mid(send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(CLOSE_MID_ANNOUNCED).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    body = big_body(CLOSE_MID_ANNOUNCED)[:CLOSE_MID_SENT]
    await send({"type": "http.response.body", "body": body, "more_body": True})
    # Returning with the response unfinished makes uvicorn close the connection (and log one
    # error line), which is the point of this endpoint.


async def read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    path: str = scope["path"]
    method: str = scope["method"]
    query = parse_qs(scope["query_string"].decode("latin-1"))
    get = method == "GET"
    user = USER_PATH.fullmatch(path)
    if path == "/health" and get:
        await send_full(send, 200, b"ok", b"text/plain")
    elif path == "/hello" and get:
        await send_full(send, 200, b'{"message":"hello"}')
    elif user and get:
        uid = user.group(1).encode()
        await send_full(send, 200, b'{"id":%s,"name":"user-%s"}' % (uid, uid))
    elif path == "/payments" and method == "POST":
        await send_full(send, 200, PAYMENT_REFUSED)
    elif path == "/fail" and get:
        await send_full(send, 500, b'{"error":"boom"}')
    elif path == "/big" and get:
        n = int_param(query, "bytes", 1024, MAX_BIG_BYTES)
        if n is None:
            await send_full(send, 400, BAD_REQUEST)
        else:
            await send_full(send, 200, big_body(n))
    elif path == "/chunked" and get:
        parts = int_param(query, "parts", 3, MAX_PARTS)
        if parts is None:
            await send_full(send, 400, BAD_REQUEST)
        else:
            await send_chunked(send, parts)
    elif path == "/slow" and get:
        ms = int_param(query, "ms", 100, MAX_SLEEP_MS)
        if ms is None:
            await send_full(send, 400, BAD_REQUEST)
        else:
            await asyncio.sleep(ms / 1000)
            await send_full(send, 200, b'{"slept_ms":%d}' % ms)
    elif path == "/close-mid" and get:
        await close_mid(send)
    elif path in KNOWN_PATHS or user:
        await send_full(send, 405, b'{"error":"method_not_allowed"}')
    else:
        await send_full(send, 404, b'{"error":"not_found"}')


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
