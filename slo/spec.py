"""SLO files: read, validate, and turn into ``model.Slo`` values.

Formats, recognised per YAML document (a file may hold several, separated by ``---``):

- ``apiVersion: bytewatch/v1`` — ours. Services, each with SLOs over the probe's measurements.
  Field names follow OpenSLO where the concept is shared (``target``, ``timeWindow``,
  ``indicator``, ``description``) and Sloth's for alert window catalogs
  (``errorBudgetPercent``, ``longWindow``, ``shortWindow``). See deploy/examples/slos/.
- ``version: prometheus/v1`` — Sloth's spec; ``apiVersion: sloth.slok.dev/v1`` with
  ``kind: PrometheusServiceLevel`` — Sloth's Kubernetes resource. Both accept the snake_case
  and camelCase spellings of Sloth's fields. SLI plugins (Go code) cannot be imported.
- ``apiVersion: openslo/v1`` — OpenSLO objects of every kind (SLO, SLI, AlertPolicy,
  AlertCondition, AlertNotificationTarget, DataSource, Service), alone, in ``---`` documents
  or in a top-level list. References (``indicatorRef``, ``conditionRef``, ``targetRef``,
  ``alertPolicies``) resolve across every file loaded together; a reference an SLO needs and
  nobody defines is a problem, one that no SLO uses is not.
- ``apiVersion: openslo/v1alpha`` — the earlier OpenSLO, as Sloth imports it.

Unknown fields are problems in every format (a typo must not silently change an SLO). Every
problem is collected before anything is raised: ``load_paths`` raises ``InvalidSpec`` with all
of them, each located at ``file:line:column`` with its field path.

Defaults a document may leave out: the period (``default_period_s``, 30 days, the ``period``
of Sloth and OpenSLO documents that name none) and the alert windows (``windows.SRE_WORKBOOK``
scaled to the period, unless a catalog for that period is given, as with Sloth's
``--slo-period-windows-path``).
"""

from __future__ import annotations

import difflib
import json
import re
import types
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from probe.routes import template_of
from slo.errors import InvalidSpec, Position, Problem
from slo.model import (
    AlertPolicy,
    BudgetingMethod,
    BurnWindow,
    EndpointSli,
    QuerySli,
    Selector,
    Severity,
    SeverityAlert,
    SliKind,
    Slo,
    labels_of,
)
from slo.windows import (
    DAY,
    MINUTE,
    CatalogRow,
    WindowCatalog,
    budget_fraction_for,
    burn_window,
    parse_duration,
    windows_for,
)
from slo.yamlpos import Document, NodePath, load_file

BYTEWATCH_V1 = "bytewatch/v1"
SLOTH_V1 = "prometheus/v1"
SLOTH_K8S_V1 = "sloth.slok.dev/v1"
OPENSLO_V1 = "openslo/v1"
OPENSLO_V1ALPHA = "openslo/v1alpha"

DEFAULT_PERIOD_S = 30 * DAY
DEFAULT_ALERT_NAME = "ErrorBudgetBurn"  # Pyrra's name for the same alert; users know it
DEFAULT_PAGE_FOR_S = 0.0  # the short window of the pair already confirms; no `for:`, like Sloth
DEFAULT_TICKET_FOR_S = 0.0
DEFAULT_MIN_EVENTS = 20
"""The low-traffic guard of bytewatch/v1 SLOs: a window pair trips only if its long window saw
at least this many requests. Below 20 requests a single failure is a 5 % error ratio: a
statistic, not a trend, and not worth waking anyone. Imported Sloth and OpenSLO SLOs get no
guard (0), so that their rules match what those tools generate."""

# Labels the generated rules set themselves; an SLO may not set them too. (Alerts also get
# `severity: page|ticket` unless the SLO's alert labels set `severity` otherwise.)
RESERVED_LABELS = frozenset({"slo_id", "slo", "slo_service", "slo_window", "slo_severity"})
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")
_RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")
# Python's `re` accepts these, RE2 (Prometheus) does not: lookarounds and backreferences.
_NOT_RE2 = re.compile(r"\(\?[=!<]|\(\?P=|\\[1-9]")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What a document may leave unsaid, and the window catalogs that override the default."""

    default_period_s: float = DEFAULT_PERIOD_S
    catalogs: tuple[WindowCatalog, ...] = ()


@dataclass(frozen=True, slots=True)
class SloSet:
    """Every SLO of the files loaded together, in file order, and the count of files."""

    slos: tuple[Slo, ...]
    files: int

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(sorted({slo.service for slo in self.slos}))


def load_paths(paths: Iterable[str | Path], options: LoadOptions | None = None) -> SloSet:
    """Load SLO files together; raise ``InvalidSpec`` listing every problem in all of them.

    A directory stands for the ``*.yaml`` and ``*.yml`` files below it, in name order.
    """
    opts = options or LoadOptions()
    files = list(_expand(paths))
    documents: list[Document] = []
    problems: list[Problem] = []
    for path in files:
        try:
            documents.extend(load_file(path))
        except InvalidSpec as exc:
            problems.extend(exc.problems)
    loader = _Loader(opts)
    for document in documents:
        loader.add(document)
    slos = loader.finish()
    problems.extend(loader.problems)
    if problems:
        raise InvalidSpec(problems)
    return SloSet(slos=slos, files=len(files))


def load_documents(documents: Iterable[Document], options: LoadOptions | None = None) -> SloSet:
    """``load_paths`` for documents already read (tests, settings embedding SLOs)."""
    loader = _Loader(options or LoadOptions())
    seen_files: set[str] = set()
    for document in documents:
        seen_files.add(document.file)
        loader.add(document)
    slos = loader.finish()
    if loader.problems:
        raise InvalidSpec(loader.problems)
    return SloSet(slos=slos, files=len(seen_files))


def load_catalog(path: str | Path) -> WindowCatalog:
    """A Sloth ``AlertWindows`` catalog file; raises ``InvalidSpec``."""
    documents = load_file(path)
    if len(documents) != 1:
        where = documents[1].position(()) if documents else Position(str(path), 1, 1)
        raise InvalidSpec([Problem(where, "(file)", "a window catalog is exactly one document")])
    document = documents[0]
    parsed, problems = _validate(document, (), _CatalogDoc, document.data)
    if parsed is None:
        raise InvalidSpec(problems)
    rows = tuple(
        CatalogRow(severity, row.long_window, row.short_window, row.error_budget_percent / 100)
        for severity, block in (
            (Severity.PAGE, parsed.spec.page),
            (Severity.TICKET, parsed.spec.ticket),
        )
        for row in (block.quick, block.slow)
    )
    return WindowCatalog(period_s=parsed.spec.slo_period, rows=rows)


def _expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"})
        else:
            yield path


# --- shared field types ---------------------------------------------------------------------


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration such as 5m, 1h or 28d, got {value!r}")
    return parse_duration(value)


def _ratio_or_percent(value: object) -> float:
    """bytewatch targets: a ratio (0.999) or a percentage string ('99.9%')."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = _percent(value.strip()[:-1])
        except (ValueError, ArithmeticError):
            raise ValueError(f"'{value}' is not a percentage") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if number >= 1:
            raise ValueError(
                f"{value} is not a ratio: write 0.999 or '99.9%' (a target of 1 leaves no budget)"
            )
    else:
        raise ValueError(
            f"expected a ratio such as 0.999 or a percentage such as '99.9%', got {value!r}"
        )
    if not 0 < number < 1:
        raise ValueError(f"{value} must be above 0 and below 100 % (100 % leaves no error budget)")
    return number


