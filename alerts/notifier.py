"""What every receiver shares: the ``Notifier`` protocol and the one response check.

A notifier turns one ``Notification`` into HTTP requests through an injected ``httpx.Client``
and says how it went: ``Delivered`` on 2xx, else it raises ``RetryableDeliveryFailure`` (429,
408, 5xx, timeouts, connection errors; with the receiver's ``Retry-After`` when it sent one) or
``FinalDeliveryFailure`` (any other answer). Deciding *whether* to retry lives here; *when* and
*how often* is the outbox's business.

Secrets stay out of every message: errors name the receiver, response excerpts are scrubbed of
the receiver's secrets, and httpx's own request log line is cut down to scheme and host (its
path is the credential for Slack incoming webhooks).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from alerts.config import ReceiverConfig
from alerts.describe import TEST_MARK
from alerts.errors import FinalDeliveryFailure, RetryableDeliveryFailure, RetryAfter
from alerts.model import (
    Alert,
    AlertState,
    Notification,
    NotifyReason,
    Severity,
    WindowBurn,
    labels_of,
)

USER_AGENT = "bytewatch/0.1"
_EXCERPT_CHARS = 200
REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class Delivered:
    """A receiver accepted a notification. ``requests`` counts the HTTP calls it took."""

    receiver: str
    status: int | None
    requests: int = 1


class Notifier(Protocol):
    """One configured receiver."""

    @property
    def name(self) -> str:
        """The receiver's configured name (what ``Notification.receiver`` refers to)."""
        ...

    @property
    def resend_interval_s(self) -> float | None:
        """How often a still-firing group must be sent again; None when once is enough."""
        ...

    def send(self, notification: Notification, client: httpx.Client) -> Delivered:
        """Deliver ``notification``; raise ``DeliveryFailed`` when the receiver did not take it."""
        ...


class ConfiguredNotifier:
    """What every integration's notifier shares: its name and its resend interval are its
    configuration's. Subclasses are frozen dataclasses with a ``config`` field."""

    __slots__ = ()
    config: ReceiverConfig

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def resend_interval_s(self) -> float | None:
        return self.config.resend


# --- the response check ---------------------------------------------------------------------


