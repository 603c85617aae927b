"""A stdlib ``http.server`` for the probe's tests: threads, HTTP/1.1 keep-alive, no bytewatch.

    python python_server.py PORT [CERT KEY]    (with CERT and KEY: HTTPS)
    python python_server.py unix:PATH          (on a Unix socket, as gunicorn behind nginx)

The endpoints and their bodies are the same in every runtime (see README.md beside this file).
Nothing is logged per request: load generators push thousands of requests a second at it.
"""

from __future__ import annotations

import re
import socket
import socketserver
import ssl
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BIG_BYTES = 64 * 1024 * 1024
MAX_PARTS = 10_000
MAX_SLEEP_MS = 60_000
MAX_COOKIES = 1_000
CLOSE_MID_ANNOUNCED = 100_000
CLOSE_MID_SENT = 1000
USER_PATH = re.compile(r"/users/(0|[1-9][0-9]{0,17})")
KNOWN_PATHS = frozenset(
    {
        "/health",
        "/hello",
        "/payments",
        "/fail",
        "/big",
        "/chunked",
        "/slow",
        "/close-mid",
        "/cookies",
    }
)
PAYMENT_REFUSED = b'{"error":"insufficient_balance","message":"balance too low for this payment"}'


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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered writes put the status line, headers and a small body in one send(2), as most
    # production servers do; without it every response costs two segments.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging."""

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query)
        get = method == "GET"
        user = USER_PATH.fullmatch(path)
        if path == "/health" and get:
            self._send(200, b"ok", "text/plain")
        elif path == "/hello" and get:
            self._send(200, b'{"message":"hello"}')
        elif user and get:
            uid = user.group(1).encode()
            self._send(200, b'{"id":%s,"name":"user-%s"}' % (uid, uid))
        elif path == "/payments" and method == "POST":
            self._send(200, PAYMENT_REFUSED)
        elif path == "/fail" and get:
            self._send(500, b'{"error":"boom"}')
        elif path == "/big" and get:
            n = int_param(query, "bytes", 1024, MAX_BIG_BYTES)
            self._send_or_reject(n, lambda n: self._send(200, big_body(n)))
        elif path == "/chunked" and get:
            parts = int_param(query, "parts", 3, MAX_PARTS)
            self._send_or_reject(parts, self._send_chunked)
        elif path == "/slow" and get:
            ms = int_param(query, "ms", 100, MAX_SLEEP_MS)
            self._send_or_reject(ms, self._send_slow)
        elif path == "/close-mid" and get:
            self._close_mid()
        elif path == "/cookies" and get:
            n = int_param(query, "n", 20, MAX_COOKIES)
            self._send_or_reject(n, self._send_cookies)
        elif path in KNOWN_PATHS or user:
            self._send(405, b'{"error":"method_not_allowed"}')
        else:
            self._send(404, b'{"error":"not_found"}')

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_cookies(self, n: int) -> None:
        """A head of about 210 bytes per cookie: past the probe's capture budget from 15 on."""
        self.send_response(200)
        for i in range(n):
            self.send_header("Set-Cookie", f"k{i}={'v' * 200}")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b'{"ok":true}')

    def _send_or_reject(self, value: int | None, answer: Callable[[int], None]) -> None:
        if value is None:
            self._send(400, b'{"error":"bad_request"}')
        else:
            answer(value)

    def _send_chunked(self, parts: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for i in range(parts):
            part = chunk_part(i, parts)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _send_slow(self, ms: int) -> None:
        time.sleep(ms / 1000)
        self._send(200, b'{"slept_ms":%d}' % ms)

    def _close_mid(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(CLOSE_MID_ANNOUNCED))
        self.end_headers()
        self.wfile.write(big_body(CLOSE_MID_ANNOUNCED)[:CLOSE_MID_SENT])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class Server(ThreadingHTTPServer):
    # The stdlib's backlog of 5 drops connections when a load generator opens dozens at once.
    request_queue_size = 1024


class UnixHandler(Handler):
    disable_nagle_algorithm = False  # TCP_NODELAY is a TCP option


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)  # the handler wants a (host, port) peer


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1].startswith("unix:"):
        UnixServer(argv[1].removeprefix("unix:"), UnixHandler).serve_forever()
        return 0
    if len(argv) not in (2, 4) or not argv[1].isdigit():
        print(f"usage: python {argv[0]} PORT [CERT KEY] | unix:PATH", file=sys.stderr)
        return 2
    server = Server(("127.0.0.1", int(argv[1])), Handler)
    if len(argv) == 4:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(argv[2], argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
