"""How an alert reads to a person: the words and numbers every receiver shares.

Slack, PagerDuty and the webhook all say "16.2x over 1h", "99.9%" and "~1d20h" the same way,
so a person comparing a page with a Slack thread sees the same numbers. Everything here is pure.
"""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.model import Alert, AlertState, Notification, NotifyReason, WindowBurn

TEST_MARK = "[TEST]"
DEFAULT_ALERTNAME = "SLOErrorBudgetBurn"
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """``300`` → ``5m``, ``5400`` → ``1h30m``, ``158400`` → ``1d20h`` (two units at most)."""
    remaining = round(seconds)
    if remaining <= 0:
        return "0s"
    parts: list[str] = []
    for name, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts[:2])


def format_percent(fraction: float, digits: int = 1) -> str:
    return f"{fraction * 100:.{digits}f}%"


def format_objective(objective: float) -> str:
    """``0.999`` → ``99.9%``, ``0.9995`` → ``99.95%``, ``0.99`` → ``99%``."""
    return f"{round(objective * 100, 4):g}%"


def format_factor(value: float) -> str:
    return f"{value:.1f}x"


def format_threshold(value: float) -> str:
    return f"{round(value, 3):g}x"


def rfc3339(moment: datetime) -> str:
    """UTC with a ``Z``, as Alertmanager, PagerDuty and Slack readers expect."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def headline_burn(alert: Alert) -> WindowBurn | None:
    """The check that explains the alert best: the tripped one with the highest threshold."""
    if not alert.burns:
        return None
    tripped = [b for b in alert.burns if b.tripped]
    if tripped:
        return max(tripped, key=lambda b: b.factor)
    return max(alert.burns, key=lambda b: b.long_burn / b.factor if b.factor else 0.0)


def burn_text(burn: WindowBurn) -> str:
    return (
        f"{format_factor(burn.long_burn)} over {format_duration(burn.long_window_s)} and "
        f"{format_factor(burn.short_burn)} over {format_duration(burn.short_window_s)} "
        f"(threshold {format_threshold(burn.factor)})"
    )


def budget_text(alert: Alert) -> str:
    text = format_percent(alert.budget_remaining)
    return f"{text} (exhausted)" if alert.budget_remaining <= 0 else text


def exhaustion_text(alert: Alert) -> str:
    if alert.time_to_exhaustion_s is None:
        return "not burning"
    if alert.time_to_exhaustion_s <= 0:
        return "already exhausted"
    return f"~{format_duration(alert.time_to_exhaustion_s)}"


def top_errors_text(alert: Alert, limit: int = 5) -> str:
    shown = alert.top_error_types[:limit]
    text = ", ".join(f"{name} ({count})" for name, count in shown)
    hidden = len(alert.top_error_types) - len(shown)
    return f"{text}, +{hidden} more" if hidden > 0 else text


def objective_text(alert: Alert) -> str:
    return f"{format_objective(alert.objective)} over {format_duration(alert.period_s)}"


def is_test(notification: Notification) -> bool:
    return notification.reason is NotifyReason.TEST


def status_word(alert: Alert) -> str:
    return "RESOLVED" if alert.state is AlertState.RESOLVED else "FIRING"


def alert_title(alert: Alert) -> str:
    return f"{alert.service} / {alert.slo}"


def alert_summary(alert: Alert) -> str:
    """One line: the ``summary`` annotation when the SLO has one, else what is burning."""
    summary = alert.annotation("summary")
    if summary:
        return summary
    if alert.state is AlertState.RESOLVED:
        return f"{alert_title(alert)}: error budget burn is back under its thresholds"
    burn = headline_burn(alert)
    if burn is None:
        return f"{alert_title(alert)}: error budget burn rate is too high"
    return (
        f"{alert_title(alert)}: error budget burning {format_factor(burn.long_burn)} "
        f"over {format_duration(burn.long_window_s)} "
        f"(threshold {format_threshold(burn.factor)})"
    )


def resolved_after(alert: Alert) -> str | None:
    if alert.ended_at is None:
        return None
    return format_duration((alert.ended_at - alert.incident_started_at).total_seconds())


def alert_labels(alert: Alert) -> dict[str, str]:
    """The labels as Alertmanager-minded receivers expect them: always with ``alertname``."""
    labels = dict(alert.labels)
    labels.setdefault("alertname", DEFAULT_ALERTNAME)
    return labels


def bytewatch_annotations(alert: Alert) -> dict[str, str]:
    """bytewatch's numbers, in words, beside the SLO's own annotations (which win on a clash):
    what an Alertmanager receiver already shows."""
    extra = {"objective": objective_text(alert), "budget_remaining": budget_text(alert)}
    headline = headline_burn(alert)
    if headline is not None:
        extra["burn_rates"] = "; ".join(burn_text(b) for b in alert.burns)
    if alert.time_to_exhaustion_s is not None:
        extra["time_to_exhaustion"] = exhaustion_text(alert)
    if alert.top_error_types:
        extra["top_error_types"] = top_errors_text(alert)
    return {**extra, **dict(alert.annotations)}