def _text(value: object) -> object:
    """Dates and times in YAML are read as text: they are only carried along, never computed."""
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return value


def _label_values(value: object) -> object:
    """Label values written as YAML numbers or booleans are meant as text (as Sloth reads them)."""
    if isinstance(value, dict):
        return {
            key: ("true" if item else "false")
            if isinstance(item, bool)
            else str(item)
            if isinstance(item, (int, float))
            else item
            for key, item in value.items()
        }
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
Target = Annotated[float, BeforeValidator(_ratio_or_percent)]
Text = Annotated[str, BeforeValidator(_text)]
StrMap = Annotated[dict[str, str], BeforeValidator(_label_values)]


class _Doc(BaseModel):
    """A YAML shape: camelCase field names, unknown fields refused, immutable once read."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False
    )


class _SnakeDoc(BaseModel):
    """Sloth's shapes: snake_case names, each also accepted in camelCase (see the aliases)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _both(name: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(name, to_camel(name)))


# --- bytewatch/v1 ---------------------------------------------------------------------------


class _SelectorDoc(_Doc):
    service: str | None = None  # defaults to the enclosing service's name
    route: str | None = None
    route_regex: str | None = None
    method: str | None = None


class _IndicatorDoc(_Doc):
    type: SliKind = SliKind.HEALTH
    latency_threshold: Duration | None = None


class _WindowDoc(_Doc):
    severity: Severity
    long_window: Duration
    short_window: Duration
    error_budget_percent: float | None = None
    burn_rate: float | None = None


class _SeverityDoc(_Doc):
    disable: bool = False
    name: str | None = None
    for_: Duration | None = Field(default=None, alias="for")
    labels: StrMap = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)
    receivers: list[str] | None = None


class _AlertingDoc(_Doc):
    name: str | None = None
    windows: list[dict[str, Any]] | None = None  # each validated on its own
    min_events: int | None = Field(default=None, ge=0)
    labels: StrMap = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)
    page: _SeverityDoc = Field(default_factory=_SeverityDoc)
    ticket: _SeverityDoc = Field(default_factory=_SeverityDoc)


class _SloDoc(_Doc):
    name: str
    description: str = ""
    selector: _SelectorDoc = Field(default_factory=_SelectorDoc)
    indicator: _IndicatorDoc = Field(default_factory=_IndicatorDoc)
    target: Target
    time_window: Duration | None = None
    alerting: _AlertingDoc = Field(default_factory=_AlertingDoc)
    labels: StrMap = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)
    receivers: list[str] | None = None


class _ServiceDoc(_Doc):
    name: str
    description: str = ""
    time_window: Duration | None = None
    labels: StrMap = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)
    receivers: list[str] = Field(default_factory=list)
    slos: list[dict[str, Any]] = Field(min_length=1)  # each validated on its own, see _Loader


class _BytewatchDoc(_Doc):
    api_version: Literal["bytewatch/v1"]
    kind: Literal["SLOs"] = "SLOs"
    services: list[_ServiceDoc] = Field(min_length=1)


# --- Sloth ----------------------------------------------------------------------------------


class _SlothAlertMeta(_SnakeDoc):
    disable: bool = False
    labels: StrMap = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)


class _SlothAlerting(_SnakeDoc):
    name: str | None = None
    labels: StrMap = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)
    page_alert: _SlothAlertMeta | None = _both("page_alert")
    ticket_alert: _SlothAlertMeta | None = _both("ticket_alert")


class _SlothEvents(_SnakeDoc):
    error_query: str | None = _both("error_query")
    total_query: str | None = _both("total_query")


class _SlothRaw(_SnakeDoc):
    error_ratio_query: str | None = _both("error_ratio_query")


class _SlothPlugin(_SnakeDoc):
    id: str = ""
    options: dict[str, Any] = Field(default_factory=dict)


class _SlothSli(_SnakeDoc):
    events: _SlothEvents | None = None
    raw: _SlothRaw | None = None
    plugin: _SlothPlugin | None = None


class _SlothSlo(_SnakeDoc):
    name: str
    objective: float
    description: str = ""
    labels: StrMap = Field(default_factory=dict)
    sli: _SlothSli
    alerting: _SlothAlerting = Field(default_factory=_SlothAlerting)
    plugins: dict[str, Any] | None = None


class _SlothDoc(_SnakeDoc):
    version: Literal["prometheus/v1"]
    service: str
    labels: StrMap = Field(default_factory=dict)
    slos: list[dict[str, Any]] = Field(min_length=1)
    slo_plugins: dict[str, Any] | None = _both("slo_plugins")


class _K8sMetadata(_Doc):
    name: str
    namespace: str | None = None
    labels: StrMap = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)


class _SlothK8sSpec(_Doc):
    service: str
    labels: StrMap = Field(default_factory=dict)
    slos: list[dict[str, Any]] = Field(min_length=1)
    slo_plugins: dict[str, Any] | None = None


class _SlothK8sDoc(_Doc):
    api_version: Literal["sloth.slok.dev/v1"]
    kind: Literal["PrometheusServiceLevel"]
    metadata: _K8sMetadata
    spec: _SlothK8sSpec


class _CatalogRowDoc(_Doc):
    error_budget_percent: float = Field(gt=0, le=100)
    short_window: Duration
    long_window: Duration


class _CatalogSeverityDoc(_Doc):
    quick: _CatalogRowDoc
    slow: _CatalogRowDoc


class _CatalogSpecDoc(_Doc):
    slo_period: Duration
    page: _CatalogSeverityDoc
    ticket: _CatalogSeverityDoc


class _CatalogDoc(_Doc):
    api_version: Literal["sloth.slok.dev/v1"]
    kind: Literal["AlertWindows"]
    spec: _CatalogSpecDoc


# --- OpenSLO v1 -----------------------------------------------------------------------------


def _openslo_labels(value: object) -> object:
    """OpenSLO label values are a string or a list of strings; lists are joined with commas."""
    if isinstance(value, dict):
        return {
            key: ",".join(str(v) for v in item) if isinstance(item, list) else item
            for key, item in value.items()
        }
    return value


