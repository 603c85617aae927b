"""probe.ringbuf: a ring buffer read from its memory map, records decoded as they are read.

``drain_records`` (C, probe/_records.c, where it was built) must give exactly what ``drain`` and
``probe.abi.decode_records_in_python`` give together, and consume exactly as much. Without the
extension it is those two steps, and the same tests hold.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe import abi
from probe.abi import Record, RecordBatch, RecordKind, Role, StreamDirection
from probe.errors import ProbeAbiMismatch
from probe.ringbuf import BUSY, DISCARD, HEADER
from tests.ci import built_extension
from tests.probe.fake_ring import PAGE, FakeRing, fake_ring

DATA_SIZE = 4 * PAGE  # the smallest ring the fake needs: records here are under a page


def test_the_reader_decodes_in_c_where_the_extension_is_built() -> None:
    built_extension("probe._records")
    assert abi.drain_decoded is not None


@pytest.fixture
def ring() -> Iterator[FakeRing]:
    with fake_ring(DATA_SIZE) as fake:
        yield fake


def a_record(seq: int, data: bytes = b"GET / HTTP/1.1\r\n\r\n") -> Record:
    return Record(RecordKind.DATA, StreamDirection.INGRESS, Role.SERVER, 1, 42, 42, 7, 5,
                  1_000 + seq, len(data), 1_000 + seq, 0, 0, len(data), 8080, 50000, seq,
                  "nginx" if seq == 0 else "", data)  # fmt: skip


def in_python(blobs: list[bytes]) -> RecordBatch:
    records: list[Record] = []
    undecodable = 0
    for blob in blobs:
        try:
            records += abi.decode_records_in_python(blob)
        except ProbeAbiMismatch:
            undecodable += 1
    return RecordBatch(records, undecodable)


def test_records_come_out_decoded_in_order_and_the_ring_is_consumed_to_the_producer(
    ring: FakeRing,
) -> None:
    response = a_record(1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    pair = abi.encode(response._replace(direction=StreamDirection.EGRESS), request=a_record(0))
    ring.put(pair)
    ring.put(abi.encode(a_record(2)))
    batch = ring.reader().drain_records()
    assert batch == in_python([pair, abi.encode(a_record(2))])
    assert [r.seq for r in batch.records] == [0, 1, 2] and batch.undecodable == 0
    assert ring.consumer == ring.producer


def test_a_record_still_being_written_and_all_after_it_wait_for_the_next_drain(
    ring: FakeRing,
) -> None:
    reader = ring.reader()
    ring.put(abi.encode(a_record(0)))
    busy_at = ring.producer
    ring.put(abi.encode(a_record(1)), flags=BUSY)
    ring.put(abi.encode(a_record(2)))
    assert [r.seq for r in reader.drain_records().records] == [0]
    assert ring.consumer == busy_at
    at = 2 * PAGE + busy_at  # the kernel commits the record: its BUSY bit clears
    struct.pack_into("I", ring.pages, at, struct.unpack_from("I", ring.pages, at)[0] & ~BUSY)
    assert [r.seq for r in reader.drain_records().records] == [1, 2]


def test_a_limited_drain_stops_after_that_many_records_and_never_splits_a_pair(
    ring: FakeRing,
) -> None:
    built_extension("probe._records")  # the limit is the extension's: Python takes every record
    reader = ring.reader()
    response = a_record(1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    ring.put(abi.encode(response._replace(direction=StreamDirection.EGRESS), request=a_record(0)))
    after_pair = ring.producer
    for seq in (2, 3, 4):
        ring.put(abi.encode(a_record(seq)))
    assert [r.seq for r in reader.drain_records(limit=1).records] == [0, 1]
    assert ring.consumer == after_pair
    assert [r.seq for r in reader.drain_records(limit=2).records] == [2, 3]
    assert [r.seq for r in reader.drain_records(limit=5).records] == [4]
    assert ring.consumer == ring.producer
    assert reader.drain_records(limit=1).records == []


def test_discarded_records_are_skipped_and_bytes_that_are_no_record_are_counted(
    ring: FakeRing,
) -> None:
    ring.put(abi.encode(a_record(0)), flags=DISCARD)
    ring.put(b"\xff" * 40)
    ring.put(abi.encode(a_record(1)))
    batch = ring.reader().drain_records()
    assert [r.seq for r in batch.records] == [1]
    assert batch.undecodable == 1
    assert ring.consumer == ring.producer


def test_a_record_that_wraps_around_the_end_of_the_ring_is_read_whole(ring: FakeRing) -> None:
    reader = ring.reader()
    filler = abi.encode(a_record(0, b"x" * 900))
    while DATA_SIZE - (ring.producer % DATA_SIZE) > 600:
        ring.put(filler)
        reader.drain_records()
    wrapping = abi.encode(a_record(1, b"y" * 900))
    assert ring.producer % DATA_SIZE + HEADER + len(wrapping) > DATA_SIZE, "it would not wrap"
    ring.put(wrapping)
    assert reader.drain_records().records == [a_record(1, b"y" * 900)]
    assert ring.consumer == ring.producer


def a_record_cut_short(seq: int) -> bytes:
    whole = abi.encode(a_record(seq))
    return whole[: len(whole) // 2]


ring_contents = st.lists(
    st.one_of(
        st.integers(0, 1000).map(lambda seq: abi.encode(a_record(seq))),
        st.integers(0, 1000).map(a_record_cut_short),
        st.binary(max_size=300),
    ),
    max_size=24,
)


@settings(max_examples=200, deadline=None)
@given(ring_contents)
def test_any_bytes_in_the_ring_give_what_drain_and_the_python_decoder_give(
    contents: list[bytes],
) -> None:
    """Valid records, random bytes and records cut short, through both readers of two rings
    holding the same bytes."""
    with fake_ring(DATA_SIZE) as in_c, fake_ring(DATA_SIZE) as reference:
        for blob in contents:
            in_c.put(blob)
            reference.put(blob)
        assert in_c.reader().drain_records() == in_python(reference.reader().drain())
        assert in_c.consumer == reference.consumer == in_c.producer


def test_a_length_no_record_can_have_skips_the_rest_counted_and_the_ring_stays_usable(
    ring: FakeRing,
) -> None:
    built_extension("probe._records")
    reader = ring.reader()
    ring.put(abi.encode(a_record(0)))
    at = 2 * PAGE + ring.producer
    ring.put(abi.encode(a_record(1)))
    struct.pack_into("I", ring.pages, at, DATA_SIZE + 8)  # a length past the ring's size
    ring.put(abi.encode(a_record(2)))
    batch = reader.drain_records()
    assert ([r.seq for r in batch.records], batch.undecodable) == ([0], 1)
    assert ring.consumer == ring.producer
    ring.put(abi.encode(a_record(3)))
    assert [r.seq for r in reader.drain_records().records] == [3]
