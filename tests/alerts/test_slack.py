"""Slack: the Block Kit message says what broke and stays within Slack's limits."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.config import SlackReceiver
from alerts.errors import DeliveryFailed, FinalDeliveryFailure, RetryableDeliveryFailure
from alerts.model import Notification, NotifyReason
from alerts.notifier import Delivered, build_test_notification
from alerts.slack import (
    BUTTON_TEXT_CHARS,
    FIELD_CHARS,
    HEADER_CHARS,
    MAX_BLOCKS,
    MAX_FIELDS,
    SECTION_CHARS,
    SlackNotifier,
    build_slack_message,
)
from tests.alerts.samples import T0, alert, alert_names, notification, numbered, resolved
from tests.conftest import CONFORMANCE

WEBHOOK = "https://hooks.slack.com/services/T000/B000/SLACKSECRET"
CONFIG = SlackReceiver(name="team", type="slack", webhook_url=WEBHOOK)  # type: ignore[arg-type]


def texts(message: dict[str, Any]) -> str:
    """Everything a person can read in the message, as one string."""
    return json.dumps(message, ensure_ascii=False)


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    blocks = message["blocks"]
    assert isinstance(message["text"], str) and message["text"]
    assert 1 <= len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert len(block["text"]["text"]) <= HEADER_CHARS
        elif block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_CHARS
            assert 1 <= len(block.get("fields", [{}])) <= MAX_FIELDS
            assert all(len(f["text"]) <= FIELD_CHARS for f in block.get("fields", []))
        elif block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
        elif block["type"] == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= BUTTON_TEXT_CHARS
                assert button["url"].startswith(("http://", "https://"))
        else:
            pytest.fail(f"unexpected block type {block['type']}")


def every_kind_of_notification() -> list[Any]:
    cases = []
    for name in alert_names():
        cases.append(pytest.param(notification(alert(name)), id=f"{name} firing"))
        cases.append(pytest.param(notification(resolved(alert(name))), id=f"{name} resolved"))
    cases.append(pytest.param(build_test_notification("team", T0), id="test notification"))
    crowd = tuple(numbered(alert("checkout_fast_burn"), i) for i in range(60))
    cases.append(pytest.param(notification(*crowd), id="sixty alerts in one group"))
    huge = replace(
        alert("checkout_fast_burn"),
        service="s" * 400,
        annotations=(("description", "d" * 10_000), ("summary", "x" * 5000)),
        top_error_types=tuple((f"error_type_{i}" * 20, i) for i in range(200)),
    )
    cases.append(pytest.param(notification(huge), id="an alert with enormous texts"))
    return cases


@pytest.mark.parametrize("note", every_kind_of_notification())
def test_every_message_stays_within_slacks_limits(note: Notification) -> None:
    assert_within_slack_limits(build_slack_message(note, CONFIG))


def test_a_firing_page_says_what_broke_how_fast_and_what_is_left() -> None:
    message = build_slack_message(notification(alert("checkout_fast_burn")), CONFIG)
    header, section, context, actions = message["blocks"]
    assert header["text"]["text"] == (
        ":rotating_light: FIRING (page) checkout / checkout-availability"
    )
    assert message["text"] == "[FIRING:page] Checkout is failing: 1.8% of payments get an error"
    assert section["text"]["text"].splitlines() == [
        "*checkout / checkout-availability*: Checkout is failing: 1.8% of payments get an error",
        "*Burn rate* 16.2x over 1h and 18.0x over 5m (threshold 14.4x)",
        "At this rate the error budget is exhausted in ~1d20h.",
        "Most failures are 200 responses whose body says insufficient_balance.",
    ]
    assert [f["text"] for f in section["fields"]] == [
        "*Objective*\n99.9% over 30d",
        "*Budget remaining*\n71.3%",
        "*SLI*\n98.20%",
        "*Time to exhaustion*\n~1d20h",
        "*Severity*\npage",
        "*Top business errors*\ninsufficient_balance (1204), card_declined (311), "
        "fraud_suspected (17)",
    ]
    assert context["elements"][0]["text"].startswith(
        f"incident `{alert('checkout_fast_burn').incident_key}` · started 2024-01-01T00:00:00Z"
    )
    assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == [
        ("Runbook", "https://runbooks.example.com/checkout-availability"),
        ("Source", "http://bytewatch.example:8080/api/v1/slos/checkout-availability"),
    ]


def test_a_slow_burn_without_a_summary_describes_its_burn() -> None:
    message = build_slack_message(notification(alert("search_slow_burn")), CONFIG)
    assert message["text"] == (
        "[FIRING:ticket] search / search-latency: error budget burning 3.4x over 1d (threshold 3x)"
    )
    section = message["blocks"][1]
    assert "*Burn rate* 3.4x over 1d and 3.1x over 2h (threshold 3x)" in section["text"]["text"]
    assert "*Burn rate* 1.3x over 3d and 1.2x over 6h (threshold 1x)" in section["text"]["text"]


def test_an_exhausted_budget_says_so() -> None:
    fields = build_slack_message(notification(alert("orders_exhausted")), CONFIG)["blocks"][1][
        "fields"
    ]
    assert "*Budget remaining*\n-12.0% (exhausted)" in [f["text"] for f in fields]
    assert "*Time to exhaustion*\nalready exhausted" in [f["text"] for f in fields]
    assert "*Objective*\n99.95% over 28d" in [f["text"] for f in fields]


def test_a_resolved_message_says_resolved_and_for_how_long_it_fired() -> None:
    message = build_slack_message(notification(resolved(alert("checkout_fast_burn"))), CONFIG)
    header, section, *_ = message["blocks"]
    assert header["text"]["text"] == (
        ":white_check_mark: RESOLVED (page) checkout / checkout-availability"
    )
    assert message["text"].startswith("[RESOLVED:page] ")
    assert "*Resolved* after 42m." in section["text"]["text"]
    assert "Burn rate" not in section["text"]["text"]
    assert not any("Time to exhaustion" in f["text"] for f in section["fields"])


def test_the_test_notification_is_marked_test_in_header_and_text() -> None:
    message = build_slack_message(build_test_notification("team", T0), CONFIG)
    assert message["blocks"][0]["text"]["text"].startswith(":test_tube: [TEST] FIRING")
    assert message["text"].startswith("[TEST] ")
    assert "not a real incident" in message["text"]


def test_user_text_cannot_inject_slack_markup() -> None:
    message = build_slack_message(notification(alert("orders_exhausted")), CONFIG)
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert "*Top business errors*\n&lt;script&gt;&amp; (3)" in fields


def test_alerts_beyond_the_block_budget_are_counted_firing_first() -> None:
    firing = [numbered(alert("search_slow_burn"), i) for i in range(40)]
    ended = [resolved(numbered(alert("checkout_fast_burn"), i)) for i in range(20)]
    message = build_slack_message(notification(*ended, *firing), CONFIG)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    shown = [b for b in blocks if b["type"] == "section"]
    assert all("RESOLVED" not in b["text"]["text"] for b in shown)
    hidden = 60 - len(shown)
    assert blocks[-1]["elements"][0]["text"] == f"…and {hidden} more alerts not shown here."
    assert blocks[0]["text"]["text"] == ":rotating_light: FIRING: 40 of 60 alerts"


def test_legacy_overrides_are_passed_only_when_set() -> None:
    plain = build_slack_message(notification(alert("checkout_fast_burn")), CONFIG)
    assert set(plain) == {"text", "blocks"}
    custom = CONFIG.model_copy(update={"channel": "#pay", "username": "bytewatch"})
    message = build_slack_message(notification(alert("checkout_fast_burn")), custom)
    assert (message["channel"], message["username"]) == ("#pay", "bytewatch")


def test_the_message_has_the_shape_of_slacks_block_kit_example(conformance: Path) -> None:
    example = json.loads(
        (conformance / "slack" / "_synthesized-blockkit-slo-page.json").read_text()
    )
    minimal = json.loads((conformance / "slack" / "_minimal-incoming-webhook.json").read_text())
    ours = build_slack_message(notification(alert("checkout_fast_burn")), CONFIG)
    assert set(minimal) <= set(ours)
    assert {k for k in example if not k.startswith("_")} == set(ours)
    assert [b["type"] for b in ours["blocks"]] == [b["type"] for b in example["blocks"]]
    for theirs, mine in zip(example["blocks"], ours["blocks"], strict=True):
        assert set(theirs) <= set(mine)
        if "fields" in theirs:
            assert {f["type"] for f in mine["fields"]} == {f["type"] for f in theirs["fields"]}
        if "elements" in theirs:
            assert {e["type"] for e in mine["elements"]} == {e["type"] for e in theirs["elements"]}


def _send_with(response: httpx.Response) -> tuple[Delivered | DeliveryFailed, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        try:
            result: Delivered | DeliveryFailed = SlackNotifier(CONFIG).send(
                notification(alert("checkout_fast_burn")), client
            )
        except DeliveryFailed as exc:
            result = exc
    return result, seen


def test_sending_posts_the_message_as_json_to_the_webhook() -> None:
    result, (request,) = _send_with(httpx.Response(200, text="ok"))
    assert result == Delivered("team", 200)
    assert str(request.url) == WEBHOOK
    assert json.loads(request.content) == build_slack_message(
        notification(alert("checkout_fast_burn")), CONFIG
    )


def slack_error_cases() -> list[Any]:
    codes = json.loads((CONFORMANCE / "slack" / "incoming-webhook-error-codes.json").read_text())
    cases: list[Any] = []
    for status, errors in codes.items():
        if not status.isdigit() or int(status) in (200, 429):
            continue
        kind: type[DeliveryFailed] = (
            RetryableDeliveryFailure if int(status) >= 500 else FinalDeliveryFailure
        )
        cases.extend(
            pytest.param(int(status), error, kind, id=f"{status} {error}") for error in errors
        )
    return cases


@pytest.mark.parametrize(("status", "error", "kind"), slack_error_cases())
def test_slacks_documented_errors_are_final_or_retried_with_their_code(
    status: int, error: str, kind: type[DeliveryFailed]
) -> None:
    result, _ = _send_with(httpx.Response(status, text=error))
    assert isinstance(result, kind)
    assert str(result) == f"receiver 'team': HTTP {status}: {error}"


def test_slacks_rate_limit_is_retried_after_the_time_it_asks() -> None:
    result, _ = _send_with(httpx.Response(429, headers={"Retry-After": "30"}, text="rate_limited"))
    assert isinstance(result, RetryableDeliveryFailure)
    assert result.retry_after is not None
    assert result.retry_after.seconds_from(T0) == 30.0


def test_a_repeat_notification_reads_like_the_first() -> None:
    first = notification(alert("checkout_fast_burn"))
    again = replace(first, reason=NotifyReason.REPEAT, created_at=T0 + timedelta(hours=4))
    assert build_slack_message(first, CONFIG) == build_slack_message(again, CONFIG)
