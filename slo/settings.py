"""bytewatch's configuration: one YAML file, ``BYTEWATCH_*`` environment variables and a
secrets directory, checked as a whole before anything starts.

Precedence, highest first: environment variables (``BYTEWATCH_API__TOKEN`` sets ``api.token``;
``__`` separates levels), files in the secrets directory (``api__token`` likewise), the YAML
file, the defaults. Unknown keys are errors wherever they come from. Every problem is reported,
each as ``file:line:column: field.path: what is wrong`` (or naming the environment variable),
and no message ever quotes a secret.

Sections owned by other packages are validated by their own loaders and their errors placed in
the file the same way: ``services``, ``routes`` and ``semantics`` (``probe``), ``alerting``'s
receivers and route tree (``alerts``). A minimal file::

    slos:
      files: [/etc/bytewatch/slos/*.yaml]
    alerting:
      receivers:
        - name: oncall
          type: pagerduty
          routing_key: {secret: pagerduty-key}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerts.config import ReceiversConfig, SecretSources, parse_receivers
from alerts.errors import AlertingError
from alerts.routing import RootRouteConfig, undefined_receivers
from probe.errors import ConfigFieldError
from probe.routes import RouteRules, load_route_rules
from probe.semantics import SemanticRules, load_semantic_rules
from probe.services import ServiceMap, load_service_map
from slo.errors import Position
from slo.windows import parse_duration
from slo.yamlpos import Document, NodePath, format_path, load_file

ENV_PREFIX = "BYTEWATCH_"
DEFAULT_CONFIG_PATHS = (Path("/etc/bytewatch/bytewatch.yaml"),)


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one located line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeFilters(_Section):
    pids: list[int] = []
    comms: list[str] = []
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = []


class ProbeSettings(_Section):
    source: Literal["live", "replay"] = "live"
    replay_file: Path | None = None  # a `bytewatch trace --format jsonl` recording
    replay_speed: float = Field(default=0.0, ge=0)  # 0: as fast as possible; 1: real time
    capture_bytes: int = Field(default=3072, ge=64, le=4096)
    max_connections: int = Field(default=65536, ge=16)
    nice: int = Field(default=10, ge=0, le=19)  # yields to the services on a saturated host
    # The reading thread runs as SCHED_IDLE while it keeps up, at `nice` when it falls behind.
    idle_reader: bool = True
    filters: ProbeFilters = ProbeFilters()
    tls: bool = False  # HTTPS in clear through uprobes on OpenSSL; costs CPU on every SSL call
    tls_binaries: list[Path] = []  # executables with OpenSSL linked in (libssl and Node are found)


class LatencyTarget(_Section):
    service: str
    route: str | None = None
    target: Duration


class HealthSettings(_Section):
    windows: list[Duration] = [300.0, 3600.0]
    latency_target: Duration = 0.5
    latency_targets: list[LatencyTarget] = []
    buckets: list[Duration] | None = None  # histogram bounds; SLO thresholds are always added


class StoreSettings(_Section):
    path: Path = Path("/var/lib/bytewatch/bytewatch.db")
    flush_interval: Duration = 10.0


class SlosSettings(_Section):
    files: list[str] = []  # paths or globs of SLO files (bytewatch/v1, OpenSLO, Sloth)


class EvaluatorSettings(_Section):
    interval: Duration = 10.0


class AlertingSettings(_Section):
    receivers: list[Any] = []  # validated by alerts.config
    route: dict[str, Any] | None = None  # validated by alerts.routing
    outbox_path: Path | None = None  # default: beside the store
    external_url: str = ""  # where people reach this bytewatch (links in notifications)
    # A firing alert resolves only after its condition has been clear this long (a dip does
    # not resolve it); how long it must hold before firing is each SLO's own `for:`.
    page_keep_firing_for: Duration = 600.0
    ticket_keep_firing_for: Duration = 3600.0


class ApiSettings(_Section):
    listen: str = "127.0.0.1:9477"
    token: SecretStr | None = None  # bearer token for anything that changes state


class LogSettings(_Section):
    format: Literal["auto", "text", "json"] = "auto"  # auto: text on a terminal, else JSON
    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    probe: ProbeSettings = ProbeSettings()
    services: list[Any] = []  # validated by probe.services
    routes: dict[str, Any] | None = None  # validated by probe.routes
    semantics: dict[str, Any] | None = None  # validated by probe.semantics
    health: HealthSettings = HealthSettings()
    store: StoreSettings = StoreSettings()
    slos: SlosSettings = SlosSettings()
    evaluator: EvaluatorSettings = EvaluatorSettings()
    alerting: AlertingSettings = AlertingSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment and the secrets directory are merged by `load_config`, which knows
        # where each value came from and can say so in an error.
        return (init_settings,)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the service needs, validated: the settings and the sections they carry."""

    settings: Settings
    file: Path | None
    services: ServiceMap
    routes: RouteRules
    semantics: SemanticRules
    receivers: ReceiversConfig
    route: RootRouteConfig | None
    secret_sources: SecretSources

    @property
    def outbox_path(self) -> Path:
        explicit = self.settings.alerting.outbox_path
        return explicit or self.settings.store.path.with_name("outbox.db")

    @property
    def silences_path(self) -> Path:
        return self.settings.store.path.with_name("silences.db")


