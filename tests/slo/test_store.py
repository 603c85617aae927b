"""The SQLite SLI store: windows, history, restarts, crashes, retention."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slo.aggregate import Aggregator
from slo.errors import StoreCorrupt, StoreUnavailable
from slo.model import BucketCounts, Counts, EndpointKey, good_of
from slo.series import SeriesSpec, Tier
from slo.store import (
    DAY,
    HOUR,
    SqliteSliStore,
    default_tiers,
    endpoint_selector,
    sli_measure,
)
from tests.slo.exchange_data import T0, exchange
from tests.slo.store_writer import BATCH, INTERVAL_S, batch_at

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def open_store(tmp_path: Path, clock: Clock) -> Iterator[Callable[[], SqliteSliStore]]:
    opened: list[SqliteSliStore] = []

    def open_() -> SqliteSliStore:
        store = SqliteSliStore(tmp_path / "sli.db", clock=clock)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def slo_spec(
    name: str = "payments-users", kind: str = "health", threshold: float | None = 0.1
) -> SeriesSpec:
    return SeriesSpec(
        name=name,
        selects=endpoint_selector("payments", route="/users/:int"),
        measure=sli_measure(kind, threshold),
        columns=2,
        max_window_s=30 * DAY,
    )


def traffic(clock: Clock, seconds: int, rng: random.Random) -> Iterator[list[BucketCounts]]:
    """One flush per 10 s of mixed traffic on a few endpoints, the clock moving along."""
    aggregator = Aggregator()
    end = clock.now + seconds
    while clock.now < end:
        aggregator.add(
            exchange(
                clock.now + rng.random() * 10,
                route=rng.choice(["/users/:int", "/charges"]),
                status=rng.choice([200, 200, 200, 404, 500]),
                latency_s=rng.expovariate(10),
                business_error=rng.choice([None, None, None, "declined", "limit"]),
                complete=rng.random() > 0.05,
            )
            for _ in range(rng.randint(0, 40))
        )
        clock.now += INTERVAL_S
        yield aggregator.drain()


WINDOWS = [300, 1800, HOUR, 2 * HOUR, 6 * HOUR, DAY]


@pytest.mark.parametrize(
    "in_limit", [500, 0], ids=["SQLite picks the endpoints", "Python picks the endpoints"]
)
def test_window_sums_in_memory_equal_the_counts_read_back_from_the_file(
    open_store: Callable[[], SqliteSliStore],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    in_limit: int,
) -> None:
    monkeypatch.setattr("slo.store._IN_LIMIT", in_limit)
    store = open_store()
    series = store.track(slo_spec())
    for batch in traffic(clock, 3 * HOUR, random.Random(1)):
        store.write(batch)
    selects = endpoint_selector("payments", route="/users/:int")
    for window in WINDOWS:
        counts = store.read(selects, window, clock.now)
        assert counts is not None
        assert series.good_total(window, clock.now) == (
            good_of(counts, "health", 0.1),
            counts.total,
        ), f"window {window}"


@pytest.mark.parametrize(
    "in_limit", [500, 0], ids=["SQLite picks the endpoints", "Python picks the endpoints"]
)
def test_an_slo_tracked_late_sees_the_whole_history(
    open_store: Callable[[], SqliteSliStore],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    in_limit: int,
) -> None:
    monkeypatch.setattr("slo.store._IN_LIMIT", in_limit)
    store = open_store()
    early = store.track(slo_spec("early"))
    for batch in traffic(clock, 2 * HOUR, random.Random(2)):
        store.write(batch)
    late = store.track(slo_spec("late"))
    for window in WINDOWS:
        assert late.good_total(window, clock.now) == early.good_total(window, clock.now)


def test_an_edited_slo_is_evaluated_again_over_the_history(
    open_store: Callable[[], SqliteSliStore], clock: Clock
) -> None:
    store = open_store()
    before = store.track(slo_spec(kind="availability", threshold=None))
    for batch in traffic(clock, HOUR, random.Random(3)):
        store.write(batch)
    after = store.track(slo_spec(kind="latency", threshold=0.05))
    counts = store.read(endpoint_selector("payments", route="/users/:int"), HOUR, clock.now)
    assert counts is not None
    assert after.good_total(HOUR, clock.now) == (good_of(counts, "latency", 0.05), counts.total)
    frozen = before.good_total(HOUR, clock.now)
    store.write([BucketCounts(int(clock.now), EndpointKey(*USERS), ONE)])
    assert before.good_total(HOUR, clock.now) == frozen  # replaced: no longer fed


USERS = ("payments", "server", "GET", "/users/:int")
ONE = Counts((0.1,), 1, 0, 0, (1,), (1,))


def test_a_new_endpoint_that_an_slo_selects_is_counted_from_its_first_flush(
    open_store: Callable[[], SqliteSliStore], clock: Clock
) -> None:
    store = open_store()
    series = store.track(
        SeriesSpec("all", endpoint_selector("payments"), sli_measure("availability"), 2, HOUR)
    )
    store.write([BucketCounts(T0, EndpointKey("payments", "server", "GET", "/new"), ONE)])
    store.write([BucketCounts(T0, EndpointKey("payments", "client", "GET", "/out"), ONE)])
    assert series.good_total(300, T0 + 5) == (1, 1)


def test_late_counts_are_added_to_their_own_bucket(
    open_store: Callable[[], SqliteSliStore], clock: Clock
) -> None:
    store = open_store()
    key = EndpointKey(*USERS)
    clock.now = T0 + 2 * HOUR
    store.write([BucketCounts(T0 + 2 * HOUR - 10, key, ONE)])
    store.write([BucketCounts(T0 + 2 * HOUR - 1800, key, ONE)])  # a straggler, 30 min late
    store.write([BucketCounts(T0 + 2 * HOUR - 1800, key, ONE)])
    selects = endpoint_selector("payments")
    late = store.read(selects, 30, T0 + 2 * HOUR - 1800)
    assert late is not None and late.total == 2
    everything = store.read(selects, DAY, clock.now)
    assert everything is not None and everything.total == 3


def test_counts_from_a_wrong_clock_far_ahead_are_dropped_not_stored(
    open_store: Callable[[], SqliteSliStore], clock: Clock
) -> None:
    store = open_store()
    series = store.track(slo_spec(kind="availability", threshold=None))
    key = EndpointKey(*USERS)
    store.write([BucketCounts(T0, key, ONE), BucketCounts(T0 + 10 * DAY, key, ONE)])
    assert series.good_total(300, T0 + 5) == (1, 1)
    assert store.dropped == 1


@pytest.mark.parametrize(
    ("key", "selected"),
    [
        pytest.param(USERS, True, id="the service, route and method of the selector"),
        pytest.param(("payments", "client", "GET", "/users/:int"), False, id="an outbound call"),
        pytest.param(("ledger", "server", "GET", "/users/:int"), False, id="another service"),
        pytest.param(("payments", "server", "POST", "/users/:int"), False, id="another method"),
        pytest.param(("payments", "server", "GET", "/users/:int/x"), False, id="longer route"),
    ],
)
def test_an_endpoint_selector_picks_served_endpoints_of_its_selector(
    key: tuple[str, str, str, str], selected: bool
) -> None:
    selects = endpoint_selector("payments", route_regex="/users/.*", method="GET")
    regex_match = selected or key[3] == "/users/:int/x"
    assert selects(EndpointKey(*key)) is (regex_match and key[:3] == USERS[:3])
    exact = endpoint_selector("payments", route="/users/:int", method="GET")
    assert exact(EndpointKey(*key)) is selected


def test_a_restart_carries_on_from_the_stored_counts(
    open_store: Callable[[], SqliteSliStore], clock: Clock
) -> None:
    first = open_store()
    series = first.track(slo_spec())
    for batch in traffic(clock, HOUR, random.Random(4)):
        first.write(batch)
    before = {w: series.good_total(w, clock.now) for w in WINDOWS}
    first.close()
    second = open_store()
    again = second.track(slo_spec())
    assert {w: again.good_total(w, clock.now) for w in WINDOWS} == before
    # The hour's row now gets one more request: added to what was stored, not replacing it.
    second.write([BucketCounts(int(clock.now), EndpointKey(*USERS), ONE)])
    total = again.good_total(DAY, clock.now)[1]
    assert total == before[DAY][1] + 1
    counts = second.read(endpoint_selector("payments", route="/users/:int"), DAY, clock.now)
    assert counts is not None and counts.total == total


def test_counts_older_than_the_retention_are_deleted(tmp_path: Path, clock: Clock) -> None:
    tiers = (Tier(10, 60), Tier(60, 600))
    store = SqliteSliStore(tmp_path / "sli.db", clock=clock, tiers=tiers)
    key = EndpointKey(*USERS)
    store.write([BucketCounts(T0, key, ONE)])
    clock.now = T0 + 2 * 600
    store.write([BucketCounts(int(clock.now), key, ONE)])
    store.close()
    with sqlite3.connect(tmp_path / "sli.db") as db:
        buckets = sorted(row[0] for row in db.execute("SELECT bucket FROM counts"))
    assert buckets == [T0 + 1200, T0 + 1200]  # one row in each tier, the old ones gone


def test_a_write_that_fails_changes_nothing_and_can_be_repeated(
    open_store: Callable[[], SqliteSliStore], clock: Clock, tmp_path: Path
) -> None:
    store = open_store()
    series = store.track(
        SeriesSpec("all", endpoint_selector("payments"), sli_measure("availability"), 2, HOUR)
    )
    store.write([BucketCounts(T0, EndpointKey(*USERS), ONE)])
    with sqlite3.connect(tmp_path / "sli.db") as db:
        db.execute(
            "CREATE TRIGGER full BEFORE INSERT ON counts WHEN NEW.tier = 3600 "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    batch = [
        BucketCounts(T0, EndpointKey(*USERS), ONE),
        BucketCounts(T0, EndpointKey("payments", "server", "GET", "/new"), ONE),
    ]
    with pytest.raises(StoreUnavailable, match=r"sli\.db: cannot write counts: disk full"):
        store.write(batch)
    assert series.good_total(300, T0) == (1, 1)
    with sqlite3.connect(tmp_path / "sli.db") as db:
        db.execute("DROP TRIGGER full")
    store.write(batch)
    assert series.good_total(300, T0) == (3, 3)
    assert EndpointKey("payments", "server", "GET", "/new") in store.endpoints()


def test_the_most_frequent_error_types_of_a_window(
    open_store: Callable[[], SqliteSliStore], clock: Clock
) -> None:
    store = open_store()
    aggregator = Aggregator()
    aggregator.add(
        [exchange(T0, business_error="declined")] * 3
        + [exchange(T0, business_error="limit")]
        + [exchange(T0 - 7200, business_error="ancient")]
    )
    store.write(aggregator.drain())
    assert store.error_types(endpoint_selector("payments"), 300, T0 + 5) == (
        ("declined", 3),
        ("limit", 1),
    )


def test_error_types_of_every_endpoint_in_one_read(
    open_store: Callable[[], SqliteSliStore], clock: Clock
) -> None:
    store = open_store()
    aggregator = Aggregator()
    aggregator.add(
        [exchange(T0, route="/a", business_error="declined")] * 2
        + [exchange(T0, route="/b", business_error="limit")]
        + [exchange(T0, route="/c")]
    )
    store.write(aggregator.drain())
    found = store.error_types_by_endpoint(endpoint_selector("payments"), 300, T0 + 5)
    assert found == {
        EndpointKey("payments", "server", "GET", "/a"): (("declined", 2),),
        EndpointKey("payments", "server", "GET", "/b"): (("limit", 1),),
    }


def test_a_file_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    SqliteSliStore(tmp_path / "sli.db").close()
    with sqlite3.connect(tmp_path / "sli.db") as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    with pytest.raises(StoreCorrupt, match="schema version 99"):
        SqliteSliStore(tmp_path / "sli.db")


def test_a_file_that_is_not_a_store_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database, just words " * 100)
    with pytest.raises(StoreUnavailable, match=r"notes\.txt: cannot open .*not a database"):
        SqliteSliStore(tmp_path / "notes.txt")


def test_a_path_that_cannot_be_opened_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"missing/sli\.db: cannot open"):
        SqliteSliStore(tmp_path / "missing" / "sli.db")


@pytest.mark.parametrize(
    ("retention_s", "widths_spans"),
    [
        pytest.param(
            30 * DAY, [(10, HOUR), (60, 6 * HOUR), (600, 3 * DAY), (3600, 30 * DAY)], id="30 days"
        ),
        pytest.param(
            DAY,
            [(10, HOUR), (60, 6 * HOUR), (600, DAY), (3600, DAY)],
            id="1 day keeps every tier, none longer than a day",
        ),
        pytest.param(
            1800,
            [(10, 1800), (60, 1800), (600, 1800), (3600, 1800)],
            id="30 minutes keeps every tier for 30 minutes",
        ),
    ],
)
def test_every_tier_exists_and_none_outlives_the_retention(
    retention_s: int, widths_spans: list[tuple[int, int]]
) -> None:
    assert [(t.width_s, t.span_s) for t in default_tiers(retention_s)] == widths_spans


def test_after_kill_9_at_most_one_flush_interval_is_missing_and_counting_resumes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sli.db"
    rng = random.Random(9)
    stored = 0
    for _ in range(3):  # kill, restart where it was, kill again at another moment
        added, flushed = run_and_kill(db, stored // BATCH, rng.uniform(0, 0.05))
        clock = Clock(T0 + (added // BATCH) * INTERVAL_S)
        store = SqliteSliStore(db, clock=clock)
        counts = store.read(endpoint_selector("payments"), 30 * DAY, clock.now)
        assert counts is not None
        stored = counts.total
        assert stored % BATCH == 0, "a flush is stored whole or not at all"
        assert flushed <= stored <= added
        assert added - stored <= BATCH, "more than one flush interval was lost"
        series = store.track(
            SeriesSpec("all", endpoint_selector("payments"), sli_measure("availability"), 2, DAY)
        )
        assert series.good_total(DAY, clock.now)[1] == min(stored, DAY // INTERVAL_S * BATCH)
        store.close()
    # Counting resumes on the same rows: the next flush adds to them.
    store = SqliteSliStore(db, clock=clock)
    aggregator = Aggregator()
    aggregator.add(batch_at(clock.now))
    store.write(aggregator.drain())
    resumed = store.read(endpoint_selector("payments"), 30 * DAY, clock.now)
    assert resumed is not None and resumed.total == stored + BATCH
    store.close()


def run_and_kill(db: Path, start_iteration: int, delay_s: float) -> tuple[int, int]:
    """Run the writer until it has flushed 20 times, then ``delay_s`` more, then kill -9.
    Returns the last (added, flushed) totals it reported."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.slo.store_writer", str(db), str(start_iteration)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line.split())
        if len(lines) >= 40:
            break
    time.sleep(delay_s)
    os.kill(child.pid, signal.SIGKILL)
    lines += [line.split() for line in child.stdout]
    child.wait()
    assert child.returncode == -signal.SIGKILL
    added = max(int(n) for what, n in lines if what == "added")
    flushed = max(int(n) for what, n in lines if what == "flushed")
    return added, flushed


def test_a_store_reopened_with_a_longer_retention_keeps_its_history(tmp_path: Path) -> None:
    clock = [T0 + 600.0]
    key = EndpointKey("shop", "server", "GET", "/a")
    store = SqliteSliStore(tmp_path / "sli.db", clock=lambda: clock[0], retention_s=DAY)
    store.write([BucketCounts(int(T0), key, Counts((0.1,), 5, 0, 0, (5,), (5,)))])
    store.close()
    reopened = SqliteSliStore(tmp_path / "sli.db", clock=lambda: clock[0], retention_s=30 * DAY)
    assert reopened.endpoints() == [key]
    counts = reopened.read(lambda k: k == key, 3600.0, clock[0])
    assert counts is not None and counts.total == 5
