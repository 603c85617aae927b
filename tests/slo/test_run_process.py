"""``bytewatch run`` as a real process: the API, signals, and a crash in the middle of a page.

The process reads a replay file (``probe.source: replay``) instead of the kernel, keeps its
store, outbox and alert state in a temporary directory, serves the API on a free port and sends
notifications to a recording receiver in this process. A replay is read as fast as it goes and
its exchanges keep their recorded timestamps while the service ticks by the wall clock, so the
files are written at test start with timestamps around ``time.time()``: an hour of good traffic
and an outage that began two minutes ago and lasts a few more. Ticks are every second here
(``evaluator.interval`` and ``store.flush_interval``) to keep the tests short; the page timing
with the default 10 s ticks is tested in-process (test_app.py, test_backtest.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.outbox import Outbox
from tests.alerts.receiver import RecordingReceiver, Reply
from tests.conftest import ROOT
from tests.slo.app_scenario import (
    CONFIG,
    CREATE_PAYMENT,
    DATA,
    WEBHOOK_PATH,
    Outage,
    environment,
    traffic,
    write_jsonl,
)

TOKEN = "bw-process-token-77e0c1"
STARTUP_S = 30.0  # importing FastAPI and friends on a busy two-core machine
RATE_PER_S = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g}s for {what}")
        time.sleep(0.1)


class Bytewatch:
    """One ``python -m slo.cli run`` process; its stderr (JSON logs) goes to a file."""

    def __init__(self, env: dict[str, str], logs: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.logs = logs
        self._stderr = logs.open("ab")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BYTEWATCH_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "slo.cli", "run", "--config", str(CONFIG)],
            cwd=ROOT,
            env={**inherited, **env},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(self.url + path, timeout=2)
        except httpx.TransportError:
            if self.process.poll() is not None:
                raise AssertionError(f"bytewatch exited: {self.log_text()}") from None
            return None

    def json(self, path: str) -> Any:
        response = self.get(path)
        assert response is not None and response.status_code == 200, response
        return response.json()

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            response = self.get("/healthz")
            return response is not None and response.status_code == 200

        wait_until(healthy, STARTUP_S, "/healthz to answer 200")

    def log_text(self) -> str:
        return self.logs.read_text(encoding="utf-8", errors="replace")

    def log_messages(self) -> list[str]:
        messages = []
        for line in self.log_text().splitlines():
            try:
                messages.append(json.loads(line)["message"])
            except (ValueError, KeyError):
                messages.append(line)
        return messages

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait(10)


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with RecordingReceiver() as started:
        yield started


@pytest.fixture
def processes() -> Iterator[list[Bytewatch]]:
    started: list[Bytewatch] = []
    yield started
    for process in started:
        process.kill()  # only what a failed test left running


def replay_file(path: Path, start: float, end: float, outage: Outage | None) -> Path:
    write_jsonl(path, traffic(start, end, rate=RATE_PER_S, outages=[outage] if outage else []))
    return path


def run_env(tmp_path: Path, receiver: RecordingReceiver, replay: Path) -> dict[str, str]:
    """The process's settings: state and SLO file in ``tmp_path``, a free port, 1 s ticks."""
    slos = tmp_path / "slos.yaml"
    if not slos.exists():
        slos.write_text((DATA / "slos.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return environment(
        tmp_path / "state",
        receiver.url + WEBHOOK_PATH,
        token=TOKEN,
        slo_files=[str(slos)],
        probe__replay_file=str(replay),
        api__listen=f"127.0.0.1:{free_port()}",
        evaluator__interval="1s",
        store__flush_interval="1s",
    )


def start(env: dict[str, str], tmp_path: Path, processes: list[Bytewatch]) -> Bytewatch:
    port = int(env["BYTEWATCH_API__LISTEN"].rpartition(":")[2])
    process = Bytewatch(env, tmp_path / "bytewatch.log", port)
    processes.append(process)
    process.wait_healthy()
    return process


def evaluated_at(bytewatch: Bytewatch) -> float:
    """When the running service last evaluated create-payment (0 before its first tick)."""
    response = bytewatch.get(f"/api/v1/slos/{CREATE_PAYMENT}")
    at = None if response is None else response.json().get("evaluated_at")
    return 0.0 if at is None else datetime.fromisoformat(at).timestamp()


def sent(bytewatch: Bytewatch) -> float:
    """Notifications the running service has recorded as delivered to the receiver."""
    response = bytewatch.get("/metrics")
    if response is None:
        return 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "bytewatch_notifications_sent_total":
                return sample.value
    return 0.0


def test_run_serves_the_api_and_exits_0_promptly_on_sigterm(
    tmp_path: Path, receiver: RecordingReceiver, processes: list[Bytewatch]
) -> None:
    now = time.time()
    replay = replay_file(tmp_path / "traffic.jsonl", now - 600, now, None)
    bytewatch = start(run_env(tmp_path, receiver, replay), tmp_path, processes)
    wait_until(lambda: evaluated_at(bytewatch) > 0, 10, "a first evaluation")
    slos = bytewatch.json("/api/v1/slos")["slos"]
    assert [(s["id"], s["sli"]) for s in slos] == [
        (CREATE_PAYMENT, 1.0),
        ("payments-refunds", None),  # no traffic to /refunds in the replay
    ]
    began = time.monotonic()
    bytewatch.signal(signal.SIGTERM)
    assert bytewatch.wait(10) == 0
    assert time.monotonic() - began < 5
    messages = bytewatch.log_messages()
    assert messages[0].startswith("bytewatch running: 2 SLOs, 1 receivers, API on http://")
    assert messages[-2:] == ["stopping", "bytewatch stopped"]
    assert receiver.received == []
    assert TOKEN not in bytewatch.log_text()


def test_a_restart_after_kill_9_mid_incident_keeps_the_incident_and_pages_once(
    tmp_path: Path, receiver: RecordingReceiver, processes: list[Bytewatch]
) -> None:
    now = time.time()
    outage = Outage(now - 120, now + 240)
    first = replay_file(tmp_path / "before.jsonl", now - 3600, now + 5, outage)
    bytewatch = start(run_env(tmp_path, receiver, first), tmp_path, processes)
    [page] = receiver.wait_for(1, timeout_s=20)
    alert = page.json()["alerts"][0]
    assert (alert["labels"]["severity"], alert["status"]) == ("page", "firing")
    wait_until(lambda: sent(bytewatch) == 1, 10, "the outbox to record the delivery")
    bytewatch.process.kill()  # SIGKILL: no clean-up of any kind
    assert bytewatch.wait(10) == -signal.SIGKILL

    restarted_at = time.time()
    rest = replay_file(tmp_path / "after.jsonl", now + 5, restarted_at + 30, outage)
    again = start(run_env(tmp_path, receiver, rest), tmp_path, processes)

    wait_until(lambda: evaluated_at(again) > restarted_at + 3, 15, "a few ticks after restart")
    [after] = [a for a in again.json("/api/v1/alerts")["alerts"] if a["severity"] == "page"]
    assert after["state"] == "firing"
    assert after["fingerprint"] == alert["fingerprint"]
    assert after["started_at"].replace("+00:00", "Z") == alert["startsAt"]
    assert len(receiver.received) == 1
    again.signal(signal.SIGTERM)
    assert again.wait(10) == 0
    with httpx.Client() as client, Outbox(tmp_path / "state" / "outbox.db", {}, client) as outbox:
        records = outbox.records()
    assert [(r.reason, r.status) for r in records] == [("firing", "delivered")]


def test_sighup_with_a_broken_slo_file_keeps_running_and_logs_the_refusal(
    tmp_path: Path, receiver: RecordingReceiver, processes: list[Bytewatch]
) -> None:
    now = time.time()
    replay = replay_file(tmp_path / "traffic.jsonl", now - 600, now, None)
    bytewatch = start(run_env(tmp_path, receiver, replay), tmp_path, processes)
    slos = tmp_path / "slos.yaml"
    slos.write_text((DATA / "slos-broken.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    bytewatch.signal(signal.SIGHUP)
    refusal = wait_until(
        lambda: [m for m in bytewatch.log_messages() if m.startswith("reload refused")],
        10,
        "the reload to be refused",
    )
    assert refusal == [
        "reload refused, keeping the running configuration: the configuration or an SLO "
        "file has problems (printed above)"
    ]
    assert f"{slos}:9:11: services[0].slos[0].selector.rout: unknown field" in bytewatch.log_text()
    assert bytewatch.process.poll() is None
    assert [s["objective"] for s in bytewatch.json("/api/v1/slos")["slos"]] == [0.999, 0.999]

    slos.write_text((DATA / "slos-reloaded.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    bytewatch.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded: 1 SLOs" in bytewatch.log_messages(), 10, "the fixed file to load")
    slos_now = bytewatch.json("/api/v1/slos")["slos"]
    assert [(s["id"], s["objective"]) for s in slos_now] == [(CREATE_PAYMENT, 0.995)]
    bytewatch.signal(signal.SIGTERM)
    assert bytewatch.wait(10) == 0


def test_a_crash_between_the_receivers_answer_and_the_commit_resends_the_same_page_once(
    tmp_path: Path, receiver: RecordingReceiver, processes: list[Bytewatch]
) -> None:
    """Delivery is at least once: the one notification in flight when the process died goes
    out again after the restart, byte for byte the same (same incident, same startsAt), so a
    receiver can fold it by fingerprint and startsAt as PagerDuty folds it by dedup key."""
    receiver.answer(Reply(hang=True))  # the first delivery never learns its outcome
    now = time.time()
    outage = Outage(now - 120, now + 240)
    first = replay_file(tmp_path / "before.jsonl", now - 3600, now + 5, outage)
    bytewatch = start(run_env(tmp_path, receiver, first), tmp_path, processes)
    [in_flight] = receiver.wait_for(1, timeout_s=20)
    bytewatch.process.kill()
    bytewatch.wait(10)

    restarted_at = time.time()
    rest = replay_file(tmp_path / "after.jsonl", now + 5, restarted_at + 30, outage)
    again = start(run_env(tmp_path, receiver, rest), tmp_path, processes)
    wait_until(lambda: evaluated_at(again) > restarted_at + 3, 15, "a few ticks after restart")
    [_, resent] = receiver.received
    assert resent.body == in_flight.body
    again.signal(signal.SIGTERM)
    assert again.wait(10) == 0
