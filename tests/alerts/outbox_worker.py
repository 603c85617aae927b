"""An outbox in a process of its own, for the crash test to ``kill -9``.

``python -m tests.alerts.outbox_worker --db PATH --url URL --count N`` enqueues N webhook
notifications (the same N every run: re-enqueueing after a restart must add nothing), delivers
with a fast backoff until none is pending, then exits 0.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from alerts.config import WebhookReceiver
from alerts.outbox import Outbox, RetryPolicy
from alerts.webhook import WebhookNotifier
from tests.alerts.samples import alert, notification, numbered

FAST = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05)


def now() -> datetime:
    return datetime.now(UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args(argv)
    notifier = WebhookNotifier(
        WebhookReceiver(name="team", type="webhook", url=args.url, timeout_s=2)
    )
    notes = [notification(numbered(alert("checkout_fast_burn"), i)) for i in range(args.count)]
    with httpx.Client() as client, Outbox(args.db, {"team": notifier}, client, policy=FAST) as box:
        added = box.enqueue_many(notes, now())
        print(f"enqueued {added} new", flush=True)
        stop = threading.Event()
        loop = threading.Thread(target=box.run, args=(stop, now), kwargs={"max_idle_s": 0.05})
        loop.start()
        while box.stats(now()).queue_depth:
            time.sleep(0.02)
        stop.set()
        loop.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
