"""PagerDuty Events API v2.

One event per alert: ``trigger`` while it fires, ``resolve`` when it ends, both with
``dedup_key = Alert.incident_key``. PagerDuty folds every trigger with the same key into one
incident, so a retry, a restart or a repeat notification can never page twice; the resolve
closes exactly the incident the trigger opened. ``build_pagerduty_events`` is pure and every
event it builds validates against PagerDuty's published Events v2 schema (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from alerts.config import PagerDutyReceiver
from alerts.describe import (
    TEST_MARK,
    alert_summary,
    budget_text,
    exhaustion_text,
    format_duration,
    format_objective,
    format_percent,
    is_test,
    rfc3339,
    status_word,
)
from alerts.model import Alert, AlertState, Notification
from alerts.notifier import ConfiguredNotifier, Delivered, json_body, post

SUMMARY_CHARS = 1024  # PagerDuty truncates longer summaries
EVENT_CLASS = "slo_error_budget_burn"


def _custom_details(alert: Alert, test: bool) -> dict[str, Any]:
    details: dict[str, Any] = {
        "slo": alert.slo,
        "service": alert.service,
        "severity": alert.severity.value,
        "objective": format_objective(alert.objective),
        "period": format_duration(alert.period_s),
        "budget_remaining": budget_text(alert),
        "time_to_exhaustion": exhaustion_text(alert),
        "burn_rates": [
            {
                "windows": (
                    f"{format_duration(b.long_window_s)}/{format_duration(b.short_window_s)}"
                ),
                "long_burn": round(b.long_burn, 3),
                "short_burn": round(b.short_burn, 3),
                "threshold": b.factor,
                "tripped": b.tripped,
            }
            for b in alert.burns
        ],
        "top_business_errors": dict(alert.top_error_types),
        "labels": dict(alert.labels),
        "incident_started_at": rfc3339(alert.incident_started_at),
        "fingerprint": alert.fingerprint,
    }
    if alert.sli is not None:
        details["sli"] = format_percent(alert.sli, 3)
    description = alert.annotation("description")
    if description:
        details["description"] = description
    if test:
        details["test"] = "This is a test notification from `bytewatch alert test`."
    return details


def _links(alert: Alert) -> list[dict[str, str]]:
    candidates = (
        ("Runbook", alert.annotation("runbook_url")),
        ("Dashboard", alert.annotation("dashboard_url")),
        ("bytewatch", alert.generator_url),
    )
    return [
        {"href": url, "text": text}
        for text, url in candidates
        if url.startswith(("http://", "https://"))
    ]


def trigger_event(
    alert: Alert, config: PagerDutyReceiver, routing_key: str, *, test: bool = False
) -> dict[str, Any]:
    prefix = f"{TEST_MARK} " if test else ""
    summary = f"{prefix}[{status_word(alert)}:{alert.severity.value}] {alert_summary(alert)}"
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.incident_key,
        "payload": {
            "summary": summary[:SUMMARY_CHARS],
            "timestamp": rfc3339(alert.incident_started_at),
            # A test must not wake anyone whose urgency rules key on severity.
            "severity": "info" if test else config.severity.get(alert.severity, "critical"),
            "source": config.source or alert.service,
            "group": alert.service,
            "class": EVENT_CLASS,
            "custom_details": _custom_details(alert, test),
        },
        "client": config.client,
    }
    route = alert.label("route")
    if route:
        event["payload"]["component"] = route
    if config.client_url:
        event["client_url"] = config.client_url
    links = _links(alert)
    if links:
        event["links"] = links
    return event


def resolve_event(alert: Alert, routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": alert.incident_key}


def build_pagerduty_events(
    notification: Notification, config: PagerDutyReceiver, routing_key: str
) -> list[dict[str, Any]]:
    """The events to send, in order. Alerts neither firing nor resolved send nothing."""
    test = is_test(notification)
    events: list[dict[str, Any]] = []
    for alert in notification.alerts:
        if alert.state is AlertState.FIRING:
            events.append(trigger_event(alert, config, routing_key, test=test))
        elif alert.state is AlertState.RESOLVED:
            events.append(resolve_event(alert, routing_key))
    return events


@dataclass(frozen=True, slots=True)
class PagerDutyNotifier(ConfiguredNotifier):
    config: PagerDutyReceiver

    def send(self, notification: Notification, client: httpx.Client) -> Delivered:
        routing_key = self.config.routing_key.get_secret_value()
        events = build_pagerduty_events(notification, self.config, routing_key)
        status: int | None = None
        # Sent one by one and all again on a retry: PagerDuty deduplicates by dedup_key, so an
        # event that already went through is a no-op the second time.
        for event in events:
            receipt = post(
                client,
                receiver=self.name,
                url=self.config.url,
                body=json_body(event),
                timeout_s=self.config.timeout_s,
                secrets=(routing_key,),
            )
            status = receipt.status
        return Delivered(receiver=self.name, status=status, requests=len(events))
