"""Window factors: the SRE Workbook's numbers, for any period, from a data catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from slo.model import Severity
from slo.spec import load_catalog
from slo.windows import (
    DAY,
    SRE_WORKBOOK,
    budget_fraction_for,
    factor,
    format_duration,
    parse_duration,
    windows_for,
)

WORKBOOK = [
    # period, (severity, long, short, factor) for each row of the table
    (30, [("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0),
          ("ticket", "1d", "2h", 3.0), ("ticket", "3d", "6h", 1.0)]),
    (28, [("page", "1h", "5m", 13.44), ("page", "6h", "30m", 5.6),
          ("ticket", "1d", "2h", 2.8), ("ticket", "3d", "6h", 0.933)]),
]  # fmt: skip


@pytest.mark.parametrize(("days", "rows"), WORKBOOK, ids=["30 days", "28 days"])
def test_the_default_windows_reproduce_the_sre_workbook(
    days: int, rows: list[tuple[str, str, str, float]]
) -> None:
    windows = windows_for(days * DAY)
    got = [
        (w.severity.value, format_duration(w.long_window_s), format_duration(w.short_window_s))
        for w in windows
    ]
    assert got == [row[:3] for row in rows]
    for window, row in zip(windows, rows, strict=True):
        assert window.factor == pytest.approx(row[3], abs=5e-4)


@pytest.mark.parametrize("name", ["google-30d.yaml", "google-28d.yaml"])
def test_sloths_google_catalogs_say_what_the_built_in_table_says(
    conformance: Path, name: str
) -> None:
    catalog = load_catalog(conformance / "sloth/internal/alert/windows" / name)
    assert catalog.period_s is not None
    from_file = windows_for(catalog.period_s, [catalog])
    built_in = windows_for(catalog.period_s)
    assert [(w.severity, w.long_window_s, w.short_window_s) for w in from_file] == [
        (w.severity, w.long_window_s, w.short_window_s) for w in built_in
    ]
    for a, b in zip(from_file, built_in, strict=True):
        assert a.factor == pytest.approx(b.factor)


def test_a_catalog_applies_only_to_the_period_it_names(conformance: Path) -> None:
    seven = load_catalog(conformance / "sloth/test/integration/prometheus/windows/7d.yaml")
    assert windows_for(7 * DAY, [seven])[0].factor == pytest.approx(13.44)
    assert windows_for(30 * DAY, [seven])[0].factor == pytest.approx(14.4)


def test_a_burn_rate_threshold_and_a_budget_share_are_the_same_thing() -> None:
    for row in SRE_WORKBOOK.rows:
        f = factor(row.budget_fraction, 30 * DAY, row.long_window_s)
        assert budget_fraction_for(f, 30 * DAY, row.long_window_s) == pytest.approx(
            row.budget_fraction
        )
    assert {row.severity for row in SRE_WORKBOOK.rows} == set(Severity)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1h30m", 5400), ("1w", 7 * DAY), ("3d", 3 * DAY), ("250ms", 0.25)],
)
def test_durations_read_and_print_as_prometheus_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(30 * DAY, "30d"), (28 * DAY, "4w"), (90 * DAY, "90d"), (3600, "1h")]
)
def test_weeks_and_years_are_printed_only_when_they_divide_exactly(
    seconds: float, text: str
) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["", "30", "1.5h", "-5m", "1M", "5 m", "0s"])
def test_what_is_not_a_duration_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
