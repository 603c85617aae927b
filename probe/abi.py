"""Decode the records that ``bpf/http_probe.bpf.c`` writes to the ring buffer.

Decoding uses one precompiled ``struct`` format, several times faster per record than going
through the ctypes mirrors of ``probe.kernel_structs``, which must agree with it (checked there).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from enum import IntEnum, IntFlag
from types import ModuleType
from typing import Final, NamedTuple

from probe.errors import ProbeAbiMismatch

DATA_MAX: Final = 4096
STASH_MAX: Final = 1024
COMM_LEN: Final = 16
# A TLS stream's fd: its socket's with TLS_FD set, or TLS_FD | TLS_SSL when the socket is unknown.
TLS_FD: Final = 0x40000000
TLS_SSL: Final = 0x20000000
TLS_FD_MASK: Final = 0x1FFFFFFF


class RecordKind(IntEnum):
    DATA = 1
    CLOSE = 2
    PAIR = 3  # a request and its response's start in one record (decoded into two DATA)


class StreamDirection(IntEnum):
    INGRESS = 0  # read by the process
    EGRESS = 1  # written by the process


class Role(IntEnum):
    UNKNOWN = 0
    SERVER = 1
    CLIENT = 2


class RecordFlag(IntFlag):
    NONE = 0
    MSG_START = 1
    CUT = 2


class Counter(IntEnum):
    RECORDS = 0
    LOST = 1
    TRUNCATED = 2
    CONNS = 3
    ARGS_FULL = 4
    SPILLED = 5
    HTTP2 = 6  # connection ends that began with HTTP/2's preface, which is not decoded
    IO_URING = 7  # socket operations submitted through io_uring, which is not decoded


COUNTER_COUNT: Final = len(Counter)


HEADER_FORMAT: Final = "<BBBBIIiQQQQQQIIHHI16sQQQII"
_HEADER = struct.Struct(HEADER_FORMAT)
HEADER_SIZE: Final = _HEADER.size


class Record(NamedTuple):
    """One ring-buffer record. Byte totals include this record's own syscall."""

    kind: RecordKind
    direction: StreamDirection
    role: Role
    flags: int  # RecordFlag bits, kept as an int: building an IntFlag costs more than the rest
    tgid: int
    tid: int
    fd: int
    conn_id: int
    ts_ns: int
    in_bytes: int
    in_last_ns: int
    out_bytes: int
    out_last_ns: int
    length: int
    local_port: int
    remote_port: int
    seq: int  # per connection; a gap means records were lost
    thread_comm: str  # in a connection's first record only, "" in the rest
    data: bytes

    @property
    def stream_offset(self) -> int:
        """Where this syscall's first byte sits in its direction's byte stream."""
        total = self.in_bytes if self.direction is StreamDirection.INGRESS else self.out_bytes
        return total - self.length


_new = tuple.__new__
_MSG_START = int(RecordFlag.MSG_START)  # a plain int: IntFlag arithmetic costs a call
_KINDS = {k.value: k for k in RecordKind}
_DIRECTIONS = {d.value: d for d in StreamDirection}
_ROLES = {r.value: r for r in Role}
# Reading an enum member off its class costs ~40 ns on Python 3.11 against ~8 for a global, and
# decode_records reads five per PAIR record.
_DATA = RecordKind.DATA
_PAIR = RecordKind.PAIR
_INGRESS = StreamDirection.INGRESS
_EGRESS = StreamDirection.EGRESS


def decode_records_in_python(raw: bytes) -> tuple[Record, ...]:
    """The records in one ring-buffer record: one, or two for a PAIR (the request, then the
    response). Raises ``ProbeAbiMismatch`` on anything that is not a record.

    ``decode_records`` is this, in C where the extension was built (probe/_records.c); this
    stays the reference it is tested against."""
    if len(raw) < HEADER_SIZE:
        raise ProbeAbiMismatch(
            f"record of {len(raw)} bytes is shorter than its {HEADER_SIZE}-byte header"
        )
    (
        kind,
        direction,
        role,
        flags,
        tgid,
        tid,
        fd,
        conn_id,
        ts_ns,
        in_bytes,
        in_last_ns,
        out_bytes,
        out_last_ns,
        length,
        captured,
        local_port,
        remote_port,
        seq,
        comm,
        req_ts_ns,
        req_other_bytes,
        req_other_last_ns,
        req_len,
        req_seq,
    ) = _HEADER.unpack_from(raw)
    try:
        record_direction = _DIRECTIONS[direction]
        record_role = _ROLES[role]
        record_kind = _KINDS[kind]
    except KeyError as exc:
        raise ProbeAbiMismatch(f"unknown kind/direction/role {kind}/{direction}/{role}") from exc
    if captured > DATA_MAX or HEADER_SIZE + captured > len(raw) or req_len > captured:
        raise ProbeAbiMismatch(
            f"record claims {captured} payload bytes but carries {len(raw) - HEADER_SIZE}"
        )
    thread = comm.split(b"\0", 1)[0].decode("utf-8", "replace")
    end = HEADER_SIZE + captured
    # tuple.__new__ skips the NamedTuple's keyword-parsing __new__: this runs per record. The
    # fields are named out in full on purpose: slicing them out of the unpacked tuple instead
    # measured 0.35 us slower per record.
    request: Record | None = None
    main_kind, start = record_kind, HEADER_SIZE
    if record_kind is _PAIR:
        # The request's own direction has not moved since it passed; the other direction's
        # totals were as the kernel kept them (see bpf/http_event.h).
        main_kind, start = _DATA, HEADER_SIZE + req_len
        # Four names rather than a starred tuple: a star builds a list and then the tuple.
        if record_direction is _EGRESS:
            req_direction = _INGRESS
            req_in, req_in_last, req_out, req_out_last = (
                in_bytes, in_last_ns, req_other_bytes, req_other_last_ns,
            )  # fmt: skip
        else:
            req_direction = _EGRESS
            req_in, req_in_last, req_out, req_out_last = (
                req_other_bytes, req_other_last_ns, out_bytes, out_last_ns,
            )  # fmt: skip
        request = _new(
            Record,
            (
                _DATA,
                req_direction,
                record_role,
                _MSG_START,
                tgid,
                tid,
                fd,
                conn_id,
                req_ts_ns,
                req_in,
                req_in_last,
                req_out,
                req_out_last,
                req_len,
                local_port,
                remote_port,
                req_seq,
                thread,
                raw[HEADER_SIZE:start],
            ),
        )
    record = _new(
        Record,
        (
            main_kind,
            record_direction,
            record_role,
            flags,
            tgid,
            tid,
            fd,
            conn_id,
            ts_ns,
            in_bytes,
            in_last_ns,
            out_bytes,
            out_last_ns,
            length,
            local_port,
            remote_port,
            seq,
            thread,
            raw[start:end],
        ),
    )
    return (record,) if request is None else (request, record)


