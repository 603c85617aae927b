"""Per-connection state: records in, request/response pairs out.

A connection is keyed by (tgid, fd) and told apart from a later one on the same fd by the
kernel's ``conn_id``. Each keeps one ``StreamParser`` per direction and a queue of requests
waiting for their responses, which handles keep-alive and pipelining alike. Which direction
carries requests follows from the connection's role: a server reads requests, a client writes
them.

Memory is bounded: at most ``max_connections`` connections (least recently active evicted
first), at most ``max_pending_requests`` per connection, and idle connections expire.

Records of a connection are numbered by the kernel from 0. They normally arrive in order, but
one the main ring refused comes through the spill ring, and so may arrive before or after its
neighbours: a record that arrives ahead of a gap is held until the gap fills. A gap still open
after ``end_batch`` has been called twice since it opened (the spill ring is read in every
batch) was a record really lost; the held records then go on without it. A record that comes
after its turn was given up, or that repeats a number, is dropped and counted: what was in
flight on its connection is abandoned rather than paired on a guess. A connection whose fd is
reused while it waits for a record keeps waiting, apart, until ``end_batch`` settles it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from probe.abi import Record, RecordFlag, RecordKind, Role, StreamDirection
from probe.http import DEFAULT_BODY_LIMIT, HttpMessage, MessageHead, ParserStats, StreamParser
from probe.model import build

ConnKey = tuple[int, int]  # (tgid, fd)
# Inside the tracker a connection's (tgid, fd) is one int: a tuple key is hashed afresh and
# compared element by element on every lookup, twice per exchange.
_Slot = int


def _slot(tgid: int, fd: int) -> _Slot:
    return (tgid << 32) | (fd & 0xFFFFFFFF)


_MSG_START: Final = int(RecordFlag.MSG_START)
# Module constants for the enum members the per-record path compares with: reading a member off
# its class costs ~40 ns on Python 3.11. Final, because compiled a Final is a C static and any
# other module-level name a dict lookup on every use.
_CLOSE: Final = RecordKind.CLOSE
_INGRESS: Final = StreamDirection.INGRESS
_SEQ_MOD: Final = 1 << 32  # the kernel's sequence numbers are 32-bit
# Ended connections whose late records are recognised (40 ms' worth).
_ENDED_REMEMBERED: Final = 8192


@dataclass(frozen=True, slots=True)
class ConnTotals:
    """The kernel's byte accounting for one connection (see ``bpf/http_event.h``)."""

    conn_id: int
    in_bytes: int
    in_last_ns: int
    out_bytes: int
    out_last_ns: int
    out_tail: bytes = b""


class ObservedExchange(NamedTuple):
    """A request paired with its response (or with the end of its connection)."""

    tgid: int
    thread_comm: str
    role: Role
    local_port: int
    remote_port: int
    request: HttpMessage
    response: HttpMessage | None
    end_ns: int

    @property
    def complete(self) -> bool:
        return self.response is not None and self.response.complete

    @property
    def latency_ns(self) -> int:
        return max(0, self.end_ns - self.request.start_ns)


_OBSERVED_EXCHANGE: Final = ObservedExchange  # built per exchange: Final, as the constants above


@dataclass(frozen=True, slots=True)
class TrackerLimits:
    max_connections: int = 65536
    max_pending_requests: int = 256
    idle_timeout_ns: int = 600 * 1_000_000_000
    max_held_records: int = 256  # per connection, waiting for a gap in the sequence to fill
    body_limit: int = DEFAULT_BODY_LIMIT
    # A response whose head ran past the capture budget, its framing unknown, is over once its
    # connection has been silent both ways this long: without this, on an idle keep-alive
    # connection it waited for the next request or the close. Long enough that a server which
    # pauses between its head and its body (a stream) rarely has its answer ended early.
    cut_head_quiet_ns: int = 1_000_000_000


