"""The probe on real servers in five runtimes, watched from the outside (needs root and eBPF).

How latencies are compared: the probe measures a server exchange from the return of the read
that brought the request's first bytes to the return of the write that sent the response's last
bytes, and a client exchange from its first write to its last read. A client library measures
around the same syscalls plus its own user-space work (and, on a new connection, the TCP
handshake). So the probe's server latency is never above the client's, and the gap is loopback
transit plus client overhead: a few milliseconds on a busy two-core machine. The tolerance below
is 25 ms plus 10 %, wide enough for CI noise and narrow enough to catch a probe that pairs a
request with the wrong response (which is off by whole requests) or takes the wrong timestamp.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.probe.probe_process import Exchange, TraceProcess
from tests.probe.servers import SERVERS_DIR, RunningServer
from tests.probe.traffic import (
    PAYMENT,
    ClientExchange,
    Request,
    curl_requests,
    cut_response_server,
    get,
    httpx_requests,
    keepalive_requests,
    non_http_exchange,
    pipelined_requests,
    post_json,
    raw_garbage,
    raw_request,
    request_written_at_cuts,
    requests_written_at_cuts,
    slow_written_request,
)

pytestmark = pytest.mark.kernel

RUNTIMES = ("node", "python", "asgi", "java", "nginx")
TOLERANCE_S = 0.025
TOLERANCE_RATIO = 0.10


@pytest.fixture(params=RUNTIMES)
def server(request: pytest.FixtureRequest) -> RunningServer:
    running: RunningServer = request.getfixturevalue(f"{request.param}_server")
    return running


def served_by(server: RunningServer, since: float) -> Callable[[Exchange], bool]:
    def match(e: Exchange) -> bool:
        return e["pid"] in server.pids and e["direction"] == "server" and ts(e) >= since

    return match


def called_by(pid: int, since: float) -> Callable[[Exchange], bool]:
    def match(e: Exchange) -> bool:
        return e["pid"] == pid and e["direction"] == "client" and ts(e) >= since

    return match


def ts(e: Exchange) -> float:
    from datetime import datetime

    return datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()


def unique_id() -> int:
    return random.randrange(10**8, 10**9)


def assert_latency_close(seen_s: float, client_s: float, *, what: str) -> None:
    slack = TOLERANCE_S + TOLERANCE_RATIO * client_s
    assert seen_s <= client_s + 0.002, f"{what}: probe {seen_s:.4f}s > client {client_s:.4f}s"
    assert client_s - seen_s <= slack, f"{what}: probe {seen_s:.4f}s vs client {client_s:.4f}s"


def by_path(exchanges: list[Exchange]) -> dict[str, list[Exchange]]:
    grouped: dict[str, list[Exchange]] = {}
    for e in exchanges:
        grouped.setdefault(e["path"], []).append(e)
    return grouped


def check_each_seen_once(
    seen: list[Exchange], sent: list[ClientExchange], *, latency: str | None = "close"
) -> None:
    """Each request once, with its method and status. ``latency="close"`` compares with the
    client's measurement within the tolerance (for the client's own side, or a server answering
    a fresh connection); ``"bounded"`` only requires the server's side not to exceed it, because
    on a reused connection the client's time also counts TCP effects before the server reads
    (Nagle and delayed ACKs after a request body: tens of milliseconds)."""
    grouped = by_path(seen)
    for client in sent:
        path = client.path.split("?")[0]
        matches = grouped.get(path, [])
        assert len(matches) == 1, f"{client.method} {path}: seen {len(matches)} times"
        [e] = matches
        assert (e["method"], e["status"]) == (client.method, client.status), path
        seen_s = e["latency_ms"] / 1000
        if latency == "close":
            assert_latency_close(seen_s, client.latency_s, what=path)
        elif latency == "bounded":
            assert 0 < seen_s <= client.latency_s + 0.002, path


def test_every_runtime_is_seen_once_per_exchange_with_the_right_fields(
    live_trace: TraceProcess, server: RunningServer
) -> None:
    since = time.time()
    n = unique_id()
    sent = httpx_requests(
        server.base_url,
        [get(f"/users/{n}"), post_json("/payments", b'{"amount": 100}'), get("/fail")],
    )
    sent += curl_requests(server.base_url, [get(f"/users/{n + 1}?expand=orders")])
    seen = live_trace.wait_for(served_by(server, since), count=len(sent))
    check_each_seen_once(seen, sent, latency="bounded")
    users = by_path(seen)[f"/users/{n}"][0]
    assert users["comm"] == server.comm
    assert users["service"] == server.comm
    assert users["response_bytes"] > 0 and users["request_bytes"] > 0
    assert users["complete"] is True
    statuses = sorted(e["status"] for e in seen)
    assert statuses == sorted(c.status for c in sent)
    payments = by_path(seen)["/payments"][0]
    assert payments["business_error"] is True
    assert payments["error_type"] == "insufficient_balance"
    assert users["business_error"] is False
    # The client's own side, as the probe saw it, matches the client's measurement closely.
    own = live_trace.wait_for(called_by(os.getpid(), since), count=3)
    check_each_seen_once(own, sent[:3], latency="close")


def test_requests_whose_heads_run_past_the_capture_budget_are_each_seen_once(
    live_trace: TraceProcess, server: RunningServer
) -> None:
    """A 6,000-byte cookie (a session, a token) or query: the kernel copies 3 KiB of a head."""
    since = time.time()
    n = unique_id()
    cookie = (("Cookie", "session=" + "c" * 6000),)
    sent = httpx_requests(
        server.base_url,
        [
            Request("GET", f"/users/{n}", headers=cookie),
            Request("POST", "/payments", PAYMENT, "application/json", cookie),
            get(f"/users/{n + 1}"),  # the same connection goes on as before
        ],
    )
    sent += curl_requests(
        server.base_url,
        [
            Request("GET", f"/users/{n + 2}", headers=cookie),
            get(f"/users/{n + 3}?q=" + "x" * 6000),  # the request line itself is cut
        ],
    )
    seen = live_trace.wait_for(served_by(server, since), count=len(sent))
    check_each_seen_once(seen, sent, latency="bounded")
    assert min(e["request_bytes"] for e in seen if e["path"] != f"/users/{n + 1}") > 6000
    payments = by_path(seen)["/payments"][0]
    assert payments["error_type"] == "insufficient_balance"
    own = live_trace.wait_for(called_by(os.getpid(), since), count=3)
    check_each_seen_once(own, sent[:3], latency="close")


def test_a_response_whose_head_ran_past_the_budget_is_seen_while_its_connection_idles(
    live_trace: TraceProcess, python_server: RunningServer
) -> None:
    """No next request or close ends it: a second of silence on the connection does."""
    since = time.time()
    with httpx.Client() as client:
        answer = client.get(python_server.url("/cookies?n=20"))
        assert answer.status_code == 200 and len(answer.headers.get_list("set-cookie")) == 20
        [seen] = live_trace.wait_for(served_by(python_server, since), count=1)
        assert (seen["path"], seen["status"]) == ("/cookies", 200)
        assert seen["response_bytes"] > 4000
        assert client.get(python_server.url("/hello")).status_code == 200


@pytest.mark.parametrize("kind", ["node", "python", "nginx"])
def test_webdav_and_purge_requests_are_seen_with_whatever_the_server_answered(
    live_trace: TraceProcess, kind: str, request: pytest.FixtureRequest
) -> None:
    """None of these servers speaks WebDAV: the answers are 404s, 405s or 501s, and those are
    what the probe must report, once each."""
    server: RunningServer = request.getfixturevalue(f"{kind}_server")
    since = time.time()
    n = unique_id()
    sent = httpx_requests(
        server.base_url,
        [
            # No body: the Python server answers 501 and closes without reading one, and a
            # close with unread bytes would reset the connection under the answer.
            Request("PROPFIND", f"/dav/{n}", headers=(("Depth", "1"),)),
            Request("PURGE", f"/cache/{n}"),
            Request("MKCOL", f"/dav/{n}/new"),
        ],
    )
    seen = live_trace.wait_for(served_by(server, since), count=len(sent))
    check_each_seen_once(seen, sent, latency="bounded")


@contextmanager
def unix_socket_server(
    path: Path, env: dict[str, str] | None = None, wrapper: list[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """tests/servers/python_server.py on a socket file, as gunicorn or uvicorn sit behind nginx,
    until the block ends; started through ``wrapper`` (a command that execs the rest) if any."""
    server = subprocess.Popen(
        [*(wrapper or []), sys.executable, str(SERVERS_DIR / "python_server.py"), f"unix:{path}"],
        env=env,
    )
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline and server.poll() is None, "no Unix socket server"
            time.sleep(0.05)
        yield server
    finally:
        server.kill()
        server.wait()


def test_http_over_a_unix_socket_is_seen_on_both_sides(
    live_trace: TraceProcess, tmp_path: Path
) -> None:
    path = tmp_path / "app.sock"
    with unix_socket_server(path) as server:
        since = time.time()
        n = unique_id()
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://app") as client:
            statuses = [
                client.get(f"/users/{n}").status_code,
                client.post("/payments", content=PAYMENT).status_code,
            ]
        served = live_trace.wait_for(lambda e: e["pid"] == server.pid and ts(e) >= since, count=2)
        called = live_trace.wait_for(
            lambda e: (
                called_by(os.getpid(), since)(e) and e["path"] in (f"/users/{n}", "/payments")
            ),
            count=2,
        )
    for seen in (served, called):
        assert [(e["method"], e["path"], e["status"]) for e in seen] == [
            ("GET", f"/users/{n}", statuses[0]),
            ("POST", "/payments", statuses[1]),
        ]
        assert [e["business_error"] for e in seen] == [False, True]
    assert {e["direction"] for e in served} == {"server"}


@contextmanager
def traced_with_name_from(tmp_path: Path, source: str) -> Iterator[TraceProcess]:
    """``bytewatch trace`` with one services rule, ``name_from: source``."""
    config = tmp_path / "bytewatch.yaml"
    config.write_text(f"services:\n  - name_from: {source}\n")
    trace = TraceProcess("--config", str(config))
    try:
        yield trace
    finally:
        trace.stop()


def get_over_unix_socket(path: Path, target: str) -> float:
    """One GET of ``target`` from the server on the socket file ``path``; when it began."""
    since = time.time()
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://app") as client:
        client.get(target)
    return since


def test_a_service_named_in_its_otel_environment_is_traced_under_that_name(
    tmp_path: Path,
) -> None:
    n = unique_id()
    path = tmp_path / "app.sock"
    env = dict(os.environ, OTEL_SERVICE_NAME=f"checkout-{n}")
    env.pop("OTEL_RESOURCE_ATTRIBUTES", None)
    with traced_with_name_from(tmp_path, "otel") as trace, unix_socket_server(path, env) as server:
        since = get_over_unix_socket(path, f"/users/{n}")
        served = trace.wait_for(lambda e: e["pid"] == server.pid and ts(e) >= since, count=1)
        called = trace.wait_for(
            lambda e: called_by(os.getpid(), since)(e) and e["path"] == f"/users/{n}", count=1
        )
    assert [e["service"] for e in served] == [f"checkout-{n}"]
    # This test's process says no name: its own call keeps its process name.
    assert [e["service"] for e in called] == [called[0]["comm"]]
    assert called[0]["service"] != f"checkout-{n}"


def cgroup_root() -> Path:
    """Where a test can make a cgroup: cgroup v2's mount, else systemd's own v1 hierarchy."""
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    for _, where, kind, *_ in mounts:
        if kind == "cgroup2":
            return Path(where)
    for _, where, kind, options, *_ in mounts:
        if kind == "cgroup" and "name=systemd" in options.split(","):
            return Path(where)
    raise AssertionError("no cgroup v2 mount and no systemd v1 hierarchy to make a cgroup in")


@contextmanager
def moved_to_cgroup(pid: int, path: str) -> Iterator[None]:
    """Process ``pid`` in the cgroup ``path`` (made for it) until the block ends."""
    root = cgroup_root()
    group = root / path
    group.mkdir(parents=True)
    try:
        (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        for line in (group / "cgroup.procs").read_text().split():
            (root / "cgroup.procs").write_text(line)
        for made in [group, *group.relative_to(root).parents][:-1]:
            (root / made).rmdir()


@pytest.mark.parametrize(
    ("source", "cgroup", "pod", "service"),
    [
        ("systemd", "bw-test-{n}.service", None, "bw-test-{n}"),
        (
            "kubernetes",
            "kubepods-test-{n}/besteffort/pod{n}/4f1c2e3d",
            "checkout-{n}-5d4f8b9c7-x2x9z",
            "checkout-{n}",
        ),
    ],
)
def test_a_service_named_after_its_unit_or_its_pods_workload_is_traced_under_that_name(
    tmp_path: Path, source: str, cgroup: str, pod: str | None, service: str
) -> None:
    """A server moved into a cgroup as systemd or the kubelet would put it; the pod's in a UTS
    namespace of its own, with its name in HOSTNAME, as container runtimes start it."""
    n = unique_id()
    path = tmp_path / "app.sock"
    env = dict(os.environ)
    if pod is not None:
        env["HOSTNAME"] = pod.format(n=n)
    argv = ["unshare", "--uts"] if pod is not None else []
    with (
        traced_with_name_from(tmp_path, source) as trace,
        unix_socket_server(path, env, argv) as server,
        moved_to_cgroup(server.pid, cgroup.format(n=n)),
    ):
        since = get_over_unix_socket(path, f"/users/{n}")
        served = trace.wait_for(lambda e: e["pid"] == server.pid and ts(e) >= since, count=1)
    assert [e["service"] for e in served] == [service.format(n=n)]


def test_a_server_on_ipv6_loopback_is_seen_on_both_sides_and_named_by_its_port(
    tmp_path: Path,
) -> None:
    with socket.socket(socket.AF_INET6) as probe_port:
        probe_port.bind(("::1", 0))
        port = probe_port.getsockname()[1]
    config = tmp_path / "bytewatch.yaml"
    config.write_text(f"services:\n  - {{name: v6-files, port: {port}}}\n")
    trace = TraceProcess("--config", str(config))
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "::1", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        ready = ["curl", "-s", "-o", "/dev/null", f"http://[::1]:{port}/"]
        while subprocess.run(ready, check=False).returncode:
            assert time.monotonic() < deadline and server.poll() is None, "no IPv6 server"
            time.sleep(0.1)
        since = time.time()
        n = unique_id()
        curl = subprocess.run(
            ["curl", "-s", "-w", "%{http_code} ",
             "-o", "/dev/null", f"http://[::1]:{port}/",
             "-o", "/dev/null", f"http://[::1]:{port}/missing-{n}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        served = trace.wait_for(lambda e: e["pid"] == server.pid and ts(e) >= since, count=2)
        called = trace.wait_for(
            lambda e: e["comm"] == "curl" and ts(e) >= since and e["direction"] == "client",
            count=2,
        )
    finally:
        server.kill()
        server.wait()
        trace.stop()
    assert curl.stdout.split() == ["200", "404"]
    for seen in (served, called):
        assert [(e["method"], e["path"], e["status"]) for e in seen] == [
            ("GET", "/", 200),
            ("GET", f"/missing-{n}", 404),
        ]
    # The serving port came from the listening socket's bind (a sockaddr_in6): the port rule
    # named the server's side.
    assert {e["service"] for e in served} == {"v6-files"}
    assert {e["service"] for e in called} == {"curl"}


@pytest.mark.parametrize("kind", ["node", "python", "asgi", "java"])
def test_a_slow_answer_takes_as_long_on_the_server_side_as_the_client_measured(
    live_trace: TraceProcess, kind: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"{kind}_server")
    since = time.time()
    client = raw_request(server.base_url, get("/slow?ms=150")).exchange
    [seen] = live_trace.wait_for(
        lambda e: served_by(server, since)(e) and e["path"] == "/slow", count=1
    )
    assert seen["latency_ms"] >= 150
    assert_latency_close(seen["latency_ms"] / 1000, client.latency_s, what="/slow")


def test_the_httpx_clients_calls_show_up_as_client_exchanges(
    live_trace: TraceProcess, node_server: RunningServer
) -> None:
    since = time.time()
    n = unique_id()
    sent = httpx_requests(node_server.base_url, [get(f"/users/{n}"), get("/fail")])
    seen = live_trace.wait_for(called_by(os.getpid(), since), count=2)
    check_each_seen_once(seen, sent)
    assert {e["comm"] for e in seen} == {Path("/proc/self/comm").read_text().strip()}


def test_a_thousand_requests_on_one_keep_alive_connection_are_each_seen_once(
    node_server: RunningServer,
) -> None:
    # Its own trace, watching only the two processes involved: on a busy machine, a whole-host
    # trace may drop records of unrelated traffic (counted, but then exactness is not testable).
    trace = TraceProcess("--pid", str(node_server.pid), "--pid", str(os.getpid()))
    try:
        since = time.time()
        n = unique_id()
        sent = keepalive_requests(node_server.url(f"/users/{n}"), n=1000)
        assert all(c.status == 200 for c in sent)
        seen = trace.wait_for(served_by(node_server, since), count=1000, timeout=20)
        mine = [e for e in seen if e["path"] == f"/users/{n}"]
        assert len(mine) == 1000
        assert all(e["status"] == 200 and e["complete"] for e in mine)
        client_side = trace.wait_for(called_by(os.getpid(), since), count=1000, timeout=10)
        assert len([e for e in client_side if e["path"] == f"/users/{n}"]) == 1000
    finally:
        summary = trace.stop()
    assert "lost records 0," in summary


@pytest.mark.parametrize("kind", ["node", "python", "nginx"])
def test_pipelined_requests_are_each_seen_once_in_order(
    live_trace: TraceProcess, kind: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"{kind}_server")
    since = time.time()
    n = unique_id()
    paths = [f"/users/{n + i}" for i in range(5)] + ["/fail"]
    sent = pipelined_requests(server.base_url, paths)
    assert [c.status for c in sent] == [200] * 5 + [500]
    seen = live_trace.wait_for(served_by(server, since), count=len(paths))
    check_each_seen_once(seen, sent, latency=None)


def test_a_request_written_in_several_small_writes_is_one_exchange(
    live_trace: TraceProcess, python_server: RunningServer
) -> None:
    since = time.time()
    n = unique_id()
    sent = slow_written_request(python_server.base_url, f"/users/{n}", pieces=4, pause_s=0.05)
    seen = live_trace.wait_for(served_by(python_server, since), count=1)
    check_each_seen_once(seen, [sent], latency=None)
    client_side = live_trace.wait_for(called_by(os.getpid(), since), count=1)
    [mine] = [e for e in client_side if e["path"] == f"/users/{n}"]
    # The client's exchange starts at its first write, so it spans the pauses between writes.
    assert mine["latency_ms"] >= 3 * 50 * 0.9


@pytest.mark.parametrize(
    ("method", "cuts", "status"),
    [
        pytest.param("GET", (1,), 200, id="one byte first"),
        pytest.param("GET", (3,), 200, id="the method without its space first"),
        # "POST " completes at the fifth write, and two one-byte writes follow it.
        pytest.param(
            "POST", (1, 2, 3, 4, 5, 6, 7), 200, id="POST's first seven bytes one at a time"
        ),
        # The longest token: seven bytes wait, and the eighth completes it. The server does not
        # implement OPTIONS, and says so.
        pytest.param("OPTIONS", (1, 2, 3, 4, 5, 6, 7), 501, id="OPTIONS one byte at a time"),
    ],
)
def test_a_request_whose_first_write_is_too_short_to_tell_is_still_seen(
    live_trace: TraceProcess,
    python_server: RunningServer,
    method: str,
    cuts: tuple[int, ...],
    status: int,
) -> None:
    """The kernel tells HTTP by its first bytes: "G" or "GET" alone could be anything, so they
    wait for the write that completes the start line."""
    since = time.time()
    n = unique_id()
    request = (
        post_json(f"/payments?n={n}", PAYMENT)
        if method == "POST"
        else Request(method, f"/users/{n}")
    )
    path = request.path.split("?")[0]
    sent = request_written_at_cuts(python_server.base_url, request, cuts, pause_s=0.05)
    assert sent.status == status
    seen = live_trace.wait_for(served_by(python_server, since), count=1)
    check_each_seen_once(seen, [sent], latency=None)
    client_side = live_trace.wait_for(called_by(os.getpid(), since), count=1)
    [mine] = [e for e in client_side if e["path"] == path]
    assert (mine["method"], mine["status"]) == (method, status)
    assert mine["request_bytes"] == sent.request_bytes
    # The client's exchange starts at its first write, the one too short to tell.
    assert mine["latency_ms"] >= len(cuts) * 50 * 0.9


def test_a_later_request_on_a_keep_alive_connection_may_start_with_a_short_write(
    live_trace: TraceProcess, python_server: RunningServer
) -> None:
    """On a tracked connection the kernel copies short writes as they come, within the capture
    budget the first request left, and user space joins them into a start line."""
    since = time.time()
    n = unique_id()
    first, second = Request("GET", f"/users/{n}"), Request("GET", f"/users/{n + 1}")
    sent = requests_written_at_cuts(python_server.base_url, [(first, ()), (second, (1,))])
    assert [c.status for c in sent] == [200, 200]
    seen = live_trace.wait_for(served_by(python_server, since), count=2)
    check_each_seen_once(seen, sent, latency=None)


def test_many_requests_that_each_start_with_a_short_write_are_each_seen_once(
    live_trace: TraceProcess, python_server: RunningServer
) -> None:
    """Short writes on a tracked connection are copied within their direction's capture budget.
    Sixty-four requests of ~55 bytes, each written "G" first, spend more than one budget (3 KiB):
    each response renews the budget of the request that follows it."""
    since = time.time()
    n = unique_id()
    requests = [(Request("GET", f"/users/{n + i}"), (1,)) for i in range(64)]
    sent = requests_written_at_cuts(python_server.base_url, requests, pause_s=0.01)
    assert {c.status for c in sent} == {200}
    seen = live_trace.wait_for(served_by(python_server, since), count=len(sent))
    check_each_seen_once(seen, sent, latency=None)
    client_side = live_trace.wait_for(called_by(os.getpid(), since), count=len(sent))
    check_each_seen_once(client_side, sent, latency="close")


@pytest.mark.parametrize(
    "cuts",
    [
        pytest.param((1,), id="one byte first"),
        pytest.param((4, 8), id="HTTP, then /1.1, then the rest"),
    ],
)
def test_a_response_whose_status_line_starts_with_a_short_write_is_still_paired(
    live_trace: TraceProcess, cuts: tuple[int, ...]
) -> None:
    """The first response on a connection too: a request renews the capture budget of the
    direction its response will come in, so "H" is copied and user space joins it to the rest."""
    since = time.time()
    n = unique_id()
    paths = [f"/users/{n}", f"/users/{n + 1}"]
    with cut_response_server(cuts, pause_s=0.05) as cutting:
        sent = requests_written_at_cuts(cutting.base_url, [(get(p), ()) for p in paths])
        assert [c.status for c in sent] == [200, 200]
        served = live_trace.wait_for(
            lambda e: e["pid"] == cutting.pid and e["direction"] == "server" and ts(e) >= since,
            count=2,
        )
    check_each_seen_once(served, sent, latency=None)
    client_side = live_trace.wait_for(called_by(os.getpid(), since), count=2)
    check_each_seen_once(client_side, sent, latency="close")
    for e in [*served, *client_side]:
        assert e["complete"] is True
        # Both sides span the pauses between the response's writes.
        assert e["latency_ms"] >= len(cuts) * 50 * 0.9, e["path"]
    for client in sent:
        assert client.response_head_bytes is not None
        wire = client.response_head_bytes + client.response_bytes
        assert [
            e["response_bytes"] for e in [*served, *client_side] if e["path"] == client.path
        ] == [
            wire,
            wire,
        ]


@pytest.mark.parametrize("kind", ["node", "java", "nginx"])
def test_a_five_megabyte_response_has_its_full_size_and_latency(
    live_trace: TraceProcess, kind: str, request: pytest.FixtureRequest
) -> None:
    """The server's side ends when its last write returns, which can be well before a slow
    client has drained megabytes from the socket buffers; the client's side ends at its last
    read and must match the client's own measurement."""
    server: RunningServer = request.getfixturevalue(f"{kind}_server")
    size = server.capabilities.fixed_big_bytes or 5 * 1024 * 1024
    since = time.time()
    exchange = raw_request(server.base_url, get(f"/big?bytes={size}"))
    client = exchange.exchange
    assert client.status == 200 and client.response_bytes == size
    wire_size = exchange.response.head_bytes + size
    [served] = live_trace.wait_for(
        lambda e: served_by(server, since)(e) and e["path"] == "/big", count=1
    )
    [called] = live_trace.wait_for(
        lambda e: called_by(os.getpid(), since)(e) and e["path"] == "/big", count=1
    )
    assert served["response_bytes"] == called["response_bytes"] == wire_size
    assert served["complete"] is True and called["complete"] is True
    assert_latency_close(called["latency_ms"] / 1000, client.latency_s, what="/big client")
    assert 0 < served["latency_ms"] <= called["latency_ms"] + 2


