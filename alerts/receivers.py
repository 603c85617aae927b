"""From receiver configuration to notifiers: the one place that knows every integration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from alerts.alertmanager import AlertmanagerNotifier
from alerts.config import (
    AlertmanagerReceiver,
    PagerDutyReceiver,
    ReceiverConfig,
    ReceiversConfig,
    SlackReceiver,
    WebhookReceiver,
)
from alerts.notifier import Notifier
from alerts.pagerduty import PagerDutyNotifier
from alerts.slack import SlackNotifier
from alerts.webhook import WebhookNotifier

Clock = Callable[[], datetime]


def build_notifier(config: ReceiverConfig, clock: Clock) -> Notifier:
    match config:
        case SlackReceiver():
            return SlackNotifier(config)
        case PagerDutyReceiver():
            return PagerDutyNotifier(config)
        case WebhookReceiver():
            return WebhookNotifier(config)
        case AlertmanagerReceiver():
            return AlertmanagerNotifier(config, clock)


def build_notifiers(config: ReceiversConfig, clock: Clock) -> dict[str, Notifier]:
    """Every configured receiver by name (what the outbox delivers through)."""
    return {receiver.name: build_notifier(receiver, clock) for receiver in config.receivers}


def notifier_named(config: ReceiversConfig, name: str, clock: Clock) -> Notifier:
    """The notifier for ``bytewatch alert test --receiver NAME``; ``UnknownReceiver`` if none."""
    return build_notifier(config.named(name), clock)


def new_http_client(timeout_s: float = 10.0) -> httpx.Client:
    """The HTTP client notifications go out through (httpx stays inside ``alerts``)."""
    return httpx.Client(timeout=timeout_s)
