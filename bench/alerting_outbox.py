"""How many notifications per second the outbox delivers to a local receiver (target: >= 500).

Run from the project root: ``python bench/alerting_outbox.py [--count 3000]``. The receiver is
``tests/alerts/receiver.py`` in a process of its own (so it does not share our GIL), answering
200 on loopback. For each integration the outbox's database starts empty, ``--count``
notifications (distinct groups, one alert each) are enqueued in one call, then ``deliver_due``
runs with the wall clock until none is pending. The receiver's request count is checked against
what was sent. Prints a table; writes bench/results/alerting_outbox.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from alerts.config import parse_receivers  # noqa: E402
from alerts.model import (  # noqa: E402
    Alert,
    AlertState,
    Notification,
    NotifyReason,
    Severity,
    WindowBurn,
    labels_of,
)
from alerts.outbox import Outbox  # noqa: E402
from alerts.receivers import build_notifiers  # noqa: E402
from bench.results import write_results  # noqa: E402

TARGET_PER_S = 500


def now() -> datetime:
    return datetime.now(UTC)


def make_notifications(receiver: str, count: int, started: datetime) -> list[Notification]:
    notes = []
    for i in range(count):
        slo = f"checkout-availability-{i}"
        alert = Alert(
            slo=slo,
            severity=Severity.PAGE,
            state=AlertState.FIRING,
            labels=labels_of(slo=slo, severity="page", service="checkout"),
            annotations=labels_of(summary=f"checkout {i} is failing"),
            service="checkout",
            objective=0.999,
            period_s=30 * 86400,
            sli=0.982,
            burns=(WindowBurn(3600, 300, 14.4, 16.2, 18.0), WindowBurn(21600, 1800, 6, 4, 8)),
            budget_remaining=0.71,
            time_to_exhaustion_s=158400,
            top_error_types=(("insufficient_balance", 1204), ("card_declined", 311)),
            incident_started_at=started,
        )
        notes.append(
            Notification(
                receiver=receiver,
                reason=NotifyReason.FIRING,
                group_key=f'{{}}:{{slo="{slo}"}}',
                group_labels=labels_of(slo=slo),
                alerts=(alert,),
                created_at=started,
            )
        )
    return notes


@dataclass(frozen=True)
class Row:
    receiver: str
    notifications: int
    requests: int
    enqueue_s: float
    deliver_s: float

    @property
    def per_s(self) -> float:
        return self.notifications / self.deliver_s

    @property
    def enqueue_per_s(self) -> float:
        return self.notifications / self.enqueue_s


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "alerts" / "receiver.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


def received(url: str) -> int:
    count: int = httpx.get(f"{url}/_stats").json()["received"]
    return count


def run_one(name: str, url: str, count: int, workdir: Path) -> Row:
    config = parse_receivers(
        {
            "receivers": [
                {"name": "slack", "type": "slack", "webhook_url": f"{url}/slack/T0/B0/x"},
                {
                    "name": "pagerduty",
                    "type": "pagerduty",
                    "routing_key": "k" * 32,
                    "url": f"{url}/v2/enqueue",
                },
                {"name": "webhook", "type": "webhook", "url": f"{url}/hook", "hmac_secret": "k"},
                {"name": "alertmanager", "type": "alertmanager", "url": url},
            ]
        }
    )
    notes = make_notifications(name, count, now())
    before = received(url)
    with (
        httpx.Client() as client,
        Outbox(workdir / f"{name}.db", build_notifiers(config, now), client) as outbox,
    ):
        started = time.perf_counter()
        outbox.enqueue_many(notes, now())
        enqueued = time.perf_counter()
        while outbox.deliver_due(now()).attempted:
            pass
        done = time.perf_counter()
        stats = outbox.stats(now())
    assert stats.sent == count and stats.queue_depth == 0, stats
    return Row(name, count, received(url) - before, enqueued - started, done - enqueued)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args(argv)
    receiver, url = start_receiver()
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("webhook", "slack", "pagerduty", "alertmanager"):
                rows.append(run_one(name, url, args.count, Path(tmp)))
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)

    columns = ("receiver", "notifications", "requests", "enqueue/s", "deliver/s")
    print(f"{columns[0]:<13}" + "".join(f"{c:>14}" for c in columns[1:]))
    print("-" * (13 + 14 * 4))
    for row in rows:
        print(
            f"{row.receiver:<13}{row.notifications:>14}{row.requests:>14}"
            f"{row.enqueue_per_s:>14,.0f}{row.per_s:>14,.0f}"
        )
    slowest = min(row.per_s for row in rows)
    complete = all(row.requests == row.notifications for row in rows)
    verdict = "meets" if slowest >= TARGET_PER_S else "MISSES"
    print(f"\nslowest: {slowest:,.0f} notifications/s, {verdict} the {TARGET_PER_S}/s target")
    print("every request arrived" if complete else "REQUESTS WENT MISSING")

    result = {
        "bench": "alerting_outbox",
        "measured_at": now().isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "target_per_s": TARGET_PER_S,
        "count": args.count,
        "rows": [
            {
                "receiver": row.receiver,
                "notifications": row.notifications,
                "requests_received": row.requests,
                "enqueue_per_s": round(row.enqueue_per_s),
                "deliver_per_s": round(row.per_s),
            }
            for row in rows
        ],
        "slowest_deliver_per_s": round(slowest),
        "every_request_arrived": complete,
        "meets_target": slowest >= TARGET_PER_S,
    }
    write_results("alerting_outbox", result)
    return 0 if slowest >= TARGET_PER_S and complete else 1


if __name__ == "__main__":
    sys.exit(main())