def test_a_server_that_closes_mid_response_is_recorded_as_incomplete(
    live_trace: TraceProcess, node_server: RunningServer
) -> None:
    since = time.time()
    exchange = raw_request(node_server.base_url, get("/close-mid"))
    assert not exchange.exchange.complete
    [seen] = live_trace.wait_for(
        lambda e: served_by(node_server, since)(e) and e["path"] == "/close-mid", count=1
    )
    assert seen["complete"] is False
    assert seen["status"] == 200


def test_non_http_traffic_on_a_tcp_socket_is_ignored(live_trace: TraceProcess) -> None:
    since = time.time()
    outcome = non_http_exchange()
    assert outcome.received == outcome.sent
    time.sleep(1.0)
    assert live_trace.matching(lambda e: e["pid"] == outcome.server_pid and ts(e) >= since) == []
    assert live_trace.matching(lambda e: e["pid"] == os.getpid() and ts(e) >= since) == []


def test_a_start_line_read_byte_by_byte_from_a_pipe_is_not_http(live_trace: TraceProcess) -> None:
    """Short reads may begin a start line only on sockets the probe saw connected or accepted:
    a shell reading a pipe or a terminal one byte at a time is not a server."""
    reader = subprocess.Popen(
        [sys.executable, "-c", "import os\nwhile os.read(0, 1): pass\nos.close(0)"],
        stdin=subprocess.PIPE,
    )
    since = time.time()
    assert reader.stdin is not None
    reader.stdin.write(b"GET /not-http HTTP/1.1\r\nHost: pipe\r\n\r\n")
    reader.stdin.close()
    assert reader.wait(timeout=10) == 0
    time.sleep(1.0)
    assert live_trace.matching(lambda e: e["pid"] == reader.pid and ts(e) >= since) == []


