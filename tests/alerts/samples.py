"""Test data for the receiver and outbox tests: alerts from ``data/alerts.yaml``, a clock."""

from __future__ import annotations

import functools
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from alerts.model import (
    Alert,
    AlertState,
    Notification,
    NotifyReason,
    Severity,
    WindowBurn,
    labels_of,
)

DATA = Path(__file__).resolve().parent / "data"
T0 = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)


@functools.cache
def _raw_alerts() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DATA / "alerts.yaml").read_text())
    return loaded


def alert(name: str) -> Alert:
    raw = _raw_alerts()[name]
    return Alert(
        slo=raw["slo"],
        severity=Severity(raw["severity"]),
        state=AlertState(raw["state"]),
        labels=labels_of(raw["labels"]),
        annotations=labels_of(raw["annotations"]),
        service=raw["service"],
        objective=raw["objective"],
        period_s=raw["period_s"],
        sli=raw["sli"],
        burns=tuple(WindowBurn(**b) for b in raw["burns"]),
        budget_remaining=raw["budget_remaining"],
        time_to_exhaustion_s=raw["time_to_exhaustion_s"],
        top_error_types=tuple((t, c) for t, c in raw["top_error_types"]),
        incident_started_at=datetime.fromisoformat(raw["incident_started_at"]),
        generator_url=raw["generator_url"],
    )


def alert_names() -> list[str]:
    return sorted(_raw_alerts())


def resolved(firing: Alert, after: timedelta = timedelta(minutes=42)) -> Alert:
    return replace(
        firing,
        state=AlertState.RESOLVED,
        ended_at=firing.incident_started_at + after,
        time_to_exhaustion_s=None,
    )


def numbered(base: Alert, index: int) -> Alert:
    """A distinct alert (own labels, fingerprint and incident) derived from ``base``."""
    labels = dict(base.labels)
    labels["slo"] = f"{base.slo}-{index}"
    return replace(base, slo=f"{base.slo}-{index}", labels=labels_of(labels))


def notification(
    *alerts: Alert,
    receiver: str = "team",
    reason: NotifyReason | None = None,
    created_at: datetime | None = None,
    group_key: str | None = None,
) -> Notification:
    if reason is None:
        firing = any(a.state is AlertState.FIRING for a in alerts)
        reason = NotifyReason.FIRING if firing else NotifyReason.RESOLVED
    first = alerts[0]
    group_labels = labels_of(slo=first.slo)
    return Notification(
        receiver=receiver,
        reason=reason,
        group_key=group_key or f'{{}}:{{slo="{first.slo}"}}',
        group_labels=group_labels,
        alerts=alerts,
        created_at=created_at or first.incident_started_at,
    )


def json_shape(value: Any) -> Any:
    """The JSON types of a document, keys kept: what a typed receiver parses into."""
    if isinstance(value, dict):
        return {k: json_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_shape(value[0])] if value else []
    return type(value).__name__


def webhook_shape(document: dict[str, Any]) -> dict[str, Any]:
    """Label maps hold arbitrary keys: compare them as 'a map of strings'."""
    out: dict[str, Any] = json_shape(document)
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        out[key] = "map[str]str" if all(isinstance(v, str) for v in document[key].values()) else "?"
    for alert_out, alert_in in zip(out["alerts"], document["alerts"], strict=False):
        for key in ("labels", "annotations"):
            ok = all(isinstance(v, str) for v in alert_in[key].values())
            alert_out[key] = "map[str]str" if ok else "?"
    return out


class SimulatedClock:
    """A clock tests move by hand; thread-safe because receivers read it from their threads."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def elapsed(self, since: datetime = T0) -> float:
        return (self() - since).total_seconds()
