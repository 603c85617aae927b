"""Window sums in memory: which buckets a window covers, and which tier answers it."""

from __future__ import annotations

import threading

import pytest

from slo.model import Counts
from slo.series import Series, SeriesSpec, Tier, coarse_tier_for, tier_for
from slo.store import DAY, HOUR, default_tiers

TIERS = (Tier(10, 60), Tier(60, 600))


def spec(max_window_s: float = 600) -> SeriesSpec:
    return SeriesSpec(
        name="s",
        selects=lambda key: True,
        measure=lambda counts: (counts.total,),
        columns=1,
        max_window_s=max_window_s,
    )


def filled() -> Series:
    """One request in every 10 s bucket from t=0 to t=590, in both tiers."""
    series = Series(spec(), TIERS, threading.Lock())
    for start in range(0, 600, 10):
        series.add(start, (1,))
    return series


@pytest.mark.parametrize(
    ("window_s", "now", "total"),
    [
        pytest.param(30, 595, 4, id="30 s at 595 sums the buckets from 560 to 590"),
        pytest.param(30, 590, 4, id="the bucket holding now - W is included"),
        pytest.param(60, 599, 7, id="a window of the fine tier's full span"),
        pytest.param(300, 599, 36, id="a longer window reads the coarse tier, by minutes"),
        pytest.param(30, 2000, 0, id="a window after the last data sums nothing"),
        pytest.param(10_000, 599, 60, id="a window beyond every span reads what is kept"),
    ],
)
def test_window_sums(window_s: float, now: float, total: int) -> None:
    assert filled().sums(window_s, now) == (total,)


def test_data_older_than_a_ring_is_not_added() -> None:
    series = Series(spec(60), TIERS, threading.Lock())
    series.add(1000, (1,))
    series.add(0, (5,))
    assert series.sums(60, 1000) == (1,)


def test_a_ring_forgets_what_it_moved_past() -> None:
    series = Series(spec(60), TIERS, threading.Lock())
    series.add(0, (5,))
    series.add(50, (1,))
    series.add(200, (1,))
    assert series.sums(60, 200) == (1,)
    assert series.sums(60, 50) == (0,)  # buckets 0..50 were overwritten when the ring moved on


def test_a_series_keeps_only_the_tiers_its_windows_need() -> None:
    assert Series(spec(60), TIERS, threading.Lock()).tiers == (TIERS[0],)
    assert Series(spec(61), TIERS, threading.Lock()).tiers == TIERS


def test_the_finest_tier_that_covers_a_window_answers_it() -> None:
    assert tier_for(TIERS, 60) == TIERS[0]
    assert tier_for(TIERS, 61) == TIERS[1]
    assert tier_for(TIERS, 10**9) == TIERS[1]


def test_good_total_reads_a_two_column_series() -> None:
    series = Series(
        SeriesSpec("slo", lambda key: True, lambda c: (c.total - 1, c.total), 2, 60),
        TIERS,
        threading.Lock(),
    )
    series.add(0, series.spec.measure(Counts((1.0,), 10, 1, 0, (9,), (9,))))
    assert series.good_total(60, 5) == (9, 10)


@pytest.mark.parametrize(
    ("window_s", "width_s"),
    [(300, 10), (HOUR, 60), (6 * HOUR, 600), (DAY, 600), (30 * DAY, 3600)],
    ids=["5m", "1h", "6h", "1d", "30d"],
)
def test_rough_answers_read_a_tier_with_about_30_buckets_in_the_window(
    window_s: int, width_s: int
) -> None:
    assert coarse_tier_for(default_tiers(), window_s).width_s == width_s
