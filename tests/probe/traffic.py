"""Traffic drivers: send known HTTP (and non-HTTP) traffic to a server and report what the client
measured, so a test can hold the probe's records against it.

Every HTTP driver returns one ``ClientExchange`` per request: method, path, status, body bytes,
the wall-clock start (``time.time()`` when the first request byte was sent) and the latency
(first request byte sent to last response byte received, on the monotonic clock). The server's
own view of an exchange always fits inside the client's, so a probe's latency should be at most
the client's.

Drivers: ``curl_requests`` (the curl binary), ``httpx_requests`` (one keep-alive client),
``keepalive_requests`` (one raw socket, sequential), ``pipelined_requests`` (all requests in one
write), ``slow_written_request`` (one request in several writes), ``raw_request`` (one request,
the raw response with its headers and chunk sizes; ``read_response`` parses one off any
socket), ``raw_garbage``, ``non_http_exchange`` and ``wrk_run``. ``cut_response_server`` runs
a server that writes every response in pieces. ``TrafficError`` is raised when a driver cannot
do its job at all (nothing listens, wrk fails); a server misbehaving is not an error but a
measurement (status 0, ``complete`` false).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.probe.servers import SERVERS_DIR, free_port, read_comm, spawn, stop_process

DEFAULT_TIMEOUT_S = 30.0
_RECV_BYTES = 65536
_NO_BODY_STATUSES = frozenset({204, 304})


class TrafficError(Exception):
    """A driver could not send its traffic at all (nothing listening, a tool failed)."""


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to send; ``path`` may carry a query string."""

    method: str = "GET"
    path: str = "/"
    body: bytes = field(default=b"", repr=False)
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # more, as sent

    def encode(self, host: str) -> bytes:
        """The request as HTTP/1.1 bytes on the wire."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        if self.body or self.method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(self.body)}")
        if self.content_type:
            lines.append(f"Content-Type: {self.content_type}")
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


PAYMENT = b'{"amount":125,"currency":"EUR"}'  # what the test servers' POST /payments takes


def get(path: str) -> Request:
    return Request("GET", path)


def post_json(path: str, body: bytes) -> Request:
    return Request("POST", path, body, "application/json")


@dataclass(frozen=True, slots=True)
class ClientExchange:
    """One request and its response as the client saw them.

    ``response_bytes`` counts body bytes after chunked framing is removed (what Content-Length
    would say). ``status`` is 0 when no status line arrived; ``complete`` is false when the
    connection ended before the announced body did. ``request_bytes`` (request line, headers and
    body) and ``response_head_bytes`` (status line and headers) are None when the driver
    cannot see its own wire bytes. ``start`` is exact for the socket drivers and httpx, and an
    estimate for curl (see ``curl_requests``).
    """

    method: str
    path: str
    status: int
    response_bytes: int
    start: float
    latency_s: float
    complete: bool = True
    request_bytes: int | None = None
    response_head_bytes: int | None = None
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A response as parsed off the socket, framing included."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)
    head_bytes: int
    chunk_sizes: tuple[int, ...] | None  # data chunks, when Transfer-Encoding was chunked
    complete: bool

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class RawExchange:
    exchange: ClientExchange
    response: RawResponse


@dataclass(frozen=True, slots=True)
class GarbageOutcome:
    """What a server did with bytes that are not HTTP."""

    sent: int
    received: bytes
    server_closed: bool  # the server closed the connection within the wait
    start: float


@dataclass(frozen=True, slots=True)
class EchoOutcome:
    """A binary TCP conversation with a server that speaks no HTTP (now stopped)."""

    server_pid: int
    server_comm: str
    port: int
    sent: bytes = field(repr=False)
    received: bytes = field(repr=False)
    start: float


@dataclass(frozen=True, slots=True)
class WrkResult:
    """wrk's own summary of a run; latencies in seconds."""

    requests: int
    duration_s: float
    bytes_read: int
    latency_mean_s: float
    latency_max_s: float
    latency_p50_s: float
    latency_p90_s: float
    latency_p99_s: float
    errors_connect: int
    errors_read: int
    errors_write: int
    errors_status: int  # responses with a status outside 2xx/3xx
    errors_timeout: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def socket_errors(self) -> int:
        return self.errors_connect + self.errors_read + self.errors_write + self.errors_timeout


# --- reading responses off a socket ----------------------------------------------------------


