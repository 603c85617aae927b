"""Real HTTP servers, in five runtimes, for tests that watch traffic from the outside.

The servers live in ``tests/servers/`` and know nothing about bytewatch. ``start_server`` runs one
on a free loopback port, waits until it answers ``/health``, and stops it (SIGTERM, then SIGKILL
for its whole process group) when the ``with`` block ends, whatever happened inside::

    with start_server("nginx", tmp_path) as server:
        httpx.get(server.url("/hello"))
        probe_saw(server.pid, server.comm)

Fixtures: ``node_server``, ``python_server``, ``asgi_server``, ``java_server`` and
``nginx_server`` are session-scoped. pytest keeps one instance per module that names them, so
import them in a ``conftest.py`` (``from tests.probe.servers import java_server  # noqa: F401``)
to share one JVM across modules. ``server_fixture(kind, scope=..., name=...)`` makes another,
and ``serve(kind, tmp_path_factory)`` is the generator behind them, for a fixture of your own.
A missing runtime skips the test, except under ``CI=true``, where it fails it.

Errors: ``ServerError`` is the root; ``RuntimeMissing`` (a binary is not installed) and
``ServerStartError`` (the server did not come up; its log is in the message) derive from it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tests.ci import IN_CI

SERVERS_DIR = Path(__file__).resolve().parent.parent / "servers"

KINDS = ("node", "python", "asgi", "java", "nginx")
ENDPOINTS = frozenset(
    {"health", "hello", "users", "payments", "fail", "big", "chunked", "slow", "close-mid"}
)

NGINX_BIG_BYTES = 5 * 1024 * 1024
NGINX_CHUNKED_PARTS = 3
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
LOG_TAIL_CHARS = 4000
_PR_SET_PDEATHSIG = 1


class ServerError(Exception):
    """A test server could not be run as asked."""


class RuntimeMissing(ServerError):
    """The runtime a server needs is not installed on this machine."""

    def __init__(self, kind: str, missing: tuple[str, ...]) -> None:
        super().__init__(f"{kind} server needs {', '.join(missing)}, which is not on PATH")
        self.kind = kind
        self.missing = missing


class ServerStartError(ServerError):
    """The server exited, or did not answer /health, before the deadline."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one kind of server can do; tests choose their cases from it.

    ``fixed_big_bytes``/``fixed_chunked_parts`` are set when the server ignores the query string
    of ``/big``/``/chunked`` (nginx serves files). ``pipelining`` is false when the runtime
    does not answer requests that arrive in one write.
    """

    endpoints: frozenset[str]
    fixed_big_bytes: int | None = None
    fixed_chunked_parts: int | None = None
    pipelining: bool = True


CAPABILITIES: dict[str, Capabilities] = {
    "node": Capabilities(ENDPOINTS),
    "python": Capabilities(ENDPOINTS),
    "asgi": Capabilities(ENDPOINTS),
    "java": Capabilities(ENDPOINTS),
    "nginx": Capabilities(
        ENDPOINTS - {"slow", "close-mid"},
        fixed_big_bytes=NGINX_BIG_BYTES,
        fixed_chunked_parts=NGINX_CHUNKED_PARTS,
    ),
}

REQUIRED_BINARIES: dict[str, tuple[str, ...]] = {
    "node": ("node",),
    "python": (),
    "asgi": (),
    "java": ("java", "javac"),
    "nginx": ("nginx",),
}


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A server that answered ``/health``.

    ``pid`` is the process whose threads read and write the sockets (for nginx: its only
    worker); ``pids`` lists every such process; ``launcher_pid`` is the process that was
    started (nginx's master). ``comm`` is ``/proc/<pid>/comm`` of ``pid``; some runtimes name
    their threads differently (``thread_comms``).
    """

    kind: str
    port: int
    pid: int
    pids: tuple[int, ...]
    launcher_pid: int
    comm: str
    capabilities: Capabilities
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def supports(self, endpoint: str) -> bool:
        return endpoint in self.capabilities.endpoints

    def thread_comms(self) -> frozenset[str]:
        """The comm of every thread of the serving processes, now (Java names its threads)."""
        names: set[str] = set()
        for pid in self.pids:
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    names.add((task / "comm").read_text().strip())
        return frozenset(names)

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")


def missing_binaries(
    kind: str, which: Callable[[str], str | None] = shutil.which
) -> tuple[str, ...]:
    if kind not in REQUIRED_BINARIES:
        raise ServerError(f"unknown server kind {kind!r}; known: {', '.join(KINDS)}")
    return tuple(name for name in REQUIRED_BINARIES[kind] if which(name) is None)


