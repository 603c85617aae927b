"""The row encoding: lossless, small, and loud about damage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo.codec import (
    CorruptRow,
    decode_counts,
    decode_error_types,
    encode_counts,
    encode_error_types,
    pack_varints,
    unpack_varints,
)
from slo.model import Counts

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@st.composite
def counts(draw: st.DrawFn) -> Counts:
    steps = draw(st.lists(st.integers(0, 10**7), min_size=len(BOUNDS), max_size=len(BOUNDS)))
    le = []
    running = 0
    for step in steps:
        running += step
        le.append(running)
    total = running + draw(st.integers(0, 1000))
    server = draw(st.integers(0, total))
    business = draw(st.integers(0, total - server))
    clean = tuple(min(v, total - server - business) for v in le)
    return Counts(BOUNDS, total, server, business, tuple(le), clean)


@given(counts())
def test_counts_come_back_exactly(original: Counts) -> None:
    assert decode_counts(encode_counts(original), BOUNDS) == original


@given(st.lists(st.integers(0, 2**63)))
def test_varints_come_back_exactly(values: list[int]) -> None:
    assert unpack_varints(pack_varints(values)) == values


def test_a_quiet_endpoint_takes_one_byte_a_value_and_none_for_trailing_empty_buckets() -> None:
    quiet = Counts(BOUNDS, 12, 1, 0, (0, 2, 9, 11, 11, 11, 11, 11), (0, 2, 9, 10, 10, 10, 10, 10))
    # 3 counters, then per histogram its length and its 4 buckets up to the last non-empty one
    assert len(encode_counts(quiet)) == 3 + 2 * (1 + 4)


def test_error_types_come_back_by_id() -> None:
    names = ["card_declined", "insufficient_balance"]
    blob = encode_error_types((("insufficient_balance", 300), ("card_declined", 2)), names.index)
    assert decode_error_types(blob, names.__getitem__) == (
        ("insufficient_balance", 300),
        ("card_declined", 2),
    )


def test_no_error_types_is_no_blob() -> None:
    assert encode_error_types((), lambda name: 0) is None


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"", id="an empty blob"),
        pytest.param(b"\x05\x00", id="a blob that ends early"),
        pytest.param(b"\x05\x00\x00\x40" + b"\x01" * 64 + b"\x00", id="more buckets than bounds"),
        pytest.param(b"\x05\x00\x00\x00\x00\x07", id="bytes after the last field"),
        pytest.param(b"\x05\x80", id="a varint cut in the middle"),
    ],
)
def test_a_damaged_blob_is_reported_not_misread(blob: bytes) -> None:
    with pytest.raises(CorruptRow):
        decode_counts(blob, BOUNDS)