def test_garbage_after_a_method_token_is_counted_and_skipped(
    python_server: RunningServer,
) -> None:
    trace = TraceProcess("--pid", str(python_server.pid))
    try:
        garbage = raw_garbage(python_server.port, b"GET \x00\xff\xfe\x01 nonsense\r\n\r\n")
        assert garbage.sent > 0
        n = unique_id()
        since = time.time()
        httpx_requests(python_server.base_url, [get(f"/users/{n}")])
        [after] = trace.wait_for(served_by(python_server, since), count=1)
        assert after["status"] == 200
    finally:
        summary = trace.stop()
    errors = int(summary.split("parse errors ")[1].split(",")[0])
    assert errors >= 1, summary
    assert trace.proc.returncode == 0


def test_the_probe_never_sees_its_own_traffic(python_server: RunningServer) -> None:
    from probe.source import LiveProbeSource

    source = LiveProbeSource()
    try:
        n = unique_id()
        since = time.time()
        with httpx.Client() as client:
            assert client.get(python_server.url(f"/users/{n}")).status_code == 200
        seen: list[Any] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(e.direction == "server" for e in seen):
            seen += [e for e in source.poll(0.1) if e.path == f"/users/{n}" and e.ts >= since]
    finally:
        source.close()
    assert [e.direction.value for e in seen] == ["server"], "only the server's side"
    assert all(e.pid != os.getpid() for e in seen)


