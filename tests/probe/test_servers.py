"""The test servers and traffic drivers themselves, without the probe: if these are wrong, every
probe test that leans on them is wrong too."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.probe.servers import (
    CAPABILITIES,
    ENDPOINTS,
    KINDS,
    Capabilities,
    RunningServer,
    ServerError,
    ServerStartError,
    big_body,
    missing_binaries,
    serve,
    server_fixture,
    start_server,
    unavailable_verdict,
)
from tests.probe.traffic import (
    GARBAGE,
    PAYMENT,
    Request,
    TrafficError,
    curl_requests,
    get,
    httpx_requests,
    keepalive_requests,
    non_http_exchange,
    parse_wrk_report,
    pipelined_requests,
    post_json,
    raw_garbage,
    raw_request,
    read_response,
    slow_written_request,
    wrk_run,
)

PAYMENT_REFUSED = b'{"error":"insufficient_balance","message":"balance too low for this payment"}'
# Two shared cores: leave room for a loaded machine, but not so much a stuck server passes.
SLACK_S = 0.5


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per kind for the whole module (tests are grouped by kind)."""
    yield from serve(request.param, tmp_path_factory)


def running(kinds: tuple[str, ...] | list[str]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("server", kinds, indirect=True)


def kinds_supporting(endpoint: str) -> list[str]:
    return [kind for kind in KINDS if endpoint in CAPABILITIES[kind].endpoints]


def exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def assert_healthy(server: RunningServer) -> None:
    assert raw_request(server.base_url, get("/health")).response.body == b"ok"


# --- every endpoint, every runtime -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointCase:
    says: str
    endpoint: str
    request: Request
    status: int
    content_type: str
    body: Callable[[Capabilities], bytes]
    chunks: Callable[[Capabilities], int] | None = None  # None: sized by Content-Length


CASES = [
    EndpointCase(
        "health answers ok in plain text",
        "health", get("/health"), 200, "text/plain", lambda _: b"ok",
    ),
    EndpointCase(
        "hello answers a JSON greeting",
        "hello", get("/hello"), 200, "application/json", lambda _: b'{"message":"hello"}',
    ),
    EndpointCase(
        "a user is answered with its id and name",
        "users", get("/users/42"), 200, "application/json",
        lambda _: b'{"id":42,"name":"user-42"}',
    ),
    EndpointCase(
        "a refused payment hides its error in a 200",
        "payments", post_json("/payments", PAYMENT), 200, "application/json",
        lambda _: PAYMENT_REFUSED,
    ),
    EndpointCase(
        "fail answers 500 with a JSON error",
        "fail", get("/fail"), 500, "application/json", lambda _: b'{"error":"boom"}',
    ),
    EndpointCase(
        "big answers exactly the bytes asked for",
        "big", get("/big?bytes=300000"), 200, "application/json",
        lambda caps: big_body(caps.fixed_big_bytes or 300_000),
    ),
    EndpointCase(
        "chunked answers one chunk per part, forming a JSON array",
        "chunked", get("/chunked?parts=5"), 200, "application/json",
        lambda caps: json.dumps(
            [{"part": i} for i in range(caps.fixed_chunked_parts or 5)], separators=(",", ":")
        ).encode(),
        chunks=lambda caps: caps.fixed_chunked_parts or 5,
    ),
    EndpointCase(
        "an unknown path answers 404",
        "health", get("/no/such/thing"), 404, "application/json",
        lambda _: b'{"error":"not_found"}',
    ),
]  # fmt: skip


@running(KINDS)
@pytest.mark.parametrize("case", CASES, ids=[case.says for case in CASES])
def test_every_server_answers_every_common_endpoint(
    server: RunningServer, case: EndpointCase
) -> None:
    caps = server.capabilities
    assert server.supports(case.endpoint)
    raw = raw_request(server.base_url, case.request)
    response = raw.response
    assert response.status == case.status
    assert (response.header("Content-Type") or "").startswith(case.content_type)
    assert response.body == case.body(caps)
    assert response.complete
    if case.chunks is None:
        assert response.header("Content-Length") == str(len(response.body))
        assert response.chunk_sizes is None
    else:
        assert (response.header("Transfer-Encoding") or "").lower() == "chunked"
        assert response.chunk_sizes is not None
        assert len(response.chunk_sizes) == case.chunks(caps)


@running(kinds_supporting("slow"))
def test_slow_answers_after_sleeping_as_long_as_asked(server: RunningServer) -> None:
    raw = raw_request(server.base_url, get("/slow?ms=150"))
    assert (raw.response.status, raw.response.body) == (200, b'{"slept_ms":150}')
    assert 0.15 <= raw.exchange.latency_s < 0.15 + SLACK_S


@running(KINDS)
def test_endpoints_a_server_does_not_claim_answer_404(server: RunningServer) -> None:
    unclaimed = ENDPOINTS - server.capabilities.endpoints
    paths = {"slow": "/slow?ms=10", "close-mid": "/close-mid"}
    assert set(paths) >= unclaimed
    for endpoint in sorted(unclaimed):
        assert raw_request(server.base_url, get(paths[endpoint])).response.status == 404


@running(KINDS)
def test_a_server_names_its_serving_process(server: RunningServer) -> None:
    expected = {
        "node": "node",
        "python": Path(sys.executable).name[:15],
        "asgi": Path(sys.executable).name[:15],
        "java": "java",
        "nginx": "nginx",
    }
    assert server.comm == expected[server.kind]
    assert server.pid in server.pids
    if server.kind == "nginx":
        assert server.pid != server.launcher_pid
        stat = Path(f"/proc/{server.pid}/stat").read_text()
        assert int(stat.split(")")[-1].split()[1]) == server.launcher_pid
    else:
        assert server.pids == (server.launcher_pid,)


@running(["java"])
def test_java_serves_requests_on_threads_named_http_worker(server: RunningServer) -> None:
    raw_request(server.base_url, get("/hello"))
    assert "http-worker-1" in server.thread_comms()


@running(kinds_supporting("close-mid"))
def test_close_mid_closes_the_connection_after_a_thousand_bytes(server: RunningServer) -> None:
    response = raw_request(server.base_url, get("/close-mid")).response
    assert response.status == 200
    assert response.header("Content-Length") == "100000"
    assert len(response.body) == 1000
    assert not response.complete
    assert_healthy(server)


# --- the drivers -----------------------------------------------------------------------------


@running(KINDS)
def test_a_thousand_requests_share_one_keep_alive_connection(server: RunningServer) -> None:
    exchanges = keepalive_requests(server.url("/users/7"), n=1000)
    assert len(exchanges) == 1000
    assert {(e.status, e.body) for e in exchanges} == {(200, b'{"id":7,"name":"user-7"}')}
    starts = [e.start for e in exchanges]
    assert starts == sorted(starts)
    assert all(0 < e.latency_s < 1 for e in exchanges)


@running(KINDS)
def test_pipelined_responses_come_back_in_request_order(server: RunningServer) -> None:
    paths = [f"/users/{i}" for i in range(1, 7)] + ["/fail", "/hello"]
    exchanges = pipelined_requests(server.base_url, paths)
    assert [e.path for e in exchanges] == paths
    assert [e.body for e in exchanges] == [
        *(b'{"id":%d,"name":"user-%d"}' % (i, i) for i in range(1, 7)),
        b'{"error":"boom"}',
        b'{"message":"hello"}',
    ]
    assert [e.status for e in exchanges] == [200] * 6 + [500, 200]
    assert len({e.start for e in exchanges}) == 1
    latencies = [e.latency_s for e in exchanges]
    assert latencies == sorted(latencies)


@running(KINDS)
def test_a_request_written_in_pieces_is_answered_once_whole(server: RunningServer) -> None:
    exchange = slow_written_request(
        server.base_url, "/payments", pieces=4, pause_s=0.05, method="POST", body=PAYMENT
    )
    assert (exchange.status, exchange.body) == (200, PAYMENT_REFUSED)
    assert 0.15 <= exchange.latency_s < 0.15 + SLACK_S


@running(KINDS)
def test_garbage_is_refused_and_the_server_lives_on(server: RunningServer) -> None:
    outcome = raw_garbage(server.port)
    assert outcome.sent == len(GARBAGE)
    # Each runtime refuses in its own way: a 4xx, or just hanging up.
    assert outcome.received == b"" or outcome.received.startswith(b"HTTP/1.1 4")
    assert_healthy(server)


@running(["node"])
@pytest.mark.parametrize("batch", [False, True], ids=["one curl per request", "curl --next"])
def test_curl_measures_status_size_and_latency(server: RunningServer, batch: bool) -> None:
    before = time.time()
    exchanges = curl_requests(
        server.base_url,
        [get("/slow?ms=200"), post_json("/payments", PAYMENT), get("/chunked?parts=4")],
        batch=batch,
    )
    after = time.time()
    slow, payment, chunked = exchanges
    assert [(e.status, e.response_bytes) for e in exchanges] == [
        (200, len(b'{"slept_ms":200}')),
        (200, len(PAYMENT_REFUSED)),
        (200, len(b'[{"part":0},{"part":1},{"part":2},{"part":3}]')),
    ]
    # Node's timers run on libuv's loop clock, kept in whole milliseconds and read before the
    # request was handled: a 200 ms timer can fire up to 1 ms early by the client's clock (seen
    # once in CI: 0.19997 s).
    assert 0.2 - 0.001 <= slow.latency_s < 0.2 + SLACK_S
    assert payment.latency_s < SLACK_S
    assert payment.request_bytes is not None
    assert payment.request_bytes > len(PAYMENT)
    assert before <= slow.start < payment.start < chunked.start <= after


@running(["node"])
def test_httpx_measures_status_size_and_latency(server: RunningServer) -> None:
    before = time.time()
    slow, fail = httpx_requests(server.base_url, [get("/slow?ms=200"), get("/fail")])
    assert (slow.status, slow.body, fail.status) == (200, b'{"slept_ms":200}', 500)
    assert 0.2 <= slow.latency_s < 0.2 + SLACK_S
    assert before <= slow.start < fail.start <= slow.start + slow.latency_s + SLACK_S


@running(["node"])
def test_every_client_sees_close_mid_as_incomplete(server: RunningServer) -> None:
    via_httpx = httpx_requests(server.base_url, [get("/close-mid"), get("/hello")])
    via_curl = curl_requests(server.base_url, [get("/close-mid"), get("/hello")], batch=True)
    for close_mid, hello in (via_httpx, via_curl):
        assert (close_mid.status, close_mid.response_bytes, close_mid.complete) == (
            200,
            1000,
            False,
        )
        assert (hello.status, hello.complete) == (200, True)  # on a fresh connection


def test_non_http_traffic_is_echoed_by_a_separate_process() -> None:
    payloads = [b"\x00\x01binary", bytes(range(256)) * 8]
    outcome = non_http_exchange(payloads)
    assert outcome.received == outcome.sent == b"".join(payloads)
    assert outcome.server_pid != os.getpid()
    assert outcome.server_comm == Path(sys.executable).name[:15]
    assert not exists(outcome.server_pid)


@running(["node"])
def test_wrk_reports_throughput_and_ordered_latency_percentiles(server: RunningServer) -> None:
    result = wrk_run(server.url("/hello"), seconds=1, connections=4, threads=2)
    assert result.requests > 100
    assert result.bytes_read > result.requests * len(b'{"message":"hello"}')
    assert 0.9 < result.duration_s < 3
    assert result.socket_errors == result.errors_status == 0
    assert 0 < result.latency_p50_s <= result.latency_p90_s <= result.latency_p99_s
    assert result.latency_p99_s <= result.latency_max_s


@running(["nginx"])
def test_wrk_counts_5xx_answers_as_status_errors(server: RunningServer) -> None:
    result = wrk_run(server.url("/fail"), seconds=1, connections=2, threads=1)
    assert result.requests > 0
    assert result.errors_status == result.requests


def test_the_wrk_report_line_is_read_in_microseconds() -> None:
    stdout = (
        "Running 1s test @ http://127.0.0.1:8080/hello\n"
        "BYTEWATCH-WRK 1000000 5000 900000 1 2 3 4 5 250.500 9000 200 400 1500\n"
    )
    result = parse_wrk_report(stdout)
    assert (result.requests, result.duration_s, result.requests_per_s) == (5000, 1.0, 5000.0)
    assert (result.errors_connect, result.errors_timeout, result.socket_errors) == (1, 5, 11)
    assert result.errors_status == 4
    assert result.latency_p50_s == pytest.approx(0.0002)
    assert result.latency_mean_s == pytest.approx(0.0002505)


def test_a_wrk_output_without_the_report_line_is_an_error() -> None:
    with pytest.raises(TrafficError, match="no BYTEWATCH-WRK line"):
        parse_wrk_report("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("wire", "status", "body", "chunks", "complete"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            200, b"hello", None, True,
            id="a sized body is read to its length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello",
            200, b"hello", None, False,
            id="a sized body cut short is incomplete",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
            200, b"abcde", (3, 2), True,
            id="chunks are joined, their sizes kept, extensions and trailers skipped",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n9\r\nde",
            200, b"abcde", (3,), False,
            id="a chunk cut short is incomplete",
        ),
        pytest.param(
            b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
            200, b"until the end", None, True,
            id="a body without a length runs to the close",
        ),
        pytest.param(
            b"HTTP/1.1 204 No Content\r\n\r\n",
            204, b"", None, True,
            id="a 204 has no body",
        ),
        pytest.param(
            b"HTTP/1.1 20", 0, b"HTTP/1.1 20", None, False,
            id="a close before the end of the head is status 0",
        ),
    ],
)  # fmt: skip
def test_the_response_reader_tells_complete_from_cut_short(
    wire: bytes, status: int, body: bytes, chunks: tuple[int, ...] | None, complete: bool
) -> None:
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        server_end.sendall(wire)
        server_end.close()
        response = read_response(client_end)
    assert (response.status, response.body, response.chunk_sizes) == (status, body, chunks)
    assert response.complete is complete