@dataclass(slots=True)
class TrackerStats:
    """Counters exported as the probe's own metrics."""

    records: int = 0
    exchanges: int = 0
    incomplete: int = 0
    unmatched_responses: int = 0
    dropped_requests: int = 0
    lost_records: int = 0  # gaps in a connection's record sequence
    resequenced_records: int = 0  # arrived ahead of their turn and were applied in it
    late_records: int = 0  # arrived after their turn was given up (or repeated a number)
    abandoned_requests: int = 0  # requests whose outcome was lost with those records
    evicted_connections: int = 0
    expired_connections: int = 0
    parser: ParserStats = field(default_factory=ParserStats)


class _Conn:
    __slots__ = (
        "answered_early",
        "conn_id",
        "ended",
        "held",
        "held_since",
        "ident",
        "key",
        "last_ns",
        "local_port",
        "next_seq",
        "pending",
        "remote_port",
        "request_direction",
        "requests",
        "responses",
        "role",
        "started",
        "tgid",
        "thread_comm",
        "upgraded",
    )

    def __init__(self, record: Record, stats: ParserStats, body_limit: int) -> None:
        self.tgid = record.tgid
        self.key: _Slot = _slot(record.tgid, record.fd)
        self.conn_id = record.conn_id
        self.ident = (record.tgid, record.fd, record.conn_id)
        self.role = record.role if record.role is not Role.UNKNOWN else _guess_role(record)
        self.request_direction = (
            StreamDirection.EGRESS if self.role is Role.CLIENT else StreamDirection.INGRESS
        )
        self.local_port = record.local_port
        self.remote_port = record.remote_port
        self.thread_comm = record.thread_comm
        self.last_ns = record.ts_ns
        # The kernel numbers a connection's records from 0: one that opens with a later number
        # waits for those before it, which may still be on their way (see end_batch).
        self.next_seq = 0
        self.started = False  # a record has been applied
        self.ended = False
        self.held: list[Record] | None = None  # arrived ahead of a gap in the sequence
        self.held_since = 0  # the batch in which the current gap opened
        # Requests waiting for their responses, oldest first. A list: it holds one, or a few when
        # pipelined, and compiled list operations are inline where a deque's are method calls.
        self.pending: list[HttpMessage] = []
        self.answered_early = False
        self.upgraded = False
        self.requests = StreamParser(stats, body_limit=body_limit)
        self.responses = StreamParser(stats, body_limit=body_limit, response_to=self._answering)

    def _answering(self) -> str | None:
        if self.pending:
            return self.pending[0].head.method
        head = self.requests.current_head
        return head.method if head is not None else None

    def totals(
        self, in_bytes: int, in_last: int, out_bytes: int, out_last: int
    ) -> tuple[int, int, int, int]:
        """(request bytes, request last ns, response bytes, response last ns) for this role."""
        if self.role is Role.CLIENT:
            return out_bytes, out_last, in_bytes, in_last
        return in_bytes, in_last, out_bytes, out_last


def _other_side_totals(record: Record) -> tuple[int, int]:
    """(bytes, last ns) of the direction opposite to the record's: everything the other side
    sent before this record has been counted."""
    if record.direction is _INGRESS:
        return record.out_bytes, record.out_last_ns
    return record.in_bytes, record.in_last_ns


def _interim(data: bytes) -> bool:
    """Whether a response that starts with ``data`` is an interim 1xx ("HTTP/1.1 100 Continue");
    101 Switching Protocols is final."""
    return data[9:10] == b"1" and data[9:12] != b"101"


def _ahead(seq: int, expected: int) -> int:
    """How many numbers ``seq`` is past ``expected`` (negative: behind), with 32-bit wrap."""
    distance = (seq - expected) % _SEQ_MOD
    return distance if distance < _SEQ_MOD // 2 else distance - _SEQ_MOD


