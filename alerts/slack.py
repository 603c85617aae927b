"""Slack incoming webhooks with Block Kit.

One message per notification: a header saying what broke, then per alert the burn rates, the
objective, the budget left, when it runs out, and the business errors behind it. Slack rejects
a message that breaks its limits (``invalid_blocks``), and a rejected page is a lost page, so
every text is cut to its limit and alerts beyond the block budget are counted, not dropped
silently. ``build_slack_message`` is pure; ``SlackNotifier.send`` posts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from alerts.config import SlackReceiver
from alerts.describe import (
    TEST_MARK,
    alert_summary,
    alert_title,
    budget_text,
    burn_text,
    exhaustion_text,
    format_percent,
    is_test,
    objective_text,
    resolved_after,
    rfc3339,
    status_word,
    top_errors_text,
)
from alerts.model import Alert, AlertState, Notification
from alerts.notifier import ConfiguredNotifier, Delivered, json_body, post, url_secrets

# Slack's documented limits (Block Kit reference, incoming webhooks).
MAX_BLOCKS = 50
HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELD_CHARS = 2000
MAX_FIELDS = 10
CONTEXT_ELEMENTS = 10
BUTTON_TEXT_CHARS = 75
URL_CHARS = 3000
BLOCK_ID_CHARS = 255
# Slack cuts the fallback text at 40,000 characters; notifications and screen readers show far
# less, so we keep it to what a lock screen can display.
FALLBACK_CHARS = 3000


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, limit)}


def _emoji(notification: Notification, firing: bool) -> str:
    if is_test(notification):
        return ":test_tube:"
    return ":rotating_light:" if firing else ":white_check_mark:"


def _headline(notification: Notification) -> str:
    alerts = notification.alerts
    firing = [a for a in alerts if a.state is not AlertState.RESOLVED]
    prefix = f"{TEST_MARK} " if is_test(notification) else ""
    if len(alerts) == 1:
        alert = alerts[0]
        return f"{prefix}{status_word(alert)} ({alert.severity.value}) {alert_title(alert)}"
    if firing:
        return f"{prefix}FIRING: {len(firing)} of {len(alerts)} alerts"
    return f"{prefix}RESOLVED: {len(alerts)} alerts"


def _fallback_text(notification: Notification) -> str:
    alerts = notification.alerts
    prefix = f"{TEST_MARK} " if is_test(notification) else ""
    if len(alerts) == 1:
        alert = alerts[0]
        head = f"{prefix}[{status_word(alert)}:{alert.severity.value}] "
        return truncate(head + alert_summary(alert), FALLBACK_CHARS)
    lines = [f"{prefix}{_headline(notification).removeprefix(prefix)}"]
    lines.extend(f"[{status_word(a)}:{a.severity.value}] {alert_summary(a)}" for a in alerts)
    return truncate("\n".join(lines), FALLBACK_CHARS)


def _alert_text(alert: Alert) -> str:
    lines = [f"*{escape_mrkdwn(alert_title(alert))}*: {escape_mrkdwn(alert_summary(alert))}"]
    if alert.state is AlertState.RESOLVED:
        after = resolved_after(alert)
        lines.append("*Resolved*" + (f" after {after}." if after else "."))
    else:
        tripped = [b for b in alert.burns if b.tripped] or list(alert.burns)
        lines.extend(f"*Burn rate* {burn_text(b)}" for b in tripped)
        if alert.time_to_exhaustion_s is not None:
            lines.append(f"At this rate the error budget is exhausted in {exhaustion_text(alert)}.")
    description = alert.annotation("description")
    if description:
        lines.append(escape_mrkdwn(description))
    return "\n".join(lines)


def _alert_fields(alert: Alert) -> list[dict[str, Any]]:
    fields = [
        ("Objective", objective_text(alert)),
        ("Budget remaining", budget_text(alert)),
    ]
    if alert.sli is not None:
        fields.append(("SLI", format_percent(alert.sli, 2)))
    if alert.state is not AlertState.RESOLVED:
        fields.append(("Time to exhaustion", exhaustion_text(alert)))
    fields.append(("Severity", alert.severity.value))
    if alert.top_error_types:
        fields.append(("Top business errors", escape_mrkdwn(top_errors_text(alert))))
    return [_mrkdwn(f"*{name}*\n{value}", FIELD_CHARS) for name, value in fields[:MAX_FIELDS]]


def _is_link(url: str) -> bool:
    return url.startswith(("http://", "https://")) and len(url) <= URL_CHARS


def _alert_blocks(alert: Alert) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": _mrkdwn(_alert_text(alert), SECTION_CHARS),
            "fields": _alert_fields(alert),
        },
        {
            "type": "context",
            "elements": [
                _mrkdwn(
                    f"incident `{alert.incident_key}` · started "
                    f"{rfc3339(alert.incident_started_at)}",
                    SECTION_CHARS,
                )
            ],
        },
    ]
    buttons = [
        (text, url)
        for text, url in (
            ("Runbook", alert.annotation("runbook_url")),
            ("Dashboard", alert.annotation("dashboard_url")),
            ("Source", alert.generator_url),
        )
        if _is_link(url)
    ]
    if buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": _plain(text, BUTTON_TEXT_CHARS), "url": url}
                    for text, url in buttons
                ],
            }
        )
    return blocks


def build_slack_message(notification: Notification, config: SlackReceiver) -> dict[str, Any]:
    """The incoming-webhook body for ``notification``, within Slack's limits."""
    firing = any(a.state is not AlertState.RESOLVED for a in notification.alerts)
    header = f"{_emoji(notification, firing)} {_headline(notification)}"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(header, HEADER_CHARS)}]
    # Firing first: if anything is cut, let it be the good news.
    ordered = sorted(notification.alerts, key=lambda a: a.state is AlertState.RESOLVED)
    shown = 0
    for alert in ordered:
        alert_blocks = _alert_blocks(alert)
        if len(blocks) + len(alert_blocks) > MAX_BLOCKS - 1:  # keep one for the "more" note
            break
        blocks.extend(alert_blocks)
        shown += 1
    hidden = len(ordered) - shown
    if hidden:
        blocks.append(
            {
                "type": "context",
                "elements": [_mrkdwn(f"…and {hidden} more alerts not shown here.", SECTION_CHARS)],
            }
        )
    message: dict[str, Any] = {"text": _fallback_text(notification), "blocks": blocks}
    for key in ("channel", "username", "icon_emoji"):
        value = getattr(config, key)
        if value:
            message[key] = value
    return message


@dataclass(frozen=True, slots=True)
class SlackNotifier(ConfiguredNotifier):
    config: SlackReceiver

    def send(self, notification: Notification, client: httpx.Client) -> Delivered:
        url = self.config.webhook_url.get_secret_value()
        return post(
            client,
            receiver=self.name,
            url=url,
            body=json_body(build_slack_message(notification, self.config)),
            timeout_s=self.config.timeout_s,
            secrets=url_secrets(url),
        )
