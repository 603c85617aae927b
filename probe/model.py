"""The probe's public records: what leaves ``probe/`` for the rest of bytewatch.

Records made once or more per HTTP exchange are ``typing.NamedTuple``: immutable and typed like
the frozen dataclasses used elsewhere, but about ten times cheaper to build (0.15 µs against
2.1 µs for a record of nineteen fields on our machines), which matters at 20,000 records/s.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Final, NamedTuple, Protocol, TypeVar

_T = TypeVar("_T", bound=tuple[object, ...])


class _Build(Protocol):
    def __call__(self, cls: type[_T], /, *fields: object) -> _T: ...


def build_in_python(cls: type[_T], /, *fields: object) -> _T:
    """A NamedTuple of type ``cls`` holding ``fields``, without its keyword-parsing __new__."""
    return tuple.__new__(cls, fields)


def _load_build() -> _Build:
    try:
        from probe import _records
    except ImportError:  # BYTEWATCH_PURE_PYTHON=1, or a source tree never built
        return build_in_python
    return _records.build


build: Final = _load_build()
"""``build_in_python`` in one allocation (probe/_records.c): how the pipeline makes the records
it makes for every exchange."""


class Direction(StrEnum):
    """Which side of the exchange the observed process was on."""

    SERVER = "server"  # the process answered an inbound request
    CLIENT = "client"  # the process called someone else


class Verdict(NamedTuple):
    """What the response body says about the outcome, beyond the status code.

    ``error_type`` is a short, bounded label such as ``insufficient_balance``; ``rule`` names
    the detector or user rule that decided, so a person can see why.
    """

    business_error: bool
    error_type: str | None = None
    rule: str | None = None
    inspected: bool = True  # False when no body was looked at (no body, or not captured)


NOT_INSPECTED: Final = Verdict(business_error=False, inspected=False)
"""The verdict of a response whose body was not (or could not be) looked at."""


class HttpExchange(NamedTuple):
    """One request and its response, as one observed process saw them.

    ``path`` is the raw path without its query string. It exists for ``bytewatch trace`` and
    the replay format only: aggregation, storage and metrics use ``route``, never ``path``.
    ``status`` is 0 when no status line arrived. ``complete`` is false when the connection
    closed (or the exchange timed out) before the response ended.
    """

    ts: float  # wall-clock seconds (Unix epoch) when the request started
    pid: int
    comm: str
    service: str
    direction: Direction
    method: str
    path: str
    route: str
    status: int
    latency_s: float
    request_bytes: int
    response_bytes: int
    verdict: Verdict = NOT_INSPECTED
    complete: bool = True

    @property
    def server_error(self) -> bool:
        """A 5xx, or a response that never finished: either way the caller did not get an answer."""
        return self.status >= 500 or not self.complete


class ResponseView(NamedTuple):
    """A response as the probe saw it. ``headers`` names are lower case; ``body`` is de-chunked,
    still content-encoded, and possibly cut (``body_truncated``). ``lookup``, when given, answers
    header questions instead of ``headers`` (the live path passes the parsed head's own lookup,
    so headers are never split just to be searched). A NamedTuple: one is built per response."""

    service: str
    route: str
    method: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_truncated: bool = False
    lookup: Callable[[str], str | None] | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or None."""
        if self.lookup is not None:
            found: str | None = self.lookup(name)
            return found
        for key, value in self.headers:
            if key == name:
                return value
        return None
