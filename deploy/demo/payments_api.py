"""payments: the demo's payment API, a standard-library HTTP/1.1 server that knows nothing of
bytewatch.

    python3 payments_api.py PORT      (PORT 0 picks a free one; the first line printed says which)

    POST /payments        201 {"id": "pay_...", "status": "succeeded", ...} for
                          {"amount": cents, "currency": "EUR", "card": "tok_..."}; 400 if malformed
    GET  /payments/{id}   200 the payment, or 404
    GET  /health          200 {"status": "ok"}
    GET  /admin/fault     200 {"mode": ...}
    POST /admin/fault     {"mode": "silent-200" | "none"}: 200 {"mode": ...}; 400 otherwise

The fault switch is the incident the demo injects. In ``silent-200`` mode every POST /payments
answers ``200 {"error": <type>, "message": ...}``: the payment failed, the status says it did
not. Types cycle through a fixed mix (mostly ``insufficient_balance``), so a dashboard shows
several. The body names no payment ``id``: it reports a failed call, not a payment record.
"""

from __future__ import annotations

import itertools
import json
import secrets
import sys
import threading
import time
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_MODES = ("none", "silent-200")
MAX_PAYMENTS = 10_000
MAX_BODY = 16 * 1024
# The incident's mix of error types, in the order they are served.
FAULT_ERRORS = (
    ("insufficient_balance", "the card's balance is too low for this payment"),
    ("insufficient_balance", "the card's balance is too low for this payment"),
    ("card_declined", "the issuer declined the card"),
    ("insufficient_balance", "the card's balance is too low for this payment"),
    ("processor_unavailable", "the card processor did not answer in time"),
)
CURRENCIES = frozenset({"EUR", "USD", "GBP"})


class Payments:
    """The service's state: payments by id (the oldest forgotten past a bound), the fault mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._payments: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._mode = "none"
        self._errors = itertools.cycle(FAULT_ERRORS)

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self._mode = mode

    def create(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if self._mode == "silent-200":
                error, message = next(self._errors)
                return HTTPStatus.OK, {"error": error, "message": message}
            payment = {
                "id": f"pay_{secrets.token_hex(8)}",
                "status": "succeeded",
                "amount": request["amount"],
                "currency": request["currency"],
                "created": int(time.time()),
            }
            self._payments[payment["id"]] = payment
            if len(self._payments) > MAX_PAYMENTS:
                self._payments.popitem(last=False)
            return HTTPStatus.CREATED, payment

    def get(self, payment_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._payments.get(payment_id)


def invalid_payment(request: object) -> str | None:
    """Why a POST /payments body cannot be a payment, or None."""
    if not isinstance(request, dict):
        return "expected a JSON object"
    amount = request.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= 10_000_000:
        return "amount: a positive number of cents"
    if request.get("currency") not in CURRENCIES:
        return f"currency: one of {', '.join(sorted(CURRENCIES))}"
    card = request.get("card")
    if not isinstance(card, str) or not card.startswith("tok_"):
        return "card: a card token (tok_...)"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients expect
    server_version = "payments/1"
    state = Payments()  # replaced per server by `serve`

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the demo's terminal belongs to the alerts, not to an access log."""

    def send_json(self, status: int, value: object) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_json(self) -> tuple[bool, object]:
        """(True, value) for a JSON body; (False, None) after answering 4xx for anything else."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "invalid_length"})
            self.close_connection = True
            return False, None
        raw = self.rfile.read(length)
        try:
            return True, json.loads(raw)
        except ValueError:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "invalid_json"})
            return False, None

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
        elif path == "/admin/fault":
            self.send_json(HTTPStatus.OK, {"mode": self.state.mode})
        elif path.startswith("/payments/") and path.count("/") == 2:
            payment = self.state.get(path.removeprefix("/payments/"))
            if payment is None:
                self.send_json(HTTPStatus.NOT_FOUND, {"error": "payment_not_found"})
            else:
                self.send_json(HTTPStatus.OK, payment)
        elif path == "/payments":
            self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method_not_allowed"})
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/payments", "/admin/fault"):
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not_found"})
            return
        ok, request = self.read_json()
        if not ok:
            return
        if path == "/admin/fault":
            mode = request.get("mode") if isinstance(request, dict) else None
            if mode not in FAULT_MODES:
                self.send_json(
                    HTTPStatus.BAD_REQUEST,
                    {"error": "invalid_mode", "message": f"mode: one of {', '.join(FAULT_MODES)}"},
                )
                return
            self.state.set_mode(str(mode))
            self.send_json(HTTPStatus.OK, {"mode": mode})
            return
        problem = invalid_payment(request)
        if problem is not None:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "invalid_request", "message": problem})
            return
        assert isinstance(request, dict)
        status, answer = self.state.create(request)
        self.send_json(status, answer)


def serve(port: int) -> ThreadingHTTPServer:
    handler = type("PaymentsHandler", (Handler,), {"state": Payments()})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit() or int(argv[0]) > 65535:
        print("usage: payments_api.py PORT", file=sys.stderr)
        return 2
    server = serve(int(argv[0]))
    print(f"payments: listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