_FIELD = re.compile(r"^[a-z][a-z0-9_]*$")


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[NodePath, str]]:
    """``BYTEWATCH_A__B=v`` as a nested mapping, and which variable set each path."""
    data: dict[str, Any] = {}
    origin: dict[NodePath, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        _put(data, path, _scalar(raw))
        origin[path] = name
    return data, origin


# Variables with the prefix that are not settings: where the config file and secrets live.
_NOT_SETTINGS = frozenset({"BYTEWATCH_CONFIG", "BYTEWATCH_SECRETS_DIR", "BYTEWATCH_BPF_DIR"})


def _secret_overrides(secrets_dir: Path | None) -> tuple[dict[str, Any], dict[NodePath, str]]:
    """Files named like ``api__token`` in the secrets directory, as settings."""
    data: dict[str, Any] = {}
    origin: dict[NodePath, str] = {}
    if secrets_dir is None or not secrets_dir.is_dir():
        return data, origin
    for entry in sorted(secrets_dir.iterdir()):
        if not entry.is_file() or "__" not in entry.name:
            continue  # other files are secrets referenced by name ({secret: ...})
        path = tuple(entry.name.lower().split("__"))
        _put(data, path, entry.read_text(encoding="utf-8").removesuffix("\n"))
        origin[path] = f"secrets directory file {entry.name}"
    return data, origin


def _scalar(raw: str) -> Any:
    """Environment values are YAML scalars or flow collections: ``[80, 443]``, ``true``, ``5m``."""
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def _put(data: dict[str, Any], path: NodePath, value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(str(part))
        if not isinstance(child, dict):
            child = {}
            node[str(part)] = child
        node = child
    node[str(path[-1])] = value


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return override


class _Locator:
    """Says where a field path came from: a variable, a secret file, or a line of the file."""

    def __init__(self, document: Document | None, origins: Mapping[NodePath, str]) -> None:
        self._document = document
        self._origins = origins

    def where(self, path: NodePath) -> str:
        for end in range(len(path), 0, -1):
            origin = self._origins.get(tuple(str(p) for p in path[:end]))
            if origin is not None:
                return origin
        if self._document is None:
            return "<defaults>"
        position: Position = self._document.position(path)
        return f"{position.file}:{position.line}:{position.column}"

    def problem(self, path: NodePath, message: str) -> str:
        return f"{self.where(path)}: {format_path(path)}: {message}"


def _read_document(path: Path) -> Document | None:
    """The file's one YAML document (None when empty)."""
    try:
        documents = load_file(path)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None
    except Exception as exc:  # yamlpos reports syntax errors with their position
        located = getattr(exc, "problems", None)
        raise ConfigError([str(p) for p in located] if located else [str(exc)]) from None
    if len(documents) > 1:
        raise ConfigError([f"{path}: one YAML document expected, found {len(documents)}"])
    if not documents or documents[0].data is None:
        return None
    if not isinstance(documents[0].data, dict):
        raise ConfigError([f"{path}:1:1: (document): expected a mapping of sections"])
    return documents[0]


def _settings(merged: dict[str, Any], locator: _Locator) -> Settings:
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(locator.problem(tuple(error["loc"]), message))
        raise ConfigError(problems) from None


def load_config(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | None = None,
) -> Config:
    """Read, merge and validate everything; raise ``ConfigError`` listing every problem."""
    environ = dict(os.environ) if environ is None else dict(environ)
    document = _read_document(path) if path is not None else None
    data: dict[str, Any] = document.data if document is not None else {}
    secret_data, secret_origin = _secret_overrides(secrets_dir)
    env_data, env_origin = _env_overrides(environ)
    merged = _merge(_merge(data, secret_data), env_data)
    locator = _Locator(document, {**secret_origin, **env_origin})
    settings = _settings(merged, locator)

    problems: list[str] = []

    def section(loader: Any, name: str) -> Any:
        try:
            return loader(getattr(settings, name))
        except ConfigFieldError as exc:
            problems.append(locator.problem(exc.location, exc.reason))
            return None

    services = section(load_service_map, "services")
    routes = section(load_route_rules, "routes")
    semantics = section(load_semantic_rules, "semantics")

    base_dir = path.parent if path is not None else None
    sources = SecretSources(environ=environ, secrets_dir=secrets_dir, base_dir=base_dir)
    receivers = ReceiversConfig()
    try:
        receivers = parse_receivers(
            {"receivers": settings.alerting.receivers},
            source=str(path or "<config>"),
            sources=sources,
        )
    except AlertingError as exc:
        problems.extend(_relocate(line, locator, ("alerting",)) for line in str(exc).splitlines())
    route = _route(settings, receivers, locator, problems)
    if problems:
        raise ConfigError(problems)
    if path is not None:
        settings = _relative_to(settings, path.parent)
    return Config(
        settings=settings,
        file=path,
        services=services,
        routes=routes,
        semantics=semantics,
        receivers=receivers,
        route=route,
        secret_sources=sources,
    )


def _relocate(line: str, locator: _Locator, prefix: NodePath) -> str:
    """A receiver error says ``source: receivers[1].field: message``; place it in the file."""
    match = re.match(r"^[^:]*(?::\d+)?: (receivers[^:]*): (.*)$", line)
    if match is None:
        return line
    path: list[str | int] = [*prefix]
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", match.group(1)):
        path.append(int(part[1:-1]) if part.startswith("[") else part)
    return locator.problem(tuple(path), match.group(2))


def _route(
    settings: Settings, receivers: ReceiversConfig, locator: _Locator, problems: list[str]
) -> RootRouteConfig | None:
    names = sorted(receivers.names)
    raw = settings.alerting.route
    if raw is None:
        if len(names) > 1:
            problems.append(
                locator.problem(
                    ("alerting",),
                    f"with {len(names)} receivers, a route must say which gets what "
                    f"(e.g. route: {{receiver: {names[0]}}})",
                )
            )
            return None
        # One group per SLO and severity: a new page must not wait for another's group timer.
        return RootRouteConfig(receiver=names[0], group_by=["slo", "severity"]) if names else None
    try:
        route = RootRouteConfig.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            location = ("alerting", "route", *error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(locator.problem(location, message))
        return None
    for line in undefined_receivers(route, names):
        field_path, _, message = line.partition(": ")
        parts: list[str | int] = ["alerting"]
        for part in re.findall(r"[^.\[\]]+|\[\d+\]", field_path):
            parts.append(int(part[1:-1]) if part.startswith("[") else part)
        problems.append(locator.problem(tuple(parts), message))
    return route


def _relative_to(settings: Settings, base: Path) -> Settings:
    """Relative paths in the file mean relative to the file, not to wherever it was run from."""

    def fix(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    store = settings.store.model_copy(
        update={"path": fix(settings.store.path) or settings.store.path}
    )
    probe = settings.probe.model_copy(
        update={
            "replay_file": fix(settings.probe.replay_file) or settings.probe.replay_file,
            "tls_binaries": [fix(p) or p for p in settings.probe.tls_binaries],
        }
    )
    alerting = settings.alerting.model_copy(
        update={"outbox_path": fix(settings.alerting.outbox_path) or settings.alerting.outbox_path}
    )
    return settings.model_copy(update={"store": store, "probe": probe, "alerting": alerting})


def config_path_from(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: ``--config``, else $BYTEWATCH_CONFIG, else the default path if
    it exists, else none (built-in defaults)."""
    if explicit is not None:
        return explicit
    if environ.get("BYTEWATCH_CONFIG"):
        return Path(environ["BYTEWATCH_CONFIG"])
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.is_file():
            return candidate
    return None
