"""Raw request paths to route templates, with a hard cap on how many routes a service may have.

A route is what aggregation, storage and metrics group by, so it must be bounded: one label value
per endpoint, never one per user id. ``Router.route(service, path)`` decides it in two steps:

1. **User patterns** (``routes.patterns`` in the config file) win. A pattern is a path whose
   segments are literals, placeholders (``{id}`` or ``:id``: exactly one segment) or, in the last
   position only, a greedy placeholder (``{path*}`` or ``:path*``: one or more segments). The most
   specific pattern wins whatever the order: a literal segment beats a placeholder, which beats a
   greedy one, so ``/users/me`` beats ``/users/{id}``. Patterns under a service name are tried
   before the patterns under ``"*"``.
2. Otherwise **the default heuristic** replaces each segment that looks like an identifier, and
   keeps words as words (``/api/v1/users``, ``/oauth2/token``, ``/api/hello.world``).

The input is the path without its query string and fragment (``probe.exchanges.path_of`` takes
them off, and keeps the path of an absolute-form target); a target that is not a path (``*``,
``host:443``) gets the route ``:other``.

Placeholders are spelled ``:name``. A route is also a Prometheus label value that people paste
into PromQL regex selectors (``route=~"/users/:id/.*"``), which are RE2: ``:`` and letters mean
nothing there, so every route bytewatch emits matches itself as a regex (``.`` matches itself
too). ``*`` would be a repetition operator (and an RE2 syntax error at the start), and ``{`` opens
a counted repetition that some engines reject when it is not one, so neither ever appears in a
route; ``<id>`` was rejected because Slack and HTML read ``<...>`` as markup. A user pattern's
``{id}`` and ``{path*}`` are therefore rendered as ``:id`` and ``:path``.

The heuristic's placeholders, first match wins, for one segment:

==========  ==============================================================================
``:int``    digits only: ``42``, ``000123``
``:token``  JWT-like: ``eyJ...``, three dot-separated base64url parts
``:str``    free text: longer than 64 characters, or any character outside
            ``A-Za-z0-9._~:-`` (percent-encoding, ``+``, ``=``, ``,``, ``;``, non-ASCII)
``:email``  ``ada@example.com`` (also ``%40``-encoded)
``:uuid``   ``550e8400-e29b-41d4-a716-446655440000`` (any case)
``:hex``    8+ hex digits with at least one digit and one letter (hashes, Mongo object ids)
``:date``   ``2024-05-01``, ``2024-05``, ``2024-05-01T12:30:00Z``
``:id``     a run of 4+ digits anywhere (``order-12345``, ``INV2024``); a lower-case prefix,
            ``_`` and a generated suffix of 10+ characters (``cus_NffrFeUfNV2Hib``); or a
            random-looking word of 8+ characters after splitting on ``-_.~:`` (digits
            scattered through it, digits between mixed-case letters, or few vowels)
==========  ==============================================================================

A custom-method segment (Google AIP-136) keeps its verb: ``/v1/projects/123:getIamPolicy`` →
``/v1/projects/:int:getIamPolicy``. The heuristic errs on the side of keeping words: a generated
id it misses (roughly one in ten short mixed-case tokens without digits) is caught by the cap.

**The cap.** Heuristic routes are admitted into a per-service set of at most
``max_routes_per_service`` routes, and each route prefix may have at most
``max_fanout_per_segment`` distinct next segments (so ``/users/alice``, ``/users/bob``, ... cannot
eat the whole budget and starve routes seen later). Paths deeper than ``max_segments``, and
paths whose route would break either limit, get the route ``:overflow`` and are counted per
service (``Router.overflow_counts()``). Routes are never evicted, so a route never changes
meaning; the state is bounded by ``max_routes * max_segments`` entries per service plus a path
cache that is cleared when full. User patterns are not counted: the config file bounds them.
Service names come from process identity, not from the traffic, so they are not capped here.

Configuration (the ``routes:`` section of bytewatch's config file)::

    routes:
      patterns:
        payments: ["/users/{id}", "/users/me", "/files/{path*}"]
        "*": ["/healthz"]
      max_routes_per_service: 1000
      max_fanout_per_segment: 100
      max_segments: 16
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from probe.errors import ConfigFieldError

OVERFLOW: Final = ":overflow"
"""The route of every path beyond a cap."""

NOT_A_PATH: Final = ":other"
"""The route of a request target that is not a path (``*``, ``host:443``, garbage)."""


class Placeholder(StrEnum):
    """What the default heuristic puts in place of an identifier segment."""

    INT = ":int"
    STR = ":str"
    UUID = ":uuid"
    HEX = ":hex"
    DATE = ":date"
    EMAIL = ":email"
    TOKEN = ":token"  # noqa: S105 (a placeholder's name, not a secret)
    ID = ":id"


MAX_WORD_SEGMENT: Final = 64
PATH_CACHE_SIZE: Final = 4096  # per service
MAX_CACHED_PATH: Final = 256  # longer targets are rare; caching them would cost memory, not time
WORD_CACHE_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class RouteRules:
    """The validated ``routes:`` section. ``patterns`` pairs a service (or ``"*"``) with its
    patterns, in file order."""

    patterns: tuple[tuple[str, tuple[str, ...]], ...] = ()
    max_routes_per_service: int = 1000
    max_fanout_per_segment: int = 100
    max_segments: int = 16


_PLACEHOLDER = re.compile(r"(?:\{([A-Za-z_]\w*)(\*?)\}|:([A-Za-z_]\w*)(\*?))\Z")
_LITERAL = re.compile(r"[A-Za-z0-9._~:@!&',;=-]*\Z")  # RFC 3986 pchar minus regex operators
_RULE_KEYS = ("patterns", "max_routes_per_service", "max_fanout_per_segment", "max_segments")


def load_route_rules(section: object) -> RouteRules:
    """Validate the already-parsed ``routes:`` section (None means all defaults)."""
    if section is None:
        return RouteRules()
    if not isinstance(section, Mapping):
        raise ConfigFieldError(("routes",), f"expected a mapping, got {_kind(section)}")
    for key in section:
        if key not in _RULE_KEYS:
            raise ConfigFieldError(
                ("routes", str(key)), f"unknown key; expected one of {', '.join(_RULE_KEYS)}"
            )
    limits = {
        key: _positive_int(section[key], ("routes", key))
        for key in _RULE_KEYS[1:]
        if key in section
    }
    patterns = _load_patterns(section.get("patterns"))
    return RouteRules(patterns=patterns, **limits)


def _load_patterns(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    where: tuple[str | int, ...] = ("routes", "patterns")
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ConfigFieldError(
            where, f"expected a mapping of service to patterns, got {_kind(value)}"
        )
    loaded: list[tuple[str, tuple[str, ...]]] = []
    for service, patterns in value.items():
        if not isinstance(service, str) or not service:
            raise ConfigFieldError(
                where, f"service names must be non-empty strings, got {service!r}"
            )
        if not isinstance(patterns, list):
            raise ConfigFieldError(
                (*where, service), f"expected a list of patterns, got {_kind(patterns)}"
            )
        _compile(service, patterns)
        loaded.append((service, tuple(patterns)))
    return tuple(loaded)


def _positive_int(value: object, where: tuple[str | int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigFieldError(where, f"expected a positive integer, got {value!r}")
    return value


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


# --- user patterns ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Segment:
    literal: str | None  # None for a placeholder
    name: str = ""
    greedy: bool = False


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str
    segments: tuple[_Segment, ...]
    route: str


def template_of(pattern: str) -> str:
    """The route a user pattern produces: ``/users/{id}`` and ``/users/:id`` both give
    ``/users/:id``, ``/files/{path*}`` gives ``/files/:path``. SLO selectors are written either
    way and must match what the router emits. ``ValueError`` says what is wrong."""
    return _parse_pattern(pattern).route


def _parse_pattern(pattern: object) -> _Pattern:
    """Parse one pattern; ``ValueError`` says what is wrong with it."""
    if not isinstance(pattern, str):
        raise ValueError(f"expected a pattern string, got {_kind(pattern)}")
    if not pattern.startswith("/"):
        raise ValueError(f"pattern {pattern!r} must start with '/'")
    if "?" in pattern or "#" in pattern:
        raise ValueError(f"pattern {pattern!r} must not contain a query or fragment")
    parts = pattern[1:].split("/")
    segments: list[_Segment] = []
    names: set[str] = set()
    for position, part in enumerate(parts):
        match = _PLACEHOLDER.match(part)
        if match is None:
            if not _LITERAL.match(part) or part.startswith(":"):
                raise ValueError(
                    f"pattern {pattern!r}: segment {part!r} is neither a literal "
                    "(letters, digits and ._~-:@!&',;=) nor a whole-segment placeholder "
                    "such as {id}, :id or {path*}"
                )
            segments.append(_Segment(literal=part))
            continue
        name = match.group(1) or match.group(3)
        greedy = bool(match.group(2) or match.group(4))
        if greedy and position != len(parts) - 1:
            raise ValueError(f"pattern {pattern!r}: greedy placeholder {part!r} must come last")
        if name in names:
            raise ValueError(f"pattern {pattern!r}: placeholder name {name!r} is used twice")
        names.add(name)
        segments.append(_Segment(literal=None, name=name, greedy=greedy))
    route = "/" + "/".join(s.literal if s.literal is not None else f":{s.name}" for s in segments)
    return _Pattern(text=pattern, segments=tuple(segments), route=route)


class _Node:
    """A trie of patterns over segments: literal children, one placeholder, one greedy tail."""

    __slots__ = ("greedy", "literals", "param", "param_name", "pattern")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.param_name = ""
        self.pattern: _Pattern | None = None  # a pattern ending exactly here
        self.greedy: _Pattern | None = None  # a pattern whose greedy tail starts here

    def add(self, pattern: _Pattern) -> None:
        node = self
        for segment in pattern.segments:
            if segment.greedy:
                node.greedy = _unclaimed(node.greedy, pattern)
                return
            if segment.literal is not None:
                node = node.literals.setdefault(segment.literal, _Node())
                continue
            if node.param is None:
                node.param, node.param_name = _Node(), segment.name
            elif node.param_name != segment.name:
                raise ValueError(
                    f"pattern {pattern.text!r}: placeholder {{{segment.name}}} is spelled "
                    f"{{{node.param_name}}} at the same place in another pattern"
                )
            node = node.param
        node.pattern = _unclaimed(node.pattern, pattern)

    def match(self, segments: list[str], start: int) -> str | None:
        """The route of the most specific pattern matching ``segments[start:]``."""
        if start == len(segments):
            return None if self.pattern is None else self.pattern.route
        child = self.literals.get(segments[start])
        if child is not None and (found := child.match(segments, start + 1)) is not None:
            return found
        if self.param is not None and (found := self.param.match(segments, start + 1)) is not None:
            return found
        return None if self.greedy is None else self.greedy.route


def _unclaimed(existing: _Pattern | None, pattern: _Pattern) -> _Pattern:
    if existing is not None:
        raise ValueError(f"pattern {pattern.text!r} duplicates {existing.text!r}")
    return pattern


def _compile(service: str, patterns: Iterable[object]) -> _Node:
    trie = _Node()
    for index, pattern in enumerate(patterns):
        try:
            trie.add(_parse_pattern(pattern))
        except ValueError as exc:
            raise ConfigFieldError(("routes", "patterns", service, index), str(exc)) from None
    return trie


# --- the default heuristic -------------------------------------------------------------------

_WORDY = re.compile(r"[A-Za-z0-9._~:-]*\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_HEX = re.compile(r"(?=[a-fA-F]*\d)(?=\d*[a-fA-F])[0-9a-fA-F]{8,}\Z")
_DATE = re.compile(
    r"\d{4}-\d{2}(?:-\d{2}(?:[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?)?\Z"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\Z")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\Z")
_WORD_SPLIT = re.compile(r"[-_.~:]")
_DIGIT_RUN = re.compile(r"\d+")
_LONG_DIGIT_RUN = re.compile(r"\d{4}")
_HUMP = re.compile(r"[a-z][A-Z]")
_MIXED_DIGIT = re.compile(r"(?:[a-z]\d+[A-Z]|[A-Z]\d+[a-z])")
_PREFIXED = re.compile(r"[a-z]{1,16}_([A-Za-z0-9]{10,})\Z")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")


_INT: Final = Placeholder.INT  # a global: off its enum class a member costs ~40 ns more


def placeholder_for(segment: str) -> str | None:
    """The heuristic's placeholder for one path segment, or None to keep the segment."""
    if not segment:
        return None
    if segment.isascii():
        if segment.isdigit():
            return _INT
        if segment.isalpha():
            return Placeholder.ID if len(segment) >= 12 and _looks_random(segment) else None
        if len(segment) < 8 and segment.isalnum():  # v1, oauth2, s3: only a digit run can matter
            return Placeholder.ID if _LONG_DIGIT_RUN.search(segment) else None
    if segment.startswith("eyJ") and _JWT.match(segment):
        return Placeholder.TOKEN
    if len(segment) > MAX_WORD_SEGMENT:
        return Placeholder.STR
    if "@" in segment or "%40" in segment:
        return Placeholder.EMAIL if _EMAIL.match(segment) else Placeholder.STR
    if not _WORDY.match(segment) or segment[0] == ":":  # ":" would pass for a placeholder
        return Placeholder.STR
    if len(segment) == 36 and _UUID.match(segment):
        return Placeholder.UUID
    if _HEX.match(segment):
        return Placeholder.HEX
    if segment[0].isdigit() and _DATE.match(segment):
        return Placeholder.DATE
    head, colon, verb = segment.rpartition(":")
    if colon and head and verb.isalpha():
        # A custom method (Google AIP-136): ``/v1/projects/123:getIamPolicy`` keeps its verb.
        inner = placeholder_for(head)
        return None if inner is None else f"{inner}:{verb}"
    if _LONG_DIGIT_RUN.search(segment) or _looks_prefixed(segment):
        return Placeholder.ID
    for word in _WORD_SPLIT.split(segment):
        if len(word) >= 8 and _looks_random(word):
            return Placeholder.ID
    return None


