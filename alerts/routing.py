"""Which receivers get which alert: Alertmanager's routing tree, matchers and durations.

The configuration is Alertmanager's ``route:`` block, so an SRE can paste theirs:

    route:
      receiver: team-X-mails            # the default: alerts no child route takes
      group_by: ['alertname', 'service']  # or ['...'] for one group per alert
      group_wait: 30s                   # defaults 0s / 5m / 4h (Alertmanager: 30s / 5m / 4h)
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - matchers: ['service=~"foo1|foo2"', 'severity="page"']
          receiver: team-X-pager
          continue: true                # keep looking at the next siblings

``RootRouteConfig`` (pydantic, for the YAML edge) validates it with precise messages;
``build_route_tree`` checks the receiver names and compiles it into frozen ``Route`` values;
``match_routes`` is the pure decision. Matching follows Alertmanager: an alert goes down the
first matching child (and on to later siblings while the matched child says ``continue``); when
no child matches, the node itself takes it. A missing label matches as the empty string.

Matchers use Alertmanager's syntax (``name="value"``, ``!=``, ``=~``, ``!~``; quoted or bare
values; a list with or without braces, commas between). Regular expressions are anchored at both
ends, as in Alertmanager. They run on Python's ``re``, which accepts everything RE2 does for
ordinary patterns.

Exceptions (in ``alerts/errors.py``):

    RoutingError
    ├── MatcherSyntaxError   a matcher string does not parse (also a ValueError, so pydantic
    │                        reports it with the field's location)
    └── RoutingConfigError   the tree names receivers that are not defined
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from alerts.errors import MatcherSyntaxError, RoutingConfigError
from alerts.model import Labels

# --- matchers ---------------------------------------------------------------------------------


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher. A label the alert does not have matches as the empty string."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                compiled = re.compile(self.value)
            except re.error as exc:
                raise MatcherSyntaxError(
                    f"{self.name}{self.op.value}{quote(self.value)}: "
                    f"invalid regular expression: {exc}"
                ) from exc
            object.__setattr__(self, "_regex", compiled)

    def matches(self, value: str) -> bool:
        if self.op is MatchOp.EQUAL:
            return value == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value) is not None
        return found if self.op is MatchOp.REGEX else not found

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return self.matches(labels.get(self.name, ""))

    def __str__(self) -> str:
        name = self.name if _PLAIN_NAME.fullmatch(self.name) else quote(self.name)
        return f"{name}{self.op.value}{quote(self.value)}"

    @classmethod
    def from_fields(
        cls, name: str, value: str, *, is_regex: bool, is_equal: bool = True
    ) -> Matcher:
        """Alertmanager API v2's matcher object (``name``, ``value``, ``isRegex``, ``isEqual``)."""
        if is_regex:
            op = MatchOp.REGEX if is_equal else MatchOp.NOT_REGEX
        else:
            op = MatchOp.EQUAL if is_equal else MatchOp.NOT_EQUAL
        return cls(name, op, value)

    @property
    def is_regex(self) -> bool:
        return self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX)

    @property
    def is_equal(self) -> bool:
        return self.op in (MatchOp.EQUAL, MatchOp.REGEX)