def _first_in_circle(seqs: list[int]) -> int:
    """The earliest of some sorted sequence numbers that may have wrapped around: the one after
    the widest step between neighbours, the step from the last back to the first included."""
    widest, first = -1, seqs[0]
    for i, seq in enumerate(seqs):
        following = seqs[(i + 1) % len(seqs)]
        step = (following - seq) % _SEQ_MOD
        if step > widest:
            widest, first = step, following
    return first


def _guess_role(record: Record) -> Role:
    starts_request = not record.data.startswith(b"HTTP/")
    reads = record.direction is StreamDirection.INGRESS
    return Role.SERVER if starts_request == reads else Role.CLIENT


class ConnectionTracker:
    """Feed it records in ring-buffer order; it returns exchanges as they complete."""

    def __init__(self, limits: TrackerLimits = TrackerLimits()) -> None:
        self.limits = limits
        self.stats = TrackerStats()
        self._conns: OrderedDict[_Slot, _Conn] = OrderedDict()  # least recently active first
        self._newest: _Slot = -1  # the key at the end of _conns, which needs no move there
        self._holding: dict[tuple[int, int, int], _Conn] = {}
        # Connections whose fd now holds a newer one, still waiting for a record (by ident).
        self._superseded: dict[tuple[int, int, int], _Conn] = {}
        # (tgid, fd) -> conn_id of connections ended lately, so that their late records are
        # known for what they are; bounded, oldest forgotten first.
        self._ended: OrderedDict[_Slot, int] = OrderedDict()
        self._batch = 0

    def __len__(self) -> int:
        return len(self._conns)

    def feed(self, record: Record) -> list[ObservedExchange]:
        """The exchanges ``record`` completes."""
        out: list[ObservedExchange] = []
        self.feed_into(record, out)
        return out

    def feed_into(self, record: Record, out: list[ObservedExchange]) -> None:
        """``feed``, appending to ``out``: the agent's loop takes a batch's records into one list
        instead of making and joining a list per record."""
        self.stats.records += 1
        key = _slot(record.tgid, record.fd)
        conn = self._conns.get(key)
        if conn is None or conn.conn_id != record.conn_id:
            conn = self._connection_for(key, conn, record, out)
            if conn is None:
                return
        elif key != self._newest:  # a PAIR's two records come one after the other
            self._conns.move_to_end(key)
            self._newest = key
        seq = record.seq
        if seq != conn.next_seq:
            if not conn.started or _ahead(seq, conn.next_seq) > 0:
                self._hold(conn, record, out)
            else:
                self._late(conn)
            return
        self._apply(conn, record, out)
        if conn.held is not None:
            self._release_held(conn, out)
        if self._superseded and conn.held is None and conn.ident in self._superseded:
            self._settle_superseded(conn, out)

    def end_batch(self) -> list[ObservedExchange]:
        """Call after each read of the ring buffers. A gap open since the batch before last was
        a record really lost: the records held behind it go on without it."""
        self._batch += 1
        out: list[ObservedExchange] = []
        if self._holding:
            for conn in list(self._holding.values()):
                if self._batch - conn.held_since >= 2:
                    self._give_up_gap(conn, out)
        return out

    def _connection_for(
        self, key: _Slot, current: _Conn | None, record: Record, out: list[ObservedExchange]
    ) -> _Conn | None:
        """The connection a record belongs to when it is not the one tracked on its fd: a new
        one, one superseded while it waits for a record, or none (the record is late)."""
        conn_id = record.conn_id
        if self._superseded:
            superseded = self._superseded.get((record.tgid, record.fd, conn_id))
            if superseded is not None:
                return superseded
        # Ids are the kernel's clock when tracking began: an older one is a connection that is
        # over, whose record came late.
        if conn_id < (current.conn_id if current is not None else self._ended.get(key, -1) + 1):
            self.stats.late_records += 1
            return None
        if current is not None:
            # The fd was closed without us seeing it and now holds a new connection.
            self._conns.pop(key)
            if current.held is not None:
                self._superseded[current.ident] = current  # still waiting for a record
            else:
                self._end(current, None, current.last_ns, out)
        if record.kind is _CLOSE:
            return None
        return self._open(key, record, out)

    def _apply(self, conn: _Conn, record: Record, out: list[ObservedExchange]) -> None:
        """One record in its turn."""
        conn.last_ns = ts_ns = record.ts_ns
        conn.next_seq = (record.seq + 1) % _SEQ_MOD
        conn.started = True
        if record.thread_comm:  # the kernel names only a connection's first record
            conn.thread_comm = record.thread_comm
        if record.kind is _CLOSE:
            if self._conns.get(conn.key) is conn:
                self._conns.pop(conn.key)
            self._end(conn, record, ts_ns, out)
            return
        if conn.upgraded:
            return

        # Fields are read once into locals (this runs twice per exchange), stream_offset without
        # its property call, and the other side's totals only when a message there waits for them.
        direction = record.direction
        length = record.length
        offset = (record.in_bytes if direction is _INGRESS else record.out_bytes) - length
        start = (record.flags & _MSG_START) != 0
        if direction is conn.request_direction:
            responses = conn.responses
            if responses.in_message:
                resp_total, resp_last = _other_side_totals(record)
                self._responses(conn, responses.settle(resp_total, resp_last), out)
                if start:
                    self._responses(conn, responses.settle_lost(resp_total, resp_last), out)
            done = conn.requests.feed(offset, record.data, length, ts_ns, start)
            if done:
                self._requests(conn, done)
        else:
            requests = conn.requests
            if requests.in_message:
                req_total, req_last = _other_side_totals(record)
                self._requests(conn, requests.settle(req_total, req_last))
                if start and not _interim(record.data):
                    # A final answer begins: a request whose framing was lost (its head ran
                    # past the capture budget, say) is over. Not at a 100 Continue, which
                    # comes between an upload's head and its body.
                    self._requests(conn, requests.settle_lost(req_total, req_last))
            done = conn.responses.feed(offset, record.data, length, ts_ns, start)
            if done:
                self._responses(conn, done, out)

    def settle(self, tgid: int, fd: int, totals: ConnTotals, now_ns: int) -> list[ObservedExchange]:
        """Apply the kernel's current totals, read at ``now_ns``, for a connection whose message
        end is overdue."""
        out: list[ObservedExchange] = []
        conn = self._conns.get(_slot(tgid, fd))
        if conn is None or conn.conn_id != totals.conn_id:
            return out
        req_total, req_last, resp_total, resp_last = conn.totals(
            totals.in_bytes, totals.in_last_ns, totals.out_bytes, totals.out_last_ns
        )
        self._requests(conn, conn.requests.settle(req_total, req_last))
        responses = conn.responses
        done = responses.settle(resp_total, resp_last)
        if conn.role is Role.SERVER and totals.out_tail:
            done += responses.settle_chunked_tail(resp_total, resp_last, totals.out_tail)
        if responses.head_cut:
            silent_ns = now_ns - max(totals.in_last_ns, totals.out_last_ns)
            if silent_ns >= self.limits.cut_head_quiet_ns:
                done += responses.settle_lost(resp_total, resp_last)
        self._responses(conn, done, out)
        return out

    def stalled(self, now_ns: int, quiet_ns: int) -> list[tuple[ConnKey, int]]:
        """Connections waiting for the end of a message that only byte totals can reveal, and
        quiet for ``quiet_ns`` (so no record about them is still on its way); or waiting on a
        response whose head was cut, and quiet for the limits' ``cut_head_quiet_ns``."""
        cut_quiet_ns = self.limits.cut_head_quiet_ns
        return [
            (conn.ident[:2], conn.conn_id)  # ident is (tgid, fd, conn_id)
            for conn in self._conns.values()
            if now_ns - conn.last_ns >= quiet_ns
            and conn.held is None  # its totals count records not applied yet
            and (
                conn.responses.awaiting_end
                or conn.requests.awaiting_end
                or (conn.responses.head_cut and now_ns - conn.last_ns >= cut_quiet_ns)
            )
        ]

    def expire(self, now_ns: int) -> list[ObservedExchange]:
        """End connections idle for longer than the idle timeout."""
        out: list[ObservedExchange] = []
        deadline = now_ns - self.limits.idle_timeout_ns
        while self._conns:
            key, conn = next(iter(self._conns.items()))
            if conn.last_ns > deadline:
                break
            self._conns.pop(key)
            self.stats.expired_connections += 1
            self._finish_off(conn, out)
        return out

    # ---- internals -----------------------------------------------------------------------------

    def _open(self, key: _Slot, record: Record, out: list[ObservedExchange]) -> _Conn:
        if len(self._conns) >= self.limits.max_connections:
            _, oldest = self._conns.popitem(last=False)
            self.stats.evicted_connections += 1
            self._finish_off(oldest, out)
        conn = _Conn(record, self.stats.parser, self.limits.body_limit)
        self._conns[key] = conn
        self._newest = key
        return conn

    def _finish_off(self, conn: _Conn, out: list[ObservedExchange]) -> None:
        """End a connection from outside (evicted, expired): what it holds is applied first."""
        if conn.held is not None:
            self._give_up_gap(conn, out)
        if not conn.ended:
            self._end(conn, None, conn.last_ns, out)

    def _hold(self, conn: _Conn, record: Record, out: list[ObservedExchange]) -> None:
        conn.last_ns = max(conn.last_ns, record.ts_ns)  # waiting is not idle
        if conn.held is None:
            conn.held = []
            conn.held_since = self._batch
            self._holding[conn.ident] = conn
        conn.held.append(record)
        if len(conn.held) > self.limits.max_held_records:
            self._give_up_gap(conn, out)

    def _in_turn_order(self, conn: _Conn) -> Callable[[Record], int]:
        """Sort key: distance from the next number expected (numbers wrap at 2**32)."""
        expected = conn.next_seq
        return lambda record: (record.seq - expected) % _SEQ_MOD

    def _release_held(self, conn: _Conn, out: list[ObservedExchange]) -> None:
        """Apply the held records that are now in turn."""
        held = conn.held
        assert held is not None
        held.sort(key=self._in_turn_order(conn))
        moved = False
        while held and held[0].seq == conn.next_seq:
            record = held.pop(0)
            if not held:
                self._stop_holding(conn)
            self.stats.resequenced_records += 1
            moved = True
            self._apply(conn, record, out)
            if conn.held is None:  # all applied, or a close ended the connection
                return
        if moved:
            conn.held_since = self._batch  # the gap still open is a new one: it gets its time

    def _give_up_gap(self, conn: _Conn, out: list[ObservedExchange]) -> None:
        """The missing records are not coming: apply what was held, across the gaps."""
        held = conn.held
        assert held is not None
        self._stop_holding(conn)
        if not conn.started:
            # The connection was under way when this tracker began to follow it (the probe
            # attached late, or the tracker had forgotten it): it starts where it was found.
            conn.next_seq = _first_in_circle(sorted(record.seq for record in held))
        held.sort(key=self._in_turn_order(conn))
        for record in held:
            if conn.ended:
                self.stats.late_records += 1
                continue
            if record.seq != conn.next_seq:
                if conn.started and _ahead(record.seq, conn.next_seq) < 0:
                    self._late(conn)  # a repeated number
                    continue
                self._lost(conn, record.seq)
            self._apply(conn, record, out)
        if conn.ident in self._superseded:
            self._settle_superseded(conn, out)

    def _settle_superseded(self, conn: _Conn, out: list[ObservedExchange]) -> None:
        """A superseded connection has nothing left to wait for: it is over."""
        del self._superseded[conn.ident]
        if not conn.ended:
            self._end(conn, None, conn.last_ns, out)

    def _stop_holding(self, conn: _Conn) -> None:
        conn.held = None
        self._holding.pop(conn.ident, None)

    def _late(self, conn: _Conn) -> None:
        """A record after its turn: given up already, or a number two CPUs both took. Applying
        it could pair a response with the wrong request, so the stream is resynchronised."""
        self.stats.late_records += 1
        self._resync(conn)

    def _lost(self, conn: _Conn, seq: int) -> None:
        """Records of this connection never arrived (both ring buffers refused them). What was
        in flight has an unknown outcome: it is counted as lost, never reported as a failure."""
        self.stats.lost_records += max(1, _ahead(seq, conn.next_seq))
        self._resync(conn)

    def _resync(self, conn: _Conn) -> None:
        """Abandon what was in flight and wait for the next message start in each direction."""
        self.stats.abandoned_requests += len(conn.pending)
        conn.pending.clear()
        conn.answered_early = False
        conn.requests.resync()
        conn.responses.resync()

    def _requests(self, conn: _Conn, done: list[HttpMessage]) -> None:
        for request in done:
            if conn.answered_early:
                conn.answered_early = False
                continue
            if len(conn.pending) >= self.limits.max_pending_requests:
                del conn.pending[0]
                self.stats.dropped_requests += 1
            conn.pending.append(request)

    def _responses(self, conn: _Conn, done: list[HttpMessage], out: list[ObservedExchange]) -> None:
        for response in done:
            status = response.head.status
            if 100 <= status < 200 and status != 101:
                continue  # informational: the final response is still to come
            # The usual case first, without a call: a request is waiting for this answer.
            request = conn.pending.pop(0) if conn.pending else self._answered_request(conn)
            if request is None:
                self.stats.unmatched_responses += 1
                continue
            if status == 101 or (request.head.method == "CONNECT" and 200 <= status < 300):
                conn.upgraded = True  # the bytes that follow are not HTTP/1.x any more
            self._emit(conn, request, response, response.end_ns, out)

    def _answered_request(self, conn: _Conn) -> HttpMessage | None:
        if conn.pending:
            return conn.pending.pop(0)
        head: MessageHead | None = conn.requests.current_head
        if head is None or conn.answered_early:
            return None
        # A response before the request finished (an early 413, say): pair it with the request
        # still arriving, and drop that request when it completes.
        conn.answered_early = True
        start = conn.requests.current_start_ns
        return HttpMessage(head, start, start, head.size, b"", False, complete=False)

    def _end(
        self, conn: _Conn, record: Record | None, end_ns: int, out: list[ObservedExchange]
    ) -> None:
        conn.ended = True
        # A superseded connection may end after the one that replaced it: keep the newer id.
        self._ended[conn.key] = max(conn.conn_id, self._ended.get(conn.key, -1))
        self._ended.move_to_end(conn.key)
        if len(self._ended) > _ENDED_REMEMBERED:
            self._ended.popitem(last=False)
        if record is not None:
            req_total, req_last, resp_total, resp_last = conn.totals(
                record.in_bytes, record.in_last_ns, record.out_bytes, record.out_last_ns
            )
        else:
            req_total, req_last = conn.requests.pos, conn.last_ns
            resp_total, resp_last = conn.responses.pos, conn.last_ns
        if not conn.upgraded:
            self._requests(conn, conn.requests.close(req_total, req_last))
            self._responses(conn, conn.responses.close(resp_total, resp_last), out)
        while conn.pending:
            request = conn.pending.pop(0)
            self._emit(conn, request, None, max(end_ns, request.start_ns), out)

    def _emit(
        self,
        conn: _Conn,
        request: HttpMessage,
        response: HttpMessage | None,
        end_ns: int,
        out: list[ObservedExchange],
    ) -> None:
        exchange = build(
            _OBSERVED_EXCHANGE,
            conn.tgid,
            conn.thread_comm,
            conn.role,
            conn.local_port,
            conn.remote_port,
            request,
            response,
            end_ns,
        )
        self.stats.exchanges += 1
        if response is None or not response.complete:  # exchange.complete, without a property
            self.stats.incomplete += 1
        out.append(exchange)
