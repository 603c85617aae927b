"""Run the demo's programs as a user would: a subprocess on a free port, its output read live.

Each demo program takes its port as its only argument, accepts 0 for "any free port" and prints
``<name>: listening on http://127.0.0.1:PORT`` first. ``start`` waits for that line and stops
the process (SIGTERM, then SIGKILL) when the ``with`` block ends::

    with start_demo("payments") as payments:
        status, body = payments.call("GET", "/health")
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.ci import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "demo"
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)$")

PROGRAMS: dict[str, list[str]] = {
    "shop": ["node", str(DEMO / "shop_api.js")],
    "payments": [sys.executable, str(DEMO / "payments_api.py")],
    "printer": [sys.executable, str(DEMO / "webhook_printer.py")],
}


@dataclass
class Output:
    """A process's standard output, line by line, as it comes."""

    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, timeout_s: float) -> str | None:
        """The next line, or None at the end of the output or after ``timeout_s``."""
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if line is not None:
            self.seen.append(line)
        return line

    def until(self, done: Callable[[str], bool], timeout_s: float = 10.0) -> list[str]:
        """Lines up to and including the first for which ``done`` holds; fails the test after
        ``timeout_s`` with what was read."""
        deadline = time.monotonic() + timeout_s
        read: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            line = self.next_line(left)
            if line is None:
                break
            read.append(line)
            if done(line):
                return read
        pytest.fail(f"the expected line did not come within {timeout_s}s; read: {read!r}")


@dataclass
class Running:
    process: subprocess.Popen[str]
    port: int
    output: Output

    def call(
        self, method: str, path: str, body: object = None, *, raw: bytes | None = None
    ) -> tuple[int, object]:
        """(status, JSON body or text) of one request on a fresh connection."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            payload = raw if raw is not None else None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode()


def _runtime(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        skip_or_fail(f"{argv[0]} is not installed (scripts/setup.sh --dev installs it)")


@contextlib.contextmanager
def run_program(argv: list[str]) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """Any program, its output pumped into an ``Output``; stopped when the block ends."""
    _runtime(argv)
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=DEMO,
    )
    output = Output()
    pump = threading.Thread(target=output.pump, args=(process.stdout,), daemon=True)
    pump.start()
    try:
        yield process, output
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        pump.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def start_demo(name: str) -> Iterator[Running]:
    """One of ``PROGRAMS`` on a free port, once it says it listens."""
    with run_program([*PROGRAMS[name], "0"]) as (process, output):
        lines = output.until(lambda line: _LISTENING.search(line) is not None)
        match = _LISTENING.search(lines[-1])
        assert match is not None
        yield Running(process, int(match.group(1)), output)
