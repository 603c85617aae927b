"""Webhooks: Alertmanager's body, byte for byte signable, to a real receiver on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.config import WebhookReceiver
from alerts.describe import DEFAULT_ALERTNAME, bytewatch_annotations
from alerts.notifier import Delivered, build_test_notification
from alerts.webhook import ZERO_TIME, WebhookNotifier, build_webhook_body, sign, verify
from tests.alerts.receiver import RecordingReceiver
from tests.alerts.samples import T0, alert, notification, numbered, resolved, webhook_shape
from tests.conftest import CONFORMANCE

SAMPLES = sorted((CONFORMANCE / "alertmanager").glob("*.json"))
# Alertmanager ≥ 0.22 sends exactly this (template.Data plus version, groupKey, truncatedAlerts);
# the real-world capture below came from one.
CURRENT = CONFORMANCE / "alertmanager" / "testcurl7.resolved.json"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_our_body_carries_every_key_real_alertmanager_bodies_carry(sample: Path) -> None:
    theirs = json.loads(sample.read_text())
    ours = build_webhook_body(notification(alert("checkout_fast_burn")))
    optional_extras = {"notification_reason", "routeLabels"}  # only in newer synthesized bodies
    assert set(theirs) - set(ours) <= optional_extras
    for their_alert in theirs["alerts"]:
        assert set(their_alert) - {"amixr_demo"} <= set(ours["alerts"][0])


def test_our_body_has_exactly_the_shape_of_alertmanagers() -> None:
    theirs = json.loads(CURRENT.read_text())
    ours = build_webhook_body(notification(resolved(alert("checkout_fast_burn"))))
    assert webhook_shape(ours) == webhook_shape(theirs)


def test_a_firing_alert_reads_as_alertmanager_would_send_it() -> None:
    firing = alert("checkout_fast_burn")
    body = build_webhook_body(notification(firing, receiver="hook"), external_url="http://bw:8080")
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "hook"
    assert body["groupKey"] == '{}:{slo="checkout-availability"}'
    assert body["groupLabels"] == {"slo": "checkout-availability"}
    assert body["externalURL"] == "http://bw:8080"
    assert body["truncatedAlerts"] == 0
    (sent,) = body["alerts"]
    assert sent == {
        "status": "firing",
        "labels": {**dict(firing.labels), "alertname": DEFAULT_ALERTNAME},
        "annotations": bytewatch_annotations(firing),
        "startsAt": "2024-01-01T00:00:00Z",
        "endsAt": ZERO_TIME,
        "generatorURL": firing.generator_url,
        "fingerprint": firing.fingerprint,
    }
    assert body["commonLabels"] == sent["labels"]
    assert body["commonAnnotations"] == sent["annotations"]


def test_a_resolved_alert_carries_its_end() -> None:
    body = build_webhook_body(notification(resolved(alert("checkout_fast_burn"))))
    assert body["status"] == "resolved"
    assert body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2024-01-01T00:42:00Z"


def test_a_group_with_any_firing_alert_is_firing_and_shares_only_common_labels() -> None:
    body = build_webhook_body(
        notification(alert("checkout_fast_burn"), resolved(alert("orders_exhausted")))
    )
    assert body["status"] == "firing"
    assert [a["status"] for a in body["alerts"]] == ["firing", "resolved"]
    assert body["commonLabels"] == {"alertname": DEFAULT_ALERTNAME, "severity": "page"}
    assert body["commonAnnotations"] == {}


def test_max_alerts_cuts_the_list_and_says_how_many_were_cut() -> None:
    crowd = [numbered(alert("search_slow_burn"), i) for i in range(5)]
    body = build_webhook_body(notification(*crowd), max_alerts=2)
    assert [a["labels"]["slo"] for a in body["alerts"]] == ["search-latency-0", "search-latency-1"]
    assert body["truncatedAlerts"] == 3


def test_an_slo_that_names_its_alert_keeps_its_alertname() -> None:
    plain = alert("checkout_fast_burn")
    named = replace(plain, labels=(*plain.labels, ("alertname", "CheckoutBurn")))
    body = build_webhook_body(notification(named))
    assert body["alerts"][0]["labels"]["alertname"] == "CheckoutBurn"


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with RecordingReceiver() as running:
        yield running


def _notifier(receiver: RecordingReceiver, **extra: Any) -> WebhookNotifier:
    config = WebhookReceiver.model_validate(
        {"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook?token=s3cr3t", **extra}
    )
    return WebhookNotifier(config)


def test_a_signed_webhook_arrives_with_an_hmac_of_the_exact_bytes(
    receiver: RecordingReceiver,
) -> None:
    notifier = _notifier(
        receiver,
        hmac_secret="shared-key",
        headers={"Authorization": "Bearer t0k3n", "X-Team": "payments"},
    )
    note = notification(alert("checkout_fast_burn"), receiver="hook")
    with httpx.Client() as client:
        assert notifier.send(note, client) == Delivered("hook", 200)
    (got,) = receiver.received
    assert got.path == "/hook?token=s3cr3t"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["authorization"] == "Bearer t0k3n"
    assert got.headers["x-team"] == "payments"
    signature = got.headers["x-bytewatch-signature"]
    assert signature.startswith("sha256=")
    assert verify(got.body, "shared-key", signature)
    assert not verify(got.body + b" ", "shared-key", signature)
    assert not verify(got.body, "other-key", signature)
    assert got.json() == build_webhook_body(note)


def test_an_unsigned_webhook_has_no_signature_header(receiver: RecordingReceiver) -> None:
    with httpx.Client() as client:
        _notifier(receiver).send(build_test_notification("hook", T0), client)
    (got,) = receiver.received
    assert "x-bytewatch-signature" not in got.headers
    assert got.json()["alerts"][0]["labels"]["test"] == "true"


def test_the_signature_header_name_is_configurable(receiver: RecordingReceiver) -> None:
    notifier = _notifier(receiver, hmac_secret="k", signature_header="X-Hub-Signature-256")
    with httpx.Client() as client:
        notifier.send(notification(alert("search_slow_burn")), client)
    (got,) = receiver.received
    assert got.headers["x-hub-signature-256"] == sign(got.body, "k")