def test_the_thread_that_reads_the_ring_runs_idle_and_no_other(
    python_server: RunningServer,
) -> None:
    from probe.source import LiveProbeSource

    source = LiveProbeSource(idle_reader_nice=10)
    policies: dict[str, int] = {}

    def read() -> None:
        source.poll(0.05)
        policies["reader"] = os.sched_getscheduler(0)

    try:
        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        policies["caller"] = os.sched_getscheduler(0)
        stats = source.stats()
    finally:
        source.close()
    assert policies == {"reader": os.SCHED_IDLE, "caller": os.SCHED_OTHER}
    assert stats.reader_raised == 0, "a probe with nothing to read never falls behind"


# bpf_task_pt_regs, which the exit tracepoints need, came in Linux 5.15.
TASK_REGS_SINCE = (5, 15)


def kernel_version() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


@pytest.mark.parametrize("task_btf", [True, False], ids=["exit-tracepoints", "raw-sys-exit"])
def test_either_way_of_seeing_syscall_exits_carries_each_request_and_its_response(
    python_server: RunningServer, task_btf: bool
) -> None:
    from probe.abi import Record, StreamDirection
    from probe.loader import PORTABLE_EXITS, TRACEPOINT_EXITS, LoadedProbe, ProbeConfig

    path = f"/users/{unique_id()}"
    config = ProbeConfig(pids=frozenset({python_server.pid}), task_btf=task_btf)
    with LoadedProbe(config) as probe:
        if not task_btf:
            assert probe.syscall_exits == PORTABLE_EXITS
        elif kernel_version() >= TASK_REGS_SINCE:
            assert probe.syscall_exits == TRACEPOINT_EXITS, "the cheaper build failed to load"
        for _ in range(3):
            assert httpx.get(python_server.url(path)).status_code == 200
        records: list[Record] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(records) < 6:
            records += [r for r in probe.poll(0.1).records if r.tgid == python_server.pid]
    requests = [r for r in records if r.data.startswith(f"GET {path} ".encode())]
    responses = [r for r in records if r.data.startswith(b"HTTP/1.")]
    assert len(requests) == 3 and len(responses) == 3
    assert {r.direction for r in requests} == {StreamDirection.INGRESS}
    assert {r.direction for r in responses} == {StreamDirection.EGRESS}


