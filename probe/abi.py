"""Decode the records that ``bpf/http_probe.bpf.c`` writes to the ring buffer.

The ctypes structures mirror ``bpf/http_event.h`` field for field and exist so that a test can
compare sizes and offsets with the C compiler's. Decoding uses one precompiled ``struct`` format
instead, because it is several times faster per record than going through ctypes.
"""

from __future__ import annotations

import ctypes
import struct
from enum import IntEnum, IntFlag
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


COUNTER_COUNT: Final = len(Counter)


class CEvent(ctypes.Structure):
    """``struct bw_event``."""

    _fields_ = (
        ("kind", ctypes.c_uint8),
        ("direction", ctypes.c_uint8),
        ("role", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("tgid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
        ("conn_id", ctypes.c_uint64),
        ("ts_ns", ctypes.c_uint64),
        ("in_bytes", ctypes.c_uint64),
        ("in_last_ns", ctypes.c_uint64),
        ("out_bytes", ctypes.c_uint64),
        ("out_last_ns", ctypes.c_uint64),
        ("len", ctypes.c_uint32),
        ("captured", ctypes.c_uint32),
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("seq", ctypes.c_uint32),
        ("comm", ctypes.c_char * COMM_LEN),
        ("req_ts_ns", ctypes.c_uint64),
        ("req_other_bytes", ctypes.c_uint64),
        ("req_other_last_ns", ctypes.c_uint64),
        ("req_len", ctypes.c_uint32),
        ("req_seq", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * DATA_MAX),
    )


class CConfig(ctypes.Structure):
    """``struct bw_config``."""

    _fields_ = (
        ("self_tgid", ctypes.c_uint32),
        ("capture_bytes", ctypes.c_uint32),
        ("filter_pids", ctypes.c_uint8),
        ("filter_ports", ctypes.c_uint8),
        ("_pad0", ctypes.c_uint8 * 6),
    )


class CConnKey(ctypes.Structure):
    """``struct bw_conn_key``."""

    _fields_ = (("tgid", ctypes.c_uint32), ("fd", ctypes.c_int32))


class CCommKey(ctypes.Structure):
    """``struct bw_comm_key``."""

    _fields_ = (("comm", ctypes.c_char * COMM_LEN),)


class CConn(ctypes.Structure):
    """``struct bw_conn``."""

    _fields_ = (
        ("conn_id", ctypes.c_uint64),
        ("in_bytes", ctypes.c_uint64),
        ("in_last_ns", ctypes.c_uint64),
        ("out_bytes", ctypes.c_uint64),
        ("out_last_ns", ctypes.c_uint64),
        ("out_tail", ctypes.c_uint64),
        ("in_budget", ctypes.c_uint32),
        ("out_budget", ctypes.c_uint32),
        ("seq", ctypes.c_uint32),
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("role", ctypes.c_uint8),
        ("tracked", ctypes.c_uint8),
        ("ignored", ctypes.c_uint8),
        ("stashed", ctypes.c_uint8),
        ("_pad1", ctypes.c_uint32),
    )


class CStash(ctypes.Structure):
    """``struct bw_stash``."""

    _fields_ = (
        ("ts_ns", ctypes.c_uint64),
        ("other_bytes", ctypes.c_uint64),
        ("other_last_ns", ctypes.c_uint64),
        ("len", ctypes.c_uint32),
        ("seq", ctypes.c_uint32),
        ("comm", ctypes.c_char * COMM_LEN),
        ("data", ctypes.c_uint8 * STASH_MAX),
    )


HEADER_FORMAT: Final = "<BBBBIIiQQQQQQIIHHI16sQQQII"
_HEADER = struct.Struct(HEADER_FORMAT)
HEADER_SIZE: Final = _HEADER.size
assert CEvent.data.offset == HEADER_SIZE, "HEADER_FORMAT and CEvent disagree"


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
    thread_comm: str
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


def decode_records(raw: bytes) -> tuple[Record, ...]:
    """The records in one ring-buffer record: one, or two for a PAIR (the request, then the
    response). Raises ``ProbeAbiMismatch`` on anything that is not a record."""
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
