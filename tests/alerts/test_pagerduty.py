"""PagerDuty: every event validates against Events API v2, and one incident is one dedup key."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from alerts.config import PagerDutyReceiver
from alerts.errors import FinalDeliveryFailure, RetryableDeliveryFailure
from alerts.model import Notification, NotifyReason
from alerts.notifier import Delivered, build_test_notification
from alerts.pagerduty import PagerDutyNotifier, build_pagerduty_events
from tests.alerts.samples import T0, alert, alert_names, notification, numbered, resolved
from tests.conftest import CONFORMANCE

ROUTING_KEY = "r0ut1ngk3yR0UT1NGK3Y000000000000"
CONFIG = PagerDutyReceiver(
    name="oncall",
    type="pagerduty",
    routing_key=ROUTING_KEY,  # type: ignore[arg-type]
    client_url="https://bytewatch.example/",
)
EVENTS_V2 = CONFORMANCE / "pagerduty" / "api-schema" / "reference" / "events-v2" / "openapiv3.json"
ENQUEUE_BODY = "/paths/~1enqueue/post/requestBody/content/application~1json/schema"


def events_v2_validator() -> Draft7Validator:
    """The request body schema of ``POST /enqueue``, with its ``$ref``s resolved in place."""
    document = json.loads(EVENTS_V2.read_text())
    uri = "urn:pagerduty:events-v2"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(document, default_specification=DRAFT7)
    )
    return Draft7Validator({"$ref": f"{uri}#{ENQUEUE_BODY}"}, registry=registry)


VALIDATOR = events_v2_validator()
SCHEMA = json.loads(EVENTS_V2.read_text())
DECLARED_TOP = set(
    SCHEMA["paths"]["/enqueue"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"
    ]
)
DECLARED_PAYLOAD = set(SCHEMA["components"]["schemas"]["Payload"]["properties"])


def schema_errors(event: dict[str, Any]) -> list[str]:
    errors = [e.message for e in VALIDATOR.iter_errors(event)]
    # The schema allows unknown keys; PagerDuty ignores them. We send none it does not declare.
    errors += [f"undeclared key {k!r}" for k in set(event) - DECLARED_TOP]
    errors += [
        f"undeclared payload key {k!r}" for k in set(event.get("payload", {})) - DECLARED_PAYLOAD
    ]
    return errors


def every_kind_of_notification() -> list[Any]:
    cases = []
    for name in alert_names():
        cases.append(pytest.param(notification(alert(name)), id=f"{name} firing"))
        cases.append(pytest.param(notification(resolved(alert(name))), id=f"{name} resolved"))
    cases.append(pytest.param(build_test_notification("oncall", T0), id="test notification"))
    mixed = notification(alert("checkout_fast_burn"), resolved(alert("search_slow_burn")))
    cases.append(pytest.param(mixed, id="a group with one firing and one resolved alert"))
    return cases


@pytest.mark.parametrize("note", every_kind_of_notification())
def test_every_event_validates_against_the_events_v2_schema(note: Notification) -> None:
    events = build_pagerduty_events(note, CONFIG, ROUTING_KEY)
    assert events
    for event in events:
        assert schema_errors(event) == []
        if "payload" in event:
            datetime.fromisoformat(event["payload"]["timestamp"])  # a real date-time


REQUEST_EXAMPLES = sorted(
    p for p in (CONFORMANCE / "pagerduty" / "examples").glob("*.json") if "response" not in p.stem
)


@pytest.mark.parametrize("example", REQUEST_EXAMPLES, ids=lambda p: p.stem)
def test_the_validator_accepts_pagerdutys_own_request_examples(example: Path) -> None:
    assert [e.message for e in VALIDATOR.iter_errors(json.loads(example.read_text()))] == []


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        pytest.param(
            lambda e: e["payload"].pop("severity"), "'severity' is a required", id="no severity"
        ),
        pytest.param(
            lambda e: e.update(event_action="page"), "'page' is not one of", id="bad action"
        ),
        pytest.param(lambda e: e.pop("routing_key"), "'routing_key' is a required", id="no key"),
        pytest.param(
            lambda e: e["payload"].update(severity="high"),
            "'high' is not one of",
            id="bad severity",
        ),
    ],
)
def test_the_schema_check_would_catch_a_broken_event(broken: Any, complaint: str) -> None:
    (event,) = build_pagerduty_events(
        notification(alert("checkout_fast_burn")), CONFIG, ROUTING_KEY
    )
    broken(event)
    assert any(complaint in message for message in schema_errors(event))


def test_our_events_have_the_shape_of_pagerdutys_examples() -> None:
    examples = CONFORMANCE / "pagerduty" / "examples"
    trigger_example = json.loads((examples / "developer-docs.trigger.json").read_text())
    resolve_example = json.loads((examples / "developer-docs.resolve.json").read_text())
    trigger, resolve = build_pagerduty_events(
        notification(alert("checkout_fast_burn"), resolved(alert("search_slow_burn"))),
        CONFIG,
        ROUTING_KEY,
    )
    assert set(trigger) <= set(trigger_example)
    assert set(trigger["payload"]) == set(trigger_example["payload"]) - {"component"}
    assert set(resolve) == set(resolve_example)


def test_a_trigger_carries_the_numbers_behind_the_page() -> None:
    (event,) = build_pagerduty_events(
        notification(alert("checkout_fast_burn")), CONFIG, ROUTING_KEY
    )
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    payload = event["payload"]
    assert payload["summary"] == (
        "[FIRING:page] Checkout is failing: 1.8% of payments get an error"
    )
    assert payload["severity"] == "critical"
    assert payload["source"] == "checkout"
    assert payload["timestamp"] == "2024-01-01T00:00:00Z"
    details = payload["custom_details"]
    assert details["objective"] == "99.9%"
    assert details["budget_remaining"] == "71.3%"
    assert details["time_to_exhaustion"] == "~1d20h"
    assert details["sli"] == "98.200%"
    assert details["burn_rates"][0] == {
        "windows": "1h/5m",
        "long_burn": 16.2,
        "short_burn": 18.0,
        "threshold": 14.4,
        "tripped": True,
    }
    assert details["burn_rates"][1]["tripped"] is False
    assert details["top_business_errors"] == {
        "insufficient_balance": 1204,
        "card_declined": 311,
        "fraud_suspected": 17,
    }
    assert event["links"] == [
        {"href": "https://runbooks.example.com/checkout-availability", "text": "Runbook"},
        {
            "href": "http://bytewatch.example:8080/api/v1/slos/checkout-availability",
            "text": "bytewatch",
        },
    ]
    assert event["client"] == "bytewatch"
    assert event["client_url"] == "https://bytewatch.example/"


def test_the_route_label_becomes_the_component() -> None:
    (event,) = build_pagerduty_events(notification(alert("search_slow_burn")), CONFIG, ROUTING_KEY)
    assert event["payload"]["component"] == "/api/search"


@pytest.mark.parametrize(
    ("name", "mapping", "expected"),
    [
        pytest.param("checkout_fast_burn", None, "critical", id="a page is critical by default"),
        pytest.param("search_slow_burn", None, "warning", id="a ticket is a warning by default"),
        pytest.param(
            "search_slow_burn", {"ticket": "info"}, "info", id="the mapping is configurable"
        ),
        pytest.param("checkout_fast_burn", {"page": "error"}, "error", id="pages can be errors"),
    ],
)
def test_severity_maps_from_page_and_ticket(
    name: str, mapping: dict[str, str] | None, expected: str
) -> None:
    config = (
        CONFIG
        if mapping is None
        else PagerDutyReceiver.model_validate(
            {"name": "o", "type": "pagerduty", "routing_key": "k", "severity": mapping}
        )
    )
    (event,) = build_pagerduty_events(notification(alert(name)), config, ROUTING_KEY)
    assert event["payload"]["severity"] == expected


def test_a_test_notification_is_info_marked_test_and_resolved_by_the_same_key() -> None:
    (trigger,) = build_pagerduty_events(build_test_notification("oncall", T0), CONFIG, ROUTING_KEY)
    (resolve,) = build_pagerduty_events(
        build_test_notification("oncall", T0, resolved=True), CONFIG, ROUTING_KEY
    )
    assert trigger["payload"]["severity"] == "info"
    assert trigger["payload"]["summary"].startswith("[TEST] ")
    assert "test" in trigger["payload"]["custom_details"]
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


def test_the_dedup_key_is_the_incident_key_through_retries_repeats_and_resolution() -> None:
    firing = alert("checkout_fast_burn")
    first = notification(firing)
    repeat = replace(first, reason=NotifyReason.REPEAT, created_at=T0 + timedelta(hours=4))
    later_numbers = notification(replace(firing, budget_remaining=0.2, sli=0.95))
    closing = notification(resolved(firing))
    keys = {
        event["dedup_key"]
        for note in (first, first, repeat, later_numbers, closing)
        for event in build_pagerduty_events(note, CONFIG, ROUTING_KEY)
    }
    assert keys == {firing.incident_key}
    next_incident = replace(firing, incident_started_at=T0 + timedelta(days=1))
    (event,) = build_pagerduty_events(notification(next_incident), CONFIG, ROUTING_KEY)
    assert event["dedup_key"] != firing.incident_key, "a new incident pages again"


def test_a_very_long_summary_is_cut_to_pagerdutys_limit() -> None:
    long = replace(alert("checkout_fast_burn"), annotations=(("summary", "x" * 5000),))
    (event,) = build_pagerduty_events(notification(long), CONFIG, ROUTING_KEY)
    assert len(event["payload"]["summary"]) == 1024


def _send(note: Notification, *responses: httpx.Response) -> tuple[Any, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return queue.pop(0) if queue else httpx.Response(202, json={"status": "success"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        try:
            return PagerDutyNotifier(CONFIG).send(note, client), seen
        except (FinalDeliveryFailure, RetryableDeliveryFailure) as exc:
            return exc, seen


def test_a_group_sends_one_event_per_alert_in_order() -> None:
    crowd = [numbered(alert("checkout_fast_burn"), i) for i in range(3)]
    receipt, seen = _send(notification(*crowd))
    assert receipt == Delivered("oncall", 202, requests=3)
    assert [e["dedup_key"] for e in seen] == [a.incident_key for a in crowd]


def test_pagerdutys_400_is_final_and_quotes_its_error() -> None:
    error = (
        CONFORMANCE / "pagerduty" / "examples" / "api-schema.response.Error.response.json"
    ).read_text()
    result, _ = _send(notification(alert("checkout_fast_burn")), httpx.Response(400, text=error))
    assert isinstance(result, FinalDeliveryFailure)
    assert "Event object format is unrecognized" in str(result)


def test_pagerdutys_429_is_retried() -> None:
    result, _ = _send(notification(alert("checkout_fast_burn")), httpx.Response(429))
    assert isinstance(result, RetryableDeliveryFailure)
