"""Pushing alerts to a Prometheus Alertmanager (``POST /api/v2/alerts``), as Prometheus does.

Alertmanager treats a pushed alert as a lease: it fires until ``endsAt``, and a sender that goes
quiet has its alerts resolved for it. So, like Prometheus, a firing alert carries
``endsAt = now + 4 * resend_interval`` and is pushed again every ``resend_interval`` while it
fires (the outbox does the re-sending; see ``Notifier.resend_interval_s``); a resolved alert is
pushed once more with its real ``endsAt``, which resolves it at once. Alertmanager then groups,
silences, inhibits and routes as it is configured to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from alerts.config import AlertmanagerReceiver
from alerts.describe import alert_labels, bytewatch_annotations, rfc3339
from alerts.model import Alert, AlertState, Notification
from alerts.notifier import ConfiguredNotifier, Delivered, header_secrets, json_body, post

LEASE_RESENDS = 4  # Prometheus: endsAt = now + 4 * max(evaluation interval, resend delay)


def postable_alert(alert: Alert, now: datetime, resend_interval_s: float) -> dict[str, Any]:
    if alert.state is AlertState.RESOLVED:
        ends_at = alert.ended_at or now
    else:
        ends_at = now + timedelta(seconds=LEASE_RESENDS * resend_interval_s)
    # Prometheus semantics: a label with an empty value is no label (Alertmanager rejects it).
    labels = {name: value for name, value in alert_labels(alert).items() if value}
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": {k: v for k, v in bytewatch_annotations(alert).items() if v},
        "startsAt": rfc3339(alert.incident_started_at),
        "endsAt": rfc3339(ends_at),
    }
    if alert.generator_url:
        body["generatorURL"] = alert.generator_url
    return body


def build_alertmanager_alerts(
    notification: Notification, now: datetime, resend_interval_s: float
) -> list[dict[str, Any]]:
    """The ``postableAlerts`` body: firing and resolved alerts; others are not Alertmanager's."""
    return [
        postable_alert(alert, now, resend_interval_s)
        for alert in notification.alerts
        if alert.state in (AlertState.FIRING, AlertState.RESOLVED)
    ]


def alerts_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/api/v2/alerts"


@dataclass(frozen=True, slots=True)
class AlertmanagerNotifier(ConfiguredNotifier):
    config: AlertmanagerReceiver
    clock: Callable[[], datetime]  # endsAt is a lease from the moment of sending, not of enqueueing

    def send(self, notification: Notification, client: httpx.Client) -> Delivered:
        alerts = build_alertmanager_alerts(
            notification, self.clock(), self.config.resend_interval_s
        )
        if not alerts:
            return Delivered(receiver=self.name, status=None, requests=0)
        headers = {name: value.get_secret_value() for name, value in self.config.headers.items()}
        return post(
            client,
            receiver=self.name,
            url=alerts_url(self.config.url),
            body=json_body(alerts),
            headers=headers,
            timeout_s=self.config.timeout_s,
            secrets=header_secrets(headers.values()),
        )