class _OsMetadata(_Doc):
    name: str
    display_name: str | None = None
    labels: Annotated[StrMap, BeforeValidator(_openslo_labels)] = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)


class _OsMetricSource(_Doc):
    metric_source_ref: str | None = None
    type: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)


class _OsMetric(_Doc):
    metric_source: _OsMetricSource


class _OsRatioMetric(_Doc):
    counter: bool | None = None
    good: _OsMetric | None = None
    bad: _OsMetric | None = None
    total: _OsMetric | None = None
    raw_type: Literal["success", "failure"] | None = None
    raw: _OsMetric | None = None


class _OsSliSpec(_Doc):
    description: str = ""
    ratio_metric: _OsRatioMetric | None = None
    threshold_metric: _OsMetric | None = None


class _OsInlineSli(_Doc):
    metadata: _OsMetadata
    spec: _OsSliSpec


class _OsTimeWindowCalendar(_Doc):
    start_time: Text
    time_zone: str


class _OsTimeWindow(_Doc):
    duration: str
    is_rolling: bool = False
    calendar: _OsTimeWindowCalendar | None = None


class _OsObjective(_Doc):
    display_name: str | None = None
    op: Literal["lt", "lte", "gt", "gte"] | None = None
    value: float | None = None
    target: float | None = None
    target_percent: float | None = None
    time_slice_target: float | None = None
    time_slice_window: str | None = None
    indicator: _OsInlineSli | None = None
    indicator_ref: str | None = None
    composite_weight: float | None = None


class _OsConditionSpec(_Doc):
    kind: Literal["burnrate"]
    op: Literal["lt", "lte", "gt", "gte"]
    threshold: float
    lookback_window: Duration
    alert_after: Duration


class _OsAlertConditionSpec(_Doc):
    description: str = ""
    severity: str
    condition: _OsConditionSpec


class _OsConditionItem(_Doc):
    """A condition of an alert policy: a reference, or an AlertCondition written inline."""

    condition_ref: str | None = None
    kind: Literal["AlertCondition"] | None = None
    metadata: _OsMetadata | None = None
    spec: _OsAlertConditionSpec | None = None


class _OsTargetSpec(_Doc):
    description: str = ""
    target: str


class _OsTargetItem(_Doc):
    target_ref: str | None = None
    kind: Literal["AlertNotificationTarget"] | None = None
    metadata: _OsMetadata | None = None
    spec: _OsTargetSpec | None = None


class _OsAlertPolicySpec(_Doc):
    description: str = ""
    alert_when_no_data: bool = False
    alert_when_resolved: bool = False
    alert_when_breaching: bool = True
    conditions: list[_OsConditionItem] = Field(min_length=1)
    notification_targets: list[_OsTargetItem] = Field(default_factory=list)


class _OsPolicyItem(_Doc):
    alert_policy_ref: str | None = None
    kind: Literal["AlertPolicy"] | None = None
    metadata: _OsMetadata | None = None
    spec: _OsAlertPolicySpec | None = None


class _OsSloSpec(_Doc):
    description: str = ""
    service: str
    indicator: _OsInlineSli | None = None
    indicator_ref: str | None = None
    time_window: list[_OsTimeWindow] | None = Field(default=None, max_length=1)
    budgeting_method: BudgetingMethod = BudgetingMethod.OCCURRENCES
    objectives: list[_OsObjective] = Field(min_length=1)
    alert_policies: list[_OsPolicyItem] | None = None


class _OsServiceSpec(_Doc):
    description: str = ""


class _OsDataSourceSpec(_Doc):
    description: str = ""
    type: str
    connection_details: list[dict[str, Any]] | dict[str, Any] = Field(default_factory=dict)


class _OsObject(_Doc):
    api_version: Literal["openslo/v1"]
    kind: str
    metadata: _OsMetadata
    spec: dict[str, Any]


_OPENSLO_V1_SPECS: dict[str, type[_Doc]] = {
    "SLO": _OsSloSpec,
    "SLI": _OsSliSpec,
    "AlertPolicy": _OsAlertPolicySpec,
    "AlertCondition": _OsAlertConditionSpec,
    "AlertNotificationTarget": _OsTargetSpec,
    "DataSource": _OsDataSourceSpec,
    "Service": _OsServiceSpec,
}


# --- OpenSLO v1alpha (as Sloth imports it) --------------------------------------------------


class _OsaQuery(_Doc):
    source: str
    query_type: str
    query: str
    metadata: dict[str, Any] | None = None


class _OsaRatio(_Doc):
    good: _OsaQuery
    total: _OsaQuery
    incremental: bool | None = None


class _OsaObjective(_Doc):
    display_name: str | None = None
    op: Literal["lt", "lte", "gt", "gte"] | None = None
    value: float | None = None
    target: float
    time_slice_target: float | None = None
    ratio_metrics: _OsaRatio | None = None


class _OsaTimeWindow(_Doc):
    unit: Literal["Second", "Minute", "Hour", "Day", "Week", "Month", "Quarter", "Year"]
    count: int = Field(gt=0)
    is_rolling: bool = False
    calendar: _OsTimeWindowCalendar | None = None


class _OsaThreshold(_Doc):
    threshold_metric: _OsaQuery


class _OsaSloSpec(_Doc):
    service: str
    description: str = ""
    budgeting_method: BudgetingMethod = BudgetingMethod.OCCURRENCES
    indicator: _OsaThreshold | None = None
    objectives: list[_OsaObjective] = Field(min_length=1)
    time_windows: list[_OsaTimeWindow] = Field(default_factory=list, max_length=1)


class _OsaObject(_Doc):
    api_version: Literal["openslo/v1alpha"]
    kind: Literal["SLO", "Service"]
    metadata: _OsMetadata
    spec: dict[str, Any]


# --- validation and problems ----------------------------------------------------------------