def unavailable_verdict(
    kind: str, missing: tuple[str, ...], in_ci: bool
) -> tuple[Literal["skip", "fail"], str] | None:
    """("skip" or "fail", reason) when a runtime is missing, None when the server can run.

    Only a missing binary is a reason to skip, and never in CI: there it would hide a broken
    setup behind a green run.
    """
    if not missing:
        return None
    reason = f"{kind} server needs {', '.join(missing)} (scripts/setup.sh --dev installs it)"
    if in_ci:
        return "fail", f"CI=true, so the {kind} server may not be skipped: {reason}"
    return "skip", reason


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def start_server(
    kind: str, tmp_path: Path, *, port: int | None = None, nginx_sendfile: bool = True
) -> Iterator[RunningServer]:
    """Run a ``kind`` server until the block ends; see the module docstring.

    Without ``port`` a free one is picked, and picked again (twice at most) if another
    process takes it first. ``tmp_path`` receives the logs and generated files.
    ``nginx_sendfile=False`` makes nginx write static bodies with write(2) instead of
    sendfile(2) (Debian's stock configuration has it on).
    """
    missing = missing_binaries(kind)
    if missing:
        raise RuntimeMissing(kind, missing)
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=tmp_path))
    attempts = 1 if port is not None else 3
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port()
        argv = _prepare(kind, workdir, chosen, nginx_sendfile=nginx_sendfile)
        log_path = workdir / f"server-{attempt}.log"
        process = spawn(argv, log_path, cwd=workdir)
        try:
            server = _await_health(kind, process, chosen, log_path)
        except _PortTaken:
            stop_process(process)
            if attempt == attempts:
                raise ServerStartError(
                    f"{kind} server could not bind port {chosen}:\n{_tail(log_path)}"
                ) from None
            continue
        except BaseException:
            stop_process(process)
            raise
        try:
            yield server
        finally:
            stop_process(process)
        return


def serve(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The body of a server fixture: skip or fail on a missing runtime, then run the server."""
    verdict = unavailable_verdict(kind, missing_binaries(kind), IN_CI)
    if verdict is not None:
        action, reason = verdict
        if action == "fail":
            pytest.fail(reason)
        pytest.skip(reason)
    with start_server(kind, tmp_path_factory.mktemp(f"{kind}-server")) as server:
        yield server


FixtureScope = Literal["session", "package", "module", "class", "function"]


def server_fixture(
    kind: str, *, scope: FixtureScope = "session", name: str | None = None
) -> object:
    """A pytest fixture running one ``kind`` server for ``scope`` (named ``<kind>_server``)."""

    @pytest.fixture(scope=scope, name=name or f"{kind}_server")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
        yield from serve(kind, tmp_path_factory)

    return fixture


node_server = server_fixture("node")
python_server = server_fixture("python")
asgi_server = server_fixture("asgi")
java_server = server_fixture("java")
nginx_server = server_fixture("nginx")


# --- processes -------------------------------------------------------------------------------


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if pytest itself is killed, the server gets a
    # SIGTERM instead of living on as an orphan holding a port.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl


def spawn(argv: list[str], log_path: Path, *, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, stdout and stderr to ``log_path``.

    A file, not a pipe: nobody reads a pipe while the test runs, and a full one would block the
    server mid-request.
    """
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (only calls prctl, nothing that locks)
        )


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; then SIGKILL whatever is left of its group."""
    group = process.pid  # start_new_session made the process its group's leader
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            process.wait(timeout=timeout_s)
    # Children that outlived their parent (nginx workers after a killed master) share its group.
    if _group_members(group):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while _group_members(group) and time.monotonic() < deadline:
            time.sleep(0.01)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the group."""
    return [pid for pid, stat in _proc_stats() if stat.pgrp == pgid and stat.state != "Z"]


@dataclass(frozen=True, slots=True)
class _Stat:
    state: str
    ppid: int
    pgrp: int


def _proc_stats() -> Iterator[tuple[int, _Stat]]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        # The comm field sits in parentheses and may hold spaces; the rest follows its ")".
        fields = raw[raw.rindex(")") + 2 :].split()
        yield int(entry.name), _Stat(state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]))


def children_of(pid: int) -> tuple[int, ...]:
    return tuple(sorted(child for child, stat in _proc_stats() if stat.ppid == pid))


def read_comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


# --- starting each kind ----------------------------------------------------------------------