class _Reader:
    """Buffered reads from one socket; keeps what it over-read for the next response."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self._sock.recv(_RECV_BYTES)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self._buffer += data
        return True

    def until(self, marker: bytes) -> bytes | None:
        """Bytes up to and including ``marker``, or None if the peer closed first."""
        while (index := self._buffer.find(marker)) < 0:
            if not self._fill():
                return None
        end = index + len(marker)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def exactly(self, n: int) -> bytes:
        """``n`` bytes, or fewer if the peer closed first."""
        while len(self._buffer) < n and self._fill():
            pass
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def to_eof(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def _read_response(reader: _Reader, *, method: str = "GET") -> RawResponse:
    head = reader.until(b"\r\n\r\n")
    if head is None:
        return RawResponse(0, (), reader.to_eof(), 0, None, complete=False)
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise TrafficError(f"not an HTTP status line: {lines[0]!r}")
    status = int(parts[1])
    headers = tuple(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in lines[1:])
    )
    response = RawResponse(status, headers, b"", len(head), None, complete=True)
    if method == "HEAD" or status in _NO_BODY_STATUSES or 100 <= status < 200:
        return response
    if (response.header("Transfer-Encoding") or "").lower() == "chunked":
        return _read_chunked(reader, response)
    length = response.header("Content-Length")
    if length is not None:
        body = reader.exactly(int(length))
        return _with_body(response, body, None, complete=len(body) == int(length))
    return _with_body(response, reader.to_eof(), None, complete=True)


def read_response(sock: socket.socket, *, method: str = "GET") -> RawResponse:
    """One response off ``sock`` (which should carry nothing after it)."""
    return _read_response(_Reader(sock), method=method)


def _read_chunked(reader: _Reader, response: RawResponse) -> RawResponse:
    body = bytearray()
    sizes: list[int] = []
    while True:
        line = reader.until(b"\r\n")
        if line is None:
            return _with_body(response, bytes(body), tuple(sizes), complete=False)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        data = reader.exactly(size + 2)
        body += data[:size]
        if len(data) < size + 2:
            return _with_body(response, bytes(body), tuple(sizes), complete=False)
        sizes.append(size)
    # Trailers, if any, end with an empty line.
    while (line := reader.until(b"\r\n")) not in (None, b"\r\n"):
        pass
    return _with_body(response, bytes(body), tuple(sizes), complete=line is not None)


def _with_body(
    response: RawResponse, body: bytes, chunk_sizes: tuple[int, ...] | None, *, complete: bool
) -> RawResponse:
    return RawResponse(
        response.status, response.headers, body, response.head_bytes, chunk_sizes, complete
    )


def _exchange(
    request: Request, response: RawResponse, start: float, latency_s: float, sent: int
) -> ClientExchange:
    return ClientExchange(
        method=request.method,
        path=request.path,
        status=response.status,
        response_bytes=len(response.body),
        start=start,
        latency_s=latency_s,
        complete=response.complete,
        request_bytes=sent,
        response_head_bytes=response.head_bytes or None,
        body=response.body,
    )


def _address(url: str) -> tuple[str, int, str]:
    """(host, port, path with query) of an http:// URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise TrafficError(f"expected an http:// URL, got {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        raise TrafficError(f"cannot connect to {host}:{port}: {exc}") from exc
    # Each write leaves as its own segment, so "several writes" means several on the wire too.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# --- socket drivers --------------------------------------------------------------------------