def _by_value(members: type[IntEnum]) -> tuple[IntEnum | None, ...]:
    """An enum's members indexed by their values, None where no member has one."""
    by_value: list[IntEnum | None] = [None] * (max(members) + 1)
    for m in members:
        by_value[m] = m
    return tuple(by_value)


def _load_extension() -> ModuleType | None:
    """probe/_records.c, configured, where the extension was built."""
    try:
        from probe import _records
    except ImportError:  # BYTEWATCH_PURE_PYTHON=1, or run from a source tree never built
        return None
    if (_records.HEADER_SIZE, _records.DATA_MAX) != (HEADER_SIZE, DATA_MAX):
        raise RuntimeError(
            f"probe/_records.c was built against another bpf/http_event.h (header "
            f"{_records.HEADER_SIZE} bytes, here {HEADER_SIZE}): rebuild the extensions"
        )
    _records.configure(
        Record, _by_value(RecordKind), _by_value(StreamDirection), _by_value(Role), ProbeAbiMismatch
    )
    return _records


_EXTENSION: Final = _load_extension()
decode_records: Final[Callable[[bytes], tuple[Record, ...]]] = (
    _EXTENSION.decode_records if _EXTENSION is not None else decode_records_in_python
)
# (ring data map, consumer page map, data size - 1, at most this many records or 0 for all)
# -> (records, undecodable): a memory-mapped ring buffer drained and decoded in one pass
# (probe.ringbuf.MappedRingBuffer.drain_records).
drain_decoded: Final[
    Callable[[mmap.mmap, mmap.mmap, int, int], tuple[list[Record], int]] | None
] = _EXTENSION.drain if _EXTENSION is not None else None


class RecordBatch(NamedTuple):
    """What one read of the ring buffers brought: its records in order (a PAIR as two), and how
    many ring-buffer records could not be decoded (counted and skipped)."""

    records: list[Record]
    undecodable: int


def decode_batch(raw: list[bytes]) -> RecordBatch:
    """``decode_records`` over a batch of ring-buffer records, skipping those that are not."""
    records: list[Record] = []
    undecodable = 0
    for blob in raw:
        try:
            records += decode_records(blob)
        except ProbeAbiMismatch:
            undecodable += 1
    return RecordBatch(records, undecodable)


def decode(raw: bytes) -> Record:
    """The one record in ``raw`` (tests and tools; the probe uses ``decode_records``)."""
    records = decode_records(raw)
    if len(records) != 1:
        raise ProbeAbiMismatch("a PAIR record holds two records: use decode_records")
    return records[0]


def encode(record: Record, request: Record | None = None) -> bytes:
    """The inverse of ``decode_records``: one record, or a PAIR when ``request`` is the stashed
    request that ``record`` (a response start) answers. Builds fixtures for tests and benches."""
    kind = record.kind
    pair: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    data = record.data
    if request is not None:
        kind = RecordKind.PAIR
        other = (
            (request.out_bytes, request.out_last_ns)
            if request.direction is StreamDirection.INGRESS
            else (request.in_bytes, request.in_last_ns)
        )
        pair = (request.ts_ns, *other, len(request.data), request.seq)
        data = request.data + record.data
    header = _HEADER.pack(
        kind,
        record.direction,
        record.role,
        record.flags,
        record.tgid,
        record.tid,
        record.fd,
        record.conn_id,
        record.ts_ns,
        record.in_bytes,
        record.in_last_ns,
        record.out_bytes,
        record.out_last_ns,
        record.length,
        len(data),
        record.local_port,
        record.remote_port,
        record.seq,
        record.thread_comm.encode()[:COMM_LEN],
        *pair,
    )
    return header + data