def matches_all(matchers: Collection[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches_labels(labels) for m in matchers)


def format_matchers(matchers: Collection[Matcher]) -> str:
    """``{a="1",b=~"x"}``, sorted like Alertmanager prints them."""
    return "{" + ",".join(sorted(str(m) for m in matchers)) + "}"


_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Bare words stop at whitespace and at the characters the syntax itself uses.
_RESERVED = frozenset("{}!=~,\\\"'`")
_OPERATORS = ("=~", "!~", "!=", "=")  # longest first: "=~" must not be read as "=" then "~"
_SIMPLE_ESCAPES = {
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
    "\\": b"\\",
    '"': b'"',
}


def quote(text: str) -> str:
    """A double-quoted string the parser reads back to ``text`` (Go's escaping rules)."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Parse ``'{service=~"pay.*", severity!="ticket"}'`` (braces and quotes optional).

    An empty string (or ``{}``) is no matchers. Raises ``MatcherSyntaxError`` naming the column.
    """
    return _MatcherParser(text).parse()


def parse_matcher(text: str) -> Matcher:
    """Exactly one matcher, as the CLI's ``--matcher`` flag takes it."""
    parsed = parse_matchers(text)
    if len(parsed) != 1:
        raise MatcherSyntaxError(f"{text!r}: expected one matcher, found {len(parsed)}")
    return parsed[0]


class _MatcherParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, at: int | None = None) -> MatcherSyntaxError:
        column = (self.pos if at is None else at) + 1
        return MatcherSyntaxError(f"{self.text!r}: column {column}: {message}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def parse(self) -> tuple[Matcher, ...]:
        self.skip_space()
        braced = self.peek() == "{"
        if braced:
            self.pos += 1
        matchers: list[Matcher] = []
        while True:
            self.skip_space()
            char = self.peek()
            if char == "":
                if braced:
                    raise self.fail("expected a close brace '}', found the end of the input")
                return tuple(matchers)
            if char == "}":
                if not braced:
                    raise self.fail("found '}' without an opening brace")
                self.pos += 1
                self.skip_space()
                if self.pos < len(self.text):
                    raise self.fail(f"unexpected {self.text[self.pos :]!r} after the close brace")
                return tuple(matchers)
            matchers.append(self.matcher())
            self.skip_space()
            char = self.peek()
            if char == ",":
                self.pos += 1
            elif char not in ("", "}"):
                raise self.fail(f"expected a comma or a close brace, found {char!r}")

    def matcher(self) -> Matcher:
        start = self.pos
        name = self.word("a label name")
        if name == "":
            raise self.fail(f"expected a label name, found {self.peek()!r}")
        self.skip_space()
        op = next((o for o in _OPERATORS if self.text.startswith(o, self.pos)), None)
        if op is None:
            found = repr(self.peek()) if self.peek() else "the end of the input"
            raise self.fail(f"expected an operator (=, !=, =~ or !~) after {name!r}, found {found}")
        self.pos += len(op)
        self.skip_space()
        value = self.word("a value")
        try:
            return Matcher(name, MatchOp(op), value)
        except MatcherSyntaxError as exc:
            raise self.fail(str(exc), at=start) from exc

    def word(self, what: str) -> str:
        """A quoted string or a bare word (possibly empty)."""
        if self.peek() == '"':
            return self.quoted(what)
        start = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char.isspace() or char in _RESERVED:
                break
            self.pos += 1
        if self.peek() == "\\":
            raise self.fail(f"a backslash needs a quoted string ({what})")
        return self.text[start : self.pos]

    def quoted(self, what: str) -> str:
        start = self.pos
        self.pos += 1
        out = bytearray()
        while True:
            if self.pos >= len(self.text):
                raise self.fail(f"unterminated quoted string for {what}", at=start)
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                break
            if char == "\\":
                out += self.escape()
            else:
                out += char.encode()
                self.pos += 1
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"the quoted {what} is not valid UTF-8", at=start) from exc

    def escape(self) -> bytes:
        at = self.pos
        code = self.text[self.pos + 1 : self.pos + 2]
        if code in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[code]
        widths = {"x": 2, "u": 4, "U": 8}
        if code in widths:
            digits = self.text[self.pos + 2 : self.pos + 2 + widths[code]]
            if len(digits) != widths[code] or not _is_hex(digits):
                raise self.fail(f"\\{code} needs {widths[code]} hex digits", at=at)
            self.pos += 2 + widths[code]
            number = int(digits, 16)
            if code == "x":
                return bytes([number])
            if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
                raise self.fail(f"\\{code}{digits} is not a Unicode code point", at=at)
            return chr(number).encode()
        octal = self.text[self.pos + 1 : self.pos + 4]
        if len(octal) == 3 and all(c in "01234567" for c in octal) and int(octal, 8) < 256:
            self.pos += 4
            return bytes([int(octal, 8)])
        shown = code or "end of input"
        raise self.fail(f"unknown escape sequence \\{shown} (write a backslash as \\\\)", at=at)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


# --- durations --------------------------------------------------------------------------------

