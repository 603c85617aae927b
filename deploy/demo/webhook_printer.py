"""A webhook receiver for the demo: prints each Alertmanager-format notification it is sent.

    python3 webhook_printer.py PORT   (PORT 0 picks a free one; the first line printed says which)

Any POST whose body is an Alertmanager webhook (``version: "4"``: ``status``, ``alerts`` with
``labels`` and ``annotations``) is printed as a short block and answered 200; a body that is
not JSON is answered 400. Plain text, no colours, so it reads the same in a terminal, a log
file or a screen recording::

    === FIRING  receiver demo-webhook  1 alert  2024-05-01 12:00:03
    [FIRING]    ErrorBudgetBurn  slo payments/create-payment  severity page
                summary: payments / create-payment: error budget burning 480.0x over 10m
                runbook_url: https://runbooks.example.com/payments/create-payment

The SLO, service and severity come from bytewatch's labels (or Sloth's); the lines below the
head are the annotations ``summary``, ``description``, ``burn_rates``, ``budget_remaining`` and
``runbook_url`` when present, then any other annotation about burn rates or the error budget.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

MAX_BODY = 4 * 1024 * 1024
INDENT = " " * 12
# Label names that say which SLO an alert is about: bytewatch's, then Sloth's and Pyrra's.
SLO_LABELS = ("slo", "sloth_slo", "slo_id")
SERVICE_LABELS = ("service", "slo_service", "sloth_service")
SEVERITY_LABELS = ("severity", "slo_severity", "sloth_severity")
# Annotations worth a line of their own, in this order; other keys that mention burn rates or
# the error budget follow them.
SHOWN_ANNOTATIONS = ("summary", "description", "burn_rates", "budget_remaining", "runbook_url")


def _first(mapping: Mapping[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = mapping.get(name)
        if value:
            return str(value)
    return ""


def _text(value: object) -> str:
    """One line: strings as they are, anything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return " ".join(text.split())


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def format_alert(alert: Mapping[str, Any]) -> list[str]:
    labels = _mapping(alert.get("labels"))
    annotations = _mapping(alert.get("annotations"))
    status = str(alert.get("status", "?")).upper()
    head = [f"[{status}]".ljust(len(INDENT) - 2), str(labels.get("alertname", "(no alertname)"))]
    slo, service = _first(labels, SLO_LABELS), _first(labels, SERVICE_LABELS)
    if slo:
        head.append(f"slo {service}/{slo}" if service else f"slo {slo}")
    elif service:
        head.append(f"service {service}")
    severity = _first(labels, SEVERITY_LABELS)
    if severity:
        head.append(f"severity {severity}")
    lines = ["  ".join(head)]
    extra = [
        key
        for key in sorted(annotations)
        if key not in SHOWN_ANNOTATIONS and ("burn" in key.lower() or "budget" in key.lower())
    ]
    for key in (*SHOWN_ANNOTATIONS, *extra):
        if annotations.get(key):
            name = {"burn_rates": "burn", "budget_remaining": "budget left"}.get(key, key)
            lines.append(f"{INDENT}{name}: {_text(annotations[key])}")
    if not annotations:
        lines.append(f"{INDENT}(no annotations)")
    return lines


def format_notification(body: Mapping[str, Any], received_at: float | None = None) -> str:
    """The block printed for one webhook body (never raises on odd input)."""
    alerts = [a for a in body.get("alerts") or [] if isinstance(a, Mapping)]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(received_at or time.time()))
    count = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    truncated = body.get("truncatedAlerts")
    if isinstance(truncated, int) and truncated > 0:
        count += f" (+{truncated} not sent)"
    status = str(body.get("status", "?")).upper()
    receiver = _text(body.get("receiver", "?"))
    lines = [f"=== {status}  receiver {receiver}  {count}  {when}"]
    for alert in alerts:
        lines.extend(format_alert(alert))
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    out: TextIO = sys.stdout
    lock = threading.Lock()  # one block at a time, never interleaved

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the blocks are the output."""

    def answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self.answer(HTTPStatus.LENGTH_REQUIRED, "a Content-Length up to 4 MiB is required\n")
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            with self.lock:
                print(
                    f"=== {self.path}: a body that is not a JSON object, answered 400",
                    file=self.out,
                    flush=True,
                )
            self.answer(HTTPStatus.BAD_REQUEST, "expected an Alertmanager webhook (JSON)\n")
            return
        with self.lock:
            print(format_notification(body), file=self.out, flush=True)
        self.answer(HTTPStatus.OK, "ok\n")

    def do_GET(self) -> None:
        self.answer(HTTPStatus.OK, "webhook printer: POST Alertmanager webhooks here\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit() or int(argv[0]) > 65535:
        print("usage: webhook_printer.py PORT", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", int(argv[0])), Handler)
    server.daemon_threads = True
    print(f"webhook printer: listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
