"""Generic webhooks that speak Alertmanager's webhook format (``version: "4"``).

Anything written for Alertmanager's ``webhook_config`` (chat bridges, ticketing glue, on-call
tools) works unchanged: same keys, same time format, the zero time for a firing alert's
``endsAt``, ``truncatedAlerts`` when ``max_alerts`` cuts the list. bytewatch's numbers (burn
rates, budget left) travel as annotations, the one place such receivers already show.

With ``hmac_secret`` set, ``X-Bytewatch-Signature: sha256=<hex>`` carries an HMAC-SHA256 of the
exact body bytes, so the receiver can check the body came from us and was not altered.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import httpx

from alerts.config import WebhookReceiver
from alerts.describe import alert_labels, bytewatch_annotations, rfc3339
from alerts.model import Alert, AlertState, Notification
from alerts.notifier import (
    ConfiguredNotifier,
    Delivered,
    header_secrets,
    json_body,
    post,
    url_secrets,
)

WEBHOOK_VERSION = "4"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: what Alertmanager sends for "not ended"


def _status(alert: Alert) -> str:
    return "resolved" if alert.state is AlertState.RESOLVED else "firing"


def webhook_alert(alert: Alert) -> dict[str, Any]:
    ended = alert.ended_at if alert.state is AlertState.RESOLVED else None
    return {
        "status": _status(alert),
        "labels": alert_labels(alert),
        "annotations": bytewatch_annotations(alert),
        "startsAt": rfc3339(alert.incident_started_at),
        "endsAt": rfc3339(ended) if ended is not None else ZERO_TIME,
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def _common(mappings: list[dict[str, str]]) -> dict[str, str]:
    if not mappings:
        return {}
    common = dict(mappings[0])
    for mapping in mappings[1:]:
        common = {k: v for k, v in common.items() if mapping.get(k) == v}
    return common


def build_webhook_body(
    notification: Notification, *, max_alerts: int = 0, external_url: str = ""
) -> dict[str, Any]:
    """The Alertmanager webhook body.

    As in Alertmanager, ``max_alerts`` cuts the list first and status and common labels
    describe the alerts that are sent.
    """
    everything = notification.alerts
    kept = everything[:max_alerts] if max_alerts > 0 else everything
    alerts = [webhook_alert(a) for a in kept]
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": WEBHOOK_VERSION,
        "groupKey": notification.group_key,
        "truncatedAlerts": len(everything) - len(kept),
        "status": "firing" if firing else "resolved",
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(body: bytes, secret: str, header_value: str) -> bool:
    """What a receiver does with the header (constant-time compare)."""
    return hmac.compare_digest(sign(body, secret), header_value)


@dataclass(frozen=True, slots=True)
class WebhookNotifier(ConfiguredNotifier):
    config: WebhookReceiver

    def send(self, notification: Notification, client: httpx.Client) -> Delivered:
        config = self.config
        body = json_body(
            build_webhook_body(
                notification, max_alerts=config.max_alerts, external_url=config.external_url
            )
        )
        headers = {name: value.get_secret_value() for name, value in config.headers.items()}
        secrets = [*url_secrets(config.url.get_secret_value()), *header_secrets(headers.values())]
        if config.hmac_secret is not None:
            key = config.hmac_secret.get_secret_value()
            headers[config.signature_header] = sign(body, key)
            secrets.append(key)
        return post(
            client,
            receiver=self.name,
            url=config.url.get_secret_value(),
            body=body,
            headers=headers,
            timeout_s=config.timeout_s,
            secrets=secrets,
        )
