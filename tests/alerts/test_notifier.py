"""The shared response check, Retry-After, error translation and the test notification."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import httpx
import pytest

from alerts.config import parse_receivers
from alerts.errors import (
    DeliveryFailed,
    FinalDeliveryFailure,
    RetryableDeliveryFailure,
    RetryAfter,
)
from alerts.model import AlertState, NotifyReason
from alerts.notifier import (
    Delivered,
    build_test_notification,
    check_response,
    parse_retry_after,
    post,
    send_test_notification,
)
from alerts.receivers import notifier_named

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        pytest.param(200, Delivered, id="200 is delivered"),
        pytest.param(202, Delivered, id="202 (PagerDuty's accepted) is delivered"),
        pytest.param(204, Delivered, id="204 is delivered"),
        pytest.param(429, RetryableDeliveryFailure, id="429 rate limited is retried"),
        pytest.param(408, RetryableDeliveryFailure, id="408 request timeout is retried"),
        pytest.param(500, RetryableDeliveryFailure, id="500 is retried"),
        pytest.param(502, RetryableDeliveryFailure, id="502 is retried"),
        pytest.param(503, RetryableDeliveryFailure, id="503 is retried"),
        pytest.param(400, FinalDeliveryFailure, id="400 invalid payload is final"),
        pytest.param(403, FinalDeliveryFailure, id="403 forbidden is final"),
        pytest.param(404, FinalDeliveryFailure, id="404 channel not found is final"),
        pytest.param(410, FinalDeliveryFailure, id="410 channel archived is final"),
        pytest.param(301, FinalDeliveryFailure, id="a redirect is final, not followed"),
    ],
)
def test_a_response_status_decides_between_done_retry_and_final(
    status: int, outcome: type[Delivered | DeliveryFailed]
) -> None:
    response = httpx.Response(status, text="invalid_payload" if status == 400 else "")
    if outcome is Delivered:
        assert check_response(response, "team") == Delivered("team", status)
        return
    assert issubclass(outcome, DeliveryFailed)
    with pytest.raises(outcome) as raised:
        check_response(response, "team")
    assert raised.value.status == status


def test_a_rejection_carries_the_receivers_explanation() -> None:
    with pytest.raises(FinalDeliveryFailure, match=r"receiver 'team': HTTP 400: invalid_payload"):
        check_response(httpx.Response(400, text="invalid_payload"), "team")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("30", RetryAfter(delay_s=30.0), id="delay seconds"),
        pytest.param(" 0 ", RetryAfter(delay_s=0.0), id="zero seconds with spaces"),
        pytest.param(
            "Wed, 21 Oct 2015 07:28:00 GMT",
            RetryAfter(at=datetime(2015, 10, 21, 7, 28, tzinfo=UTC)),
            id="HTTP-date",
        ),
        pytest.param(
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            RetryAfter(at=datetime(2015, 10, 21, 7, 28, tzinfo=UTC)),
            id="obsolete RFC 850 date",
        ),
        pytest.param("-5", None, id="a negative delay is ignored"),
        pytest.param("soon", None, id="garbage is ignored"),
        pytest.param(None, None, id="no header"),
    ],
)
def test_retry_after_is_read_as_seconds_or_as_an_http_date(
    header: str | None, expected: RetryAfter | None
) -> None:
    assert parse_retry_after(header) == expected


def test_an_http_date_retry_after_counts_from_the_injected_now() -> None:
    retry_after = parse_retry_after("Mon, 01 Jan 2024 12:00:45 GMT")
    assert retry_after is not None
    assert retry_after.seconds_from(NOW) == 45.0
    assert retry_after.seconds_from(datetime(2024, 1, 1, 13, 0, tzinfo=UTC)) == 0.0


def test_a_429_carries_its_retry_after() -> None:
    response = httpx.Response(429, headers={"Retry-After": "17"})
    with pytest.raises(RetryableDeliveryFailure) as raised:
        check_response(response, "team")
    assert raised.value.retry_after == RetryAfter(delay_s=17.0)


def _client(handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(transport=handler)


def _raising(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("exc", "outcome", "says"),
    [
        pytest.param(
            httpx.ConnectError("[Errno 111] Connection refused"),
            RetryableDeliveryFailure,
            "connection failed (ConnectError: [Errno 111] Connection refused)",
            id="a refused connection is retried",
        ),
        pytest.param(
            httpx.ReadTimeout("timed out"),
            RetryableDeliveryFailure,
            "no answer within 2s (ReadTimeout)",
            id="a read timeout is retried",
        ),
        pytest.param(
            httpx.ConnectTimeout("timed out"),
            RetryableDeliveryFailure,
            "no answer within 2s (ConnectTimeout)",
            id="a connect timeout is retried",
        ),
        pytest.param(
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            RetryableDeliveryFailure,
            "connection failed (RemoteProtocolError",
            id="a dropped connection is retried",
        ),
        pytest.param(
            httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."),
            FinalDeliveryFailure,
            "the URL's scheme is not http or https",
            id="an unsupported scheme is final",
        ),
    ],
)
def test_transport_errors_become_our_errors_with_the_cause_chained(
    exc: Exception, outcome: type[DeliveryFailed], says: str
) -> None:
    with _client(_raising(exc)) as client, pytest.raises(outcome) as raised:
        post(client, receiver="team", url="http://example.invalid/", body=b"{}", timeout_s=2)
    assert says in str(raised.value)
    assert raised.value.__cause__ is exc


def test_post_sends_the_exact_body_as_json_with_our_user_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    with _client(httpx.MockTransport(handler)) as client:
        receipt = post(
            client,
            receiver="team",
            url="http://example.invalid/hook",
            body=b'{"a":1}',
            headers={"X-Extra": "yes"},
            timeout_s=2,
        )
    assert receipt == Delivered("team", 200)
    (request,) = seen
    assert request.content == b'{"a":1}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("bytewatch/")
    assert request.headers["x-extra"] == "yes"


def test_httpx_logs_a_request_without_its_path_or_query(caplog: pytest.LogCaptureFixture) -> None:
    secret_url = "http://example.invalid/services/T000/B000/XXXXSECRET?token=abc"
    with (
        caplog.at_level(logging.DEBUG),
        _client(httpx.MockTransport(lambda r: httpx.Response(200))) as client,
    ):
        post(client, receiver="team", url=secret_url, body=b"{}", timeout_s=2)
    logged = [r for r in caplog.records if r.name == "httpx"]
    assert logged, "httpx logs each request at INFO: the filter must see it"
    text = caplog.text + "".join(r.getMessage() for r in logged)
    assert "XXXXSECRET" not in text
    assert "token=abc" not in text
    assert "http://example.invalid/<redacted>" in text


def test_the_test_notification_is_clearly_marked_and_pages_no_one() -> None:
    firing = build_test_notification("team", NOW)
    resolved = build_test_notification("team", NOW, resolved=True)
    (alert,) = firing.alerts
    assert firing.reason is NotifyReason.TEST
    assert alert.annotation("summary").startswith("[TEST]")
    assert alert.label("test") == "true"
    assert alert.budget_remaining == 1.0
    assert alert.time_to_exhaustion_s is None
    assert resolved.alerts[0].state is AlertState.RESOLVED
    assert resolved.alerts[0].incident_key == alert.incident_key, "the resolve closes the test"
    assert firing.dedup_key != resolved.dedup_key


def _recording_client(seen: list[httpx.Request], status: int = 200) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text="ok")

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_alert_test_pages_pagerduty_at_info_and_closes_the_incident_it_opened() -> None:
    config = parse_receivers(
        {"receivers": [{"name": "oncall", "type": "pagerduty", "routing_key": "k" * 32}]}
    )
    seen: list[httpx.Request] = []
    with _recording_client(seen, 202) as client:
        receipts = send_test_notification(
            notifier_named(config, "oncall", lambda: NOW), client, NOW
        )
    assert receipts == (Delivered("oncall", 202), Delivered("oncall", 202))
    trigger, resolve = (json.loads(r.content) for r in seen)
    assert (trigger["event_action"], trigger["payload"]["severity"]) == ("trigger", "info")
    assert trigger["payload"]["summary"].startswith("[TEST] ")
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"]


def test_alert_test_can_skip_the_resolution_and_reports_a_broken_receiver() -> None:
    config = parse_receivers(
        {"receivers": [{"name": "team", "type": "slack", "webhook_url": "https://hooks.test/x"}]}
    )
    notifier = notifier_named(config, "team", lambda: NOW)
    seen: list[httpx.Request] = []
    with _recording_client(seen) as client:
        assert len(send_test_notification(notifier, client, NOW, resolve=False)) == 1
    assert json.loads(seen[0].content)["text"].startswith("[TEST] ")
    with _recording_client([], 404) as client, pytest.raises(FinalDeliveryFailure, match="404"):
        send_test_notification(notifier, client, NOW)
