"""No receiver's secret shows in an error, a traceback, a repr or a log line, whatever happens."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from alerts.config import ReceiversConfig, parse_receivers
from alerts.errors import DeliveryFailed
from alerts.notifier import Notifier
from alerts.receivers import build_notifier
from tests.alerts.receiver import Received, RecordingReceiver, Reply
from tests.alerts.samples import alert, notification

SECRETS = {
    "slack": ["SLACKPATHSECRET"],
    "pagerduty": ["PDROUTINGKEYSECRET"],
    "webhook": ["HOOKPATHSECRET", "HOOKQUERYSECRET", "HMACKEYSECRET", "HEADERTOKENSECRET"],
    "alertmanager": ["AMTOKENSECRET"],
}


def receivers(base: str) -> ReceiversConfig:
    return parse_receivers(
        {
            "receivers": [
                {
                    "name": "slack",
                    "type": "slack",
                    "webhook_url": f"{base}/services/SLACKPATHSECRET",
                    "timeout_s": 0.3,
                },
                {
                    "name": "pagerduty",
                    "type": "pagerduty",
                    "routing_key": "PDROUTINGKEYSECRET",
                    "url": f"{base}/v2/enqueue",
                    "timeout_s": 0.3,
                },
                {
                    "name": "webhook",
                    "type": "webhook",
                    "url": f"{base}/HOOKPATHSECRET?token=HOOKQUERYSECRET",
                    "hmac_secret": "HMACKEYSECRET",
                    "headers": {"Authorization": "Bearer HEADERTOKENSECRET"},
                    "timeout_s": 0.3,
                },
                {
                    "name": "alertmanager",
                    "type": "alertmanager",
                    "url": base,
                    "headers": {"Authorization": "Bearer AMTOKENSECRET"},
                    "timeout_s": 0.3,
                },
            ]
        }
    )


def echo_everything(request: Received) -> Reply:
    """The worst receiver: its error echoes the path, headers and body it was sent."""
    echoed = f"{request.path} {request.headers} ".encode() + request.body
    return Reply(400, echoed)


def echo_tokens_alone(request: Received) -> Reply:
    """An error that quotes the bearer token without its scheme, and the URL's last segment."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    last = request.path.split("?")[0].rsplit("/", 1)[-1]
    return Reply(403, f"token {token} or id {last} is not allowed".encode())


FAILURES: dict[str, Callable[[Received], Reply]] = {
    "a 400 that echoes the request": echo_everything,
    "a 403 that quotes the token alone": echo_tokens_alone,
    "a 500 that echoes the request": lambda r: Reply(500, echo_everything(r).body),
    "a receiver that hangs": lambda r: Reply(hang=True),
}


@pytest.fixture(params=sorted(FAILURES), ids=str)
def failing_receiver(request: pytest.FixtureRequest) -> Iterator[str]:
    with RecordingReceiver(responder=FAILURES[request.param]) as receiver:
        yield receiver.url


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _clock() -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC)


def everything_said_about(
    notifier: Notifier, caplog: pytest.LogCaptureFixture
) -> tuple[str, DeliveryFailed]:
    with caplog.at_level(logging.DEBUG), httpx.Client() as client:
        try:
            notifier.send(notification(alert("checkout_fast_burn"), receiver=notifier.name), client)
        except DeliveryFailed as exc:
            failure = exc
        else:
            pytest.fail("the send was expected to fail")
    said = "\n".join(
        [
            str(failure),
            repr(failure),
            "".join(traceback.format_exception(failure)),  # with the chained httpx error
            repr(notifier),
            caplog.text,
            *(record.getMessage() for record in caplog.records),
        ]
    )
    return said, failure


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_a_failing_send_says_why_without_a_secret(
    kind: str, failing_receiver: str, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = build_notifier(receivers(failing_receiver).named(kind), _clock)
    said, failure = everything_said_about(notifier, caplog)
    assert failure.receiver == kind
    for secret in SECRETS[kind]:
        assert secret not in said


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_an_unreachable_receiver_is_named_not_addressed(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = build_notifier(receivers(_closed_port_url()).named(kind), _clock)
    said, failure = everything_said_about(notifier, caplog)
    assert "connection failed" in str(failure)
    for secret in SECRETS[kind]:
        assert secret not in said
