"""A user-space model of what ``bpf/http_probe.bpf.c`` emits for a sequence of syscalls.

It follows the kernel's rules (start-line triage, per-message capture budget, byte totals that
include the current syscall, small requests stashed until their response starts and sent with
it as one PAIR record, one close record) and produces the encoded ring-buffer records, so that
the pure parts are tested on exactly what the kernel would send, decoding included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probe.abi import (
    DATA_MAX,
    STASH_MAX,
    Record,
    RecordFlag,
    RecordKind,
    Role,
    StreamDirection,
    decode_records,
    encode,
)
from probe.http import looks_like_start

IN = StreamDirection.INGRESS
OUT = StreamDirection.EGRESS


@dataclass
class SimConnection:
    """One connection as the kernel tracks it."""

    tgid: int = 100
    fd: int = 5
    conn_id: int = 1
    capture_bytes: int = 3072
    comm: str = "server"
    local_port: int = 8080
    remote_port: int = 40000
    stash_requests: bool = True
    role: Role = Role.UNKNOWN
    tracked: bool = False
    named: bool = False  # a record has carried the thread's name
    seq: int = 0
    in_bytes: int = 0
    in_last_ns: int = 0
    out_bytes: int = 0
    out_last_ns: int = 0
    stash: Record | None = None
    budget: dict[StreamDirection, int] = field(default_factory=lambda: {IN: 0, OUT: 0})

    def emit(self, direction: StreamDirection, data: bytes, ts_ns: int) -> list[bytes]:
        """The ring-buffer records for a read or write that moved ``data``."""
        if not data:
            return []
        start = 0
        if looks_like_start(data[:16]):
            start = 2 if data.startswith(b"HTTP/1.") else 1
        if not self.tracked:
            if not start:
                return []
            reads = direction is IN
            self.role = Role.SERVER if (start == 1) == reads else Role.CLIENT
            self.tracked = True
        request_direction = OUT if self.role is Role.CLIENT else IN
        answers = self.stash is not None and start == 2 and direction is not request_direction
        out: list[bytes] = []
        if self.stash is not None and not answers:
            out.append(self._encode(self.stash))
            self.stash = None
        if direction is IN:
            self.in_bytes += len(data)
            self.in_last_ns = ts_ns
        else:
            self.out_bytes += len(data)
            self.out_last_ns = ts_ns
        if start:  # renews both: the other direction's next message begins with its next bytes
            self.budget[IN] = self.budget[OUT] = self.capture_bytes
        want = min(len(data), self.budget[direction], DATA_MAX)
        if want == 0:
            return out
        self.budget[direction] -= want
        if (
            self.stash_requests
            and start == 1
            and not answers
            and direction is request_direction
            and want == len(data)
            and len(data) <= STASH_MAX
        ):
            self.stash = self._record(
                RecordKind.DATA,
                direction,
                RecordFlag.MSG_START,
                length=len(data),
                data=data,
                ts_ns=ts_ns,
            )
            return out
        room = DATA_MAX - (len(self.stash.data) if answers and self.stash else 0)
        got = min(want, room)
        flags = RecordFlag.MSG_START if start else RecordFlag.NONE
        if len(data) > got:
            flags |= RecordFlag.CUT
        record = self._record(
            RecordKind.DATA, direction, flags, length=len(data), data=data[:got], ts_ns=ts_ns
        )
        out.append(self._encode(record, request=self.stash if answers else None))
        if answers:
            self.stash = None
        return out

    def syscall(self, direction: StreamDirection, data: bytes, ts_ns: int) -> list[Record]:
        """The decoded records for a read or write (what the tracker is fed)."""
        return [r for blob in self.emit(direction, data, ts_ns) for r in decode_records(blob)]

    def close_blobs(self, ts_ns: int) -> list[bytes]:
        if not self.tracked:
            return []
        out = []
        if self.stash is not None:
            out.append(self._encode(self.stash))
            self.stash = None
        out.append(
            self._encode(
                self._record(RecordKind.CLOSE, IN, RecordFlag.NONE, length=0, data=b"", ts_ns=ts_ns)
            )
        )
        return out

    def close(self, ts_ns: int) -> list[Record]:
        return [r for blob in self.close_blobs(ts_ns) for r in decode_records(blob)]

    def _encode(self, record: Record, request: Record | None = None) -> bytes:
        """As the kernel stamps it: the thread's name in the connection's first record only."""
        if self.named:
            record = record._replace(thread_comm="")
        self.named = True
        return encode(record, request=request)

    def _record(
        self,
        kind: RecordKind,
        direction: StreamDirection,
        flags: RecordFlag,
        *,
        length: int,
        data: bytes,
        ts_ns: int,
    ) -> Record:
        self.seq += 1
        return Record(
            kind=kind,
            direction=direction,
            role=self.role,
            flags=flags,
            tgid=self.tgid,
            tid=self.tgid,
            fd=self.fd,
            conn_id=self.conn_id,
            ts_ns=ts_ns,
            in_bytes=self.in_bytes,
            in_last_ns=self.in_last_ns,
            out_bytes=self.out_bytes,
            out_last_ns=self.out_last_ns,
            length=length,
            local_port=self.local_port,
            remote_port=self.remote_port,
            seq=self.seq - 1,
            thread_comm=self.comm,
            data=data,
        )


def records_of(
    conn: SimConnection,
    steps: list[tuple[StreamDirection, bytes, int]],
    close_at: int | None = None,
) -> list[Record]:
    """Records for syscalls given as (direction, bytes, ts_ns), optionally closed at the end."""
    out = [r for d, data, ts in steps for r in conn.syscall(d, data, ts)]
    if close_at is not None:
        out += conn.close(close_at)
    return out
