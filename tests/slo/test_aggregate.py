"""Exchanges to per-endpoint counts: the recorded sample, the bounds, the label guards."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.model import Direction
from slo.aggregate import (
    DEFAULT_BOUNDS_S,
    Aggregator,
    merge_thresholds,
    status_class,
)
from slo.model import BucketCounts, EndpointKey, good_of
from tests.slo.exchange_data import (
    SAMPLE_BOUNDS,
    T0,
    exchange,
    expected,
    sample_exchanges,
)

CASES = expected("aggregate_expected.json")["cases"]


@pytest.fixture(scope="module")
def drained() -> dict[tuple[int, EndpointKey], BucketCounts]:
    aggregator = Aggregator(SAMPLE_BOUNDS)
    aggregator.add(sample_exchanges())
    return {(bc.start_s, bc.key): bc for bc in aggregator.drain()}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_the_recorded_sample_adds_up_as_expected(
    drained: dict[tuple[int, EndpointKey], BucketCounts], case: dict[str, Any]
) -> None:
    counts = drained[(case["start_s"], EndpointKey(*case["key"]))].counts
    assert (counts.total, counts.server_errors, counts.business_errors, counts.clean) == (
        case["total"],
        case["server_errors"],
        case["business_errors"],
        case["clean"],
    )
    assert {t: counts.within(float(t)) for t in case["within"]} == case["within"]
    assert {t: counts.within(float(t), clean_only=True) for t in case["clean_within"]} == case[
        "clean_within"
    ]
    assert [list(pair) for pair in counts.error_types] == case["error_types"]


def test_the_recorded_sample_has_no_other_bucket_or_endpoint(
    drained: dict[tuple[int, EndpointKey], BucketCounts],
) -> None:
    assert len(drained) == len(CASES)


def test_drain_empties_the_aggregator() -> None:
    aggregator = Aggregator()
    aggregator.add([exchange()])
    assert len(aggregator.drain()) == 1
    assert aggregator.drain() == []


@pytest.mark.parametrize(
    ("status", "complete", "expected_class"),
    [
        pytest.param(200, True, "2xx", id="a 200 is 2xx"),
        pytest.param(101, True, "1xx", id="a 101 is 1xx"),
        pytest.param(399, True, "3xx", id="a 399 is 3xx"),
        pytest.param(404, True, "4xx", id="a 404 is 4xx"),
        pytest.param(503, True, "5xx", id="a 503 is 5xx"),
        pytest.param(200, False, "none", id="an exchange that never completed is none"),
        pytest.param(0, False, "none", id="no status line is none"),
        pytest.param(999, True, "none", id="a status outside 1xx-5xx is none"),
    ],
)
def test_status_classes(status: int, complete: bool, expected_class: str) -> None:
    assert status_class(status, complete) == expected_class


def test_merged_bounds_include_every_threshold_once_and_in_order() -> None:
    bounds = merge_thresholds(DEFAULT_BOUNDS_S, [0.3, 0.25, 2.0])
    assert 0.3 in bounds and 2.0 in bounds
    assert list(bounds) == sorted(set(bounds))
    assert len(bounds) == len(DEFAULT_BOUNDS_S) + 2


@pytest.mark.parametrize(
    "bad", [0.0, -1.0, float("inf"), float("nan")], ids=["zero", "negative", "inf", "nan"]
)
def test_a_threshold_that_is_not_a_positive_duration_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        merge_thresholds(DEFAULT_BOUNDS_S, [bad])


def test_an_endpoint_keeps_its_first_error_types_and_counts_the_rest_as_other() -> None:
    aggregator = Aggregator(max_error_types=2)
    aggregator.add([exchange(business_error=f"type_{i}") for i in range(5)])
    aggregator.add([exchange(business_error="type_0")])
    [bucket] = aggregator.drain()
    assert dict(bucket.counts.error_types) == {"type_0": 2, "type_1": 1, "other": 3}


def test_endpoints_beyond_the_cap_share_the_overflow_route() -> None:
    aggregator = Aggregator(max_endpoints=2)
    aggregator.add([exchange(route=f"/r{i}") for i in range(5)])
    totals = {bc.key.route: bc.counts.total for bc in aggregator.drain()}
    assert totals == {"/r0": 1, "/r1": 1, ":overflow": 3}


def test_traffic_stays_bounded_under_a_flood_of_new_methods() -> None:
    aggregator = Aggregator()
    aggregator.add([exchange(method=f"X{i}") for i in range(100)])
    methods = {c.key.method for c in aggregator.traffic().classes}
    assert methods == {"_OTHER"}


def test_new_bounds_keep_exported_buckets_cumulative_and_count_on_exactly_afterwards() -> None:
    aggregator = Aggregator((0.1, 1.0))
    aggregator.add([exchange(latency_s=0.05), exchange(latency_s=0.2)])
    aggregator.set_bounds((0.1, 0.25, 1.0))
    aggregator.add([exchange(T0 + 10, latency_s=0.2)])
    traffic = aggregator.traffic()
    assert traffic.bounds == (0.1, 0.25, 1.0)
    [served] = traffic.classes
    # Before the change 0.2 s was only known to be within 1 s: it counts at 0.25 from then on.
    assert served.latency_le == (1, 2, 3)
    first, second = aggregator.drain()
    assert first.counts.bounds == (0.1, 1.0)
    assert second.counts.bounds == (0.1, 0.25, 1.0)
    assert second.counts.within(0.25) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 60),
            st.sampled_from([200, 201, 302, 404, 500, 503]),
            st.floats(0, 20),
            st.booleans(),
            st.sampled_from([None, "declined"]),
            st.sampled_from(list(Direction)),
        ),
        max_size=60,
    )
)
def test_every_exchange_is_counted_once_in_the_store_and_in_the_metrics(
    rows: list[tuple[float, int, float, bool, str | None, Direction]],
) -> None:
    aggregator = Aggregator()
    aggregator.add(
        exchange(T0 + ts, status=s, latency_s=lat, complete=c, business_error=b, direction=d)
        for ts, s, lat, c, b, d in rows
    )
    traffic = aggregator.traffic()
    drained = aggregator.drain()
    assert sum(bc.counts.total for bc in drained) == len(rows)
    assert sum(c.requests for c in traffic.classes) == len(rows)
    for bc in drained:
        counts = bc.counts
        assert counts.server_errors + counts.business_errors <= counts.total
        assert list(counts.latency_le) == sorted(counts.latency_le)
        assert all(c <= a for c, a in zip(counts.clean_le, counts.latency_le, strict=True))
        assert good_of(counts, "health", None) == counts.clean
    clean_total = sum(bc.counts.clean for bc in drained)
    assert sum(c.clean for c in traffic.classes) == clean_total
