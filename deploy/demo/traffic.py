"""The demo's customers: steady traffic to the shop and payments APIs, and one incident.

    python3 traffic.py --shop 127.0.0.1:8081 --payments 127.0.0.1:8082
                       [--rate 30] [--incident-after 60] [--incident-for 150] [--duration 0]

It sends about ``--rate`` requests a second (Poisson arrivals), spread over both APIs, with ids
in the paths as real clients send them (``/products/sku-10042``, ``/payments/pay_9f2c...``).
After ``--incident-after`` seconds it switches the payments fault on (``POST /admin/fault
{"mode": "silent-200"}``): payments then answer 200 with an error in the body. After
``--incident-for`` more seconds it switches it off. It prints one line when it starts, one when
it injects, one when it heals and a summary when it stops (after ``--duration`` seconds, or on
Ctrl-C); stopping during the incident heals it first. Standard library only, one thread, one
keep-alive connection per API, so it costs little CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

PRODUCT_IDS = tuple(f"sku-{10001 + i}" for i in range(48))
TIMEOUT_S = 5.0
KNOWN_PAYMENTS = 200  # recent payment ids kept for GET /payments/{id}


@dataclass(frozen=True, slots=True)
class Request:
    api: str  # "shop" or "payments"
    method: str
    path: str
    body: dict[str, object] | None = None


class Api:
    """One keep-alive connection to one API, reopened after any failure."""

    def __init__(self, name: str, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.name = name
        self._host = host or "127.0.0.1"
        self._port = int(port)
        self._connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: dict[str, object] | None) -> tuple[int, bytes]:
        """(status, body); raises OSError or http.client.HTTPException when the call fails."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, TIMEOUT_S)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            self._connection.request(method, path, body=payload, headers=headers)
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class Customers:
    """What the next request is: a weighted mix over both APIs, remembering created payments."""

    rng: random.Random
    payment_ids: list[str] = field(default_factory=list)

    def next_request(self) -> Request:
        roll = self.rng.random()
        if roll < 0.20:
            return Request("shop", "GET", f"/products?limit={self.rng.choice((10, 20, 50))}")
        if roll < 0.50:
            product = self._product(missing_share=0.03)
            return Request("shop", "GET", f"/products/{product}")
        if roll < 0.65:
            cart = f"cart-{self.rng.randrange(100000, 999999)}"
            item: dict[str, object] = {
                "product": self._product(missing_share=0.0),
                "quantity": self.rng.randint(1, 3),
            }
            return Request("shop", "POST", f"/cart/{cart}/items", item)
        if roll < 0.90:
            payment: dict[str, object] = {
                "amount": self.rng.randrange(300, 25000),
                "currency": self.rng.choice(("EUR", "EUR", "USD", "GBP")),
                "card": f"tok_{self.rng.getrandbits(48):012x}",
            }
            return Request("payments", "POST", "/payments", payment)
        known = self.payment_ids and self.rng.random() < 0.95
        payment_id = (
            self.rng.choice(self.payment_ids) if known else f"pay_{self.rng.getrandbits(64):016x}"
        )
        return Request("payments", "GET", f"/payments/{payment_id}")

    def saw(self, request: Request, status: int, body: bytes) -> None:
        if request.path == "/payments" and status == 201:
            try:
                payment_id = json.loads(body)["id"]
            except (ValueError, KeyError, TypeError):
                return
            self.payment_ids.append(str(payment_id))
            del self.payment_ids[:-KNOWN_PAYMENTS]

    def _product(self, *, missing_share: float) -> str:
        if self.rng.random() < missing_share:
            return f"sku-{self.rng.randrange(90000, 99999)}"
        return self.rng.choice(PRODUCT_IDS)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When the incident starts and ends, in seconds from the start (None: no incident)."""

    inject_at: float | None
    heal_at: float | None

    def fault_mode(self, elapsed: float) -> str:
        if self.inject_at is None or self.heal_at is None:
            return "none"
        return "silent-200" if self.inject_at <= elapsed < self.heal_at else "none"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shop", required=True, metavar="HOST:PORT")
    parser.add_argument("--payments", required=True, metavar="HOST:PORT")
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second (30)")
    parser.add_argument("--incident-after", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--incident-for", type=float, default=150.0, metavar="SECONDS")
    parser.add_argument("--no-incident", action="store_true", help="steady traffic only")
    parser.add_argument(
        "--duration", type=float, default=0.0, metavar="SECONDS", help="0: until Ctrl-C"
    )
    parser.add_argument("--seed", type=int, default=None, help="for a reproducible mix")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.incident_after < 0 or args.incident_for <= 0 or args.duration < 0:
        parser.error("--rate and --incident-for must be above 0, the other times not negative")
    return args


def say(line: str) -> None:
    print(f"traffic: {line}", flush=True)


class Traffic:
    def __init__(
        self,
        apis: dict[str, Api],
        customers: Customers,
        schedule: Schedule,
        *,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._apis = apis
        self._customers = customers
        self._schedule = schedule
        self._rate = rate
        self._clock = clock
        self._mode = "none"
        self.sent: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()
        self.stopping = False

    def run(self, duration: float) -> None:
        start = self._clock()
        self._switch("none", announce=False)  # a clean start, whatever an earlier run left
        next_at = start
        while not self.stopping:
            now = self._clock()
            elapsed = now - start
            if duration and elapsed >= duration:
                break
            wanted = self._schedule.fault_mode(elapsed)
            if wanted != self._mode:
                self._switch(wanted, announce=True)
            if now < next_at:
                time.sleep(min(next_at - now, 0.25))
                continue
            next_at = max(next_at, now - 1.0) + self._customers.rng.expovariate(self._rate)
            self._send(self._customers.next_request())
        if self._mode != "none":
            self._switch("none", announce=True)

    def _send(self, request: Request) -> None:
        self.sent[request.api] += 1
        try:
            status, body = self._apis[request.api].call(request.method, request.path, request.body)
        except (OSError, http.client.HTTPException):
            self.answers["failed"] += 1
            return
        self.answers[f"{status // 100}xx"] += 1
        self._customers.saw(request, status, body)

    def _switch(self, mode: str, *, announce: bool) -> None:
        try:
            status, _ = self._apis["payments"].call("POST", "/admin/fault", {"mode": mode})
        except (OSError, http.client.HTTPException) as exc:
            status, reason = 0, str(exc) or type(exc).__name__
        else:
            reason = f"answered {status}"
        if status != 200:
            if announce:  # tried again on the next loop
                say(f"could not set the payments fault to {mode!r} ({reason})")
                time.sleep(1.0)
            return
        self._mode = mode
        if not announce:
            return
        if mode == "silent-200":
            say(
                "incident injected: POST /payments now answers 200 with an error in the body "
                "(insufficient_balance, card_declined, processor_unavailable)"
            )
        else:
            say("incident healed: POST /payments answers normally again")

    def summary(self, seconds: float) -> str:
        total = sum(self.sent.values())
        apis = ", ".join(f"{name} {count}" for name, count in sorted(self.sent.items()))
        answers = ", ".join(f"{kind} {count}" for kind, count in sorted(self.answers.items()))
        return f"sent {total} requests in {seconds:.0f}s ({apis}); answers: {answers or 'none'}"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    schedule = (
        Schedule(None, None)
        if args.no_incident
        else Schedule(args.incident_after, args.incident_after + args.incident_for)
    )
    apis = {"shop": Api("shop", args.shop), "payments": Api("payments", args.payments)}
    traffic = Traffic(apis, Customers(random.Random(args.seed)), schedule, rate=args.rate)

    def stop(signum: int, frame: FrameType | None) -> None:
        traffic.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    incident = (
        "no incident"
        if schedule.inject_at is None
        else f"incident after {args.incident_after:g}s for {args.incident_for:g}s"
    )
    say(f"~{args.rate:g} requests/s to shop {args.shop} and payments {args.payments}; {incident}")
    started = time.monotonic()
    try:
        traffic.run(args.duration)
    finally:
        for api in apis.values():
            api.close()
    say(traffic.summary(time.monotonic() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