def _prepare(kind: str, workdir: Path, port: int, *, nginx_sendfile: bool) -> list[str]:
    """Write whatever the server needs into ``workdir``; return its command line."""
    if kind == "node":
        return ["node", str(SERVERS_DIR / "node_server.js"), str(port)]
    if kind == "python":
        return [sys.executable, str(SERVERS_DIR / "python_server.py"), str(port)]
    if kind == "asgi":
        return [
            sys.executable, "-m", "uvicorn", "asgi_app:app",
            "--app-dir", str(SERVERS_DIR),
            "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
            "--lifespan", "on", "--timeout-graceful-shutdown", "2",
        ]  # fmt: skip
    if kind == "java":
        classes = compile_java(workdir / "classes")
        return [
            "java",
            "-XX:+UseSerialGC", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
            # Without it the JDK server writes headers and body in two segments and Nagle
            # holds the second back for a delayed ACK: 40 ms on every keep-alive request.
            "-Dsun.net.httpserver.nodelay=true",
            "-cp", str(classes), "JavaServer", str(port),
        ]  # fmt: skip
    if kind == "nginx":
        return _prepare_nginx(workdir, port, sendfile=nginx_sendfile)
    raise ServerError(f"unknown server kind {kind!r}; known: {', '.join(KINDS)}")


def compile_java(out_dir: Path) -> Path:
    """Compile JavaServer.java into ``out_dir`` (once per source version) and return it."""
    source = SERVERS_DIR / "JavaServer.java"
    stamp = out_dir / ".source-sha256"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["javac", "-d", str(out_dir), str(source)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ServerStartError(f"javac {source} failed:\n{result.stdout}{result.stderr}")
    stamp.write_text(digest)
    return out_dir


def _prepare_nginx(workdir: Path, port: int, *, sendfile: bool) -> list[str]:
    html = workdir / "html"
    html.mkdir(exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    (html / "hello.json").write_bytes(b'{"message":"hello"}')
    (html / "big.json").write_bytes(big_body(NGINX_BIG_BYTES))
    (html / "chunked.json").write_bytes(_nginx_chunked_file(NGINX_CHUNKED_PARTS))
    template = (SERVERS_DIR / "nginx.conf").read_text()
    # As root, nginx's workers would run as "nobody" and could not read pytest's private tmp.
    user_line = "user root;" if os.geteuid() == 0 else ""
    conf = (
        template.replace("@USER_LINE@", user_line)
        .replace("@SENDFILE@", "on" if sendfile else "off")
        .replace("@PORT@", str(port))
    )
    conf_path = workdir / "nginx.conf"
    conf_path.write_text(conf)
    return ["nginx", "-e", "stderr", "-c", str(conf_path), "-p", f"{workdir}/"]


def _nginx_chunked_file(parts: int) -> bytes:
    """The SSI page whose pieces leave nginx as exactly ``parts`` chunks, as the others send."""
    if parts == 1:
        return b'[{"part":0}]'
    middle = b"".join(b'<!--# include virtual="/_part/%d" -->' % i for i in range(1, parts - 1))
    return b'[{"part":0}' + middle + b'<!--# include virtual="/_last_part/%d" -->' % (parts - 1)


def big_body(n: int) -> bytes:
    """The body every server sends for ``/big?bytes=n``: JSON-ish, exactly ``n`` bytes."""
    if n < 11:
        return b"x" * n
    return b'{"data":"' + b"x" * (n - 11) + b'"}'


class _PortTaken(Exception):
    pass


_PORT_TAKEN_MARKERS = ("EADDRINUSE", "Address already in use", "BindException")


def _await_health(
    kind: str, process: subprocess.Popen[bytes], port: int, log_path: Path
) -> RunningServer:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            log = _tail(log_path)
            if any(marker in log for marker in _PORT_TAKEN_MARKERS):
                raise _PortTaken
            raise ServerStartError(
                f"{kind} server exited with status {process.returncode} before answering "
                f"/health on port {port}; its output:\n{log}"
            )
        # Still alive after the answer: the port is ours, not a stranger's that won the race.
        if _answers_health(port) and process.poll() is None:
            break
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"{kind} server did not answer /health on port {port} within "
                f"{START_TIMEOUT_S:.0f} s; its output:\n{_tail(log_path)}"
            )
        time.sleep(0.05)
    pids = _serving_pids(kind, process.pid)
    return RunningServer(
        kind=kind,
        port=port,
        pid=pids[0],
        pids=pids,
        launcher_pid=process.pid,
        comm=read_comm(pids[0]),
        capabilities=CAPABILITIES[kind],
        log_path=log_path,
    )


def _answers_health(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        return response.status == 200 and response.read() == b"ok"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _serving_pids(kind: str, launcher: int) -> tuple[int, ...]:
    if kind != "nginx":
        return (launcher,)
    workers = children_of(launcher)
    if not workers:
        raise ServerStartError(f"nginx master {launcher} answered /health but has no worker")
    return workers


def _tail(log_path: Path) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"(no output: {exc})"
    return text[-LOG_TAIL_CHARS:] if text else "(no output)"