_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: str) -> timedelta:
    """A Prometheus duration: ``30s``, ``5m``, ``1h30m``, ``1d``, ``1w``, ``0``."""
    found = _DURATION.fullmatch(text)
    if text == "0":
        return timedelta(0)
    if not text or found is None:
        raise ValueError(f"{text!r} is not a duration (write e.g. 30s, 5m, 4h or 1h30m)")
    seconds = sum(int(n) * unit for n, unit in zip(found.groups(), _UNIT_SECONDS, strict=True) if n)
    return timedelta(seconds=seconds)


def _duration_input(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"expected a duration such as '30s', '5m' or '4h', got {value!r}")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _matcher_text(text: str) -> str:
    if not parse_matchers(text):
        raise ValueError("is empty: write a matcher such as 'severity=\"page\"'")
    return text


def _regex_text(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a valid regular expression: {exc}") from exc
    return text


def _group_by(names: list[str]) -> list[str]:
    if "..." in names and len(names) > 1:
        raise ValueError("'...' (group by every label) must be the only entry of group_by")
    seen: set[str] = set()
    for name in names:
        if name != "..." and not _PLAIN_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a label name")
        if name in seen:
            raise ValueError(f"{name!r} is listed twice")
        seen.add(name)
    return names


Duration = Annotated[timedelta, BeforeValidator(_duration_input)]
PositiveDuration = Annotated[timedelta, BeforeValidator(_duration_input), AfterValidator(_positive)]
MatcherText = Annotated[str, AfterValidator(_matcher_text)]
RegexText = Annotated[str, AfterValidator(_regex_text)]
ReceiverName = Annotated[str, Field(min_length=1)]


# --- configuration (the YAML edge) -----------------------------------------------------------

# Alertmanager waits 30 s before a new group's first notification so that alerts Prometheus
# evaluates at slightly different times arrive together. bytewatch evaluates every SLO in one
# tick and each page already waited for its short window to confirm, so it sends at once: a
# page must reach people within a minute of an outage starting. Set group_wait to batch.
DEFAULT_GROUP_WAIT = timedelta(0)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


class RouteConfig(BaseModel):
    """One node of the routing tree, as written in the YAML file (Alertmanager's shape).

    ``match`` and ``match_re`` are Alertmanager's older spelling of ``matchers``; both are
    accepted so that existing configurations load unchanged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    receiver: ReceiverName | None = None
    group_by: Annotated[list[str], AfterValidator(_group_by)] | None = None
    continue_: bool = Field(default=False, alias="continue")
    matchers: list[MatcherText] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, RegexText] = Field(default_factory=dict)
    group_wait: Duration | None = None
    group_interval: PositiveDuration | None = None
    repeat_interval: PositiveDuration | None = None
    routes: list[RouteConfig] = Field(default_factory=list)

    def parsed_matchers(self) -> tuple[Matcher, ...]:
        parsed: list[Matcher] = []
        for text in self.matchers:
            parsed.extend(parse_matchers(text))
        parsed.extend(Matcher(name, MatchOp.EQUAL, value) for name, value in self.match.items())
        parsed.extend(Matcher(name, MatchOp.REGEX, value) for name, value in self.match_re.items())
        return tuple(parsed)


class RootRouteConfig(RouteConfig):
    """The top of the tree: it takes every alert, so it needs a receiver and no matchers."""

    @model_validator(mode="after")
    def _root_rules(self) -> RootRouteConfig:
        if self.receiver is None:
            raise ValueError(
                "the root route needs a receiver: the default for alerts no other route takes"
            )
        if self.matchers or self.match or self.match_re:
            raise ValueError("the root route takes every alert: it cannot have matchers")
        if self.continue_:
            raise ValueError("the root route cannot have 'continue'")
        return self


def undefined_receivers(root: RouteConfig, receivers: Collection[str]) -> list[str]:
    """One line per route naming a receiver that is not defined (path first)."""
    defined = ", ".join(sorted(receivers)) or "none"
    problems: list[str] = []

    def visit(node: RouteConfig, path: str) -> None:
        if node.receiver is not None and node.receiver not in receivers:
            problems.append(
                f"{path}.receiver: {node.receiver!r} is not a defined receiver (defined: {defined})"
            )
        for index, child in enumerate(node.routes):
            visit(child, f"{path}.routes[{index}]")

    visit(root, "route")
    return problems


# --- the compiled tree (pure) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """A node of the compiled tree, with everything inherited from its parents filled in.

    ``key`` identifies the node like Alertmanager's route key (``{}/{service="db"}``); it is part
    of every group key, so it must stay stable while the configuration does.
    """

    key: str
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    group_by_all: bool
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    continue_matching: bool
    routes: tuple[Route, ...] = ()

    def walk(self) -> Iterator[Route]:
        yield self
        for child in self.routes:
            yield from child.walk()


def build_route_tree(root: RootRouteConfig, receivers: Collection[str]) -> Route:
    """Compile the validated configuration; raises ``RoutingConfigError`` on unknown receivers."""
    problems = undefined_receivers(root, receivers)
    if problems:
        raise RoutingConfigError(problems)
    assert root.receiver is not None  # RootRouteConfig guarantees it
    return _compile(
        root,
        key="{}",
        receiver=root.receiver,
        group_by=None,
        group_wait=DEFAULT_GROUP_WAIT,
        group_interval=DEFAULT_GROUP_INTERVAL,
        repeat_interval=DEFAULT_REPEAT_INTERVAL,
    )


def _compile(
    node: RouteConfig,
    *,
    key: str,
    receiver: str,
    group_by: list[str] | None,
    group_wait: timedelta,
    group_interval: timedelta,
    repeat_interval: timedelta,
) -> Route:
    receiver = node.receiver or receiver
    group_by = node.group_by if node.group_by is not None else group_by
    group_wait = node.group_wait if node.group_wait is not None else group_wait
    group_interval = node.group_interval or group_interval
    repeat_interval = node.repeat_interval or repeat_interval
    children: list[Route] = []
    seen_keys: dict[str, int] = {}
    for child in node.routes:
        child_key = f"{key}/{format_matchers(child.parsed_matchers())}"
        # Siblings with identical matchers would share group keys; number the repeats.
        repeats = seen_keys.get(child_key, 0)
        seen_keys[child_key] = repeats + 1
        children.append(
            _compile(
                child,
                key=child_key if repeats == 0 else f"{child_key}#{repeats}",
                receiver=receiver,
                group_by=group_by,
                group_wait=group_wait,
                group_interval=group_interval,
                repeat_interval=repeat_interval,
            )
        )
    names = group_by or []
    return Route(
        key=key,
        receiver=receiver,
        matchers=node.parsed_matchers(),
        group_by=tuple(sorted(n for n in names if n != "...")),
        group_by_all=names == ["..."],
        group_wait=group_wait,
        group_interval=group_interval,
        repeat_interval=repeat_interval,
        continue_matching=node.continue_,
        routes=tuple(children),
    )


def match_routes(tree: Route, labels: Labels | Mapping[str, str]) -> tuple[Route, ...]:
    """The routes (in tree order) whose receivers get an alert with these labels.

    The root has no matchers, so it takes every alert that no child takes.
    """
    lookup = labels if isinstance(labels, Mapping) else dict(labels)
    return tuple(_match(tree, lookup))


def _match(node: Route, labels: Mapping[str, str]) -> list[Route]:
    if not matches_all(node.matchers, labels):
        return []
    found: list[Route] = []
    for child in node.routes:
        taken = _match(child, labels)
        found.extend(taken)
        if taken and not child.continue_matching:
            break
    return found or [node]


def group_labels(route: Route, labels: Labels) -> Labels:
    """The labels that name an alert's group on this route (absent labels are left out)."""
    if route.group_by_all:
        return labels
    wanted = set(route.group_by)
    return tuple((name, value) for name, value in labels if name in wanted)


def group_key(route: Route, labels: Labels) -> str:
    """Alertmanager's group key: the route's key and the group labels."""
    inner = ",".join(f"{name}={quote(value)}" for name, value in labels)
    return f"{route.key}:{{{inner}}}"