def _validate(
    document: Document, base: NodePath, model: type[Any], data: object
) -> tuple[Any, list[Problem]]:
    """``model`` validated from ``data``, or None and the problems found."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, list(_translate(document, base, model, exc))


def _translate(
    document: Document, base: NodePath, model: type[Any], exc: ValidationError
) -> Iterator[Problem]:
    for error in exc.errors(include_url=False):
        loc: NodePath = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
        path = (*base, *loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            choices = f" (expected one of: {', '.join(allowed)})" if allowed and not guess else ""
            message = f"unknown field{hint}{choices}"
        elif kind == "missing":
            message = "required field is missing"
        elif kind in ("value_error", "assertion_error"):
            message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        else:
            message = error["msg"]
            if "input" in error and kind.endswith("_type") and error["input"] is not None:
                message += f", got {error['input']!r}"
        yield document.problem(path, message)


def _fields_at(model: type[Any], loc: Sequence[str | int]) -> list[str]:
    """The field names (as written in YAML) the model accepts at ``loc``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        match = next(
            (f for name, f in current.model_fields.items() if part in _spellings(name, f, current)),
            None,
        )
        if match is None:
            return []
        current = _inner_model(match.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(_spellings(name, f, current)[0] for name, f in current.model_fields.items())
    return []


def _spellings(name: str, info: Any, model: type[BaseModel]) -> list[str]:
    if isinstance(info.validation_alias, AliasChoices):
        return [str(choice) for choice in info.validation_alias.choices]
    if info.alias:
        return [info.alias]
    generator = model.model_config.get("alias_generator")
    return [generator(name)] if callable(generator) else [name]


def _inner_model(annotation: Any) -> Any:
    """The model inside ``X | None``, ``list[X]`` or ``dict[str, X]``."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list, dict, Annotated):
        for arg in get_args(annotation):
            inner = _inner_model(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


# --- the loader -----------------------------------------------------------------------------


@dataclass
class _Named:
    """An OpenSLO object kept for reference resolution: its shape and where it was written."""

    kind: str
    name: str
    spec: Any
    metadata: _OsMetadata
    document: Document
    path: NodePath


@dataclass
class _PendingOpenSlo:
    spec: _OsSloSpec
    metadata: _OsMetadata
    document: Document
    path: NodePath


@dataclass
class _Loader:
    options: LoadOptions
    problems: list[Problem] = field(default_factory=list)
    slos: list[Slo] = field(default_factory=list)
    openslo: dict[tuple[str, str], _Named] = field(default_factory=dict)
    pending: list[_PendingOpenSlo] = field(default_factory=list)

    # -- dispatch --

    def add(self, document: Document) -> None:
        data = document.data
        if isinstance(data, list):
            for index, item in enumerate(data):
                self._add_object(document, (index,), item, in_list=True)
        else:
            self._add_object(document, (), data, in_list=False)

    def _add_object(self, document: Document, path: NodePath, data: object, in_list: bool) -> None:
        if not isinstance(data, dict):
            self._problem(
                document, path, f"expected a mapping (an SLO document), got {type(data).__name__}"
            )
            return
        api = data.get("apiVersion")
        version = data.get("version")
        if in_list and api not in (OPENSLO_V1, OPENSLO_V1ALPHA):
            self._problem(
                document, (*path, "apiVersion"), "a top-level list may only hold OpenSLO objects"
            )
            return
        if api == BYTEWATCH_V1:
            self._bytewatch(document, path, data)
        elif version == SLOTH_V1 and api is None:
            self._sloth(document, path, data)
        elif api == SLOTH_K8S_V1:
            self._sloth_k8s(document, path, data)
        elif api == OPENSLO_V1:
            self._openslo_v1(document, path, data)
        elif api == OPENSLO_V1ALPHA:
            self._openslo_v1alpha(document, path, data)
        elif api is None and version is None:
            self._problem(
                document,
                (*path, "apiVersion"),
                f"required field is missing (expected {BYTEWATCH_V1}, "
                f"{OPENSLO_V1}, {OPENSLO_V1ALPHA}, {SLOTH_K8S_V1}, "
                f"or Sloth's `version: {SLOTH_V1}`)",
            )
        else:
            where = (*path, "apiVersion") if api is not None else (*path, "version")
            self._problem(
                document,
                where,
                f"unsupported version {api if api is not None else version!r} "
                f"(expected {BYTEWATCH_V1}, {OPENSLO_V1}, {OPENSLO_V1ALPHA}, "
                f"{SLOTH_K8S_V1}, or Sloth's `version: {SLOTH_V1}`)",
            )

    def _problem(self, document: Document, path: NodePath, message: str) -> None:
        self.problems.append(document.problem(path, message))

    def _parse(self, document: Document, path: NodePath, model: type[Any], data: object) -> Any:
        parsed, problems = _validate(document, path, model, data)
        self.problems.extend(problems)
        return parsed

    def _emit(self, slo: Slo) -> None:
        self.slos.append(slo)

    # -- bytewatch/v1 --

    def _bytewatch(self, document: Document, path: NodePath, data: dict[str, Any]) -> None:
        doc: _BytewatchDoc | None = self._parse(document, path, _BytewatchDoc, data)
        if doc is None:
            return
        for s_index, service in enumerate(doc.services):
            s_path: NodePath = (*path, "services", s_index)
            self._check_name(document, (*s_path, "name"), service.name)
            self._check_labels(document, (*s_path, "labels"), service.labels)
            self._check_annotations(document, (*s_path, "annotations"), service.annotations)
            for index, raw in enumerate(service.slos):
                where: NodePath = (*s_path, "slos", index)
                slo_doc = self._parse(document, where, _SloDoc, raw)
                slo = slo_doc and self._bytewatch_slo(document, where, service, slo_doc)
                if slo is not None:
                    self._emit(slo)

    def _bytewatch_slo(
        self, document: Document, path: NodePath, service: _ServiceDoc, doc: _SloDoc
    ) -> Slo | None:
        before = len(self.problems)
        self._check_name(document, (*path, "name"), doc.name)
        labels = {**service.labels, **doc.labels}
        annotations = {**service.annotations, **doc.annotations}
        self._check_labels(document, (*path, "labels"), doc.labels)
        self._check_annotations(document, (*path, "annotations"), doc.annotations)
        sli = self._endpoint_sli(document, path, service.name, doc)
        period_s = doc.time_window or service.time_window or self.options.default_period_s
        before_windows = len(self.problems)
        windows = self._bytewatch_windows(document, (*path, "alerting"), doc.alerting, period_s)
        windows_ok = len(self.problems) == before_windows
        receivers = tuple(doc.receivers if doc.receivers is not None else service.receivers)
        alerts = []
        for severity, block, hold in (
            (Severity.PAGE, doc.alerting.page, DEFAULT_PAGE_FOR_S),
            (Severity.TICKET, doc.alerting.ticket, DEFAULT_TICKET_FOR_S),
        ):
            where = (*path, "alerting", severity.value)
            self._check_labels(document, (*where, "labels"), block.labels)
            self._check_annotations(document, (*where, "annotations"), block.annotations)
            if block.disable:
                continue
            if not any(w.severity is severity for w in windows):
                if not windows_ok:
                    continue  # the broken window is the problem, already reported
                self._problem(
                    document,
                    where,
                    f"no {severity.value} window in alerting.windows "
                    "(add one, or set `disable: true`)",
                )
                continue
            name = block.name or doc.alerting.name or DEFAULT_ALERT_NAME
            self._check_alert_name(document, (*where, "name"), name)
            alerts.append(
                SeverityAlert(
                    severity=severity,
                    name=name,
                    for_s=block.for_ if block.for_ is not None else hold,
                    labels=labels_of({**doc.alerting.labels, **block.labels}),
                    annotations=labels_of({**doc.alerting.annotations, **block.annotations}),
                    receivers=tuple(block.receivers if block.receivers is not None else receivers),
                )
            )
        self._check_labels(document, (*path, "alerting", "labels"), doc.alerting.labels)
        self._check_annotations(
            document, (*path, "alerting", "annotations"), doc.alerting.annotations
        )
        if sli is None or len(self.problems) > before:
            return None
        min_events = doc.alerting.min_events
        return Slo(
            service=service.name,
            name=doc.name,
            objective=doc.target,
            period_s=period_s,
            sli=sli,
            alerting=AlertPolicy(
                windows=windows,
                alerts=tuple(alerts),
                min_events=DEFAULT_MIN_EVENTS if min_events is None else min_events,
            ),
            description=doc.description,
            labels=labels_of(labels),
            annotations=labels_of(annotations),
            spec=BYTEWATCH_V1,
            source=document.position(path),
        )

    def _endpoint_sli(
        self, document: Document, path: NodePath, service: str, doc: _SloDoc
    ) -> EndpointSli | None:
        selector = doc.selector
        s_path = (*path, "selector")
        ok = True
        if selector.route is not None and selector.route_regex is not None:
            self._problem(
                document,
                (*s_path, "routeRegex"),
                "give either route (exact) or routeRegex, not both",
            )
            ok = False
        if selector.route is not None and not selector.route.startswith("/"):
            self._problem(
                document,
                (*s_path, "route"),
                f"a route template starts with '/', got {selector.route!r}",
            )
            ok = False
        if selector.route_regex is not None:
            message = _re2_problem(selector.route_regex)
            if message:
                self._problem(document, (*s_path, "routeRegex"), message)
                ok = False
        if selector.method is not None and not _METHOD.match(selector.method):
            self._problem(
                document,
                (*s_path, "method"),
                f"expected an upper-case HTTP method such as GET, got {selector.method!r}",
            )
            ok = False
        if selector.service is not None and not selector.service:
            self._problem(document, (*s_path, "service"), "must not be empty")
            ok = False
        indicator = doc.indicator
        if indicator.type is SliKind.LATENCY and indicator.latency_threshold is None:
            self._problem(
                document,
                (*path, "indicator", "latencyThreshold"),
                "a latency SLI needs its threshold, such as 300ms",
            )
            ok = False
        if indicator.type in (SliKind.AVAILABILITY, SliKind.CORRECTNESS) and (
            indicator.latency_threshold is not None
        ):
            self._problem(
                document,
                (*path, "indicator", "latencyThreshold"),
                f"an {indicator.type.value} SLI has no latency threshold "
                "(use type: health to combine them)",
            )
            ok = False
        if not ok:
            return None
        return EndpointSli(
            kind=indicator.type,
            selector=Selector(
                service=selector.service or service,
                route=_route_template(selector.route),
                route_regex=selector.route_regex,
                method=selector.method,
            ),
            latency_threshold_s=indicator.latency_threshold,
        )

    def _bytewatch_windows(
        self, document: Document, path: NodePath, alerting: _AlertingDoc, period_s: float
    ) -> tuple[BurnWindow, ...]:
        if alerting.windows is None:
            return windows_for(period_s, self.options.catalogs)
        result: list[BurnWindow] = []
        before = len(self.problems)
        for index, raw in enumerate(alerting.windows):
            where: NodePath = (*path, "windows", index)
            window: _WindowDoc | None = self._parse(document, where, _WindowDoc, raw)
            if window is None:
                continue
            if (window.error_budget_percent is None) == (window.burn_rate is None):
                self._problem(document, where, "give exactly one of errorBudgetPercent or burnRate")
                continue
            if window.short_window >= window.long_window:
                self._problem(
                    document,
                    (*where, "shortWindow"),
                    "the short window must be shorter than the long window",
                )
                continue
            if window.long_window > period_s:
                self._problem(
                    document,
                    (*where, "longWindow"),
                    "the long window must not be longer than the SLO's timeWindow",
                )
                continue
            if window.burn_rate is not None:
                if window.burn_rate <= 0:
                    self._problem(document, (*where, "burnRate"), "must be above 0")
                    continue
                fraction = budget_fraction_for(window.burn_rate, period_s, window.long_window)
            else:
                assert window.error_budget_percent is not None
                if not 0 < window.error_budget_percent <= 100:
                    self._problem(
                        document, (*where, "errorBudgetPercent"), "must be above 0 and at most 100"
                    )
                    continue
                fraction = window.error_budget_percent / 100
            row = CatalogRow(window.severity, window.long_window, window.short_window, fraction)
            result.append(burn_window(row, period_s))
        if not result and len(self.problems) == before:
            self._problem(document, (*path, "windows"), "give at least one window")
        return tuple(result)

    # -- Sloth --

    def _sloth(self, document: Document, path: NodePath, data: dict[str, Any]) -> None:
        doc: _SlothDoc | None = self._parse(document, path, _SlothDoc, data)
        if doc is None:
            return
        self._sloth_group(
            document,
            path,
            service=doc.service,
            labels=doc.labels,
            slos=doc.slos,
            spec=SLOTH_V1,
            plugins=doc.slo_plugins,
        )

    def _sloth_k8s(self, document: Document, path: NodePath, data: dict[str, Any]) -> None:
        doc: _SlothK8sDoc | None = self._parse(document, path, _SlothK8sDoc, data)
        if doc is None:
            return
        self._sloth_group(
            document,
            (*path, "spec"),
            service=doc.spec.service,
            labels=doc.spec.labels,
            slos=doc.spec.slos,
            spec=SLOTH_K8S_V1,
            plugins=doc.spec.slo_plugins,
        )

    def _sloth_group(
        self,
        document: Document,
        path: NodePath,
        *,
        service: str,
        labels: StrMap,
        slos: list[dict[str, Any]],
        spec: str,
        plugins: dict[str, Any] | None,
    ) -> None:
        if not service:
            self._problem(document, (*path, "service"), "must not be empty")
            return
        self._check_name(document, (*path, "service"), service)
        self._check_labels(document, (*path, "labels"), labels)
        if plugins:
            self._problem(
                document,
                (*path, "slo_plugins"),
                "Sloth SLO plugins are Go code and cannot be imported",
            )
        period_s = self.options.default_period_s
        for index, raw in enumerate(slos):
            where: NodePath = (*path, "slos", index)
            doc: _SlothSlo | None = self._parse(document, where, _SlothSlo, raw)
            if doc is None:
                continue
            before = len(self.problems)
            self._check_name(document, (*where, "name"), doc.name)
            self._check_labels(document, (*where, "labels"), doc.labels)
            if not 0 < doc.objective < 100:
                self._problem(
                    document,
                    (*where, "objective"),
                    f"a Sloth objective is a percentage above 0 and below 100, got {doc.objective}",
                )
            if doc.plugins:
                self._problem(
                    document,
                    (*where, "plugins"),
                    "Sloth SLO plugins are Go code and cannot be imported",
                )
            sli = self._sloth_sli(document, (*where, "sli"), doc.sli)
            alerts = self._sloth_alerts(document, (*where, "alerting"), doc.alerting)
            if sli is None or len(self.problems) > before:
                continue
            self._emit(
                Slo(
                    service=service,
                    name=doc.name,
                    objective=_percent(doc.objective),
                    period_s=period_s,
                    sli=sli,
                    alerting=AlertPolicy(
                        windows=windows_for(period_s, self.options.catalogs),
                        alerts=alerts,
                        min_events=0,
                    ),
                    description=doc.description,
                    labels=labels_of({**labels, **doc.labels}),
                    spec=spec,
                    source=document.position(where),
                )
            )

    def _sloth_sli(self, document: Document, path: NodePath, sli: _SlothSli) -> QuerySli | None:
        given = [name for name in ("events", "raw", "plugin") if getattr(sli, name) is not None]
        if len(given) != 1:
            self._problem(document, path, "give exactly one of events, raw or plugin")
            return None
        if sli.plugin is not None:
            self._problem(
                document,
                (*path, "plugin"),
                "Sloth SLI plugins are Go code and cannot be imported; "
                "write the SLI as events or raw",
            )
            return None
        if sli.events is not None:
            ok = True
            for name in ("error_query", "total_query"):
                if not getattr(sli.events, name):
                    self._problem(document, (*path, "events", name), "required field is missing")
                    ok = False
            if not ok:
                return None
            return QuerySli(
                source="prometheus",
                error_query=sli.events.error_query,
                total_query=sli.events.total_query,
            )
        assert sli.raw is not None
        if not sli.raw.error_ratio_query:
            self._problem(
                document, (*path, "raw", "error_ratio_query"), "required field is missing"
            )
            return None
        return QuerySli(source="prometheus", error_ratio_query=sli.raw.error_ratio_query)

    def _sloth_alerts(
        self, document: Document, path: NodePath, alerting: _SlothAlerting
    ) -> tuple[SeverityAlert, ...]:
        self._check_labels(document, (*path, "labels"), alerting.labels)
        self._check_annotations(document, (*path, "annotations"), alerting.annotations)
        enabled = [
            key
            for key, meta in (
                ("page_alert", alerting.page_alert),
                ("ticket_alert", alerting.ticket_alert),
            )
            if meta is None or not meta.disable
        ]
        if enabled and not alerting.name:
            self._problem(
                document,
                (*path, "name"),
                "an alert name is required while alerts are enabled (or set "
                f"{' and '.join(f'{key}.disable: true' for key in enabled)})",
            )
            return ()
        result = []
        for severity, given, key in (
            (Severity.PAGE, alerting.page_alert, "page_alert"),
            (Severity.TICKET, alerting.ticket_alert, "ticket_alert"),
        ):
            meta = given or _SlothAlertMeta()
            self._check_labels(document, (*path, key, "labels"), meta.labels)
            self._check_annotations(document, (*path, key, "annotations"), meta.annotations)
            if meta.disable or not alerting.name:
                continue
            self._check_alert_name(document, (*path, "name"), alerting.name)
            result.append(
                SeverityAlert(
                    severity=severity,
                    name=alerting.name,
                    for_s=0.0,  # Sloth's alerts have no `for:`; imports keep its behaviour
                    labels=labels_of({**alerting.labels, **meta.labels}),
                    annotations=labels_of({**alerting.annotations, **meta.annotations}),
                )
            )
        return tuple(result)

    # -- OpenSLO v1 --

    def _openslo_v1(self, document: Document, path: NodePath, data: dict[str, Any]) -> None:
        obj: _OsObject | None = self._parse(document, path, _OsObject, data)
        if obj is None:
            return
        spec_model = _OPENSLO_V1_SPECS.get(obj.kind)
        if spec_model is None:
            self._problem(
                document,
                (*path, "kind"),
                f"unknown OpenSLO kind {obj.kind!r} (expected one of: "
                f"{', '.join(_OPENSLO_V1_SPECS)})",
            )
            return
        name_ok = bool(_RFC1123.match(obj.metadata.name))
        if not name_ok:
            self._problem(
                document, (*path, "metadata", "name"), _rfc1123_message(obj.metadata.name)
            )
        spec = self._parse(document, (*path, "spec"), spec_model, obj.spec)
        if spec is None or not name_ok:
            return
        key = (obj.kind, obj.metadata.name)
        if obj.kind == "SLO":
            self.pending.append(_PendingOpenSlo(spec, obj.metadata, document, path))
        # The same name twice (one Service in two folders, as in OpenSLO's own examples) is
        # fine; the first definition is the one references resolve to.
        self.openslo.setdefault(
            key, _Named(obj.kind, obj.metadata.name, spec, obj.metadata, document, path)
        )

    def _openslo_v1alpha(self, document: Document, path: NodePath, data: dict[str, Any]) -> None:
        obj: _OsaObject | None = self._parse(document, path, _OsaObject, data)
        if obj is None:
            return
        if not _RFC1123.match(obj.metadata.name):
            self._problem(
                document, (*path, "metadata", "name"), _rfc1123_message(obj.metadata.name)
            )
        if obj.kind == "Service":
            self._parse(document, (*path, "spec"), _OsServiceSpec, obj.spec)
            return
        spec: _OsaSloSpec | None = self._parse(document, (*path, "spec"), _OsaSloSpec, obj.spec)
        if spec is None or not _RFC1123.match(obj.metadata.name):
            return
        period_s = self.options.default_period_s
        if spec.time_windows:
            window = spec.time_windows[0]
            # Sloth's import of this version understood one rolling month of 30 days and
            # nothing else; openslo/v1 and bytewatch/v1 take any period.
            if window.unit != "Day" or window.count != 30:
                self._problem(
                    document,
                    (*path, "spec", "timeWindows", 0),
                    f"openslo/v1alpha SLOs are imported with a 30-day window only, got "
                    f"{window.count} {window.unit}; use openslo/v1 or bytewatch/v1 "
                    "for other periods",
                )
                return
            period_s = 30 * DAY
        for index, objective in enumerate(spec.objectives):
            where: NodePath = (*path, "spec", "objectives", index)
            if objective.ratio_metrics is None:
                if spec.indicator is None:
                    self._problem(document, where, "needs ratioMetrics (or spec.indicator)")
                    continue
                sli = QuerySli(
                    source=spec.indicator.threshold_metric.source.lower(),
                    threshold_query=spec.indicator.threshold_metric.query,
                )
            else:
                ratio = objective.ratio_metrics
                sli = QuerySli(
                    source=ratio.good.source.lower(),
                    good_query=ratio.good.query,
                    total_query=ratio.total.query,
                )
            if not 0 < objective.target < 1:
                self._problem(document, (*where, "target"), "must be a ratio above 0 and below 1")
                continue
            self._emit(
                Slo(
                    service=spec.service,
                    name=f"{obj.metadata.name}-{index}",
                    objective=objective.target,
                    period_s=period_s,
                    sli=sli,
                    alerting=AlertPolicy(
                        windows=windows_for(period_s, self.options.catalogs), alerts=()
                    ),
                    description=spec.description,
                    budgeting=spec.budgeting_method,
                    spec=OPENSLO_V1ALPHA,
                    source=document.position(where),
                )
            )

    def _resolve_openslo(self) -> None:
        for pending in self.pending:
            self._openslo_slo(pending)

    def _openslo_slo(self, pending: _PendingOpenSlo) -> None:
        spec, document, path = pending.spec, pending.document, pending.path
        s_path: NodePath = (*path, "spec")
        sli_spec = self._openslo_indicator(document, s_path, spec.indicator, spec.indicator_ref)
        period_s, calendar = self._openslo_period(document, s_path, spec.time_window)
        policy_alerts = self._openslo_alerting(document, s_path, spec.alert_policies, period_s)
        if sli_spec is None or period_s is None or policy_alerts is None:
            return
        windows, alerts = policy_alerts
        several = len(spec.objectives) > 1
        for index, objective in enumerate(spec.objectives):
            where: NodePath = (*s_path, "objectives", index)
            target = objective.target
            if objective.target_percent is not None:
                target = objective.target_percent / 100
            if target is None or not 0 < target < 1:
                self._problem(
                    document, where, "needs target (a ratio above 0 and below 1) or targetPercent"
                )
                continue
            sli_source = sli_spec
            if objective.indicator is not None or objective.indicator_ref is not None:
                sli_source = (
                    self._openslo_indicator(
                        document, where, objective.indicator, objective.indicator_ref
                    )
                    or sli_spec
                )
            sli = self._openslo_sli(document, where, sli_source)
            if sli is None:
                continue
            self._emit(
                Slo(
                    service=spec.service,
                    name=f"{pending.metadata.name}-{index}" if several else pending.metadata.name,
                    objective=target,
                    period_s=period_s,
                    sli=sli,
                    alerting=AlertPolicy(windows=windows, alerts=alerts),
                    description=spec.description,
                    labels=labels_of(
                        {
                            k: v
                            for k, v in pending.metadata.labels.items()
                            if _LABEL_NAME.match(k) and k not in RESERVED_LABELS
                        }
                    ),
                    budgeting=spec.budgeting_method,
                    calendar=calendar,
                    spec=OPENSLO_V1,
                    source=document.position(path),
                )
            )

    def _openslo_indicator(
        self, document: Document, path: NodePath, inline: _OsInlineSli | None, ref: str | None
    ) -> _OsSliSpec | None:
        if (inline is None) == (ref is None):
            self._problem(document, path, "give exactly one of indicator or indicatorRef")
            return None
        if inline is not None:
            return inline.spec
        named = self.openslo.get(("SLI", str(ref)))
        if named is None:
            self._problem(
                document,
                (*path, "indicatorRef"),
                f"no SLI named {ref!r} in the files loaded together",
            )
            return None
        spec: _OsSliSpec = named.spec
        return spec

    def _openslo_sli(self, document: Document, path: NodePath, spec: _OsSliSpec) -> QuerySli | None:
        if (spec.ratio_metric is None) == (spec.threshold_metric is None):
            self._problem(
                document, path, "the SLI needs exactly one of ratioMetric or thresholdMetric"
            )
            return None
        if spec.threshold_metric is not None:
            source, query = self._metric(spec.threshold_metric)
            return QuerySli(source=source, threshold_query=query)
        ratio = spec.ratio_metric
        assert ratio is not None
        if ratio.raw is not None:
            if ratio.good or ratio.bad or ratio.total:
                self._problem(document, path, "a raw ratio metric has no good, bad or total")
                return None
            source, query = self._metric(ratio.raw)
            if ratio.raw_type == "success":
                query = f"1 - ({query})"
            return QuerySli(source=source, error_ratio_query=query)
        if ratio.total is None or (ratio.good is None) == (ratio.bad is None):
            self._problem(
                document, path, "a ratio metric needs total and exactly one of good or bad"
            )
            return None
        source, total = self._metric(ratio.total)
        if ratio.good is not None:
            return QuerySli(
                source=source, good_query=self._metric(ratio.good)[1], total_query=total
            )
        assert ratio.bad is not None
        return QuerySli(source=source, error_query=self._metric(ratio.bad)[1], total_query=total)

    def _metric(self, metric: _OsMetric) -> tuple[str, str]:
        """(source type, query) of an OpenSLO metric; the query is its spec's ``query`` field,
        or the whole spec as JSON for sources without one."""
        source = metric.metric_source.type
        if source is None and metric.metric_source.metric_source_ref:
            named = self.openslo.get(("DataSource", metric.metric_source.metric_source_ref))
            source = named.spec.type if named is not None else None
        query = metric.metric_source.spec.get("query")
        if not isinstance(query, str):
            query = json.dumps(metric.metric_source.spec, sort_keys=True, default=str)
        return (source or "unknown").lower(), query

    def _openslo_period(
        self, document: Document, path: NodePath, windows: list[_OsTimeWindow] | None
    ) -> tuple[float | None, str | None]:
        if not windows:
            return self.options.default_period_s, None
        window = windows[0]
        where = (*path, "timeWindow", 0)
        calendar = None
        if window.is_rolling:
            if window.calendar is not None:
                self._problem(document, (*where, "calendar"), "a rolling window has no calendar")
                return None, None
        else:
            if window.calendar is None:
                self._problem(
                    document,
                    (*where, "calendar"),
                    "a window that is not rolling needs its calendar",
                )
                return None, None
            try:
                zoneinfo.ZoneInfo(window.calendar.time_zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self._problem(
                    document,
                    (*where, "calendar", "timeZone"),
                    f"unknown IANA time zone {window.calendar.time_zone!r}",
                )
                return None, None
            calendar = f"{window.calendar.start_time} {window.calendar.time_zone}"
        try:
            period_s = _openslo_duration(window.duration, calendar_aligned=not window.is_rolling)
        except ValueError as exc:
            self._problem(document, (*where, "duration"), str(exc))
            return None, None
        return period_s, calendar

    def _openslo_alerting(
        self,
        document: Document,
        path: NodePath,
        policies: list[_OsPolicyItem] | None,
        period_s: float | None,
    ) -> tuple[tuple[BurnWindow, ...], tuple[SeverityAlert, ...]] | None:
        if period_s is None:
            return None
        if not policies:
            # No alert policy: OpenSLO says nothing alerts. The default windows are still
            # measured, so the SLO's status shows its burn rates.
            return windows_for(period_s, self.options.catalogs), ()
        windows: list[BurnWindow] = []
        by_severity: dict[Severity, SeverityAlert] = {}
        for index, item in enumerate(policies):
            where: NodePath = (*path, "alertPolicies", index)
            resolved = self._resolve(
                document,
                where,
                ref=item.alert_policy_ref,
                kind="AlertPolicy",
                ref_field="alertPolicyRef",
                metadata=item.metadata,
                spec=item.spec,
            )
            if resolved is None:
                return None
            name, policy = resolved
            targets = []
            for t_index, target in enumerate(policy.notification_targets):
                found = self._resolve(
                    document,
                    where,
                    ref=target.target_ref,
                    kind="AlertNotificationTarget",
                    ref_field=f"notificationTargets[{t_index}].targetRef",
                    metadata=target.metadata,
                    spec=target.spec,
                )
                if found is None:
                    return None
                targets.append(found[0])
            for c_index, item_condition in enumerate(policy.conditions):
                found = self._resolve(
                    document,
                    where,
                    ref=item_condition.condition_ref,
                    kind="AlertCondition",
                    ref_field=f"conditions[{c_index}].conditionRef",
                    metadata=item_condition.metadata,
                    spec=item_condition.spec,
                )
                if found is None:
                    return None
                condition: _OsAlertConditionSpec = found[1]
                rule = condition.condition
                if rule.op not in ("gt", "gte"):
                    self._problem(
                        document,
                        where,
                        f"condition {found[0]!r} alerts when the burn rate is {rule.op} "
                        f"{rule.threshold}; only gt and gte can alert on a burn",
                    )
                    return None
                severity = (
                    Severity.PAGE
                    if condition.severity.lower() in ("page", "critical", "high")
                    else Severity.TICKET
                )
                long_s = rule.lookback_window
                # The SRE Workbook's short window is a twelfth of the long one.
                row = CatalogRow(
                    severity,
                    long_s,
                    long_s / 12,
                    budget_fraction_for(rule.threshold, period_s, long_s),
                )
                windows.append(burn_window(row, period_s))
                previous = by_severity.get(severity)
                by_severity[severity] = SeverityAlert(
                    severity=severity,
                    name=previous.name if previous else _alert_name(name),
                    for_s=max(rule.alert_after, previous.for_s if previous else 0.0),
                    receivers=tuple(
                        dict.fromkeys([*(previous.receivers if previous else ()), *targets])
                    ),
                )
        return tuple(windows), tuple(by_severity[s] for s in Severity if s in by_severity)

    def _resolve(
        self,
        document: Document,
        path: NodePath,
        *,
        ref: str | None,
        kind: str,
        ref_field: str,
        metadata: _OsMetadata | None,
        spec: Any,
    ) -> tuple[str, Any] | None:
        """(name, spec) of a reference or an inline object."""
        if ref is not None:
            named = self.openslo.get((kind, ref))
            if named is None:
                self._problem(
                    document,
                    path,
                    f"{ref_field}: no {kind} named {ref!r} in the files loaded together",
                )
                return None
            return named.name, named.spec
        if metadata is None or spec is None:
            self._problem(document, path, f"give {ref_field} or an inline {kind} (metadata, spec)")
            return None
        return metadata.name, spec

    # -- common checks --

    def _check_name(self, document: Document, path: NodePath, name: str) -> None:
        if not _NAME.match(name):
            self._problem(
                document,
                path,
                f"{name!r} is not a valid name: use letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit",
            )

    def _check_alert_name(self, document: Document, path: NodePath, name: str) -> None:
        if not _LABEL_NAME.match(name):
            self._problem(
                document,
                path,
                f"{name!r} is not a valid Prometheus alert name "
                "(letters, digits and '_', not starting with a digit)",
            )

    def _check_labels(self, document: Document, path: NodePath, labels: Mapping[str, str]) -> None:
        for key in labels:
            if not _LABEL_NAME.match(key) or key.startswith("__"):
                self._problem(
                    document,
                    (*path, key),
                    "not a valid Prometheus label name (letters, digits and '_', "
                    "not starting with a digit or '__')",
                )
            elif key in RESERVED_LABELS:
                self._problem(
                    document,
                    (*path, key),
                    f"'{key}' is set by bytewatch itself (reserved: "
                    f"{', '.join(sorted(RESERVED_LABELS))})",
                )

    def _check_annotations(
        self, document: Document, path: NodePath, annotations: Mapping[str, str]
    ) -> None:
        for key in annotations:
            if not _LABEL_NAME.match(key):
                self._problem(
                    document, (*path, key), "not a valid annotation name (letters, digits and '_')"
                )

    # -- the end --

    def finish(self) -> tuple[Slo, ...]:
        self._resolve_openslo()
        seen: dict[str, Slo] = {}
        for slo in self.slos:
            first = seen.setdefault(slo.id, slo)
            if first is not slo and slo.source is not None:
                self.problems.append(
                    Problem(
                        slo.source,
                        "name",
                        f"SLO id {slo.id!r} is already defined at {first.source}",
                    )
                )
        return tuple(self.slos)


def _percent(value: float | str) -> float:
    """A percentage as a ratio without binary noise: 99.9 → 0.999, not 0.9990000000000001."""
    return float(Decimal(str(value).strip()) / 100)


def _alert_name(policy_name: str) -> str:
    """An OpenSLO policy name (``high-priority``) as an alert name (``HighPriority``)."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", policy_name) if part)