def parse_retry_after(value: str | None) -> RetryAfter | None:
    """``Retry-After`` as delay-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return RetryAfter(delay_s=seconds) if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return RetryAfter(at=when if when.tzinfo is not None else when.replace(tzinfo=UTC))


_SECRET_PART_CHARS = 8  # URL parts this long may be tokens (Slack's are 9 to 24 characters)


def url_secrets(url: str) -> tuple[str, ...]:
    """What to scrub when a URL is the credential: the URL and every part that may be a token.

    Receivers echo pieces (a path, a query) in their error bodies; ``redact`` must catch those
    too. Scrubbing a harmless long segment as well only costs an error message some detail.
    """
    parts = urlsplit(url)
    found = [url, parts.path, parts.query, parts.netloc if "@" in parts.netloc else ""]
    found += [s for s in parts.path.split("/") if len(s) >= _SECRET_PART_CHARS]
    found += [v for _, v in parse_qsl(parts.query) if v]
    found += [parts.username or "", parts.password or ""]
    return tuple(sorted({f for f in found if f and f != "/"}, key=len, reverse=True))


def header_secrets(values: Iterable[str]) -> tuple[str, ...]:
    """Header values and their long words: ``Bearer abc…`` may come back as ``abc…`` alone."""
    found = set(values)
    found.update(w for v in values for w in v.split() if len(w) >= _SECRET_PART_CHARS)
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _excerpt(response: httpx.Response, secrets: Sequence[str]) -> str:
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        return ""
    text = " ".join(redact(text, secrets).split())
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def is_retryable_status(status: int) -> bool:
    # 408 is the receiver timing out on us: a timeout, so it retries like one.
    return status in (408, 429) or status >= 500


def check_response(
    response: httpx.Response, receiver: str, secrets: Sequence[str] = ()
) -> Delivered:
    """2xx → ``Delivered``; 408/429/5xx → retryable; anything else → final."""
    status = response.status_code
    if 200 <= status < 300:
        return Delivered(receiver=receiver, status=status)
    excerpt = _excerpt(response, secrets)
    reason = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if is_retryable_status(status):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise RetryableDeliveryFailure(receiver, reason, status=status, retry_after=retry_after)
    raise FinalDeliveryFailure(receiver, reason, status=status)


def json_body(payload: Any) -> bytes:
    """The exact bytes sent (and signed): compact, UTF-8, keys in a stable order."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def post(
    client: httpx.Client,
    *,
    receiver: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
    secrets: Sequence[str] = (),
) -> Delivered:
    """POST ``body`` and check the answer, translating httpx's errors into ours."""
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    try:
        response = client.post(url, content=body, headers=all_headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise RetryableDeliveryFailure(
            receiver, f"no answer within {timeout_s:g}s ({type(exc).__name__})"
        ) from exc
    except httpx.UnsupportedProtocol as exc:
        raise FinalDeliveryFailure(receiver, "the URL's scheme is not http or https") from exc
    except httpx.TransportError as exc:
        detail = redact(str(exc), secrets) or "no detail"
        raise RetryableDeliveryFailure(
            receiver, f"connection failed ({type(exc).__name__}: {detail})"
        ) from exc
    except httpx.InvalidURL as exc:
        raise FinalDeliveryFailure(receiver, "the URL is not valid") from exc
    return check_response(response, receiver, secrets)


# --- keeping secrets out of httpx's log ------------------------------------------------------


class _UrlToOrigin(logging.Filter):
    """Cut URLs in httpx's records down to scheme://host:port: the rest may be a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(_origin(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def _origin(url: httpx.URL) -> str:
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}/{REDACTED}"


def _install_log_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _UrlToOrigin) for f in logger.filters):
        logger.addFilter(_UrlToOrigin())


# Done on import rather than left to the caller: a single forgotten call would put Slack
# webhook URLs into the service's log at INFO.
_install_log_redaction()


# --- the test notification (``bytewatch alert test --receiver NAME``) ------------------------

TEST_ALERTNAME = "BytewatchTestNotification"


def build_test_notification(
    receiver: str, now: datetime, *, resolved: bool = False
) -> Notification:
    """A clearly marked notification that exercises a receiver end to end, paging no one.

    The firing and the resolved test share an incident key (the same ``now``), so PagerDuty
    closes the test incident it opened.
    """
    labels = labels_of(
        alertname=TEST_ALERTNAME,
        slo="bytewatch-test",
        service="bytewatch",
        severity=Severity.TICKET.value,
        test="true",
    )
    alert = Alert(
        slo="bytewatch-test",
        severity=Severity.TICKET,
        state=AlertState.RESOLVED if resolved else AlertState.FIRING,
        labels=labels,
        annotations=labels_of(
            summary=f"{TEST_MARK} bytewatch test notification: not a real incident",
            description=(
                f"Sent by `bytewatch alert test` to check that receiver {receiver!r} works. "
                "No action is needed."
            ),
        ),
        service="bytewatch",
        objective=0.999,
        period_s=30 * 86400,
        sli=1.0,
        burns=(WindowBurn(3600, 300, 14.4, 0.0, 0.0),),
        budget_remaining=1.0,
        time_to_exhaustion_s=None,
        top_error_types=(),
        incident_started_at=now,
        ended_at=now if resolved else None,
    )
    return Notification(
        receiver=receiver,
        reason=NotifyReason.TEST,
        group_key=f'{{}}:{{alertname="{TEST_ALERTNAME}"}}',
        group_labels=labels_of(alertname=TEST_ALERTNAME),
        alerts=(alert,),
        created_at=now,
    )


def send_test_notification(
    notifier: Notifier, client: httpx.Client, now: datetime, *, resolve: bool = True
) -> tuple[Delivered, ...]:
    """Send a test notification now (not through the outbox) and, by default, its resolution.

    Raises ``DeliveryFailed`` with the receiver's answer, so ``bytewatch alert test`` can print
    exactly why a receiver does not work.
    """
    receipts = [notifier.send(build_test_notification(notifier.name, now), client)]
    if resolve:
        resolved = build_test_notification(notifier.name, now, resolved=True)
        receipts.append(notifier.send(resolved, client))
    return tuple(receipts)
