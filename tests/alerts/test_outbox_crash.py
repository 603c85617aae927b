"""kill -9 in the middle of a retry storm loses nothing and sends nothing twice."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from alerts.outbox import Outbox
from tests.alerts.receiver import OK, RecordingReceiver, Reply
from tests.alerts.samples import alert, notification, numbered
from tests.conftest import ROOT

COUNT = 20


def start_worker(db: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.alerts.outbox_worker",
            "--db",
            str(db),
            "--url",
            url,
            "--count",
            str(COUNT),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_notification_waiting_at_kill_minus_nine_is_sent_once_after_the_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outbox.db"
    storming = True

    def answer(request: object) -> Reply:
        return Reply(500, b"overloaded") if storming else OK

    with RecordingReceiver(responder=answer) as receiver:
        worker = start_worker(db, f"{receiver.url}/hook")
        try:
            receiver.wait_for(8, timeout_s=20)  # retries are flowing
        finally:
            worker.send_signal(signal.SIGKILL)
        _, err = worker.communicate(timeout=10)
        assert worker.returncode == -signal.SIGKILL, err

        with httpx.Client() as client, Outbox(db, {}, client) as left:
            waiting = left.records()
        during = len(receiver.received)
        assert [r.status for r in waiting] == ["pending"] * COUNT, "all survived the kill"
        # Every attempt whose answer came back is on disk; only one can have been in flight.
        assert during - 1 <= sum(r.attempts for r in waiting) <= during
        assert all(r.status == 500 for r in receiver.received)

        storming = False
        again = start_worker(db, f"{receiver.url}/hook")
        out, err = again.communicate(timeout=30)
        assert again.returncode == 0, err
        assert out.strip() == "enqueued 0 new", "re-enqueueing after the restart adds nothing"

        delivered = [r for r in receiver.received[during:] if r.status == 200]
    keys = Counter(r.json()["groupKey"] for r in delivered)
    expected = {
        notification(numbered(alert("checkout_fast_burn"), i)).group_key for i in range(COUNT)
    }
    assert set(keys) == expected
    assert set(keys.values()) == {1}, "nothing was sent twice"
    assert len(receiver.received) - during == COUNT, "no request beyond one per notification"
