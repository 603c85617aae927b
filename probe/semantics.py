"""Business errors hidden in successful responses: a response body → ``Verdict``.

Many APIs answer ``200 OK`` and say in the body that the call failed (``{"ok": false, "error":
"invalid_auth"}``). ``Classifier.classify(view)`` finds those, in this order:

1. **User rules** (the ``semantics:`` section of the config file), first match wins. A rule can
   mark an error, with its type, or explicitly mark *not* an error (which also silences the
   built-in detectors for what it matches).
2. **Built-in detectors**, for 2xx responses only, on the top level of a JSON body (or one level
   down in a ``Response`` / ``*_response`` wrapper) and on XML bodies:

   - ``ok: false`` (Slack, Telegram) and ``success: false`` / ``isSuccess: false`` / ``succeeded:
     false``; ``status: false``
   - an ``error`` field that holds something: a non-empty object, list or code string, or
     ``true`` (``null``, ``false``, ``""``, ``{}``, ``[]``, ``0`` and words like ``"none"`` hold
     nothing); a number only next to a message, since otherwise it is a count
   - a non-empty ``errors`` list or object (GraphQL, JSON:API, partial failures); GraphQL
     mutation payloads whose ``userErrors`` / ``errors`` are non-empty; bulk answers with
     ``errors: true`` (Elasticsearch). ``errors: []``, ``errors: null`` and ``errors: 3`` (a
     count) are not errors.
   - JSON-RPC 2.0 ``error`` objects, in single and batch answers
   - JSend ``status: "error" | "fail"`` in an envelope (no keys but JSend's and error details),
     Kubernetes ``Status`` objects with ``status: Failure``
   - RFC 7807 problem documents (``application/problem+json``), and any envelope whose own
     ``status``/``statusCode`` is a number from 400 to 599 next to a message (Twilio-style)
   - numeric result codes where zero means success: ``errcode`` (WeChat), ``error_code``
     (Baidu), ``ret``/``retcode``, ``errno``, ``resultCode``, ``returnCode``; ``code`` only next
     to a message, and not when the message says success; ``sub_code`` (Alipay)
   - an Apigee-style ``fault`` object; AWS JSON-protocol errors (only ``__type`` and
     ``message``); SOAP 1.1/1.2 ``Fault``; XML error documents whose root is ``Error`` /
     ``ErrorResponse`` / ``Errors`` (S3, AWS query APIs)

   An explicit ``ok: true`` / ``success: true`` wins over anything else in the body. A top-level
   object with an ``id`` (``_id``, ``uuid``, ``sid``, or an ``object`` type) is a record that
   *describes* something (a job that failed, a declined payment) rather than a failed call, so
   the field detectors skip it.
   Nested fields (search hits with ``level: "error"``), HTML pages, plain text and binary bodies
   never fire a built-in detector.

**Inspected or not.** A JSON or XML body that was read and reports nothing is ``CLEAN``; a
verdict about a body nothing here can read (none, HTML, plain text, binary, ``br``) or that was
not a candidate is ``NOT_INSPECTED``, so the correctness SLI can count only what was looked at.

**4xx and 5xx.** Only 2xx answers are built-in candidates: a 5xx already counts as an error, and a
4xx is the client's mistake, which the status already says and which should not burn the
service's error budget. A user rule may opt other statuses in with ``status`` (e.g. Stripe's 402
for a declined card).

**Cost.** A body is inflated (gzip/deflate) and decoded first; then a handful of substring tests
(``rror``, ``fail``, ``false``, ``Fault``, ``ode"``, ...) decide whether parsing can find anything.
A clean body with none of them costs a few µs and is never parsed.

**Error types** are short labels (``card_declined``, ``invalid_auth``, GraphQL
``extensions.code``): from ``code``, ``errorType``, ``reason``, ``type`` (the last path segment
of a URI), a string ``status``, ``name`` or a short ``error`` string, sanitised by
``sanitize_error_type``. ``TopErrorTypes`` bounds how many distinct labels an endpoint exports.

User rules (``semantics:`` section)::

    semantics:
      builtin: true               # run the built-in detectors when no rule matches (default)
      rules:
        - name: declined-card     # optional; default "rules[N]"; becomes the verdict's rule
          service: payments       # optional: a name or a list (default: any service)
          route: /v1/charges      # optional: a route or a list (default: any route)
          method: POST            # optional: a method or a list
          status: [200, 402]      # optional: codes or classes like "2xx" (default: 2xx)
          when:                   # optional; every condition must hold
            json: {field: outcome.type, in: [issuer_declined, blocked]}
            body: {matches: "DECLINED"}
            header: {name: x-result, equals: declined}
          error: true             # required: true marks an error, false marks NOT an error
          type: card_declined     # optional: a fixed type, or ...
          type_from: outcome.reason   # ... the JSON field that holds it

``json`` and ``header`` take one condition or a list of them. A condition has exactly one of
``equals``, ``in``, ``matches`` (a regular expression searched in the value as text) or
``exists`` (true/false). A JSON ``field`` is a dotted path with list indexes: ``errors[0].code``,
``items[*].status`` (``[*]``: any element). ``body.matches`` searches the decoded body text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from probe.body import (
    MediaKind,
    ascii_compatible,
    codec_of,
    decode_content,
    media_kind,
    media_type_of,
    parse_json_prefix,
)
from probe.errors import ConfigFieldError
from probe.model import NOT_INSPECTED, ResponseView, Verdict

MAX_BODY: Final = 64 * 1024
"""Bodies longer than this are cut first (the probe's capture is far shorter)."""

OTHER: Final = "other"

CLEAN: Final = Verdict(business_error=False)
"""The verdict of a JSON or XML body that was looked at and reports no error."""


# --- error types -----------------------------------------------------------------------------

_LABEL_WORD = re.compile(r"[A-Za-z0-9_.:-]+\Z")
MAX_TYPE_LEN: Final = 64


def sanitize_error_type(value: object) -> str | None:
    """A short label from a code or type; None for a sentence, an empty value or a container.

    ``https://example.com/probs/out-of-credit`` → ``out-of-credit``;
    ``com.amazonaws.dynamodb#ResourceNotFoundException`` → ``ResourceNotFoundException``;
    ``Not Found`` → ``Not_Found``. Four words or more, or punctuation beyond ``_.:-``, make a
    message, not a type.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "://" in text or text.startswith(("/", "urn:")):
        text = text.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    text = text.rsplit("#", 1)[-1]
    words = text.split()
    if not words or len(words) > 3 or len(text) > 2 * MAX_TYPE_LEN:
        return None
    if not _LABEL_WORD.match("".join(words)):
        return None
    return "_".join(words)[:MAX_TYPE_LEN].strip("_.:-") or None


class TopErrorTypes:
    """Keeps at most ``per_endpoint`` error-type labels per endpoint; the rest become ``other``.

    A type is admitted while there is room. After that, types are counted in a space-saving
    summary of ``4 * per_endpoint`` candidates, and one replaces the rarest admitted type only
    when the count it is *guaranteed* to have (its count minus what it inherited from the
    candidate it evicted) is higher: a flood of one-off types never churns the labels, so the
    label values an endpoint ever exports stay bounded too. Memory is bounded by
    ``max_endpoints * 5 * per_endpoint`` counters; endpoints beyond ``max_endpoints`` get
    ``other``.
    """

    def __init__(self, per_endpoint: int = 10, max_endpoints: int = 10_000) -> None:
        self._per_endpoint = per_endpoint
        self._max_endpoints = max_endpoints
        self._admitted: dict[Hashable, dict[str, int]] = {}
        self._candidates: dict[Hashable, dict[str, tuple[int, int]]] = {}  # (count, inherited)

    def label(self, endpoint: Hashable, error_type: str | None) -> str | None:
        """The label to export for ``error_type`` at ``endpoint`` (None stays None)."""
        if error_type is None:
            return None
        admitted = self._admitted.get(endpoint)
        if admitted is None:
            if len(self._admitted) >= self._max_endpoints:
                return OTHER
            admitted = self._admitted[endpoint] = {}
        if error_type in admitted:
            admitted[error_type] += 1
            return error_type
        if len(admitted) < self._per_endpoint:
            admitted[error_type] = 1
            return error_type
        candidates = self._candidates.setdefault(endpoint, {})
        count, inherited = candidates.pop(error_type, (0, 0))
        if count == 0 and len(candidates) >= 4 * self._per_endpoint:
            rarest = min(candidates, key=lambda name: candidates[name][0])
            count = inherited = candidates.pop(rarest)[0]
        count += 1
        weakest = min(admitted, key=admitted.__getitem__)
        if count - inherited > admitted[weakest]:
            candidates[weakest] = (admitted.pop(weakest), 0)
            admitted[error_type] = count - inherited
            return error_type
        candidates[error_type] = (count, inherited)
        return OTHER


# --- user rules ------------------------------------------------------------------------------

Step = str | int | None  # a key, an index, or None for "any element"
JsonValue = object  # what json.loads returns (a named alias: mypyc cannot build a dataclass
# whose field is annotated with the bare builtin)


@dataclass(frozen=True, slots=True)
class Match:
    """One test: exactly one of equals (``has_equals``) / in / matches / exists is set."""

    equals: JsonValue = None
    one_of: tuple[JsonValue, ...] | None = None
    pattern: re.Pattern[str] | None = None
    exists: bool | None = None
    has_equals: bool = False  # equals may be null, so None cannot mean "not set"

    def holds(self, values: Sequence[object]) -> bool:
        """Whether the test holds for the values found at a field (none when it is absent)."""
        if self.exists is not None:
            return bool(values) is self.exists
        return any(self._holds_for(value) for value in values)

    def _holds_for(self, value: object) -> bool:
        if self.has_equals:
            return _same(value, self.equals)
        if self.one_of is not None:
            return any(_same(value, option) for option in self.one_of)
        if self.pattern is not None:
            return isinstance(value, str | int | float) and bool(self.pattern.search(str(value)))
        return False


def _same(value: object, expected: object) -> bool:
    # YAML's 1 is not JSON's true: compare booleans only with booleans.
    return isinstance(value, bool) is isinstance(expected, bool) and value == expected


@dataclass(frozen=True, slots=True)
class JsonCondition:
    field: str
    steps: tuple[Step, ...]
    match: Match


@dataclass(frozen=True, slots=True)
class HeaderCondition:
    name: str
    match: Match


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    error: bool
    services: frozenset[str] | None = None
    routes: frozenset[str] | None = None
    methods: frozenset[str] | None = None
    statuses: frozenset[int] = frozenset(range(200, 300))
    json: tuple[JsonCondition, ...] = ()
    body: re.Pattern[str] | None = None
    headers: tuple[HeaderCondition, ...] = ()
    type: str | None = None
    type_from: tuple[Step, ...] | None = None


@dataclass(frozen=True, slots=True)
class SemanticRules:
    """The validated ``semantics:`` section."""

    rules: tuple[Rule, ...] = ()
    builtin: bool = True


_RULE_KEYS = ("name", "service", "route", "method", "status", "when", "error", "type", "type_from")
_WHEN_KEYS = ("json", "body", "header")
_OPERATORS = ("equals", "in", "matches", "exists")
_PATH_STEP = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")
_STATUS_CLASS = re.compile(r"([1-5])xx\Z")

Where = tuple[str | int, ...]


def load_semantic_rules(section: object) -> SemanticRules:
    """Validate the already-parsed ``semantics:`` section (None means the defaults)."""
    where: Where = ("semantics",)
    if section is None:
        return SemanticRules()
    mapping = _mapping(section, where, ("builtin", "rules"))
    builtin = mapping.get("builtin", True)
    if not isinstance(builtin, bool):
        raise ConfigFieldError((*where, "builtin"), f"expected true or false, got {builtin!r}")
    raw_rules = mapping.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigFieldError((*where, "rules"), f"expected a list, got {_kind(raw_rules)}")
    rules = tuple(_load_rule(raw, (*where, "rules", i)) for i, raw in enumerate(raw_rules))
    return SemanticRules(rules=rules, builtin=builtin)


def _load_rule(raw: object, where: Where) -> Rule:
    rule = _mapping(raw, where, _RULE_KEYS)
    if "error" not in rule:
        raise ConfigFieldError((*where, "error"), "required: true marks an error, false not one")
    error = rule["error"]
    if not isinstance(error, bool):
        raise ConfigFieldError((*where, "error"), f"expected true or false, got {error!r}")
    name = rule.get("name", _location_text(where[1:]))
    if not isinstance(name, str) or not name:
        raise ConfigFieldError((*where, "name"), f"expected a non-empty string, got {name!r}")
    if not error and ("type" in rule or "type_from" in rule):
        key = "type" if "type" in rule else "type_from"
        raise ConfigFieldError((*where, key), "only a rule with error: true has a type")
    if "type" in rule and "type_from" in rule:
        raise ConfigFieldError((*where, "type_from"), "give either type or type_from, not both")
    fixed_type = None
    if "type" in rule:
        fixed_type = sanitize_error_type(rule["type"])
        if fixed_type is None:
            raise ConfigFieldError((*where, "type"), f"not a usable type label: {rule['type']!r}")
    type_from = None
    if "type_from" in rule:
        type_from = _json_path(rule["type_from"], (*where, "type_from"))
    when = _mapping(rule.get("when", {}), (*where, "when"), _WHEN_KEYS)
    json_conditions = tuple(
        JsonCondition(
            field=str(item["field"]),
            steps=_json_path(item["field"], (*at, "field")),
            match=_load_match(item, at, ("field",)),
        )
        for item, at in _one_or_many(when.get("json"), (*where, "when", "json"), "field")
    )
    header_conditions = tuple(
        HeaderCondition(name=_header_name(item["name"], at), match=_load_match(item, at, ("name",)))
        for item, at in _one_or_many(when.get("header"), (*where, "when", "header"), "name")
    )
    body = None
    if "body" in when:
        at = (*where, "when", "body")
        body_match = _mapping(when["body"], at, ("matches",))
        if "matches" not in body_match:
            raise ConfigFieldError((*at, "matches"), "required: a regular expression")
        body = _regex(body_match["matches"], (*at, "matches"))
    return Rule(
        name=name,
        error=error,
        services=_names(rule.get("service"), (*where, "service")),
        routes=_names(rule.get("route"), (*where, "route")),
        methods=_names(rule.get("method"), (*where, "method"), upper=True),
        statuses=_statuses(rule["status"], (*where, "status"))
        if "status" in rule
        else frozenset(range(200, 300)),
        json=json_conditions,
        body=body,
        headers=header_conditions,
        type=fixed_type,
        type_from=type_from,
    )


def _mapping(value: object, where: Where, keys: Sequence[str]) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigFieldError(where, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if key not in keys:
            raise ConfigFieldError(
                (*where, str(key)), f"unknown key; expected one of {', '.join(keys)}"
            )
    return value


def _one_or_many(
    value: object, where: Where, required: str
) -> Iterator[tuple[Mapping[str, object], Where]]:
    if value is None:
        return
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        at = (*where, index) if isinstance(value, list) else where
        condition = _mapping(item, at, (required, *_OPERATORS))
        if required not in condition:
            raise ConfigFieldError((*at, required), "required")
        yield condition, at


def _load_match(condition: Mapping[str, object], where: Where, skip: tuple[str, ...]) -> Match:
    operators = [key for key in condition if key not in skip]
    if len(operators) != 1:
        raise ConfigFieldError(
            where, f"expected exactly one of {', '.join(_OPERATORS)}, got {len(operators)}"
        )
    operator = operators[0]
    value = condition[operator]
    at = (*where, operator)
    if operator == "equals":
        _scalar(value, at)
        return Match(equals=value, has_equals=True)
    if operator == "in":
        if not isinstance(value, list) or not value:
            raise ConfigFieldError(at, f"expected a non-empty list, got {_kind(value)}")
        for index, option in enumerate(value):
            _scalar(option, (*at, index))
        return Match(one_of=tuple(value))
    if operator == "matches":
        return Match(pattern=_regex(value, at))
    if not isinstance(value, bool):
        raise ConfigFieldError(at, f"expected true or false, got {value!r}")
    return Match(exists=value)


def _scalar(value: object, where: Where) -> None:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ConfigFieldError(
            where, f"expected a string, number, boolean or null, got {_kind(value)}"
        )


def _regex(value: object, where: Where) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ConfigFieldError(where, f"expected a regular expression string, got {_kind(value)}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ConfigFieldError(where, f"not a valid regular expression: {exc}") from None


def _json_path(value: object, where: Where) -> tuple[Step, ...]:
    if not isinstance(value, str) or not value:
        raise ConfigFieldError(where, f"expected a field path such as a.b[0].c, got {value!r}")
    steps: list[Step] = []
    position = 0
    for match in _PATH_STEP.finditer(value):
        key, index = match.groups()
        separator = value[position : match.start()]
        if separator != ("." if key is not None and steps else ""):
            break
        steps.append(key if key is not None else (None if index == "*" else int(index)))
        position = match.end()
    if position != len(value) or not steps or isinstance(steps[0], int) or steps[0] is None:
        raise ConfigFieldError(where, f"not a field path such as a.b[0].c: {value!r}")
    return tuple(steps)


def _names(value: object, where: Where, *, upper: bool = False) -> frozenset[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            at = (*where, index) if isinstance(value, list) else where
            raise ConfigFieldError(at, f"expected a non-empty string, got {item!r}")
    return frozenset(str(item).upper() if upper else str(item) for item in items)


def _statuses(value: object, where: Where) -> frozenset[int]:
    items = value if isinstance(value, list) else [value]
    statuses: set[int] = set()
    for index, item in enumerate(items):
        at = (*where, index) if isinstance(value, list) else where
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            statuses.add(item)
        elif isinstance(item, str) and (match := _STATUS_CLASS.match(item)):
            base = int(match.group(1)) * 100
            statuses.update(range(base, base + 100))
        else:
            raise ConfigFieldError(at, f"expected a status code or a class like 2xx, got {item!r}")
    return frozenset(statuses)


def _header_name(value: object, where: Where) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigFieldError((*where, "name"), f"expected a header name, got {value!r}")
    return value.lower()


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _location_text(location: Where) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else part for part in location)


def _values_at(document: object, steps: tuple[Step, ...]) -> Iterator[object]:
    """Every value at the path (several when a step is ``[*]``)."""
    if not steps:
        yield document
        return
    step, rest = steps[0], steps[1:]
    if isinstance(step, str):
        if isinstance(document, dict) and step in document:
            yield from _values_at(document[step], rest)
    elif isinstance(document, list):
        if step is None:
            for item in document:
                yield from _values_at(item, rest)
        elif step < len(document):
            yield from _values_at(document[step], rest)


# --- the classifier --------------------------------------------------------------------------


class _Body:
    """One response's body, decoded and parsed on first use, at most once each."""

    __slots__ = ("_json", "_parsed", "_text", "charset", "codec", "data", "kind", "problem")

    def __init__(self, view: ResponseView) -> None:
        # The head's own lookup when there is one, skipping ResponseView.header's extra call.
        header = view.lookup if view.lookup is not None else view.header
        media_type, self.charset = media_type_of(header("content-type"))
        self.problem = media_type == "application/problem+json"
        raw = view.body if len(view.body) <= MAX_BODY else view.body[:MAX_BODY]
        self.data = decode_content(raw, header("content-encoding")) or b""
        self.kind = media_kind(media_type, self.data) if self.data else MediaKind.OTHER
        self.codec = codec_of(self.data, self.charset)
        self._text: str | None = None
        self._json: object = None
        self._parsed = False

    @property
    def text(self) -> str:
        """The decoded text ("" for a binary body or a coding that cannot be undone)."""
        if self._text is None:
            binary = self.kind is MediaKind.OTHER
            self._text = "" if binary else self.data.decode(self.codec, "replace")
        return self._text

    @property
    def ascii_bytes(self) -> bytes:
        """Bytes in which ASCII text reads as ASCII: the data itself unless it is UTF-16/32."""
        return self.data if ascii_compatible(self.codec) else self.text.encode()

    def json(self) -> object:
        """The (partial) JSON document, or None when the body is not JSON."""
        if not self._parsed:
            self._parsed = True
            if self.kind is MediaKind.JSON:
                self._json = parse_json_prefix(self.text)
        return self._json

    @property
    def lexable(self) -> bool:
        """Whether JSON's structure can be read off ``ascii_bytes`` byte by byte: not where a
        character's second byte may be a quote's, a backslash's or a bracket's (Shift_JIS's
        "ソ" and "表" end in a backslash; GBK, Big5)."""
        return self.codec in _LEXABLE_CODECS or not ascii_compatible(self.codec)

    @property
    def outline_codec(self) -> str | None:
        """The codec to read this body's outline in (see outline_in_python); None when the
        outline does not serve: the whole document is parsed already, or the body is not
        ``lexable``."""
        if self._parsed or not self.lexable:
            return None
        # ascii_bytes re-encodes UTF-16 and UTF-32 bodies as UTF-8
        return self.codec if ascii_compatible(self.codec) else "utf-8"


class Classifier:
    """Decides the ``Verdict`` of one response. Holds no per-response state, only what its
    verdicts on outlines were (see ``OutlineVerdicts``)."""

    def __init__(self, rules: SemanticRules = SemanticRules(), *, outlines: int = 4096) -> None:
        """``outlines``: how many outlines' verdicts to remember (0: none)."""
        self._rules = rules
        self._by_service: dict[str, tuple[Rule, ...]] = {}
        self._outlines = OutlineVerdicts(size=outlines)

    def classify(self, view: ResponseView) -> Verdict:
        """The verdict of ``view``; never raises on any body."""
        rules = self._rules_for(view.service)
        candidate = 200 <= view.status < 300 and self._rules.builtin and bool(view.body)
        if not candidate and not rules:
            return NOT_INSPECTED
        body = _Body(view)
        for rule in rules:
            if _applies(rule, view, body):
                if not rule.error:
                    return Verdict(business_error=False, rule=rule.name)
                return Verdict(
                    business_error=True, error_type=_rule_type(rule, body), rule=rule.name
                )
        return builtin_verdict(body, self._outlines) if candidate else NOT_INSPECTED

    def _rules_for(self, service: str) -> tuple[Rule, ...]:
        rules = self._by_service.get(service)
        if rules is None:
            rules = tuple(
                r for r in self._rules.rules if r.services is None or service in r.services
            )
            if len(self._by_service) < 10_000:  # services are few; the bound is a safety net
                self._by_service[service] = rules
        return rules


def _applies(rule: Rule, view: ResponseView, body: _Body) -> bool:
    if view.status not in rule.statuses:
        return False
    if rule.routes is not None and view.route not in rule.routes:
        return False
    if rule.methods is not None and view.method.upper() not in rule.methods:
        return False
    for header in rule.headers:
        value = view.header(header.name)
        if not header.match.holds(() if value is None else (value,)):
            return False
    if rule.body is not None and not rule.body.search(body.text):
        return False
    return all(
        condition.match.holds(list(_values_at(body.json(), condition.steps)))
        for condition in rule.json
    )


def _rule_type(rule: Rule, body: _Body) -> str | None:
    if rule.type_from is None:
        return rule.type
    for value in _values_at(body.json(), rule.type_from):
        label = sanitize_error_type(value)
        if label is not None:
            return label
    return None


# --- built-in detectors ----------------------------------------------------------------------

# Every built-in JSON detector needs one of these in the body; most clean bodies have none.
# They are spelled out in worth_parsing_in_python; a test keeps the two in step.
_JSON_HINTS: Final = (
    b"rror", b"fail", b"Fail", b'ode"', b'"ret', b"errno", b'"rc"', b'"fault"', b'"__type"',
)  # fmt: skip
# "false" and "status" are common in clean bodies, so they only count in these spellings.
_FALSE_FLAGS: Final = tuple(
    f'"{key}"{colon}false'
    for key in ("ok", "success", "Success", "isSuccess", "IsSuccess", "succeeded", "status")
    for colon in (":", ": ")
)
_HTTP_STATUS: Final = re.compile(rb'tatus(?:Code|_code)?"\s*:\s*"?[45]\d\d\b')
# The same words for probe/_needles.c, which looks for all of them in one pass: bit k of its
# answer is _NEEDLES[k]. Any hint sends a body to the parser; "false" when one of the flags is
# there too, and "tatus" when _HTTP_STATUS matches.
_NEEDLES: Final = (*_JSON_HINTS, b"false", b"tatus")
_HINTS: Final = (1 << len(_JSON_HINTS)) - 1
_FALSE: Final = 1 << len(_JSON_HINTS)
_TATUS: Final = 1 << (len(_JSON_HINTS) + 1)


_JSON: Final = MediaKind.JSON  # a global: off its enum class a member costs ~40 ns more


class OutlineVerdicts:
    """What outlines (see outline_in_python) decided, by their bytes and codec: the answers of
    an endpoint often differ only inside their lists, and so share an outline, and the two ends
    of a connection on one host judge the same answer. At most ``size`` outlines of at most
    ``longest`` bytes are kept (none when ``size`` is 0); the lot is dropped when full."""

    def __init__(self, size: int = 4096, longest: int = 512) -> None:
        self._size = size
        self._longest = longest
        self._known: dict[tuple[bytes, str], Verdict | None] = {}

    def __len__(self) -> int:
        return len(self._known)

    def verdict(self, outline: bytes, codec: str) -> Verdict | None:
        """The verdict ``outline`` decides: CLEAN, an error, or None when only the whole
        document can tell (the outline does not parse, or the error's label lies in a reduced
        list)."""
        key = (outline, codec)
        if key in self._known:
            return self._known[key]
        decided = _decided_by_outline(outline, codec)
        if self._size > 0 and len(outline) <= self._longest:
            if len(self._known) >= self._size:
                self._known.clear()
            self._known[key] = decided
        return decided


def _decided_by_outline(outline: bytes, codec: str) -> Verdict | None:
    document = parse_json_prefix(outline.decode(codec, "replace"))
    if document is None:
        return None
    verdict = _json_verdict(document, problem=False)
    if verdict is None:
        return CLEAN
    return None if _holds_a_label_list(document) else verdict


def builtin_verdict(body: _Body, outlines: OutlineVerdicts) -> Verdict:
    """What the built-in detectors say about a 2xx body; ``outlines`` remembers what outlines
    decided (a Classifier keeps one).

    Only JSON and XML bodies are inspected; HTML, plain text, binary bodies and codings that
    cannot be undone are ``NOT_INSPECTED``: nothing here can tell what they report.
    """
    if body.kind is _JSON:
        if body.problem:
            return _json_verdict(body.json(), problem=True) or CLEAN
        data = body.ascii_bytes
        looked_at = _looked_at(data, lexable=body.lexable)
        if looked_at is None:
            return CLEAN
        # Whether there is an error follows from the outline, which parses in a fraction of the
        # time when lists of records make up the body; which error, unless it is read from the
        # items of a list the outline reduced.
        codec = body.outline_codec if looked_at is not data else None
        if codec is not None:
            decided = outlines.verdict(looked_at, codec)
            if decided is not None:
                return decided
        return _json_verdict(body.json(), problem=False) or CLEAN
    if body.kind is MediaKind.XML:
        data = body.ascii_bytes
        if b"rror" in data or b"Fault" in data:
            return _xml_verdict(body.text)
        return CLEAN
    return NOT_INSPECTED


NeedleSearch = Callable[[bytes, int], int]


def _load_needles() -> list[NeedleSearch]:
    """probe/_needles.c's present and shallow, where it was built."""
    try:
        from probe import _needles
    except ImportError:  # BYTEWATCH_PURE_PYTHON=1, or run from a source tree never built
        return []
    _needles.configure(_NEEDLES)
    return [_needles.present, _needles.shallow]


_SEARCHES: Final = _load_needles()
_present: Final = _SEARCHES[0] if _SEARCHES else None
_shallow: Final = _SEARCHES[1] if _SEARCHES else None


def _load_outline() -> Callable[[bytes], bytes | None] | None:
    """probe/_needles.c's outline, where it was built (_load_needles found it)."""
    if not _SEARCHES:
        return None
    from probe import _needles

    return _needles.outline


# Charsets in which a byte below 0x80 is always that ASCII character (codecs.lookup's names).
_LEXABLE_CODECS: Final = frozenset({"utf-8", "utf-8-sig", "ascii", "iso8859-1", "cp1252"})


def _looked_at(data: bytes, *, lexable: bool = True) -> bytes | None:
    """What the JSON detectors would read of a body: its outline (see outline_in_python), the
    body itself when it has no list below the top; or None when they cannot fire, none of the
    words they need being where they look (see shallow_needles_in_python): in a top-level
    list, they read only JSON-RPC replies. A body that is not ``lexable`` (see _Body.lexable)
    is looked at whole wherever a word is in it.

    Where probe/_needles.c is built, the words are looked for in one pass (a dozen substring
    tests cost 3 to 9 us on a 3 KiB body), and once some are there, again in the outline,
    which takes one pass to make: what is left in it is where the detectors look."""
    if _present is None or _shallow is None or _outline is None:
        return data if worth_parsing_in_python(data) else None
    found = _present(data, _HINTS)
    if not found:
        return None
    if _top_level_list(data) and _JSONRPC not in data:
        return None  # of a list, the detectors read only JSON-RPC replies (_jsonrpc_batch)
    if not lexable:
        return data if _worth_parsing_with(found, data) else None
    outline = _outline(data)
    if outline is None:  # a body the lexer gives up on: the search that lexes as it goes
        return data if _worth_parsing_with(_shallow(data, _HINTS), data) else None
    if outline is not data:
        found = _present(outline, _HINTS)
    return outline if _worth_parsing_with(found, outline) else None


_JSONRPC: Final = b'"jsonrpc"'
_JSON_SPACE: Final = b" \t\r\n"


def _top_level_list(data: bytes) -> bool:
    """Whether the body is a JSON list (its first byte past JSON's whitespace is ``[``)."""
    for byte in data:
        if byte not in _JSON_SPACE:
            return byte == 0x5B
    return False


def _worth_parsing_with(found: int, data: bytes) -> bool:
    """The pre-check's answer, given which of _NEEDLES were found (see _looked_at)."""
    if found & _HINTS:
        return True
    if found & _FALSE:
        text = data.decode("latin-1")  # why str: see worth_parsing_in_python
        for flag in _FALSE_FLAGS:
            if flag in text:
                return True
    return found & _TATUS != 0 and _HTTP_STATUS.search(data) is not None


def worth_parsing_in_python(data: bytes) -> bool:
    """Can a JSON detector possibly fire? Substring tests only: this is the common path, so the
    hints are spelled out rather than looped over (a third of the cost on a clean body). The
    reference for probe/_needles.c's use in ``_looked_at``."""
    # The tests run on str: ``bytes in bytes`` first tries its needle as an int and builds and
    # drops a TypeError, four times the cost of ``str in str`` (measured: 107 vs 24 ns). Latin-1
    # maps each byte to one character, so every ASCII needle matches exactly where it did.
    text = data.decode("latin-1")
    if (
        "rror" in text
        or "fail" in text
        or "Fail" in text
        or 'ode"' in text
        or '"ret' in text
        or "errno" in text
        or '"rc"' in text
        or '"fault"' in text
        or '"__type"' in text
    ):
        return True
    if "false" in text:
        for flag in _FALSE_FLAGS:
            if flag in text:
                return True
    return "tatus" in text and _HTTP_STATUS.search(data) is not None


def shallow_needles_in_python(data: bytes, needles: Sequence[bytes]) -> int:
    """A mask of the ``needles`` that begin where the built-in detectors look, in a JSON body:
    where every container but the outermost is an object. They read the top object's members,
    those of objects inside it (``*_response`` envelopes, ``data.<field>.userErrors``) and the
    objects of a top-level list (JSON-RPC batches, which is all they read of a list:
    ``_looked_at`` passes a list without ``"jsonrpc"`` before this is asked); a list inside
    the document matters to them only through a key outside it (``"errors": [...]``). Lists
    nested deeper than 256 levels go uncounted, so what lies in them counts as looked at. The
    reference for probe/_needles.c's shallow()."""
    found = 0
    lists: list[bool] = []  # the open containers, outermost first: True for a list
    in_string = escaped = False
    for i, byte in enumerate(data):
        if not any(lists[1:256]):
            for k, needle in enumerate(needles):
                if data.startswith(needle, i):
                    found |= 1 << k
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            lists.append(byte == 0x5B)
        elif byte in (0x7D, 0x5D) and lists:  # } ]
            lists.pop()
    return found


def outline_in_python(data: bytes) -> bytes | None:
    """``data``, a JSON body that may be cut, with each list below its outermost container
    reduced to ``[0]`` when it holds anything and ``[]`` when it is empty; a list cut before its
    end is left open (``[``), which parse_json_prefix closes as ``[null]``, as it closes the
    list itself. ``data`` itself when no list was reduced. A list opened 256 levels deep or more
    is not reduced, as shallow_needles_in_python counts what is in it.

    The detectors decide *whether* a body reports an error from the members of its objects and
    from whether a list below the top is empty (``"errors": [...]``, ``userErrors``); which
    error, from a list's items (``errors[0]``, a bulk answer's ``items``). So a body whose
    outline is clean is clean, and only one that is not is parsed whole. None, and the body is
    parsed whole, when a reduced list nests 256 levels deep, or holds a mismatched bracket (not
    JSON: the whole parse makes nothing of it) or a backslash before a line feed
    (parse_json_prefix's scan takes that for a cut, where this lexer reads on). The reference
    for probe/_needles.c's outline()."""
    out = bytearray()
    depth = 0  # containers open outside the list being reduced
    inside: list[int] = []  # closers the list being reduced needs, its own first
    copied = 0  # data[:copied] is in out, or left out
    holds = False  # the list being reduced holds something
    reduced = in_string = escaped = False
    for i, byte in enumerate(data):
        if in_string:
            if escaped:
                if byte == 0x0A:
                    return None
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif inside:
            if byte in (0x5D, 0x7D):  # ] }
                if inside.pop() != byte:
                    return None
                if not inside:
                    out += b"0]" if holds else b"]"
                    copied = i + 1
            elif byte not in _JSON_SPACE:
                holds = True
                if byte == 0x22:
                    in_string = True
                elif byte in (0x5B, 0x7B):  # [ {
                    if len(inside) == 256:
                        return None
                    inside.append(byte + 2)  # the closer: ] is [ + 2, } is { + 2
        elif byte == 0x22:
            in_string = True
        elif byte == 0x5B and 0 < depth < 256:
            out += data[copied : i + 1]
            copied = i + 1
            inside.append(0x5D)
            holds = False
            reduced = True
        elif byte in (0x7B, 0x5B):
            depth += 1
        elif byte in (0x7D, 0x5D) and depth > 0:
            depth -= 1
    if not reduced:
        return data
    if not inside:
        out += data[copied:]
    return bytes(out)


_outline: Final = _load_outline()

# The keys whose lists' items an error's label is read from: errors[0] (_type_of), userErrors[0]
# (_graphql_payload_verdict); and a bulk answer's items (_bulk_item_type), beside "errors": true.
_LABEL_LISTS: Final = frozenset({"error", "Error", "errors", "Errors", "userErrors", "user_errors"})


def _holds_a_label_list(outline: object) -> bool:
    """Whether an outline holds, in one of its objects, a list that is not empty under a key
    the detectors read items of for an error's label: those items were reduced away, and only
    the whole document says which error it reports. A top-level list is a JSON-RPC batch,
    whose replies' labels come from their error objects. Iterative: an outline may nest as
    deep as json.loads goes."""
    stack = [outline] if isinstance(outline, dict) else []
    while stack:
        value = stack.pop()
        for key, member in value.items():
            if isinstance(member, dict):
                stack.append(member)
            elif (
                isinstance(member, list)
                and member
                and (key in _LABEL_LISTS or (key == "items" and value.get("errors") is True))
            ):
                return True
    return False


def _error(detector: str, error_type: str | None) -> Verdict:
    return Verdict(business_error=True, error_type=error_type, rule=f"builtin:{detector}")


def _json_verdict(document: object, *, problem: bool) -> Verdict | None:
    if isinstance(document, list):
        return _jsonrpc_batch(document)
    if not isinstance(document, dict):
        return None
    if problem:
        return _error("problem", _type_of(document))
    if "jsonrpc" in document:
        return _jsonrpc(document)
    verdict = _envelope_verdict(document)
    if verdict is None:
        for key, value in document.items():
            if isinstance(value, dict) and (
                key in ("response", "Response") or key.endswith(("_response", "Response"))
            ):
                verdict = _envelope_verdict(value)
                if verdict is not None:
                    break
    return verdict


_NOTHING_WORDS: Final = frozenset({"", "none", "null", "ok", "success", "false", "0", "no"})
_SUCCESS_WORDS: Final = frozenset({"ok", "success", "succeeded", "successful", "成功"})
_NOT_AN_ERROR_WORDS: Final = _NOTHING_WORDS | _SUCCESS_WORDS
_TEXT_KEYS: Final = ("message", "msg", "errmsg", "error_msg", "errorMessage", "description")
_MESSAGE_KEYS: Final = (
    "message", "msg", "errmsg", "error_msg", "errorMessage", "error_message", "description",
    "detail", "title", "error", "error_description", "Message",
)  # fmt: skip
_RESULT_CODE_KEYS: Final = (
    "errcode", "errCode", "err_code", "error_code", "errorCode", "ErrorCode", "errno", "ret",
    "retcode", "retCode", "ret_code", "resultCode", "result_code", "ResultCode", "returnCode",
    "return_code", "rc",
)  # fmt: skip
_ERROR_MESSAGE_KEYS: Final = ("error_message", "errorMessage", "error_msg", "error_description")
_SUCCESS_FLAGS: Final = ("success", "Success", "isSuccess", "IsSuccess", "succeeded", "successful")
_OK_AND_SUCCESS_FLAGS: Final = ("ok", *_SUCCESS_FLAGS)
_JSEND_KEYS: Final = frozenset(
    {"status", "data", "message", "code", "error", "errors", "msg", "errorType", "error_type",
     "reason", "details", "detail", "request_id", "requestId", "timestamp", "path", "trace_id",
     "traceId", "description", "errmsg"}
)  # fmt: skip
_HTTP_STATUS_KEYS: Final = ("status", "statusCode", "status_code", "httpStatus", "http_status")
_ERROR_ENVELOPE_KEYS: Final = _JSEND_KEYS | frozenset(
    {*_HTTP_STATUS_KEYS, "title", "type", "instance", "more_info", "moreInfo", "documentation_url",
     "error_description", "errorCode", "error_code", "errorMessage", "error_message", "success"}
)  # fmt: skip


def _envelope_verdict(doc: dict[str, object]) -> Verdict | None:
    if doc.get("errors") is True:  # bulk APIs: some items failed
        return _error("bulk_errors", _bulk_item_type(doc))
    if doc.get("kind") == "Status" and doc.get("status") == "Failure":  # Kubernetes
        return _error("k8s_status", sanitize_error_type(doc.get("reason")))
    if _is_resource(doc):
        return None  # a record describing something (a failed job, a declined payment)
    if doc.get("ok") is False:
        return _error("ok_false", _type_of(doc))
    for key in _OK_AND_SUCCESS_FLAGS:
        flag = doc.get(key)
        if flag is False:
            return _error("success_false", _type_of(doc))
        if flag is True:
            return None  # the API says it succeeded, whatever else the body holds
    verdict = _status_verdict(doc)
    if verdict is not None:
        return verdict
    for key in ("error", "Error", "ERROR"):
        if key in doc and _holds_error(doc[key], doc):
            return _error("error_field", _type_of(doc))
    for key in ("errors", "Errors"):
        if key in doc and _holds_errors(doc[key]):
            return _error("graphql" if "data" in doc else "errors_field", _type_of(doc))
    fault = doc.get("fault")
    if isinstance(fault, dict) and fault:
        return _error("fault", _type_of(fault))
    if isinstance(doc.get("__type"), str) and doc.keys() <= {"__type", "message", "Message"}:
        return _error("aws_json", sanitize_error_type(doc["__type"]))  # AWS JSON protocols
    verdict = _result_code_verdict(doc)
    if verdict is not None:
        return verdict
    if not _holds_a_zero_code(doc):
        # Google Maps: {"status": "REQUEST_DENIED", "error_message": "..."}
        for key in _ERROR_MESSAGE_KEYS:
            value = doc.get(key)
            if isinstance(value, str) and value.strip().lower() not in _NOT_AN_ERROR_WORDS:
                return _error("error_message", _type_of(doc))
    return _graphql_payload_verdict(doc.get("data"))


def _holds_a_zero_code(doc: dict[str, object]) -> bool:
    # Absent keys skipped before the call: compiled, comparing _as_int's None with 0 is a
    # generic rich comparison, and most of the 17 keys are absent.
    for key in _RESULT_CODE_KEYS:
        value = doc.get(key)
        if value is not None and _as_int(value) == 0:
            return True
    return False


def _is_resource(doc: dict[str, object]) -> bool:
    if any(doc.get(key) is not None for key in ("id", "_id", "uuid", "sid")):
        return True
    kind = doc.get("object")  # Stripe, OpenAI, Notion name their records' types here
    return isinstance(kind, str) and kind != "error"


def _holds_error(value: object, doc: dict[str, object]) -> bool:
    if value is True:
        return True
    if isinstance(value, str):
        return value.strip().lower() not in _NOTHING_WORDS
    if isinstance(value, dict | list):
        return bool(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # {"error": 3} alone is a count; next to a message it is a code
        return value != 0 and any(isinstance(doc.get(key), str) for key in _TEXT_KEYS)
    return False


def _holds_errors(value: object) -> bool:
    if isinstance(value, dict | list):
        return bool(value)
    return isinstance(value, str) and value.strip().lower() not in _NOTHING_WORDS


def _status_verdict(doc: dict[str, object]) -> Verdict | None:
    status = doc.get("status")
    if status is False:
        return _error("status_false", _type_of(doc))
    if (
        isinstance(status, str)
        and status.lower() in ("error", "fail")
        and doc.keys() <= _JSEND_KEYS
    ):
        error_type = _type_of(doc, skip_status=True) or status.lower()
        return _error("jsend", error_type)
    if not (doc.keys() <= _ERROR_ENVELOPE_KEYS or ("title" in doc and "type" in doc)):
        return None  # a record that reports some other party's status (a health check)
    for key in _HTTP_STATUS_KEYS:
        code = _as_int(doc.get(key))
        if code is not None and 400 <= code <= 599 and _message_of(doc) is not None:
            return _error("embedded_status", _type_of(doc, skip_status=True) or str(code))
    return None


def _result_code_verdict(doc: dict[str, object]) -> Verdict | None:
    sub_code = doc.get("sub_code")
    if isinstance(sub_code, str) and sub_code:  # Alipay: only failures carry a sub_code
        return _error("result_code", sanitize_error_type(sub_code))
    message = _message_of(doc)
    if isinstance(message, str) and message.strip().lower() in _SUCCESS_WORDS:
        return None
    for key in _RESULT_CODE_KEYS:
        if key in doc:
            value = doc[key]
            code = _as_int(value)
            if code is not None:
                if code != 0:
                    return _error("result_code", str(code))
                return None
            if key.lower().startswith("error") and _holds_errors(value) and isinstance(value, str):
                return _error("result_code", sanitize_error_type(value))
    code = _as_int(doc.get("code"))
    if code is not None and code not in (0, 200, 10000) and message is not None:
        return _error("result_code", str(code))
    return None


def _graphql_payload_verdict(data: object) -> Verdict | None:
    """GraphQL mutations report domain failures in ``data.<field>.userErrors``."""
    if not isinstance(data, dict):
        return None
    for payload in data.values():
        if isinstance(payload, dict):
            for key in ("userErrors", "user_errors"):
                errors = payload.get(key)
                if isinstance(errors, list) and errors:
                    first = errors[0]
                    label = _type_of(first) if isinstance(first, dict) else None
                    return _error("graphql_user_errors", label)
    return None


def _jsonrpc(doc: dict[str, object]) -> Verdict | None:
    error = doc.get("error")
    if error is None or error == {}:
        return None
    return _error("jsonrpc", _jsonrpc_type(error))


def _jsonrpc_batch(items: list[object]) -> Verdict | None:
    for item in items[:100]:
        if isinstance(item, dict) and "jsonrpc" in item:
            verdict = _jsonrpc(item)
            if verdict is not None:
                return verdict
    return None


_JSONRPC_CODES: Final = {
    -32700: "parse_error",
    -32600: "invalid_request",
    -32601: "method_not_found",
    -32602: "invalid_params",
    -32603: "internal_error",
}


def _jsonrpc_type(error: object) -> str | None:
    if not isinstance(error, dict):
        return sanitize_error_type(error)
    code = _as_int(error.get("code"))
    if code in _JSONRPC_CODES:
        return _JSONRPC_CODES[code]
    return sanitize_error_type(error.get("message")) or (None if code is None else str(code))


def _bulk_item_type(doc: dict[str, object]) -> str | None:
    items = doc.get("items")
    if isinstance(items, list):
        for item in items[:1000]:
            if isinstance(item, dict):
                for action in item.values():
                    if isinstance(action, dict) and isinstance(action.get("error"), dict):
                        return _type_of(action["error"])
    return None


_TYPE_KEYS: Final = (
    "code", "error_code", "errorCode", "errorType", "error_type", "type", "reason", "status",
    "name", "Code", "Type",
)  # fmt: skip
_GENERIC_TYPES: Final = frozenset(
    {"error", "errors", "fail", "failed", "failure", "false", "true", "about:blank", "blank"}
)


def _type_of(doc: dict[str, object], *, skip_status: bool = False, depth: int = 0) -> str | None:
    """The most specific error-type label an error object or envelope offers."""
    for key in ("error", "Error", "errors", "Errors"):  # the details object, when there is one
        inner = doc.get(key)
        if isinstance(inner, list) and inner:
            inner = inner[0]
        if isinstance(inner, dict) and inner and depth < 3:
            label = _type_of(inner, depth=depth + 1)
            if label is not None:
                return label
    extensions = doc.get("extensions")
    if isinstance(extensions, dict):
        label = sanitize_error_type(extensions.get("code"))
        if label is not None:
            return label
    numeric = None
    for key in _TYPE_KEYS:
        if skip_status and key == "status":
            continue
        value = doc.get(key)
        if isinstance(value, str) and value.strip().lower() not in _GENERIC_TYPES:
            label = sanitize_error_type(value)
            if label is not None and not label.isdigit():
                return label
        if numeric is None and isinstance(value, int | str) and not isinstance(value, bool):
            code = _as_int(value)
            numeric = None if code is None else str(code)
    for key in ("error", "Error", "__type", "title", "error_description"):
        label = sanitize_error_type(doc.get(key))
        if label is not None and label.lower() not in _GENERIC_TYPES:
            return label
    for key in ("error_code", "errcode", "errno", "ret", "retcode"):
        code = _as_int(doc.get(key))
        if code is not None:
            return str(code)
    return numeric


def _message_of(doc: dict[str, object]) -> object | None:
    for key in _MESSAGE_KEYS:
        value = doc.get(key)
        if value is not None:
            return value
    return None


def _as_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    return None


# --- XML -------------------------------------------------------------------------------------

_XML_ROOT = re.compile(
    r"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*<(?:[\w.-]+:)?([\w.-]+)", re.DOTALL
)
_SOAP_FAULT = re.compile(r"<(?:[\w.-]+:)?Fault[\s>]")
_SOAP11_CODE = re.compile(r"<faultcode[^>]*>\s*([^<]+?)\s*<")
_SOAP12_CODE = re.compile(r"<(?:[\w.-]+:)?Code[^>]*>\s*<(?:[\w.-]+:)?Value[^>]*>\s*([^<]+?)\s*<")
_XML_CODE = re.compile(r"<(?:[\w.-]+:)?Code[^>]*>\s*([^<]+?)\s*<")
_XML_ERROR_ROOTS: Final = frozenset({"Error", "ErrorResponse", "Errors"})


def _xml_verdict(text: str) -> Verdict:
    root = _XML_ROOT.match(text)
    if root is None:
        return CLEAN
    name = root.group(1)
    if name == "Envelope":
        if _SOAP_FAULT.search(text, root.end()) is None:
            return CLEAN
        code = _SOAP11_CODE.search(text) or _SOAP12_CODE.search(text)
        label = None if code is None else sanitize_error_type(code.group(1).rsplit(":", 1)[-1])
        return _error("soap_fault", label)
    if name in _XML_ERROR_ROOTS or (name == "Response" and "<Errors>" in text):
        code = _XML_CODE.search(text, root.end())
        return _error("xml_error", None if code is None else sanitize_error_type(code.group(1)))
    return CLEAN
