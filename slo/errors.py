"""The exceptions of ``slo``, in one place, and the located problem they carry.

SloError
├── InvalidSpec       one or more SLO files (or a YAML file ``yamlpos`` read) are unreadable or
│                     wrong; ``problems`` lists every one of them, each with file, line, column
│                     and field path, so a user can fix them all in one pass
├── RulesUnsupported  an SLO is valid but cannot be written as Prometheus rules (its SLI comes
│                     from a source other than Prometheus, or a budgeting method rules cannot
│                     express); the message names the SLO and says why
└── StoreError
    ├── StoreUnavailable  the SLI database cannot be opened, read or written (path and reason)
    └── StoreCorrupt      a stored row does not decode, or the schema is not this version's
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a YAML node starts: 1-based line and column, as editors count them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with one field, printed as ``file:line:column: field.path: message``."""

    position: Position
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.path}: {self.message}"


class SloError(Exception):
    """Base class of every error raised by ``slo``."""


class InvalidSpec(SloError):
    """The input is wrong; ``problems`` holds every problem found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(set(problems)))
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{first}{more}")


class RulesUnsupported(SloError):
    """A valid SLO that Prometheus rules cannot express; the message says which and why."""


class StoreError(SloError):
    """Base class of the SLI store's errors."""


class StoreUnavailable(StoreError):
    """The database cannot be opened, read or written; the message names the path and why."""


class StoreCorrupt(StoreError):
    """The database holds something this version cannot read."""
