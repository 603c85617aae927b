"""Receiver configuration: where notifications go, with secrets kept secret.

A receiver is a named destination of one ``type`` (slack, pagerduty, webhook, alertmanager).
Every secret field (webhook URLs, routing keys, HMAC keys, header values) is a ``SecretStr``
and may be written in one of four ways::

    webhook_url: https://hooks.slack.com/services/...   # inline (fine for tests, not for prod)
    webhook_url: {env: SLACK_WEBHOOK_URL}               # from the environment
    webhook_url: {file: /etc/bytewatch/slack-url}       # from a file (one trailing newline dropped;
                                                        # relative to the config file's directory)
    webhook_url: {secret: slack-url}                    # from the secrets directory

The environment and the secrets directory are passed in (``SecretSources``), never read behind
the caller's back, so tests and ``bytewatch config`` see exactly what the service would.
Validation errors name the file, line and field and never echo a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from alerts.errors import ReceiverConfigError, UnknownReceiver
from alerts.model import Severity


@dataclass(frozen=True, slots=True)
class SecretSources:
    """Where ``{env: ...}``, ``{secret: ...}`` and relative ``{file: ...}`` references point."""

    # The whole environment: it holds secrets, so it never shows in a repr.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets_dir: Path | None = None
    base_dir: Path | None = None  # relative ``file:`` paths start here (the config's directory)

    @classmethod
    def from_process(cls, secrets_dir: Path | None = None) -> SecretSources:
        return cls(environ=dict(os.environ), secrets_dir=secrets_dir)


_CONTEXT_KEY = "secret_sources"
_SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _read_secret_file(path: Path, what: str, ref: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {what} {ref!r}: {exc.strerror}") from None
    return text.removesuffix("\n").removesuffix("\r")


def _resolve_secret(value: Any, info: ValidationInfo) -> Any:
    """Turn a ``{env|file|secret: ...}`` reference into the secret's value."""
    if not isinstance(value, Mapping):
        return value  # an inline string (or garbage, which SecretStr rejects without echoing it)
    if len(value) != 1:
        raise ValueError("a secret reference has exactly one key: env, file or secret")
    ((kind, ref),) = value.items()
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"{kind!s}: expected a non-empty name")
    context = info.context or {}
    sources: SecretSources = context.get(_CONTEXT_KEY) or SecretSources()
    if kind == "env":
        if ref not in sources.environ:
            raise ValueError(f"environment variable {ref} is not set")
        return sources.environ[ref]
    if kind == "file":
        path = Path(ref)
        if not path.is_absolute() and sources.base_dir is not None:
            path = sources.base_dir / path
        return _read_secret_file(path, "secret file", ref)
    if kind == "secret":
        if sources.secrets_dir is None:
            raise ValueError(f"secret {ref!r} is referenced but no secrets directory is set")
        if not _SECRET_NAME.match(ref):
            raise ValueError(f"secret name {ref!r} must be a plain file name")
        return _read_secret_file(sources.secrets_dir / ref, "secret", ref)
    raise ValueError(f"unknown secret reference {kind!r}: use env, file or secret")


def _non_empty(secret: SecretStr) -> SecretStr:
    if not secret.get_secret_value():
        raise ValueError("must not be empty")
    return secret


def _http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def _secret_http_url(secret: SecretStr) -> SecretStr:
    if not _http_url(secret.get_secret_value()):
        raise ValueError("must be an http:// or https:// URL (value not shown: it is a secret)")
    return secret


def _public_http_url(url: str) -> str:
    if not _http_url(url):
        raise ValueError("must be an http:// or https:// URL")
    if urlsplit(url).password is not None:
        raise ValueError("must not carry a password: use headers with a secret instead")
    return url


def _header_value(secret: SecretStr) -> SecretStr:
    if any(c in secret.get_secret_value() for c in "\r\n\0"):
        raise ValueError("a header value must not contain line breaks")
    return secret


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret), AfterValidator(_non_empty)]
SecretUrl = Annotated[Secret, AfterValidator(_secret_http_url)]
PublicUrl = Annotated[str, AfterValidator(_public_http_url)]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
HeaderValue = Annotated[Secret, AfterValidator(_header_value)]
ReceiverName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
]
PagerDutySeverity = Literal["critical", "error", "warning", "info"]


class _Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ReceiverName
    timeout_s: PositiveFloat = 10.0

    @property
    def resend(self) -> float | None:
        """How often a still-firing group must be sent again; None when once is enough (only
        Alertmanager, whose alerts expire unless re-sent, needs it)."""
        return None


class SlackReceiver(_Receiver):
    """A Slack incoming webhook; the URL itself is the credential."""

    type: Literal["slack"]
    webhook_url: SecretUrl
    # Legacy webhooks may override these; app-created webhooks ignore them.
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None


def _default_pd_severity() -> dict[Severity, PagerDutySeverity]:
    return {Severity.PAGE: "critical", Severity.TICKET: "warning"}


