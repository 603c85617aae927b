"""Counts, good_of and health scores: the counting rules everything else relies on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo.model import Counts, HealthScore, good_of, merge_error_types

BOUNDS = (0.1, 0.3, 1.0)
# 10 requests: 2 server errors, 1 business error, 7 clean; within 0.1/0.3/1.0 s: 3/6/8
# of all of them, 2/5/6 of the clean ones.
TEN = Counts(BOUNDS, 10, 2, 1, (3, 6, 8), (2, 5, 6), (("card_declined", 1),))


@pytest.mark.parametrize(
    ("kind", "threshold_s", "good"),
    [
        pytest.param("availability", None, 8, id="availability counts everything but 5xx"),
        pytest.param("correctness", None, 9, id="correctness counts everything but business"),
        pytest.param("health", None, 7, id="health without a threshold counts clean requests"),
        pytest.param("health", 0.3, 5, id="health with a threshold counts fast clean requests"),
        pytest.param("latency", 0.3, 6, id="latency counts fast requests whatever the status"),
        pytest.param("latency", 0.5, 6, id="a threshold between bounds uses the bound below"),
        pytest.param("latency", 0.05, 0, id="a threshold below every bound counts nothing"),
        pytest.param("latency", 5.0, 8, id="a threshold above every bound uses the last bound"),
        pytest.param("latency", math.inf, 10, id="an infinite threshold counts everything"),
    ],
)
def test_good_of_counts_what_each_sli_kind_calls_good(
    kind: str, threshold_s: float | None, good: int
) -> None:
    assert good_of(TEN, kind, threshold_s) == good


def test_a_latency_sli_without_a_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="latency threshold"):
        good_of(TEN, "latency")


def test_an_unknown_sli_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="health, availability, correctness, latency"):
        good_of(TEN, "speed")


def test_histograms_must_have_one_count_per_bound() -> None:
    with pytest.raises(ValueError, match="one count per bound"):
        Counts(BOUNDS, 1, 0, 0, (1, 1), (1, 1, 1))


def test_counts_on_different_bounds_meet_on_their_union_conservatively() -> None:
    other = Counts((0.2, 1.0), 4, 0, 0, (4, 4), (4, 4))
    total = TEN + other
    assert total.bounds == (0.1, 0.2, 0.3, 1.0)
    assert total.total == 14
    # At 0.2 the first counts only know "within 0.1" (3); at 0.1 the others know nothing.
    assert total.latency_le == (3, 3 + 4, 6 + 4, 8 + 4)
    assert total.error_types == (("card_declined", 1),)


def test_error_types_beyond_the_limit_are_summed_as_other() -> None:
    merged = merge_error_types((("a", 5), ("b", 1)), (("c", 3), ("other", 2)), limit=3)
    assert merged == (("a", 5), ("c", 3), ("other", 3))


def test_a_health_score_without_requests_has_no_ratios() -> None:
    empty = HealthScore(300.0, 0, 0, 0, 0, 0)
    assert (empty.score, empty.availability, empty.correctness, empty.latency) == (None,) * 4


def test_health_scores_add_up_by_counts_not_by_ratios() -> None:
    a = HealthScore(300.0, 100, 90, 100, 100, 90)
    b = HealthScore(300.0, 900, 900, 900, 900, 900)
    assert (a + b).score == pytest.approx(0.99)


@st.composite
def counts(draw: st.DrawFn) -> Counts:
    le = sorted(draw(st.lists(st.integers(0, 50), min_size=3, max_size=3)))
    total = le[-1] + draw(st.integers(0, 10))
    server = draw(st.integers(0, total))
    business = draw(st.integers(0, total - server))
    clean_le = tuple(min(v, total - server - business) for v in le)
    return Counts(BOUNDS, total, server, business, tuple(le), clean_le)


@given(counts(), counts(), st.sampled_from(["health", "availability", "correctness", "latency"]))
def test_good_of_a_sum_is_the_sum_of_the_goods(a: Counts, b: Counts, kind: str) -> None:
    assert good_of(a + b, kind, 0.3) == good_of(a, kind, 0.3) + good_of(b, kind, 0.3)
