"""HTTPS seen in clear: uprobes on OpenSSL's SSL_read/SSL_write (needs root and eBPF).

The Python server calls the system libssl's SSL_read_ex/SSL_write_ex from the socket's own
thread, so the probe learns the socket from the syscalls inside each call. Node links OpenSSL
into its executable and moves ciphertext itself, outside those calls: the probe learns its
socket from the read that brought the ciphertext just before SSL_read. curl and httpx (this
process) are TLS clients through the system libssl.

One trace for the module, watching only the servers, curl and this process: a whole-host trace
on a busy machine may drop records of unrelated traffic (counted, but then exactness is lost).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.ci import require_binary
from tests.probe.probe_process import Exchange, TraceProcess
from tests.probe.servers import (
    SERVERS_DIR,
    START_TIMEOUT_S,
    free_port,
    spawn,
    stop_process,
)
from tests.probe.test_live import called_by, ts, unique_id

pytestmark = pytest.mark.kernel

PAYMENT_REFUSED_TYPE = "insufficient_balance"


@dataclass(frozen=True, slots=True)
class TlsServer:
    pid: int
    port: int

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_binary("openssl", "for the test certificate; scripts/setup.sh --dev installs it")
    out = tmp_path_factory.mktemp("tls")
    cert, key = out / "cert.pem", out / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _serve_tls(argv: list[str], port: int, workdir: Path) -> Iterator[TlsServer]:
    process = spawn(argv, workdir / "server.log", cwd=workdir)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/health", timeout=2, context=_unverified()
                ) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "server.log").read_text(errors="replace")
                    raise RuntimeError(f"{argv[0]} TLS server did not start:\n{log}") from None
                time.sleep(0.05)
        yield TlsServer(process.pid, port)
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def python_tls_server(
    certificate: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServer]:
    port = free_port()
    cert, key = certificate
    argv = [sys.executable, str(SERVERS_DIR / "python_server.py"), str(port), str(cert), str(key)]
    yield from _serve_tls(argv, port, tmp_path_factory.mktemp("python-tls"))


@pytest.fixture(scope="module")
def node_tls_server(
    certificate: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServer]:
    require_binary("node", "for the Node HTTPS server; scripts/setup.sh --dev installs it")
    port = free_port()
    cert, key = certificate
    argv = ["node", str(SERVERS_DIR / "node_server.js"), str(port), str(cert), str(key)]
    yield from _serve_tls(argv, port, tmp_path_factory.mktemp("node-tls"))


@pytest.fixture(scope="module")
def tls_trace(python_tls_server: TlsServer, node_tls_server: TlsServer) -> Iterator[TraceProcess]:
    pids = [python_tls_server.pid, node_tls_server.pid, os.getpid()]
    trace = TraceProcess(
        "--tls", *[a for pid in pids for a in ("--pid", str(pid))], "--comm", "curl"
    )
    yield trace
    trace.stop()


def on_path(pid: int, direction: str, path: str) -> Callable[[Exchange], bool]:
    def match(e: Exchange) -> bool:
        return bool(e["pid"] == pid and e["direction"] == direction and e["path"] == path)

    return match


def curl(url: str, *extra: str) -> str:
    return curl_sized(url, *extra)[0]


def curl_sized(url: str, *extra: str) -> tuple[str, int]:
    """The body curl got, and the size of the whole response (status line, headers, body)."""
    result = subprocess.run(
        ["curl", "-sk", "-w", "\n%{size_header} %{size_download}", *extra, url],
        capture_output=True,
        text=True,
        check=False,
    )
    body, _, sizes = result.stdout.rpartition("\n")
    header_bytes, body_bytes = (int(n) for n in sizes.split())
    return body, header_bytes + body_bytes


@pytest.mark.parametrize("kind", ["python", "node"])
def test_an_https_servers_exchanges_are_seen_in_clear_once_each(
    tls_trace: TraceProcess, kind: str, request: pytest.FixtureRequest
) -> None:
    server: TlsServer = request.getfixturevalue(f"{kind}_tls_server")
    paths = [f"/users/{unique_id()}" for _ in range(3)]
    answers = [curl_sized(server.url(path)) for path in paths]
    assert all('"name":"user-' in body for body, _ in answers)
    assert "boom" in curl(server.url("/fail"))
    for path, (_, size) in zip(paths, answers, strict=True):
        [seen] = tls_trace.wait_for(on_path(server.pid, "server", path), count=1, settle=0.2)
        assert (seen["method"], seen["status"], seen["complete"]) == ("GET", 200, True)
        assert seen["route"] == "/users/:int"
        # The plaintext body, not the ciphertext's record sizes.
        assert seen["response_bytes"] == size
    [failed] = tls_trace.wait_for(on_path(server.pid, "server", "/fail"), count=1, settle=0.2)
    assert failed["status"] == 500


def test_an_https_request_closed_before_its_answer_is_recorded_as_incomplete(
    tls_trace: TraceProcess, node_tls_server: TlsServer
) -> None:
    # Node closes the connection as soon as the client leaves, so the answer never leaves
    # (Python's server still writes it into the closed socket: complete from its side).
    server = node_tls_server
    since = time.time()
    curl(server.url("/slow?ms=1500"), "--max-time", "0.3")
    seen = tls_trace.wait_for(
        lambda e: on_path(server.pid, "server", "/slow")(e) and ts(e) >= since,
        count=1,
        timeout=5,
    )
    assert [e["complete"] for e in seen] == [False]


@pytest.mark.parametrize("kind", ["python", "node"])
def test_a_silent_200_over_https_is_a_business_error(
    tls_trace: TraceProcess, kind: str, request: pytest.FixtureRequest
) -> None:
    server: TlsServer = request.getfixturevalue(f"{kind}_tls_server")
    since = time.time()
    assert PAYMENT_REFUSED_TYPE in curl(server.url("/payments"), "-X", "POST", "-d", "{}")
    seen = tls_trace.wait_for(
        lambda e: on_path(server.pid, "server", "/payments")(e) and ts(e) >= since, count=1
    )
    assert [(e["status"], e["business_error"], e["error_type"]) for e in seen] == [
        (200, True, PAYMENT_REFUSED_TYPE)
    ]


def test_curl_and_httpx_are_seen_as_https_clients(
    tls_trace: TraceProcess, python_tls_server: TlsServer
) -> None:
    since = time.time()
    n = unique_id()
    with httpx.Client(verify=False) as client:  # noqa: S501 (the test's self-signed cert)
        assert client.get(python_tls_server.url(f"/users/{n}")).status_code == 200
        assert client.get(python_tls_server.url("/fail")).status_code == 500
    mine = tls_trace.wait_for(called_by(os.getpid(), since), count=2)
    assert sorted((e["path"], e["status"]) for e in mine) == [("/fail", 500), (f"/users/{n}", 200)]
    curl(python_tls_server.url(f"/users/{n + 1}"))
    by_curl = tls_trace.wait_for(
        lambda e: e["comm"] == "curl" and e["path"] == f"/users/{n + 1}", count=1
    )
    assert [(e["direction"], e["status"]) for e in by_curl] == [("client", 200)]


def test_without_tls_asked_for_https_stays_unseen(
    live_trace: TraceProcess, tls_trace: TraceProcess, python_tls_server: TlsServer
) -> None:
    # The session's trace runs without --tls: no uprobes, no cost on SSL calls, no plaintext.
    path = f"/users/{unique_id()}"
    assert '"name":"user-' in curl(python_tls_server.url(path))
    assert tls_trace.wait_for(on_path(python_tls_server.pid, "server", path), count=1)
    assert live_trace.matching(lambda e: e["path"] == path) == []


@pytest.mark.parametrize("kind", ["python", "node"])
def test_a_trace_of_an_https_servers_port_sees_its_exchanges(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server: TlsServer = request.getfixturevalue(f"{kind}_tls_server")
    trace = TraceProcess("--tls", "--port", str(server.port))
    try:
        path = f"/users/{unique_id()}"
        assert '"name":"user-' in curl(server.url(path))
        seen = trace.wait_for(on_path(server.pid, "server", path), count=1)
    finally:
        trace.stop()
    assert [e["status"] for e in seen] == [200]
