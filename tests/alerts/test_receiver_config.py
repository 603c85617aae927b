"""Receiver configuration: every type, every secret source, and errors that say where."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.alertmanager import AlertmanagerNotifier
from alerts.config import (
    AlertmanagerReceiver,
    PagerDutyReceiver,
    ReceiversConfig,
    SecretSources,
    SlackReceiver,
    WebhookReceiver,
    load_receivers_file,
    parse_receivers,
)
from alerts.errors import ReceiverConfigError, UnknownReceiver
from alerts.model import Severity
from alerts.pagerduty import PagerDutyNotifier
from alerts.receivers import build_notifiers, notifier_named
from alerts.slack import SlackNotifier
from alerts.webhook import WebhookNotifier
from tests.alerts.samples import DATA

RECEIVERS = DATA / "receivers"
BAD = sorted((RECEIVERS / "bad").glob("*.yaml"))
ENV = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/SLACKSECRET",
    "HOOK_HMAC_KEY": "hmac-key-secret",
    "HOOK_AUTHORIZATION": "Bearer token-secret",
}
SOURCES = SecretSources(environ=ENV, secrets_dir=RECEIVERS / "secrets")
ALL_SECRETS = [
    "SLACKSECRET",
    "hmac-key-secret",
    "token-secret",
    "r0ut1ngk3y",
    "HOOKSECRETPATH",
]


def _clock() -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def config() -> ReceiversConfig:
    return load_receivers_file(RECEIVERS / "good.yaml", sources=SOURCES)


def test_every_receiver_type_loads_with_its_secrets_from_env_file_and_secrets_dir(
    config: ReceiversConfig,
) -> None:
    slack, pagerduty, webhook, am = config.receivers
    assert isinstance(slack, SlackReceiver)
    assert slack.webhook_url.get_secret_value() == ENV["SLACK_WEBHOOK_URL"]
    assert slack.channel == "#payments-alerts"
    assert isinstance(pagerduty, PagerDutyReceiver)
    assert pagerduty.routing_key.get_secret_value() == "r0ut1ngk3y0000000000000000000000"
    assert pagerduty.severity == {Severity.PAGE: "critical", Severity.TICKET: "info"}
    assert isinstance(webhook, WebhookReceiver)
    assert webhook.url.get_secret_value() == "https://hooks.example/incoming/HOOKSECRETPATH"
    assert webhook.hmac_secret is not None
    assert webhook.hmac_secret.get_secret_value() == "hmac-key-secret"
    assert {k: v.get_secret_value() for k, v in webhook.headers.items()} == {
        "Authorization": "Bearer token-secret",
        "X-Team": "payments",
    }
    assert isinstance(am, AlertmanagerReceiver)
    assert am.resend_interval_s == 30


def test_defaults_follow_the_services_that_receive(config: ReceiversConfig) -> None:
    pagerduty = PagerDutyReceiver.model_validate(
        {"name": "p", "type": "pagerduty", "routing_key": "k"}
    )
    assert pagerduty.url == "https://events.pagerduty.com/v2/enqueue"
    assert pagerduty.severity == {Severity.PAGE: "critical", Severity.TICKET: "warning"}
    webhook = WebhookReceiver.model_validate({"name": "w", "type": "webhook", "url": "http://h/"})
    assert webhook.max_alerts == 0
    assert webhook.signature_header == "X-Bytewatch-Signature"


def test_no_secret_shows_in_the_reprs_of_configs_or_notifiers(config: ReceiversConfig) -> None:
    notifiers = build_notifiers(config, _clock)
    text = repr(config) + str(config) + "".join(repr(n) for n in notifiers.values())
    text += config.model_dump_json()
    for secret in ALL_SECRETS:
        assert secret not in text


def test_each_type_gets_its_own_notifier(config: ReceiversConfig) -> None:
    notifiers = build_notifiers(config, _clock)
    assert [type(n) for n in notifiers.values()] == [
        SlackNotifier,
        PagerDutyNotifier,
        WebhookNotifier,
        AlertmanagerNotifier,
    ]
    assert list(notifiers) == ["team-slack", "oncall", "hook", "central-am"]
    assert notifiers["central-am"].resend_interval_s == 30
    assert notifiers["team-slack"].resend_interval_s is None


def test_asking_for_an_unknown_receiver_lists_the_known_ones(config: ReceiversConfig) -> None:
    with pytest.raises(UnknownReceiver, match=r"no receiver named 'pager' \(known: team-slack,"):
        notifier_named(config, "pager", _clock)


def test_a_secret_reference_to_the_secrets_dir_needs_one(config: ReceiversConfig) -> None:
    with pytest.raises(ReceiverConfigError, match="no secrets directory is set"):
        load_receivers_file(RECEIVERS / "good.yaml", sources=SecretSources(environ=ENV))


def test_a_secret_name_cannot_climb_out_of_the_secrets_dir() -> None:
    data = {"receivers": [{"name": "p", "type": "pagerduty", "routing_key": {"secret": "../x"}}]}
    with pytest.raises(ReceiverConfigError, match="must be a plain file name"):
        parse_receivers(data, sources=SOURCES)


def test_an_empty_configuration_has_no_receivers() -> None:
    assert parse_receivers(None).receivers == []


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BAD, ids=[p.stem.replace("-", " ") for p in BAD])
def test_a_bad_receiver_file_gets_one_precise_message_naming_file_line_and_field(
    path: Path,
) -> None:
    with pytest.raises(ReceiverConfigError) as raised:
        load_receivers_file(path, sources=SOURCES)
    assert str(raised.value) == f"{path}{_expected(path)}"
    assert raised.value.__cause__ is None, "pydantic's traceback (with inputs) is not chained"


def test_a_rejected_secret_is_never_quoted() -> None:
    path = RECEIVERS / "bad" / "url-not-a-url.yaml"
    with pytest.raises(ReceiverConfigError) as raised:
        load_receivers_file(path, sources=SOURCES)
    assert "INLINESECRET" not in str(raised.value)
    assert "hooks.slack.com" not in str(raised.value)
