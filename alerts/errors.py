"""Alerting's exceptions, in one place.

AlertingError
├── ReceiverConfigError          a receiver's configuration is invalid; the message names the
│                                source (file and line when known) and the field, never a secret
├── UnknownReceiver              no receiver has that name (``bytewatch alert test --receiver``)
├── DeliveryFailed               one notification did not reach its receiver
│   ├── RetryableDeliveryFailure 429, 5xx, a timeout or a connection error: try again later,
│   │                            not before ``retry_after`` when the receiver said so
│   └── FinalDeliveryFailure     any other answer (400, 403, 404, ...): retrying cannot help
└── OutboxError                  the outbox database cannot be opened or is not an outbox

Messages name the receiver, never its URL, routing key or token: a delivery error ends up in
logs, and a receiver's URL is often the secret itself (Slack incoming webhooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


class AlertingError(Exception):
    """Base class of every error raised by ``alerts``."""


class ReceiverConfigError(AlertingError):
    """A receiver configuration is invalid; the message says where and why."""


class UnknownReceiver(AlertingError):
    """No receiver is configured under the requested name."""


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """When a receiver asked us to come back: a delay in seconds or an absolute time."""

    delay_s: float | None = None
    at: datetime | None = None

    def seconds_from(self, now: datetime) -> float:
        if self.delay_s is not None:
            return max(0.0, self.delay_s)
        if self.at is not None:
            return max(0.0, (self.at - now) / timedelta(seconds=1))
        return 0.0


class DeliveryFailed(AlertingError):
    """A notification was not delivered. ``status`` is the HTTP status, None without one."""

    def __init__(self, receiver: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"receiver {receiver!r}: {reason}")
        self.receiver = receiver
        self.reason = reason
        self.status = status


class RetryableDeliveryFailure(DeliveryFailed):
    """The receiver may accept the notification later (rate limited, down, unreachable)."""

    def __init__(
        self,
        receiver: str,
        reason: str,
        status: int | None = None,
        retry_after: RetryAfter | None = None,
    ) -> None:
        super().__init__(receiver, reason, status)
        self.retry_after = retry_after


class FinalDeliveryFailure(DeliveryFailed):
    """The receiver refused the notification; sending it again would be refused again."""


class OutboxError(AlertingError):
    """The outbox database cannot be used."""
