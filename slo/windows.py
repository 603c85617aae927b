"""Alert windows: durations, window catalogs, and the factor of each window pair.

A window catalog is data, in the shape of Sloth's ``AlertWindows`` files: for each severity, a
few (long window, short window, share of the error budget) rows. The default is the table of
the Google SRE Workbook ("Alerting on SLOs", recommended parameters):

    severity  long  short  budget spent   factor over 30 days   over 28 days
    page      1h    5m     2 %            14.4                  13.44
    page      6h    30m    5 %            6                     5.6
    ticket    1d    2h     10 %           3                     2.8
    ticket    3d    6h     10 %           1                     0.933

factor = budget fraction * period / long window: a pair trips when the SLO burns its budget
fast enough to spend that fraction of the period's budget within the long window. Because the
factor comes from the period, the same table serves any period (7d, 28d, 30d, 90d ...). A
catalog loaded from a file (``spec.load_catalog``) replaces the table for the one period it
names, as in Sloth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from slo.model import BurnWindow, Severity

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
YEAR = 365 * DAY

# Prometheus' duration units, largest first (as Prometheus prints them).
_UNITS: tuple[tuple[str, float], ...] = (
    ("y", YEAR),
    ("w", WEEK),
    ("d", DAY),
    ("h", HOUR),
    ("m", MINUTE),
    ("s", 1.0),
    ("ms", 0.001),
)
_UNIT_SECONDS = dict(_UNITS)
_DURATION = re.compile(r"(?:(\d+)(ms|y|w|d|h|m|s))")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``5m``, ``28d`` or ``1h30m``.

    Raises ``ValueError`` with a message fit for a user on anything else (``1.5h``, ``-5m``,
    ``30`` without a unit, months, which have no fixed length).
    """
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("empty duration")
    position = 0
    seconds = 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(cleaned):
        raise ValueError(
            f"'{text}' is not a duration: write a whole number and a unit (ms, s, m, h, d, w, y),"
            " optionally combined, as in 5m, 28d or 1h30m"
        )
    if seconds <= 0:
        raise ValueError(f"'{text}' is not a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    """The Prometheus spelling of a duration: ``300`` → ``5m``, ``7d`` → ``1w``, ``30d`` → ``30d``.

    Like Prometheus, years and weeks are used only when they divide the duration exactly
    (``90d`` reads better than ``12w6d``); rule names built from it then match Sloth's.
    """
    milliseconds = round(seconds * 1000)
    if milliseconds <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS:
        unit_ms = round(size * 1000)
        if unit in ("y", "w") and milliseconds % unit_ms:
            continue
        count, milliseconds = divmod(milliseconds, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def factor(budget_fraction: float, period_s: float, long_window_s: float) -> float:
    """The burn rate at which ``budget_fraction`` of the budget goes in ``long_window_s``."""
    return budget_fraction * period_s / long_window_s


def budget_fraction_for(burn_factor: float, period_s: float, long_window_s: float) -> float:
    """The inverse of ``factor``, for policies written as burn-rate thresholds (OpenSLO)."""
    return burn_factor * long_window_s / period_s


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """One window pair of a catalog, before a period turns its budget share into a factor."""

    severity: Severity
    long_window_s: float
    short_window_s: float
    budget_fraction: float


@dataclass(frozen=True, slots=True)
class WindowCatalog:
    """Window pairs for one period, or for any period when ``period_s`` is None."""

    period_s: float | None
    rows: tuple[CatalogRow, ...]


SRE_WORKBOOK = WindowCatalog(
    period_s=None,
    rows=(
        CatalogRow(Severity.PAGE, 1 * HOUR, 5 * MINUTE, 0.02),
        CatalogRow(Severity.PAGE, 6 * HOUR, 30 * MINUTE, 0.05),
        CatalogRow(Severity.TICKET, 1 * DAY, 2 * HOUR, 0.10),
        CatalogRow(Severity.TICKET, 3 * DAY, 6 * HOUR, 0.10),
    ),
)


def burn_window(row: CatalogRow, period_s: float) -> BurnWindow:
    return BurnWindow(
        severity=row.severity,
        long_window_s=row.long_window_s,
        short_window_s=row.short_window_s,
        budget_fraction=row.budget_fraction,
        factor=factor(row.budget_fraction, period_s, row.long_window_s),
    )


def windows_for(period_s: float, catalogs: Iterable[WindowCatalog] = ()) -> tuple[BurnWindow, ...]:
    """The burn windows of a period: from the catalog made for it, else the SRE table."""
    chosen = next((c for c in catalogs if c.period_s == period_s), SRE_WORKBOOK)
    return tuple(burn_window(row, period_s) for row in chosen.rows)