def _rfc1123_message(name: str) -> str:
    return (
        f"{name!r} is not a valid OpenSLO name: lower-case letters, digits and '-', "
        "starting and ending with a letter or digit (RFC 1123)"
    )


def _openslo_duration(text: str, calendar_aligned: bool) -> float:
    """OpenSLO's duration shorthand: a whole number and one of m, h, d, w, M, Q, Y.

    Months, quarters and years have no fixed length; they are accepted for calendar-aligned
    windows only, at 30, 90 and 365 days.
    """
    match = re.fullmatch(r"(\d+)([mhdwMQY])", text.strip())
    if not match:
        raise ValueError(f"'{text}' is not an OpenSLO duration such as 28d, 1w or 1M")
    count, unit = int(match.group(1)), match.group(2)
    if count <= 0:
        raise ValueError(f"'{text}' is not a positive duration")
    if unit in "MQY" and not calendar_aligned:
        raise ValueError(f"'{text}': months, quarters and years need a calendar-aligned window")
    seconds = {
        "m": MINUTE,
        "h": 60 * MINUTE,
        "d": DAY,
        "w": 7 * DAY,
        "M": 30 * DAY,
        "Q": 90 * DAY,
        "Y": 365 * DAY,
    }[unit]
    return count * seconds


def _re2_problem(pattern: str) -> str | None:
    if _NOT_RE2.search(pattern):
        return "lookarounds and backreferences are not RE2, which Prometheus uses"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


def _route_template(route: str | None) -> str | None:
    """A selector route as the probe spells routes: ``/users/{id}`` is ``/users/:id``."""
    if route is None:
        return None
    try:
        return template_of(route)
    except ValueError:
        return route  # not a pattern (an exact route with unusual characters): match as is