def _looks_random(word: str) -> bool:
    """True for an alphanumeric word of 8+ characters that reads like a generated id.

    Generated ids scatter digits through the word, put digits between mixed-case letters, switch
    from lower to upper case often, and have few vowels. Words such as ``oauth2callback``,
    ``getUserProfileById``, ``XMLHttpRequest`` or ``getUserV2`` do none of it.
    """
    digit_runs = _DIGIT_RUN.findall(word)
    if len(digit_runs) >= 3 or (len(digit_runs) == 2 and len(word) >= 10):
        return True
    letters = len(word) - sum(map(len, digit_runs))
    vowels = len(_VOWEL.findall(word))
    if len(word) >= 12:
        if vowels < 0.15 * letters:
            return True
        if digit_runs and vowels < (0.35 if _MIXED_DIGIT.search(word) else 0.25) * letters:
            return True
    return vowels < 0.2 * letters and len(_HUMP.findall(word)) >= 3


def _looks_prefixed(segment: str) -> bool:
    """``cus_NffrFeUfNV2Hib``: a short lower-case prefix, ``_``, and a generated suffix."""
    match = _PREFIXED.match(segment)
    if match is None:
        return False
    suffix = match.group(1)
    return (not suffix.islower() and not suffix.istitle()) or any(c.isdigit() for c in suffix)


