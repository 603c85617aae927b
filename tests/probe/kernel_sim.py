"""A user-space model of what ``bpf/http_probe.bpf.c`` emits for a sequence of syscalls.

It follows the kernel's rules (start-line triage, per-message capture budget, byte totals that
include the current syscall, one close record) so that the pure parts can be tested on exactly
the records the kernel would produce, including gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probe.abi import Record, RecordFlag, RecordKind, Role, StreamDirection
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
    role: Role = Role.UNKNOWN
    tracked: bool = False
    seq: int = 0
    in_bytes: int = 0
    in_last_ns: int = 0
    out_bytes: int = 0
    out_last_ns: int = 0
    budget: dict[StreamDirection, int] = field(default_factory=lambda: {IN: 0, OUT: 0})

    def syscall(self, direction: StreamDirection, data: bytes, ts_ns: int) -> Record | None:
        """The record (if any) for a read or write that moved ``data``."""
        if not data:
            return None
        start = looks_like_start(data[:16])
        if not self.tracked:
            if not start:
                return None
            is_request = not data.startswith(b"HTTP/1.")
            reads = direction is IN
            self.role = Role.SERVER if is_request == reads else Role.CLIENT
            self.tracked = True
        if direction is IN:
            self.in_bytes += len(data)
            self.in_last_ns = ts_ns
        else:
            self.out_bytes += len(data)
            self.out_last_ns = ts_ns
        if start:
            self.budget[direction] = self.capture_bytes
        want = min(len(data), self.budget[direction], 4096)
        if want == 0:
            return None
        self.budget[direction] -= want
        flags = RecordFlag.MSG_START if start else RecordFlag.NONE
        if len(data) > want:
            flags |= RecordFlag.CUT
        return self._record(
            RecordKind.DATA, direction, flags, length=len(data), data=data[:want], ts_ns=ts_ns
        )

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq - 1

    def close(self, ts_ns: int) -> Record | None:
        if not self.tracked:
            return None
        return self._record(RecordKind.CLOSE, IN, RecordFlag.NONE, length=0, data=b"", ts_ns=ts_ns)

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
            seq=self._next_seq(),
            thread_comm=self.comm,
            data=data,
        )


def records_of(
    conn: SimConnection,
    steps: list[tuple[StreamDirection, bytes, int]],
    close_at: int | None = None,
) -> list[Record]:
    """Records for syscalls given as (direction, bytes, ts_ns), optionally closed at the end."""
    out = [r for d, data, ts in steps if (r := conn.syscall(d, data, ts)) is not None]
    if close_at is not None and (r := conn.close(close_at)) is not None:
        out.append(r)
    return out