def raw_request(
    base_url: str, request: Request, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> RawExchange:
    """One request on a fresh connection; the response with its headers and chunk sizes."""
    host, port, _ = _address(base_url)
    with _connect(host, port, timeout_s) as sock:
        wire = request.encode(f"{host}:{port}")
        start, t0 = time.time(), time.perf_counter()
        sock.sendall(wire)
        response = _read_response(_Reader(sock), method=request.method)
        latency = time.perf_counter() - t0
    return RawExchange(_exchange(request, response, start, latency, len(wire)), response)


def keepalive_requests(
    url: str, n: int = 1000, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[ClientExchange]:
    """``n`` GETs of ``url``, one after another on ONE connection."""
    host, port, path = _address(url)
    request = get(path)
    wire = request.encode(f"{host}:{port}")
    exchanges: list[ClientExchange] = []
    with _connect(host, port, timeout_s) as sock:
        reader = _Reader(sock)
        for i in range(n):
            start, t0 = time.time(), time.perf_counter()
            sock.sendall(wire)
            response = _read_response(reader)
            latency = time.perf_counter() - t0
            if response.status == 0:
                raise TrafficError(f"{url}: the server closed the connection after {i} requests")
            exchanges.append(_exchange(request, response, start, latency, len(wire)))
            if (response.header("Connection") or "").lower() == "close":
                raise TrafficError(f"{url}: the server refused keep-alive after {i + 1} requests")
    return exchanges


def pipelined_requests(
    base_url: str, paths: Sequence[str], *, timeout_s: float = 5.0
) -> list[ClientExchange]:
    """GET every path, all requests in ONE write, then read the responses in order.

    All exchanges share one ``start``; each latency runs to the end of its own response. A
    response that never came (the server closed, or ``timeout_s`` passed) has status 0.
    """
    host, port, _ = _address(base_url)
    requests = [get(path) for path in paths]
    wires = [request.encode(f"{host}:{port}") for request in requests]
    exchanges: list[ClientExchange] = []
    with _connect(host, port, timeout_s) as sock:
        reader = _Reader(sock)
        start, t0 = time.time(), time.perf_counter()
        sock.sendall(b"".join(wires))
        unanswered = RawResponse(0, (), b"", 0, None, complete=False)
        for request, wire in zip(requests, wires, strict=True):
            # Once one response is missing, the rest are too: no point waiting for each.
            if exchanges and exchanges[-1].status == 0:
                response = unanswered
            else:
                try:
                    response = _read_response(reader)
                except TimeoutError:
                    response = unanswered
            exchanges.append(
                _exchange(request, response, start, time.perf_counter() - t0, len(wire))
            )
    return exchanges


def slow_written_request(
    base_url: str,
    path: str,
    pieces: int = 4,
    *,
    pause_s: float = 0.05,
    method: str = "GET",
    body: bytes = b"",
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ClientExchange:
    """One request written in ``pieces`` writes with ``pause_s`` between them."""
    host, port, _ = _address(base_url)
    request = Request(method, path, body, "application/json" if body else None)
    size = len(request.encode(f"{host}:{port}"))
    if not 1 <= pieces <= size:
        raise ValueError(f"pieces must be between 1 and {size}, got {pieces}")
    step = -(-size // pieces)  # ceiling division: exactly `pieces` writes at most
    return request_written_at_cuts(
        base_url, request, range(step, size, step), pause_s=pause_s, timeout_s=timeout_s
    )


def request_written_at_cuts(
    base_url: str,
    request: Request,
    cuts: Iterable[int],
    *,
    pause_s: float = 0.05,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ClientExchange:
    """``request`` written in one write per piece between ``cuts`` (byte offsets from its start,
    ascending), with ``pause_s`` between writes."""
    [exchange] = requests_written_at_cuts(
        base_url, [(request, cuts)], pause_s=pause_s, timeout_s=timeout_s
    )
    return exchange


def requests_written_at_cuts(
    base_url: str,
    requests: Sequence[tuple[Request, Iterable[int]]],
    *,
    pause_s: float = 0.05,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[ClientExchange]:
    """Each request in turn on ONE connection, its response read before the next, each written
    as ``request_written_at_cuts`` writes it."""
    host, port, _ = _address(base_url)
    exchanges: list[ClientExchange] = []
    with _connect(host, port, timeout_s) as sock:
        reader = _Reader(sock)
        for request, cuts in requests:
            wire = request.encode(f"{host}:{port}")
            bounds = [0, *(cut for cut in cuts if 0 < cut < len(wire)), len(wire)]
            start, t0 = time.time(), time.perf_counter()
            for i, (begin, end) in enumerate(itertools.pairwise(bounds)):
                if i:
                    time.sleep(pause_s)
                sock.sendall(wire[begin:end])
            response = _read_response(reader, method=request.method)
            latency = time.perf_counter() - t0
            exchanges.append(_exchange(request, response, start, latency, len(wire)))
    return exchanges


@dataclass(frozen=True, slots=True)
class ScriptServer:
    """A server script from tests/servers running on 127.0.0.1: its process and first socket."""

    pid: int
    port: int
    sock: socket.socket  # connected once it listened; the caller may use it or close it

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def script_server(script: str, *args: str, timeout_s: float = 10.0) -> Iterator[ScriptServer]:
    """``python tests/servers/SCRIPT PORT ARGS...``, connected to once it listens; stopped when
    the block ends."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="server-") as workdir:
        argv = [sys.executable, str(SERVERS_DIR / script), str(port), *args]
        process = spawn(argv, Path(workdir) / "server.log", cwd=Path(workdir))
        try:
            with _connect_when_listening(port, timeout_s, process) as sock:
                yield ScriptServer(process.pid, port, sock)
        finally:
            stop_process(process)


@contextlib.contextmanager
def cut_response_server(cuts: Iterable[int], *, pause_s: float = 0.05) -> Iterator[ScriptServer]:
    """A server that writes each response in one send per piece between ``cuts`` (byte offsets
    from its start, ascending), with ``pause_s`` between sends."""
    pieces = ",".join(str(cut) for cut in cuts)
    with script_server("cut_response_server.py", pieces, str(round(pause_s * 1000))) as server:
        server.sock.close()
        yield server


GARBAGE = b"GET \x00\xff\xfe\x80\x01 HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n"


def raw_garbage(
    port: int, payload: bytes = GARBAGE, *, wait_s: float = 0.5, host: str = "127.0.0.1"
) -> GarbageOutcome:
    """Send ``payload``, collect whatever comes back for up to ``wait_s``, then close."""
    with _connect(host, port, wait_s + 5) as sock:
        start = time.time()
        sock.sendall(payload)
        received = bytearray()
        closed = False
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(_RECV_BYTES)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            received += data
    return GarbageOutcome(len(payload), bytes(received), closed, start)


NON_HTTP_PAYLOADS = (
    b"\x00\x01\x02\x03 binary frame",
    bytes(range(256)),
    b"\xff\xfe" * 2048,
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # the first bytes of a TLS ClientHello
)


def non_http_exchange(
    payloads: Iterable[bytes] = NON_HTTP_PAYLOADS, *, timeout_s: float = 10.0
) -> EchoOutcome:
    """Start a TCP echo server process, trade ``payloads`` with it on one connection, stop it."""
    with script_server("echo_server.py", timeout_s=timeout_s) as server:
        sock = server.sock
        comm = read_comm(server.pid)
        reader = _Reader(sock)
        sent = bytearray()
        received = bytearray()
        start = time.time()
        for payload in payloads:
            sock.sendall(payload)
            sent += payload
            received += reader.exactly(len(payload))
    return EchoOutcome(server.pid, comm, server.port, bytes(sent), bytes(received), start)


def _connect_when_listening(
    port: int, timeout_s: float, process: subprocess.Popen[bytes]
) -> socket.socket:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _connect("127.0.0.1", port, timeout_s)
        except TrafficError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- client drivers --------------------------------------------------------------------------


def httpx_requests(
    base_url: str, requests: Sequence[Request], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[ClientExchange]:
    """The requests, in order, through ONE ``httpx.Client`` (so one keep-alive connection).

    The first request's latency includes opening the connection (about 0.1 ms on loopback),
    as does the one after a response that closed it.
    """
    exchanges: list[ClientExchange] = []
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        for request in requests:
            headers = dict(request.headers)
            if request.content_type:
                headers["Content-Type"] = request.content_type
            body = bytearray()
            start, t0 = time.time(), time.perf_counter()
            try:
                with client.stream(
                    request.method, request.path, content=request.body, headers=headers
                ) as response:
                    status = response.status_code
                    complete = True
                    try:
                        for data in response.iter_raw():
                            body += data
                    except httpx.RemoteProtocolError:
                        complete = False  # the server closed before the body ended
            except httpx.ConnectError as exc:
                raise TrafficError(f"httpx cannot connect to {base_url}: {exc}") from exc
            exchanges.append(
                ClientExchange(
                    method=request.method,
                    path=request.path,
                    status=status,
                    response_bytes=len(body),
                    start=start,
                    latency_s=time.perf_counter() - t0,
                    complete=complete,
                    body=bytes(body),
                )
            )
    return exchanges


_CURL_FIELDS = (
    "%{http_code} %{size_download} %{size_header} %{size_request} %{size_upload} "
    "%{time_pretransfer} %{time_total} %{exitcode}\\n"
)
_CURL_CANNOT_CONNECT = 7


def curl_requests(
    base_url: str,
    requests: Sequence[Request],
    *,
    batch: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[ClientExchange]:
    """The requests through the curl binary: one process each, or one process for all
    (``batch``: ``--next`` between them, so curl reuses its connection).

    curl reports no wall-clock start, so ``start`` is the time curl was launched plus curl's
    own time to get ready to send: early by curl's start-up time, a few milliseconds.
    ``latency_s`` is curl's ``time_total - time_pretransfer``: from sending to the last byte.
    Bodies must be text (curl takes them on its command line).
    """
    groups = [list(requests)] if batch else [[request] for request in requests]
    exchanges: list[ClientExchange] = []
    for group in groups:
        argv = ["curl", "-q", "--silent", "--show-error", "--max-time", str(timeout_s)]
        for i, request in enumerate(group):
            if i:
                argv.append("--next")
            argv += ["--request", request.method, "--output", "/dev/null"]
            argv += ["--write-out", _CURL_FIELDS, base_url + request.path]
            if request.body:
                argv += ["--data-binary", request.body.decode()]
            if request.content_type:
                argv += ["--header", f"Content-Type: {request.content_type}"]
            for name, value in request.headers:
                argv += ["--header", f"{name}: {value}"]
        launched = time.time()
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s * len(group) + 10, check=False
        )
        lines = result.stdout.splitlines()
        if len(lines) != len(group):
            raise TrafficError(
                f"curl printed {len(lines)} reports for {len(group)} requests "
                f"(exit {result.returncode}): {result.stderr.strip()}"
            )
        elapsed = 0.0
        for request, line in zip(group, lines, strict=True):
            exchange, total = _curl_exchange(request, line, launched + elapsed)
            if exchange is None:
                raise TrafficError(f"curl cannot connect to {base_url}: {result.stderr.strip()}")
            exchanges.append(exchange)
            elapsed += total
    return exchanges


def _curl_exchange(
    request: Request, line: str, launched: float
) -> tuple[ClientExchange | None, float]:
    code, downloaded, head, sent_head, uploaded, pretransfer, total, exitcode = line.split()
    if int(exitcode) == _CURL_CANNOT_CONNECT:
        return None, 0.0
    exchange = ClientExchange(
        method=request.method,
        path=request.path,
        status=int(code),
        response_bytes=int(downloaded),
        start=launched + float(pretransfer),
        latency_s=float(total) - float(pretransfer),
        complete=int(exitcode) == 0,
        request_bytes=int(sent_head) + int(uploaded),
        response_head_bytes=int(head) or None,
    )
    return exchange, float(total)


# --- wrk -------------------------------------------------------------------------------------

_WRK_MARKER = "BYTEWATCH-WRK"
# wrk calls done() once with its merged statistics; latencies are in microseconds.
_WRK_SCRIPT = f"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{_WRK_MARKER} %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.3f %.0f %.0f %.0f %.0f\\n",
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def wrk_run(url: str, seconds: int = 2, connections: int = 10, threads: int = 2) -> WrkResult:
    """Load ``url`` with wrk for ``seconds`` and return wrk's own numbers."""
    if connections < threads:
        raise ValueError(
            f"wrk needs at least one connection per thread ({connections} < {threads})"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="wrk-") as script:
        script.write(_WRK_SCRIPT)
        script.flush()
        argv = [
            "wrk", "--threads", str(threads), "--connections", str(connections),
            "--duration", f"{seconds}s", "--timeout", "5s", "--script", script.name, url,
        ]  # fmt: skip
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=seconds + 30, check=False
            )
        except FileNotFoundError as exc:
            raise TrafficError("wrk is not installed (scripts/setup.sh --dev installs it)") from exc
    if result.returncode != 0:
        raise TrafficError(f"wrk exited with {result.returncode}: {result.stderr.strip()}")
    return parse_wrk_report(result.stdout)


def parse_wrk_report(stdout: str) -> WrkResult:
    """The numbers from the line our Lua ``done()`` prints among wrk's usual output."""
    line = next((line for line in stdout.splitlines() if line.startswith(_WRK_MARKER)), None)
    if line is None:
        raise TrafficError(f"wrk printed no {_WRK_MARKER} line:\n{stdout}")
    fields = [float(value) for value in line.split()[1:]]
    if len(fields) != 13:
        raise TrafficError(f"wrk report has {len(fields)} fields, expected 13: {line!r}")
    us = 1e-6
    return WrkResult(
        requests=int(fields[1]),
        duration_s=fields[0] * us,
        bytes_read=int(fields[2]),
        errors_connect=int(fields[3]),
        errors_read=int(fields[4]),
        errors_write=int(fields[5]),
        errors_status=int(fields[6]),
        errors_timeout=int(fields[7]),
        latency_mean_s=fields[8] * us,
        latency_max_s=fields[9] * us,
        latency_p50_s=fields[10] * us,
        latency_p90_s=fields[11] * us,
        latency_p99_s=fields[12] * us,
    )
