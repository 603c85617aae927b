"""Alerting's records: what the evaluator hands over and what receivers are sent.

These are plain values (only ``Severity`` and label sets come from ``slo.model``), so that every
notifier can be built and tested from an ``Alert`` alone. All are frozen; mappings are stored
as sorted tuples of pairs so that records hash, compare and serialise the same way every time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# One definition of severities and label sets for both packages (alerts may import slo.model).
from slo.model import Labels, Severity, labels_of

__all__ = [
    "Alert",
    "AlertState",
    "Labels",
    "Notification",
    "NotifyReason",
    "Severity",
    "WindowBurn",
    "alert_fingerprint",
    "labels_of",
]


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"  # the condition holds, but not yet for the hold period
    FIRING = "firing"
    RESOLVED = "resolved"


class NotifyReason(StrEnum):
    FIRING = "firing"  # first notification of an incident
    REPEAT = "repeat"  # still firing after the repeat interval
    RESOLVED = "resolved"
    TEST = "test"  # `bytewatch alert test`: clearly marked, never a real incident


@dataclass(frozen=True, slots=True)
class WindowBurn:
    """One multiwindow check: both windows must burn faster than ``factor`` to trip."""

    long_window_s: float
    short_window_s: float
    factor: float
    long_burn: float
    short_burn: float

    @property
    def tripped(self) -> bool:
        # Strictly above, as in the SRE Workbook and Sloth (slo.burn agrees).
        return self.long_burn > self.factor and self.short_burn > self.factor


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert per SLO and severity.

    ``fingerprint`` identifies the alert (SLO, severity, labels) across restarts.
    ``incident_started_at`` marks one incident of it: together they are the PagerDuty dedup key
    and the outbox's deduplication key, so a retry or a restart never pages twice.
    """

    slo: str
    severity: Severity
    state: AlertState
    labels: Labels  # includes slo, severity, service and the SLO's own labels
    annotations: Labels  # summary, description, runbook_url, ...
    service: str
    objective: float  # e.g. 0.999
    period_s: float  # the SLO's rolling period
    sli: float | None  # the SLI over the longest alert window, when known
    burns: tuple[WindowBurn, ...]
    budget_remaining: float  # fraction of the period's error budget left (may be negative)
    time_to_exhaustion_s: float | None  # at the current burn rate; None when not burning
    top_error_types: tuple[tuple[str, int], ...]  # (error type, count), most frequent first
    incident_started_at: datetime
    ended_at: datetime | None = None
    generator_url: str = ""

    @property
    def fingerprint(self) -> str:
        return alert_fingerprint(self.labels)

    @property
    def incident_key(self) -> str:
        """Stable for one incident of this alert, across retries and restarts."""
        started = int(self.incident_started_at.timestamp())
        return f"{self.fingerprint}-{started}"

    def label(self, name: str, default: str = "") -> str:
        return dict(self.labels).get(name, default)

    def annotation(self, name: str, default: str = "") -> str:
        return dict(self.annotations).get(name, default)


def alert_fingerprint(labels: Labels) -> str:
    """A short stable hash of the label set (what Alertmanager calls a fingerprint)."""
    digest = hashlib.sha256()
    for name, value in labels:
        digest.update(name.encode())
        digest.update(b"\xff")
        digest.update(value.encode())
        digest.update(b"\xff")
    return digest.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Notification:
    """What one receiver is sent once: a group of alerts that share the group labels."""

    receiver: str
    reason: NotifyReason
    group_key: str  # route + group labels: identifies the group across notifications
    group_labels: Labels
    alerts: tuple[Alert, ...]
    created_at: datetime

    @property
    def dedup_key(self) -> str:
        """The outbox stores one notification per key; re-enqueueing the same one is a no-op."""
        parts = [self.receiver, self.reason.value, self.group_key]
        parts.extend(sorted(f"{a.incident_key}:{a.state.value}" for a in self.alerts))
        if self.reason in (NotifyReason.REPEAT, NotifyReason.TEST):
            parts.append(str(int(self.created_at.timestamp())))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