@pytest.mark.parametrize("kind", ["nginx", "node"])
def test_records_sent_through_the_spill_ring_are_put_back_in_order(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """The spill ring only takes what the main ring refuses, which is rare; this probe build
    sends every third record of a connection there, so the resequencing runs for real."""
    from probe.abi import Counter
    from probe.conn import ConnectionTracker, ObservedExchange
    from probe.loader import LoadedProbe, ProbeConfig

    server: RunningServer = request.getfixturevalue(f"{kind}_server")
    paths = [p for i in range(100) for p in ("/hello", "/fail", f"/users/{i}")]
    tracker = ConnectionTracker()
    seen: list[ObservedExchange] = []
    with LoadedProbe(ProbeConfig(pids=frozenset(server.pids), spill_every=3)) as probe:
        with httpx.Client() as client:  # one keep-alive connection
            statuses = [client.get(server.url(path)).status_code for path in paths]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(seen) < len(paths):
            for record in probe.poll(0.05).records:
                seen += tracker.feed(record)
            seen += tracker.end_batch()
        counters = probe.counters()
    assert [(e.request.head.target, e.response and e.response.head.status) for e in seen] == list(
        zip(paths, statuses, strict=True)
    )
    assert counters[Counter.SPILLED] >= len(paths) // 3 and counters[Counter.LOST] == 0
    assert tracker.stats.resequenced_records > 0, "spilled records were read out of turn"
    assert tracker.stats.lost_records == 0


@contextmanager
def told_to_go(
    argv: list[str],
) -> Iterator[tuple[subprocess.Popen[str], Callable[[], None]]]:
    """A process that prints "ready", waits for a line on stdin, does its part and prints
    "done": yields it, once ready, and a function that tells it to go and waits until it is
    done. Killed when the block ends."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def go() -> None:
        stdin.write("go\n")
        stdin.flush()
        assert stdout.readline().strip() == "done"

    try:
        assert stdout.readline().strip() == "ready"
        yield process, go
    finally:
        process.kill()
        process.wait()


# One Node process: an HTTP/2 server and an HTTP/1.1 one, and, once told on stdin, a client
# that makes three HTTP/2 requests over one connection and then one HTTP/1.1 request.
_NODE_HTTP2_AND_HTTP1 = """
const http = require("http"), http2 = require("http2");
const h2 = http2.createServer((req, res) => res.end('{"ok":true}'));
const h1 = http.createServer((req, res) => res.end('{"ok":true}'));
h2.listen(0, "127.0.0.1", () => h1.listen(0, "127.0.0.1", () => console.log("ready")));
process.stdin.once("data", async () => {
  const client = http2.connect(`http://127.0.0.1:${h2.address().port}`);
  for (const path of ["/h2/a", "/h2/b", "/h2/c"]) {
    await new Promise((done, failed) => {
      const req = client.request({":path": path});
      req.on("data", () => {}).on("end", done).on("error", failed);
      req.end();
    });
  }
  client.close();
  await new Promise((done) =>
    http.get(`http://127.0.0.1:${h1.address().port}/h1`, (res) => res.resume().on("end", done)));
  console.log("done");
});
"""


def test_http2_connections_are_counted_and_not_decoded(tmp_path: Path) -> None:
    from probe.abi import Counter as KernelCounter
    from probe.conn import ConnectionTracker, ObservedExchange
    from probe.loader import LoadedProbe, ProbeConfig
    from tests.ci import require_binary

    script = tmp_path / "h2.js"
    script.write_text(_NODE_HTTP2_AND_HTTP1)
    tracker = ConnectionTracker()
    seen: list[ObservedExchange] = []
    with (
        told_to_go([require_binary("node", "Debian's nodejs"), str(script)]) as (node, go),
        LoadedProbe(ProbeConfig(pids=frozenset({node.pid}))) as probe,
    ):
        go()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(seen) < 2:
            for record in probe.poll(0.05).records:
                seen += tracker.feed(record)
            seen += tracker.end_batch()
        counters = probe.counters()
    # The HTTP/1.1 call is seen from both ends; the HTTP/2 connection only counted, once at
    # each end (the client writes its preface, the server reads it).
    assert sorted(e.request.head.target for e in seen) == ["/h1", "/h1"]
    assert counters[KernelCounter.HTTP2] == 2


# A server that answers one connection in two phases, each a response whose body runs past
# the capture budget (argv[1] bytes): in the first, it reads the next, pipelined, request
# between two writes of the response, a start that renews the budget mid-message; in the
# second, the response's first write ends exactly where the budget does.
_BUDGET_SERVER = """
import socket, sys
budget = int(sys.argv[1])
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()

def request():
    data = b""
    while not data.endswith(b"\\r\\n\\r\\n"):
        data += conn.recv(4096)

def response(body):
    return b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body

request()
first = response(b"x" * 3 * budget)
conn.sendall(first[: budget + 100])
request()
conn.sendall(first[budget + 100 :])
conn.sendall(response(b"ok"))
request()
third = response(b"y" * budget)
conn.sendall(third[:budget])
conn.sendall(third[budget:])
conn.recv(1)
"""


def _budget_response(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_a_response_past_the_capture_budget_is_counted_as_truncated_once(
    tmp_path: Path,
) -> None:
    from probe.abi import Counter as KernelCounter
    from probe.loader import LoadedProbe, ProbeConfig

    config = ProbeConfig()
    script = tmp_path / "budget_server.py"
    script.write_text(_BUDGET_SERVER)
    server = subprocess.Popen(
        [sys.executable, str(script), str(config.capture_bytes)], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    budget = config.capture_bytes
    counted: list[int] = []
    try:
        port = int(server.stdout.readline())
        with (
            LoadedProbe(ProbeConfig(pids=frozenset({server.pid}))) as probe,
            socket.create_connection(("127.0.0.1", port)) as client,
        ):

            def receive(size: int) -> None:
                while size > 0:
                    size -= len(client.recv(size))

            def truncated() -> int:
                time.sleep(0.1)  # the server's last write has returned, and its program run
                return probe.counters().get(KernelCounter.TRUNCATED, 0)

            client.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            receive(budget)
            client.sendall(b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n")
            receive(len(_budget_response(b"x" * 3 * budget)) - budget)
            receive(len(_budget_response(b"ok")))
            counted.append(truncated())
            client.sendall(b"GET /exact HTTP/1.1\r\nHost: t\r\n\r\n")
            receive(len(_budget_response(b"y" * budget)))
            counted.append(truncated())
    finally:
        server.kill()
        server.wait()
    assert counted == [1, 2], "one count for each of the two responses past the budget"


# A process that, once told on stdin, sends "ping" over a socket pair through io_uring (raw
# syscalls: liburing is not installed), waits for it to complete, and says "done".
_IO_URING_SEND = r"""
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    int ring = syscall(__NR_io_uring_setup, 4, &p);
    if (ring < 0) { perror("io_uring_setup"); return 1; }
    char *sq = mmap(0, p.sq_off.array + p.sq_entries * sizeof(unsigned),
                    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe),
                    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || sqes == MAP_FAILED) { perror("mmap"); return 1; }
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) { perror("socketpair"); return 1; }
    printf("ready\n");
    fflush(stdout);
    char go[8];
    if (!fgets(go, sizeof(go), stdin)) return 1;
    static const char ping[] = "ping";
    unsigned tail = *(unsigned *)(sq + p.sq_off.tail);
    unsigned index = tail & *(unsigned *)(sq + p.sq_off.ring_mask);
    struct io_uring_sqe *sqe = &sqes[index];
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = fds[0];
    sqe->addr = (unsigned long)ping;
    sqe->len = sizeof(ping) - 1;
    ((unsigned *)(sq + p.sq_off.array))[index] = index;
    __atomic_store_n((unsigned *)(sq + p.sq_off.tail), tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, 0, 0) != 1) {
        perror("io_uring_enter");
        return 1;
    }
    printf("done\n");
    return 0;
}
"""


def test_socket_operations_through_io_uring_are_counted_and_not_decoded(tmp_path: Path) -> None:
    from probe.abi import Counter as KernelCounter
    from probe.loader import LoadedProbe, ProbeConfig, io_uring_submissions_visible
    from tests.ci import require_binary, skip_or_fail

    if not io_uring_submissions_visible():
        skip_or_fail("this kernel has no io_uring_submit_req tracepoint with an opcode (5.19+)")
    source = tmp_path / "io_uring_send.c"
    source.write_text(_IO_URING_SEND)
    binary = tmp_path / "io_uring_send"
    gcc = require_binary("gcc", "Debian's gcc")
    subprocess.run([gcc, "-O1", "-o", str(binary), str(source)], check=True)
    with (
        told_to_go([str(binary)]) as (sender, go),
        LoadedProbe(ProbeConfig(pids=frozenset({sender.pid}))) as probe,
    ):
        go()
        counters = probe.counters()
    assert counters[KernelCounter.IO_URING] == 1, "the one send, and nothing else"


def test_a_probe_that_cannot_attach_says_why_in_one_line_without_a_traceback() -> None:
    env = dict(os.environ, BYTEWATCH_BPF_DIR="/nonexistent")
    result = subprocess.run(
        [sys.executable, "-m", "slo.cli", "trace", "--duration", "1"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "probe source not found" in lines[0]


def test_status_counts_match_what_the_clients_got_under_concurrent_load(
    live_trace: TraceProcess, nginx_server: RunningServer
) -> None:
    since = time.time()
    procs = [
        subprocess.Popen(
            [
                "curl",
                "-s",
                "-w",
                "%{http_code}\n",
                *[
                    arg
                    for p in ("/hello", "/fail", "/hello", "/users/1")
                    for arg in ("-o", "/dev/null", nginx_server.url(p))
                ],
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    codes = Counter(int(c) for p in procs for c in p.communicate()[0].split())
    seen = live_trace.wait_for(served_by(nginx_server, since), count=sum(codes.values()))
    assert Counter(e["status"] for e in seen) == codes


def test_wrk_load_on_nginx_is_counted_exactly_with_no_lost_records(
    nginx_server: RunningServer,
) -> None:
    from tests.probe.traffic import wrk_run

    trace = TraceProcess("--pid", str(nginx_server.pid))
    try:
        since = time.time()
        result = wrk_run(nginx_server.url("/hello"), seconds=2, connections=2, threads=1)
        seen = trace.wait_for(served_by(nginx_server, since), count=result.requests, timeout=30)
    finally:
        summary = trace.stop()
    # wrk does not count the requests still in flight when it stops; nginx answered them.
    assert result.requests <= len(seen) <= result.requests + 2
    assert {(e["path"], e["status"]) for e in seen} == {("/hello", 200)}
    assert "lost records 0," in summary