def test_a_response_that_is_not_http_is_an_error() -> None:
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        server_end.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        with pytest.raises(TrafficError, match="not an HTTP status line"):
            read_response(client_end)


# --- starting and stopping -------------------------------------------------------------------


def test_a_stopped_server_leaves_no_process_behind(tmp_path: Path) -> None:
    with start_server("nginx", tmp_path) as server:
        pids = (server.launcher_pid, *server.pids)
        assert all(exists(pid) for pid in pids)
    assert not any(exists(pid) for pid in pids)


def test_a_failing_test_still_stops_its_server(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), start_server("node", tmp_path) as server:
        pid = server.pid
        raise RuntimeError("the test failed")
    assert not exists(pid)


def test_a_killed_nginx_master_leaves_no_orphan_worker(tmp_path: Path) -> None:
    with start_server("nginx", tmp_path) as server:
        os.kill(server.launcher_pid, signal.SIGKILL)
        worker = server.pid
    assert not exists(worker)


def test_a_server_that_cannot_start_says_why_with_its_own_output(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: connecting fails fast
        port = taken.getsockname()[1]
        with (
            pytest.raises(
                ServerStartError, match=r"(?s)node server could not bind port \d+:.*EADDRINUSE"
            ),
            start_server("node", tmp_path, port=port),
        ):
            pass


def test_an_unknown_kind_is_refused_by_name(tmp_path: Path) -> None:
    with (
        pytest.raises(ServerError, match="unknown server kind 'ruby'"),
        start_server("ruby", tmp_path),
    ):
        pass


@pytest.mark.parametrize(
    ("missing", "in_ci", "expected"),
    [
        pytest.param((), False, None, id="nothing missing: the server runs"),
        pytest.param((), True, None, id="nothing missing in CI: the server runs"),
        pytest.param(("javac",), False, "skip", id="a missing binary skips on a laptop"),
        pytest.param(("javac",), True, "fail", id="a missing binary fails in CI"),
    ],
)
def test_only_a_missing_runtime_skips_and_never_in_ci(
    missing: tuple[str, ...], in_ci: bool, expected: str | None
) -> None:
    verdict = unavailable_verdict("java", missing, in_ci)
    assert (verdict[0] if verdict else None) == expected
    if verdict:
        assert "javac" in verdict[1]


def test_missing_binaries_are_looked_up_on_path() -> None:
    def which(name: str) -> str | None:
        return None if name == "javac" else f"/usr/bin/{name}"

    assert missing_binaries("java", which) == ("javac",)
    assert missing_binaries("python", which) == ()


fresh_nginx = server_fixture("nginx", scope="function", name="fresh_nginx")


def test_a_server_fixture_yields_a_healthy_server(fresh_nginx: RunningServer) -> None:
    assert fresh_nginx.kind == "nginx"
    assert_healthy(fresh_nginx)
