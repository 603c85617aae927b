"""The traffic generator hits both APIs at about the asked rate, with ids in the paths, and
switches the payments fault on and off on schedule, healing it whenever it stops."""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.deploy.processes import DEMO, run_program, start_demo

TRAFFIC = [sys.executable, str(DEMO / "traffic.py")]
# What real clients send, by API: the path shapes of the demo's routes.
SHOP_PATHS = re.compile(r"^(/products\?limit=\d+|/products/sku-\d{5}|/cart/cart-\d{6}/items)$")
PAYMENTS_PATHS = re.compile(r"^(/payments|/payments/pay_[0-9a-f]{16}|/admin/fault)$")


@dataclass
class Recorder:
    """A stand-in API that records (when, method, path, body) and answers plausibly."""

    server: ThreadingHTTPServer
    requests: list[tuple[float, str, str, Any]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def faults(self) -> list[tuple[float, str]]:
        return [(t, body["mode"]) for t, _, path, body in self.requests if path == "/admin/fault"]


@pytest.fixture
def recorders() -> Iterator[tuple[Recorder, Recorder]]:
    made: list[Recorder] = []

    def recorder() -> Recorder:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length)) if length else None
                record.requests.append((time.monotonic(), self.command, self.path, body))
                status, answer = 200, b"{}"
                if self.path == "/payments":
                    status, answer = 201, b'{"id": "pay_00000000000000aa"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = handle_one  # noqa: N815

        record = Recorder(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        threading.Thread(target=record.server.serve_forever, daemon=True).start()
        made.append(record)
        return record

    yield recorder(), recorder()
    for record in made:
        record.server.shutdown()
        record.server.server_close()


def traffic_args(shop: str, payments: str, *extra: str) -> list[str]:
    return [*TRAFFIC, "--shop", shop, "--payments", payments, "--seed", "7", *extra]


def test_it_spreads_about_the_asked_rate_over_both_apis_with_ids_in_paths(
    recorders: tuple[Recorder, Recorder],
) -> None:
    shop, payments = recorders
    argv = traffic_args(shop.address, payments.address, "--rate", "40", "--duration", "3")
    with run_program([*argv, "--no-incident"]) as (process, output):
        assert process.wait(timeout=20) == 0
        output.until(lambda line: line.startswith("traffic: sent"))
    served = [r for r in shop.requests + payments.requests if r[2] != "/admin/fault"]
    assert 60 <= len(served) <= 180, len(served)  # 40/s for 3 s, Poisson arrivals
    assert len(shop.requests) > 20 and len(payments.requests) > 20
    assert all(SHOP_PATHS.match(path) for _, _, path, _ in shop.requests)
    assert all(PAYMENTS_PATHS.match(path) for _, _, path, _ in payments.requests)
    methods = {(method, path.split("/")[1].split("?")[0]) for _, method, path, _ in served}
    assert methods >= {("GET", "products"), ("POST", "cart"), ("POST", "payments")}
    assert ("GET", "/payments/pay_00000000000000aa") in {(m, p) for _, m, p, _ in served}
    assert payments.faults() == [(payments.faults()[0][0], "none")]  # only the clean start


def test_it_injects_and_heals_the_incident_on_schedule(
    recorders: tuple[Recorder, Recorder],
) -> None:
    shop, payments = recorders
    argv = traffic_args(
        shop.address, payments.address,
        "--rate", "20", "--incident-after", "1", "--incident-for", "1.5", "--duration", "3.5",
    )  # fmt: skip
    with run_program(argv) as (process, output):
        assert process.wait(timeout=20) == 0
        lines = output.until(lambda line: line.startswith("traffic: sent"))
    faults = payments.faults()
    assert [mode for _, mode in faults] == ["none", "silent-200", "none"]
    started = faults[0][0]
    assert faults[1][0] - started == pytest.approx(1.0, abs=0.5)
    assert faults[2][0] - started == pytest.approx(2.5, abs=0.5)
    said = [line for line in lines if "incident" in line and "after" not in line]
    assert [line.split(":")[1].strip() for line in said] == ["incident injected", "incident healed"]


def test_stopping_during_the_incident_heals_it_first(
    recorders: tuple[Recorder, Recorder],
) -> None:
    shop, payments = recorders
    argv = traffic_args(
        shop.address, payments.address, "--incident-after", "0.2", "--incident-for", "600"
    )
    with run_program(argv) as (process, output):
        output.until(lambda line: "incident injected" in line)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        output.until(lambda line: line.startswith("traffic: sent"))
    assert [mode for _, mode in payments.faults()] == ["none", "silent-200", "none"]


def test_against_the_real_apis_every_request_is_answered_and_the_fault_really_switches() -> None:
    with start_demo("shop") as shop, start_demo("payments") as payments:
        argv = traffic_args(
            f"127.0.0.1:{shop.port}", f"127.0.0.1:{payments.port}",
            "--rate", "40", "--incident-after", "0.5", "--incident-for", "60",
        )  # fmt: skip
        with run_program(argv) as (process, output):
            output.until(lambda line: "incident injected" in line)
            assert payments.call("GET", "/admin/fault") == (200, {"mode": "silent-200"})
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
            summary = output.until(lambda line: line.startswith("traffic: sent"))[-1]
        assert payments.call("GET", "/admin/fault") == (200, {"mode": "none"})
    assert "failed" not in summary and "5xx" not in summary
    assert re.search(r"payments \d+, shop \d+", summary), summary
