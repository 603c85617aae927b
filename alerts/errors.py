"""Alerting's exceptions, in one place.

AlertingError
├── ReceiverConfigError          a receiver's configuration is invalid; the message names the
│                                source (file and line when known) and the field, never a secret
├── UnknownReceiver              no receiver has that name (``bytewatch alert test --receiver``)
├── DeliveryFailed               one notification did not reach its receiver
│   ├── RetryableDeliveryFailure 429, 5xx, a timeout or a connection error: try again later,
│   │                            not before ``retry_after`` when the receiver said so
│   └── FinalDeliveryFailure     any other answer (400, 403, 404, ...): retrying cannot help
├── OutboxError                  the outbox database cannot be opened or is not an outbox
├── RoutingError
│   ├── MatcherSyntaxError       not Alertmanager matcher syntax (also a ValueError, so pydantic
│   │                            reports it at the field)
│   └── RoutingConfigError       the routing tree names receivers that do not exist
├── AlertStateError
│   ├── InvalidEvaluation        an evaluation for another alert, or a naive datetime
│   └── CorruptAlertState        persisted alert or group state does not parse
└── SilenceError
    ├── InvalidSilence           a silence that cannot be created (which field and why)
    ├── SilenceNotFound          no silence has that id
    ├── SilenceAlreadyExpired    the silence has already ended
    └── SilenceStoreError        the silence database cannot be used

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


class RoutingError(AlertingError):
    """Base class of the routing errors."""


class MatcherSyntaxError(RoutingError, ValueError):
    """A matcher string is not valid Alertmanager matcher syntax; the message says where."""


class RoutingConfigError(RoutingError):
    """The routing tree refers to receivers that are not defined.

    ``problems`` holds one line per problem, each starting with the field's path.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class AlertStateError(AlertingError):
    """Base class of the alert state errors."""


class InvalidEvaluation(AlertStateError, ValueError):
    """``step`` was given an evaluation for another alert, or a naive datetime."""


class CorruptAlertState(AlertStateError):
    """Persisted alert state does not parse; the message names the field and what was wrong."""


class SilenceError(AlertingError):
    """Base class of the silence errors."""


class InvalidSilence(SilenceError, ValueError):
    """The silence asked for cannot be created; the message says which field and why."""


class SilenceNotFound(SilenceError, LookupError):
    """No silence has the given id."""


class SilenceAlreadyExpired(SilenceError):
    """The silence has already ended."""


class SilenceStoreError(SilenceError):
    """The silence database cannot be used (path, permissions, corruption)."""