class PagerDutyReceiver(_Receiver):
    """A PagerDuty service integration (Events API v2)."""

    type: Literal["pagerduty"]
    routing_key: Secret
    url: PublicUrl = "https://events.pagerduty.com/v2/enqueue"
    severity: dict[Severity, PagerDutySeverity] = Field(default_factory=_default_pd_severity)
    source: str | None = None  # default: the alert's service
    client: str = "bytewatch"
    client_url: PublicUrl | None = None


class WebhookReceiver(_Receiver):
    """Any HTTP endpoint that understands Alertmanager's webhook body."""

    type: Literal["webhook"]
    url: SecretUrl
    hmac_secret: Secret | None = None
    signature_header: HeaderName = "X-Bytewatch-Signature"
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    max_alerts: NonNegativeInt = 0  # 0 sends them all, as in Alertmanager
    external_url: str = ""


class AlertmanagerReceiver(_Receiver):
    """A Prometheus Alertmanager that bytewatch pushes alerts to, as Prometheus does."""

    type: Literal["alertmanager"]
    url: PublicUrl  # the base URL; alerts go to {url}/api/v2/alerts
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    # Alertmanager resolves an alert nobody re-sends; firing alerts are pushed this often and
    # carry endsAt = now + 4 * this, the same margin Prometheus uses.
    resend_interval_s: PositiveFloat = 60.0

    @property
    def resend(self) -> float | None:
        return self.resend_interval_s


ReceiverConfig = Annotated[
    SlackReceiver | PagerDutyReceiver | WebhookReceiver | AlertmanagerReceiver,
    Field(discriminator="type"),
]


class ReceiversConfig(BaseModel):
    """The ``receivers:`` section: every destination bytewatch can notify."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receivers: list[ReceiverConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_are_unique(self) -> ReceiversConfig:
        seen: set[str] = set()
        for receiver in self.receivers:
            if receiver.name in seen:
                raise ValueError(f"receiver name {receiver.name!r} is used twice")
            seen.add(receiver.name)
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.receivers)

    def named(self, name: str) -> ReceiverConfig:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        known = ", ".join(self.names) or "none configured"
        raise UnknownReceiver(f"no receiver named {name!r} (known: {known})")


# --- loading, with errors that point at the file and line ------------------------------------

FieldPath = tuple[str | int, ...]


def _field_path(data: Any, loc: Sequence[str | int]) -> FieldPath:
    """Pydantic's error location without the union tags it inserts (``slack``, ...)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
        elif isinstance(node, Mapping) and isinstance(part, str) and part != node.get("type"):
            # A missing required field: keep its name, stop descending.
            path.append(part)
            node = None
            continue
        else:
            continue  # a union's tag or a validator's name, not a key of the input
        path.append(part)
    return tuple(path)


def _dotted(path: FieldPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _is_key(node: yaml.Node, name: str | int) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == name


def _line_of(root: yaml.Node | None, path: FieldPath) -> int | None:
    """The 1-based line of the YAML key (or item) at ``path``, or of its deepest parent."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(
                ((k, v) for k, v in node.value if _is_key(k, part)),
                None,
            )
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def parse_receivers(
    data: Any,
    *,
    source: str = "<config>",
    sources: SecretSources | None = None,
    yaml_root: yaml.Node | None = None,
) -> ReceiversConfig:
    """Validate a ``{"receivers": [...]}`` mapping; raise ``ReceiverConfigError`` on any problem.

    ``yaml_root`` (from ``yaml.compose``) lets messages carry line numbers.
    """
    if data is None:
        data = {}
    try:
        return ReceiversConfig.model_validate(
            data, context={_CONTEXT_KEY: sources or SecretSources()}
        )
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            path = _field_path(data, error["loc"])
            line = _line_of(yaml_root, path) if yaml_root is not None else None
            where = f"{source}:{line}" if line is not None else source
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {_dotted(path)}: {message}")
        raise ReceiverConfigError("\n".join(problems)) from None


def load_receivers_file(path: Path, *, sources: SecretSources | None = None) -> ReceiversConfig:
    """Read a YAML file whose top level holds ``receivers:``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReceiverConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # The problem text only: the snippet YAML would quote may hold an inline secret.
        # The context mark (where the unfinished construct began) beats the end of the stream.
        mark = exc.context_mark or exc.problem_mark
        line = mark.line + 1 if mark is not None else "?"
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ReceiverConfigError(f"{path}:{line}: not valid YAML: {what}") from None
    except yaml.YAMLError:
        raise ReceiverConfigError(f"{path}: not valid YAML") from None
    if data is not None and not isinstance(data, Mapping):
        raise ReceiverConfigError(f"{path}:1: expected a mapping with a 'receivers' key")
    sources = sources or SecretSources()
    if sources.base_dir is None:
        sources = replace(sources, base_dir=path.parent)
    return parse_receivers(data, source=str(path), sources=sources, yaml_root=root)
