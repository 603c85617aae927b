"""The webhook printer shows each Alertmanager-format body it gets as a short plain-text block
and answers 200: bodies from Alertmanager's ecosystem and the ones bytewatch itself sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from alerts.model import labels_of
from alerts.webhook import build_webhook_body
from tests.alerts.samples import alert, notification, resolved
from tests.conftest import CONFORMANCE
from tests.deploy.processes import Running, start_demo

BODIES = sorted((CONFORMANCE / "alertmanager").glob("*.json"))


@pytest.fixture(scope="module")
def printer() -> Iterator[Running]:
    with start_demo("printer") as running:
        yield running


def printed(printer: Running, body: object) -> list[str]:
    """POST ``body``; the block the printer printed for it (it must answer 200)."""
    assert printer.call("POST", "/alerts", body) == (200, "ok\n")
    lines = printer.output.until(lambda line: line == "")
    return lines[:-1]


def test_there_are_conformance_bodies_to_print(conformance: Path) -> None:
    assert len(BODIES) >= 4


@pytest.mark.parametrize("path", BODIES, ids=[p.name for p in BODIES])
def test_a_body_from_the_wild_prints_its_status_receiver_and_every_alert(
    printer: Running, path: Path
) -> None:
    body = json.loads(path.read_text())
    block = printed(printer, body)
    header, alert_lines = block[0], block[1:]
    assert header.startswith(f"=== {body['status'].upper()}  receiver {body['receiver']}  ")
    assert f"{len(body['alerts'])} alert" in header
    heads = [line for line in alert_lines if line.startswith("[")]
    assert len(heads) == len(body["alerts"])
    for head, sent in zip(heads, body["alerts"], strict=True):
        assert head.startswith(f"[{sent['status'].upper()}]")
        assert sent["labels"]["alertname"] in head
        if "severity" in sent["labels"]:
            assert f"severity {sent['labels']['severity']}" in head
    for sent in body["alerts"]:
        for key in ("summary", "description"):
            if key in sent["annotations"]:
                assert f"{key}: {sent['annotations'][key]}" in "\n".join(alert_lines)
    assert not any("\x1b" in line for line in block)  # no colour codes


def test_a_bytewatch_page_prints_slo_severity_summary_burn_and_budget(printer: Running) -> None:
    page = alert("checkout_fast_burn")
    annotations = {
        **dict(page.annotations),
        "burn_rates": "16.2x over 1h and 18.0x over 5m (threshold 14.4x)",
        "budget_remaining": "71.3%",
    }
    body = build_webhook_body(
        notification(replace(page, annotations=labels_of(annotations)), receiver="demo-webhook")
    )
    block = printed(printer, body)
    assert block[0].startswith("=== FIRING  receiver demo-webhook  1 alert  ")
    assert block[1].split() == [
        "[FIRING]", "SLOErrorBudgetBurn", "slo", "checkout/checkout-availability",
        "severity", "page",
    ]  # fmt: skip
    details = [line.strip() for line in block[2:]]
    assert details == [
        "summary: Checkout is failing: 1.8% of payments get an error",
        "description: Most failures are 200 responses whose body says insufficient_balance.",
        "burn: 16.2x over 1h and 18.0x over 5m (threshold 14.4x)",
        "budget left: 71.3%",
        "runbook_url: https://runbooks.example.com/checkout-availability",
    ]


def test_a_resolved_bytewatch_alert_prints_as_resolved(printer: Running) -> None:
    body = build_webhook_body(notification(resolved(alert("search_slow_burn"))))
    block = printed(printer, body)
    assert block[0].startswith("=== RESOLVED  receiver team  1 alert")
    assert block[1].startswith("[RESOLVED]")
    assert block[2].strip().startswith("burn: ")  # bytewatch's own numbers, in words


def test_a_body_that_is_not_json_is_answered_400_and_said_so(printer: Running) -> None:
    status, _ = printer.call("POST", "/alerts", raw=b"not json")
    assert status == 400
    line = printer.output.until(lambda line: line.startswith("==="))[-1]
    assert "not a JSON object" in line
