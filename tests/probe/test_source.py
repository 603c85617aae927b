"""probe.source.read_in_chunks: how a poll takes the rings' records, a chunk at a time."""

from __future__ import annotations

from probe.abi import Record, RecordBatch
from probe.source import CHUNK_RECORDS, MOST_RECORDS_PER_POLL, read_in_chunks


class FakeRings:
    """``waiting`` records (stand-ins: only their number matters here), handed out as a limited
    drain does: at most ``limit`` a call, the rest left for the next."""

    def __init__(self, waiting: int) -> None:
        self.left = waiting
        self.limits: list[int] = []

    def consume(self, limit: int) -> RecordBatch:
        self.limits.append(limit)
        n = min(limit, self.left)
        self.left -= n
        records: list[Record] = [None] * n  # type: ignore[list-item]
        return RecordBatch(records, 0)


def test_chunks_are_taken_in_order_until_one_comes_back_short() -> None:
    rings = FakeRings(2 * CHUNK_RECORDS + 5)
    sizes: list[int] = []
    caught_up = read_in_chunks(
        rings.consume(CHUNK_RECORDS), rings.consume, lambda c: sizes.append(len(c.records))
    )
    assert caught_up
    assert sizes == [CHUNK_RECORDS, CHUNK_RECORDS, 5]
    assert rings.left == 0 and set(rings.limits) == {CHUNK_RECORDS}


def test_a_full_last_chunk_is_followed_by_an_empty_one_that_says_the_rings_are_read() -> None:
    rings = FakeRings(CHUNK_RECORDS)
    sizes: list[int] = []
    assert read_in_chunks(
        rings.consume(CHUNK_RECORDS), rings.consume, lambda c: sizes.append(len(c.records))
    )
    assert sizes == [CHUNK_RECORDS, 0]


def test_a_poll_stops_after_its_most_records_and_says_more_may_be_waiting() -> None:
    rings = FakeRings(MOST_RECORDS_PER_POLL + 3 * CHUNK_RECORDS)
    taken: list[int] = []
    caught_up = read_in_chunks(
        rings.consume(CHUNK_RECORDS), rings.consume, lambda c: taken.append(len(c.records))
    )
    assert not caught_up
    assert sum(taken) == MOST_RECORDS_PER_POLL
    assert rings.left == 3 * CHUNK_RECORDS


def test_the_reader_is_given_a_turn_between_chunks_but_not_after_the_last() -> None:
    rings = FakeRings(2 * CHUNK_RECORDS + 5)
    steps: list[str] = []
    read_in_chunks(
        rings.consume(CHUNK_RECORDS),
        rings.consume,
        lambda c: steps.append(f"take {len(c.records)}"),
        lambda: steps.append("yield"),
    )
    assert steps == [f"take {CHUNK_RECORDS}", "yield", f"take {CHUNK_RECORDS}", "yield", "take 5"]
