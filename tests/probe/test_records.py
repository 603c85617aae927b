"""probe/_records.c against its reference, probe.abi.decode_records_in_python.

Whatever the bytes, the extension must answer exactly as Python does: the same records, field
by field and type by type, or the same exception with the same message.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from probe import abi
from probe.abi import Record, RecordKind, Role, StreamDirection
from probe.errors import ProbeAbiMismatch
from probe.model import NOT_INSPECTED, Direction, HttpExchange, build_in_python
from tests.ci import built_extension

Decode = Callable[[bytes], tuple[Record, ...]]
COMM = slice(80, 96)  # the thread name's bytes in the header (bpf/http_event.h)


@pytest.fixture(scope="module")
def decode_in_c() -> Decode:
    decode: Decode = built_extension("probe._records").decode_records
    return decode


def outcome(decode: Decode, raw: bytes) -> object:
    """What ``decode`` makes of ``raw``: each record's fields with their types, or the error."""
    try:
        records = decode(raw)
    except ProbeAbiMismatch as exc:
        return ("rejected", str(exc))
    return tuple(tuple((type(value), value) for value in record) for record in records)


def same_as_python(decode_in_c: Decode, raw: bytes) -> None:
    assert outcome(decode_in_c, raw) == outcome(abi.decode_records_in_python, raw)


def test_the_probe_decodes_with_the_extension(decode_in_c: Decode) -> None:
    assert abi.decode_records is decode_in_c


A_CLOSE = Record(RecordKind.CLOSE, StreamDirection.INGRESS, Role.SERVER, 0, 1, 1, 3, 1, 1,
                 0, 0, 0, 0, 0, 0, 0, 0, "nginx", b"")  # fmt: skip


u8 = st.integers(0, 2**8 - 1)
u16 = st.integers(0, 2**16 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
records = st.builds(
    Record,
    kind=st.sampled_from([RecordKind.DATA, RecordKind.CLOSE]),
    direction=st.sampled_from(StreamDirection),
    role=st.sampled_from(Role),
    flags=u8,
    tgid=u32,
    tid=u32,
    fd=st.integers(-(2**31), 2**31 - 1),
    conn_id=u64,
    ts_ns=u64,
    in_bytes=u64,
    in_last_ns=u64,
    out_bytes=u64,
    out_last_ns=u64,
    length=u32,
    local_port=u16,
    remote_port=u16,
    seq=u32,
    thread_comm=st.text(max_size=15).filter(lambda t: len(t.encode()) <= 15 and "\0" not in t),
    data=st.binary(max_size=600),
)


@settings(max_examples=1500, deadline=None)
@given(records, st.one_of(st.none(), records), st.binary(min_size=16, max_size=16))
@example(
    A_CLOSE._replace(
        kind=RecordKind.DATA, direction=StreamDirection.EGRESS, role=Role.CLIENT, flags=255,
        tgid=2**32 - 1, tid=2**32 - 1, fd=-1, conn_id=2**64 - 1, ts_ns=2**64 - 1,
        in_bytes=2**64 - 1, out_last_ns=2**64 - 1, length=2**32 - 1, local_port=65535,
        seq=2**32 - 1, thread_comm="wrk", data=b"x" * abi.DATA_MAX,
    ),
    None,
    b"\xff\xfe\xc3(\0\0\0\0\0\0\0\0\0\0\0\0",
)  # fmt: skip
def test_valid_records_decode_exactly_as_in_python(
    decode_in_c: Decode, record: Record, request: Record | None, comm: bytes
) -> None:
    if request is not None:
        request = request._replace(kind=RecordKind.DATA, data=request.data[:300])
    raw = abi.encode(record, request)
    same_as_python(decode_in_c, raw)
    # Any 16 bytes as the thread name, invalid UTF-8 and bytes after a NUL included.
    same_as_python(decode_in_c, raw[: COMM.start] + comm + raw[COMM.stop :])


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected_exactly_as_in_python(decode_in_c: Decode, raw: bytes) -> None:
    same_as_python(decode_in_c, raw)


@settings(max_examples=2000, deadline=None)
@given(records, st.integers(0, abi.HEADER_SIZE + 40), u8, st.integers(-5, 5))
@example(A_CLOSE._replace(data=b"abc"), 120, 4, 0)  # a request longer than the whole payload
def test_a_record_with_one_byte_changed_or_cut_decodes_as_in_python(
    decode_in_c: Decode, record: Record, at: int, value: int, cut: int
) -> None:
    """Kind, direction and role out of range, payload lengths that lie, records cut short."""
    raw = bytearray(abi.encode(record))
    if at < len(raw):
        raw[at] = value
    if cut < 0:
        del raw[cut:]
    same_as_python(decode_in_c, bytes(raw))


def test_thread_names_that_share_a_cache_slot_are_each_decoded_right(decode_in_c: Decode) -> None:
    blobs = [abi.encode(A_CLOSE._replace(thread_comm=f"worker-{i}")) for i in range(500)]
    for _ in range(2):  # the second round meets every name already cached or displaced
        for i, blob in enumerate(blobs):
            assert decode_in_c(blob)[0].thread_comm == f"worker-{i}"


def test_a_record_that_is_not_bytes_is_a_type_error(decode_in_c: Decode) -> None:
    with pytest.raises(TypeError, match="bytes"):
        decode_in_c(bytearray(abi.encode(A_CLOSE)))  # type: ignore[arg-type]


def test_configure_refuses_what_is_not_a_type(decode_in_c: Decode) -> None:
    from probe import _records

    with pytest.raises(TypeError):
        _records.configure(Record, (), (), (), "not a type")  # type: ignore[arg-type]
    assert decode_in_c(abi.encode(A_CLOSE)) == (A_CLOSE,), "still configured as before"


def test_build_makes_the_same_named_tuple_as_its_reference() -> None:
    build = built_extension("probe._records").build
    fields = (1.5, 7, "api", "orders", Direction.SERVER, "GET", "/x", "/x", 200, 0.25, 10, 20,
              NOT_INSPECTED, True)  # fmt: skip
    made = build(HttpExchange, *fields)
    assert type(made) is HttpExchange
    assert made == build_in_python(HttpExchange, *fields) == HttpExchange(*fields)
    assert made.route == "/x" and made.verdict is NOT_INSPECTED


def test_build_refuses_what_is_not_a_tuple_type() -> None:
    build = built_extension("probe._records").build
    with pytest.raises(TypeError, match="tuple type"):
        build(dict, 1)
    with pytest.raises(TypeError, match="tuple type"):
        build()
