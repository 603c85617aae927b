"""Burn-rate math over (good, total) counts, as the evaluator will call it."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path

import pytest

from slo import burn
from slo.model import Severity, Slo
from slo.spec import load_paths
from slo.windows import DAY, HOUR, MINUTE, windows_for

HERE = Path(__file__).parent
EXAMPLES = HERE.parent.parent / "deploy" / "examples" / "slos"


def example(slo_id: str) -> Slo:
    return {s.id: s for s in load_paths([EXAMPLES]).slos}[slo_id]


@pytest.mark.parametrize(
    ("good", "total", "objective", "expected"),
    [
        (999, 1000, 0.999, 1.0),  # exactly the sustainable rate
        (986, 1000, 0.999, 14.0),
        (1000, 1000, 0.999, 0.0),
        (0, 10, 0.99, 100.0),
        (0, 0, 0.999, None),  # no traffic: nothing to judge
    ],
)
def test_burn_rate_is_the_error_ratio_over_the_error_budget(
    good: int, total: int, objective: float, expected: float | None
) -> None:
    assert burn.burn_rate(good, total, objective) == pytest.approx(expected)


def test_a_total_outage_of_a_999_slo_trips_the_fast_page_after_52_seconds() -> None:
    rate = 10  # requests per second, all good for two hours, then all failing from t0
    before, after = 2 * 3600, 120
    bad = [0] * before + [rate] * after
    total = [rate] * (before + after)
    bad_sum, total_sum = [0, *accumulate(bad)], [0, *accumulate(total)]
    (fast,) = [w for w in windows_for(30 * DAY) if w.long_window_s == HOUR]
    assert fast.short_window_s == 5 * MINUTE
    assert fast.factor == pytest.approx(14.4)

    def counts(end: int, length: float) -> tuple[int, int]:
        start = end - int(length)
        n, b = total_sum[end] - total_sum[start], bad_sum[end] - bad_sum[start]
        return n - b, n

    def tripped(seconds_after_t0: int) -> bool:
        end = before + seconds_after_t0
        check = burn.check_window(
            fast, counts(end, fast.long_window_s), counts(end, fast.short_window_s), 0.999
        )
        return check.tripped

    first = next(s for s in range(after) if tripped(s))
    assert first == 52  # 14.4 * 0.001 * 3600 s = 51.84 s of errors in the hour
    assert all(tripped(s) for s in range(first, after))


@pytest.mark.parametrize(
    ("long", "short", "min_events", "tripped"),
    [
        ((2, 3), (2, 3), 20, False),  # one failure in three requests: a burn of 333, no page
        ((2, 3), (2, 3), 0, True),  # the same without the guard
        ((9_800, 10_000), (980, 1_000), 20, True),  # a real 2 % error rate on real traffic
        ((9_990, 10_000), (990, 1_000), 20, False),  # 0.1 % in the long window: no page
        ((9_800, 10_000), (1_000, 1_000), 20, False),  # the short window recovered: resolves
        ((9_800, 10_000), (0, 0), 20, False),  # no traffic in the short window
    ],
    ids=[
        "one failure out of three does not page",
        "without the guard it would",
        "a sustained burn on busy traffic pages",
        "a low long-window burn does not",
        "a recovered short window does not",
        "an empty short window does not",
    ],
)
def test_a_window_pair_trips_only_on_enough_events_burning_in_both_windows(
    long: tuple[int, int], short: tuple[int, int], min_events: int, tripped: bool
) -> None:
    fast = windows_for(30 * DAY)[0]
    check = burn.check_window(fast, long, short, 0.999, min_events)
    assert check.tripped is tripped


def test_budget_remaining_and_time_to_exhaustion() -> None:
    # 0.05 % bad over the period against a 0.1 % budget: half the budget is left
    assert burn.budget_remaining(999_500, 1_000_000, 0.999) == pytest.approx(0.5)
    assert burn.budget_remaining(0, 0, 0.999) == 1.0
    assert burn.budget_remaining(998_000, 1_000_000, 0.999) == pytest.approx(-1.0)
    # half the budget at a burn of 10 lasts a twentieth of the period
    assert burn.time_to_exhaustion(0.5, 10.0, 30 * DAY) == pytest.approx(1.5 * DAY)
    assert burn.time_to_exhaustion(0.5, None, 30 * DAY) is None
    assert burn.time_to_exhaustion(-0.2, 3.0, 30 * DAY) == 0.0


def test_evaluate_turns_counts_per_window_into_a_status() -> None:
    slo = example("checkout-availability")  # 99.9 %, 30 days, default windows
    windows = burn.required_windows(slo)
    assert windows == (300, 1800, HOUR, 2 * HOUR, 6 * HOUR, DAY, 3 * DAY, 30 * DAY)
    failing = {300.0: (980, 1000), 1800.0: (5_900, 6_000), HOUR: (11_800, 12_000)}
    quiet = {w: (n * 1000, n * 1000) for n, w in enumerate(windows[3:], start=1)}
    status = burn.evaluate(slo, {**quiet, **failing})
    page, ticket = status.result(Severity.PAGE), status.result(Severity.TICKET)
    assert page is not None and page.tripped
    assert [c.tripped for c in page.checks] == [True, False]  # 1h/5m yes; 6h/30m: 6h is clean
    assert ticket is not None and not ticket.tripped
    assert status.current_burn == pytest.approx(200 / 12_000 / 0.001)
    assert status.budget_remaining == 1.0 and status.sli == 1.0
    assert status.slo_id == slo.id and status.fingerprint == slo.fingerprint


def test_evaluate_names_a_window_it_was_not_given() -> None:
    slo = example("checkout-availability")
    with pytest.raises(KeyError, match=r"no counts for the \d+s window"):
        burn.evaluate(slo, {})