# --- the router ------------------------------------------------------------------------------


_Tree = dict[str, "_Tree"]


@dataclass(slots=True)
class _ServiceState:
    routes: set[str] = field(default_factory=set)
    tree: _Tree = field(default_factory=dict)  # admitted routes, segment by segment
    cache: dict[str, str] = field(default_factory=dict)  # path → route, cleared when full
    overflowed: int = 0


class Router:
    """Maps (service, raw path) to a bounded route. Not thread-safe: one per pipeline."""

    def __init__(self, rules: RouteRules = RouteRules()) -> None:
        self._rules = rules
        self._patterns = {service: _compile(service, p) for service, p in rules.patterns}
        self._any_service = self._patterns.pop("*", None)
        self._services: dict[str, _ServiceState] = {}
        self._words: set[str] = set()  # segments the heuristic keeps, cleared when full

    def route(self, service: str, path: str) -> str:
        """The route template of ``path`` for ``service``.

        ``path`` is a request target without its query, as ``probe.exchanges.path_of`` gives
        it; anything that does not start with ``/`` (``*``, ``host:443``) is ``NOT_A_PATH``.
        """
        state = self._services.get(service)
        if state is None:
            state = self._services[service] = _ServiceState()
        route = state.cache.get(path)
        if route is None:
            route = self._decide(service, state, path)
            if len(path) <= MAX_CACHED_PATH:
                if len(state.cache) >= PATH_CACHE_SIZE:
                    state.cache.clear()
                state.cache[path] = route
        if route == OVERFLOW:
            state.overflowed += 1
        return route

    def overflow_counts(self) -> dict[str, int]:
        """Paths that got the overflow route, per service, since this router was made."""
        return {name: s.overflowed for name, s in self._services.items() if s.overflowed}

    def route_counts(self) -> dict[str, int]:
        """Heuristic routes admitted so far, per service."""
        return {name: len(s.routes) for name, s in self._services.items()}

    def _decide(self, service: str, state: _ServiceState, path: str) -> str:
        if not path.startswith("/"):
            return NOT_A_PATH
        segments = path[1:].split("/")
        for trie in (self._patterns.get(service), self._any_service):
            if trie is not None and (found := trie.match(segments, 0)) is not None:
                return found
        if len(segments) > self._rules.max_segments:
            return OVERFLOW
        words = self._words
        for index, segment in enumerate(segments):
            if segment in words:
                continue
            placeholder = placeholder_for(segment)
            if placeholder is not None:
                segments[index] = placeholder
            else:
                if len(words) >= WORD_CACHE_SIZE:
                    words.clear()
                words.add(segment)
        return self._admit(state, segments)

    def _admit(self, state: _ServiceState, segments: list[str]) -> str:
        route = "/" + "/".join(segments)
        if route in state.routes:
            return route
        if len(state.routes) >= self._rules.max_routes_per_service:
            return OVERFLOW
        # Walk the admitted routes' tree; below the first new segment every node is new.
        node = state.tree
        depth = 0
        while depth < len(segments) and (child := node.get(segments[depth])) is not None:
            node = child
            depth += 1
        if depth < len(segments) and len(node) >= self._rules.max_fanout_per_segment:
            return OVERFLOW
        for segment in segments[depth:]:
            node = node.setdefault(segment, {})
        state.routes.add(route)
        return route
