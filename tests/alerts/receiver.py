"""A real HTTP receiver on loopback that records what it gets and answers as it is told.

Tests point notifiers and the outbox at it and then assert exactly what arrived and when
("when" by the clock the test gives it, so simulated time works). It can answer any status
with any headers, or hang until it is stopped, to play a receiver that is down, rate limiting,
rejecting or stuck.

Run as a script it is the local receiver of ``bench/alerting_outbox.py``:
``python tests/alerts/receiver.py`` prints its port and answers 200 to every POST;
``GET /_stats`` returns how many POSTs it has received.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False  # never answer; the connection is dropped when the receiver stops


OK = Reply()


@dataclass(frozen=True, slots=True)
class Received:
    at: datetime  # by the receiver's clock
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int | None  # what the receiver answered; None when it hung

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[["Received"], Reply]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class RecordingReceiver:
    """Start with ``with RecordingReceiver() as receiver:``; ``receiver.url`` is its base URL."""

    clock: Callable[[], datetime] = _wall_clock
    responder: Responder | None = None
    _script: list[Reply] = field(default_factory=list)
    _received: list[Received] = field(default_factory=list)
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- what to answer --------------------------------------------------------------------

    def answer(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies`` in order, then 200 (or the responder)."""
        with self._lock:
            self._script.extend(replies)

    def _reply_for(self, request: Received) -> Reply:
        with self._lock:
            if self._script:
                return self._script.pop(0)
        return self.responder(request) if self.responder is not None else OK

    # --- what arrived ----------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def bodies(self) -> list[Any]:
        return [r.json() for r in self.received]

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} requests within {timeout_s}s, got {len(self._received)}"
                    )
                self._lock.wait(left)
            return list(self._received)

    def _record(self, request: Received) -> None:
        with self._lock:
            self._received.append(request)
            self._lock.notify_all()

    # --- life ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> RecordingReceiver:
        server = _QuietServer(("127.0.0.1", port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RecordingReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the crash test does it on purpose) is not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(receiver: RecordingReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
        # Headers and body are two writes: with Nagle on, the body waits out the client's
        # delayed ACK (40 ms a request on Linux), which real receivers do not make you pay.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests assert on what was recorded, not on stderr

        def do_GET(self) -> None:
            if self.path == "/_stats":
                self._send(Reply(200, json.dumps({"received": len(receiver.received)}).encode()))
            else:
                self._send(Reply(404, b"not found"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            request = Received(
                at=receiver.clock(),
                method="POST",
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                status=None,
            )
            reply = receiver._reply_for(request)
            receiver._record(replace(request, status=None if reply.hang else reply.status))
            if reply.hang:
                receiver._release.wait()
                self.close_connection = True
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    receiver = RecordingReceiver().start(args.port)
    print(receiver.port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
