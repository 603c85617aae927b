"""Where exchanges come from: the live eBPF probe, or a JSONL replay of ``bytewatch trace``.

Both implement ``ExchangeSource``: ``poll`` returns the exchanges that became available, waiting
at most ``timeout_s``; ``exhausted`` turns true when a replay has nothing more.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

from probe import jsonl, procfs
from probe.abi import TLS_FD, TLS_FD_MASK, TLS_SSL, Counter, Record, RecordBatch, Role
from probe.conn import ConnectionTracker, ObservedExchange, TrackerLimits
from probe.exchanges import ExchangeBuilder, ResponseJudge, RouteTemplater, WallClock
from probe.loader import LoadedProbe, ProbeConfig
from probe.model import HttpExchange
from probe.priority import follow_backlog, reader_priority, stop_following, yield_while_idle
from probe.services import ServiceMap

_log = logging.getLogger(__name__)

# Records are taken in batches at most this often: waking up for every record costs more than
# the record itself at 10,000 requests/s, and 20 ms of records fit the ring buffer many times over.
BATCH_INTERVAL_S: Final = 0.02
# How often overdue message ends are checked against the kernel.
SETTLE_EVERY_NS: Final = 100_000_000
QUIET_NS: Final = 100_000_000  # how long a connection must be quiet before its totals are trusted
HOUSEKEEP_EVERY_NS: Final = 1_000_000_000
TLS_SCAN_EVERY_NS: Final = 30_000_000_000  # new OpenSSL copies (services started or upgraded since)
# Records are decoded, tracked and built into exchanges this many at a time: a whole batch (~500
# records at 10,000 requests/s watched host-wide) taken stage by stage made each stage find the
# objects of the one before out of the CPU's caches.
CHUNK_RECORDS: Final = 64
# A poll returns after this many records even if more are waiting, so that exchanges are handed
# on while an agent that has fallen behind catches up. The tracker's clock for gaps in a
# connection's records, and settling, wait for a poll that reads the rings to their end.
MOST_RECORDS_PER_POLL: Final = 65536


@dataclass(frozen=True, slots=True)
class ProbeStats:
    """The probe's own health, exported as metrics: loss is counted, never silent."""

    kernel_records: int = 0
    lost_records: int = 0  # refused by both ring buffers
    spilled_records: int = 0  # refused by the main ring buffer, sent through the spill ring
    truncated_messages: int = 0  # capture budget ran out (expected for large bodies)
    missed_syscalls: int = 0  # in-flight table full
    http2_connections: int = 0  # connection ends seen to speak HTTP/2, which is not decoded
    io_uring_operations: int = 0  # socket operations submitted through io_uring, not decoded
    records: int = 0
    abi_errors: int = 0
    exchanges: int = 0
    incomplete: int = 0
    parse_errors: int = 0
    lost_starts: int = 0
    cut_heads: int = 0  # heads longer than the bytes copied: paired, headers past the cut unknown
    unmatched_responses: int = 0
    dropped_requests: int = 0
    abandoned_requests: int = 0  # in flight when records of their connection were lost
    resequenced_records: int = 0  # arrived ahead of their turn and waited for it
    late_records: int = 0  # arrived after their turn was given up, and were dropped
    evicted_connections: int = 0
    filtered: int = 0
    connections: int = 0
    reader_raised: int = 0  # times the reading thread fell behind or was starved of CPU


class ExchangeSource(Protocol):
    def poll(self, timeout_s: float) -> list[HttpExchange]: ...

    @property
    def exhausted(self) -> bool: ...

    def stats(self) -> ProbeStats: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ProbeFilters:
    """Which exchanges the user asked for; applied for certain in user space (the kernel's
    filters only save work)."""

    pids: frozenset[int] = frozenset()
    comms: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset()

    def admits(self, observed: ObservedExchange, comm: str) -> bool:
        if (self.pids or self.comms) and not (observed.tgid in self.pids or comm in self.comms):
            return False
        if self.ports:
            port = observed.remote_port if observed.role is Role.CLIENT else observed.local_port
            return port in self.ports
        return True


def read_in_chunks(
    first: RecordBatch,
    consume: Callable[[int], RecordBatch],
    take: Callable[[RecordBatch], None],
    between: Callable[[], object] | None = None,
) -> bool:
    """Hand ``first`` to ``take``, then each chunk ``consume(CHUNK_RECORDS)`` gives, until one
    comes back short: True, the rings were read to their end. False when MOST_RECORDS_PER_POLL
    were taken first, and more may be waiting. ``between`` is called after each chunk that more
    follow."""
    chunk, taken = first, 0
    while True:
        take(chunk)
        taken += len(chunk.records)
        if len(chunk.records) < CHUNK_RECORDS:
            return True
        if taken >= MOST_RECORDS_PER_POLL:
            return False
        if between is not None:
            between()
        chunk = consume(CHUNK_RECORDS)


def tune_gc_for_throughput() -> None:
    """Every exchange allocates a dozen short-lived tuples; with CPython's default threshold
    (700) the young generation is collected every few dozen exchanges, and each collection also
    walks whatever survives. Measured on bench/pipeline.py's from-records path: 22.7 us per
    exchange with the defaults, 19.8 with this (the same as with the collector off). The
    long-lived objects made at start-up are frozen out of every collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def wall_clock_now() -> WallClock:
    return WallClock(offset_s=time.time() - time.monotonic_ns() / 1e9)


class LiveProbeSource:
    """The eBPF probe, attached for as long as this object lives."""

    def __init__(
        self,
        *,
        filters: ProbeFilters = ProbeFilters(),
        services: ServiceMap | None = None,
        router: RouteTemplater | None = None,
        judge: ResponseJudge | None = None,
        limits: TrackerLimits | None = None,
        capture_bytes: int = 3072,
        tls: bool = False,
        tls_binaries: frozenset[str] = frozenset(),
        idle_reader_nice: int | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        """``idle_reader_nice``: run the thread that polls as SCHED_IDLE while it keeps up, and
        at this nice value when it falls behind (probe.priority); None leaves it as it is."""
        self._filters = filters
        self._idle_reader_nice = idle_reader_nice
        self._follows_backlog = False
        self._stuck_reported = False
        self._now = monotonic_ns
        self._tracker = ConnectionTracker(limits or TrackerLimits())
        self._builder = ExchangeBuilder(
            wall_clock_now(),
            services=services,
            router=router,
            judge=judge,
            comm_of=procfs.process_comm,
            names_of=procfs.process_names,
        )
        self._ports: dict[tuple[int, int, int], int] = {}
        self._abi_errors = 0
        self._filtered = 0
        pids = set(filters.pids) | procfs.pids_named(filters.comms)
        self._probe = LoadedProbe(
            ProbeConfig(
                capture_bytes=capture_bytes,
                pids=frozenset(pids),
                comms=filters.comms,
                ports=filters.ports,
                tls=tls,
                tls_binaries=tls_binaries,
            ),
        )
        self._probe.seed_listen_ports(procfs.listening_sockets())
        now = self._now()
        self._last_poll = 0.0
        self._next_settle = now + SETTLE_EVERY_NS
        self._next_housekeeping = now + HOUSEKEEP_EVERY_NS
        self._tls = tls
        self._next_tls_scan = now + TLS_SCAN_EVERY_NS

    @property
    def exhausted(self) -> bool:
        return False

    @property
    def tls_targets(self) -> tuple[str, ...]:
        """The OpenSSL libraries and executables whose plaintext the probe sees."""
        return self._probe.tls_targets

    def poll(self, timeout_s: float) -> list[HttpExchange]:
        if self._idle_reader_nice is not None:
            self._follow_backlog(self._idle_reader_nice)
        since_last = time.monotonic() - self._last_poll
        if since_last < BATCH_INTERVAL_S:
            time.sleep(min(timeout_s, BATCH_INTERVAL_S - since_last))
            batch = self._probe.consume(CHUNK_RECORDS)
        else:
            batch = self._probe.poll(timeout_s, CHUNK_RECORDS)
        self._last_poll = time.monotonic()
        out: list[HttpExchange] = []
        # A SCHED_IDLE reader gives the CPU back between chunks (~0.3 ms of work each): run
        # through a whole batch (~4 ms at 10,000 requests/s host-wide) it added about 2 ms to
        # the p99 of the services it watched, though they preempt it (bench.agent_against).
        # Not once raised: yielding while behind lost records at saturation.
        between = yield_while_idle if self._follows_backlog else None
        caught_up = read_in_chunks(
            batch, self._probe.consume, lambda c: self._take(c, out), between
        )
        observed: list[ObservedExchange] = []
        if caught_up:
            # A gap's clock and the quiet test before settling both count on every record the
            # kernel wrote before this poll having been read.
            observed += self._tracker.end_batch()
        else:
            self._last_poll = 0.0  # more are waiting: the next poll takes them at once
        now = self._now()
        if caught_up and now >= self._next_settle:
            self._next_settle = now + SETTLE_EVERY_NS
            for (tgid, fd), conn_id in self._tracker.stalled(now, QUIET_NS):
                totals = self._probe.conn_totals(tgid, fd)
                if totals is not None and totals.conn_id == conn_id:
                    observed += self._tracker.settle(tgid, fd, totals, now)
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEP_EVERY_NS
            observed += self._tracker.expire(now)
            if self._filters.comms:
                named = procfs.pids_named(self._filters.comms)
                self._probe.set_pids(set(self._filters.pids) | named)
            if len(self._ports) > 65536:
                self._ports.clear()
        if self._tls and now >= self._next_tls_scan:
            self._next_tls_scan = now + TLS_SCAN_EVERY_NS
            for target in self._probe.attach_new_tls_targets():
                _log.info("TLS plaintext now also watched in %s", target)
        self._build_into(observed, out)
        return out

    def _take(self, chunk: RecordBatch, out: list[HttpExchange]) -> None:
        """One chunk of records tracked, and the exchanges they complete built into ``out``."""
        self._abi_errors += chunk.undecodable
        observed: list[ObservedExchange] = []
        for record in chunk.records:
            if record.local_port == 0 and record.role is Role.SERVER:
                record = self._with_local_port(record)  # noqa: PLW2901
            self._tracker.feed_into(record, observed)
        self._build_into(observed, out)

    def _follow_backlog(self, nice: int) -> None:
        """On the first poll, in the thread that polls: the threads the agent started before
        (API, scheduler, outbox) keep their own priority."""
        self._idle_reader_nice = None
        ring = self._probe.main_ring
        if ring is None:
            _log.warning("the reading thread stays at nice %d: the ring is read through BCC", nice)
            return
        self._follows_backlog = follow_backlog(*ring, threading.get_native_id(), nice)

    def _with_local_port(self, record: Record) -> Record:
        key = (record.tgid, record.fd, record.conn_id)
        port = self._ports.get(key)
        if port is None:
            fd = record.fd
            if fd & TLS_FD:  # a TLS stream: its socket's port, when the socket is known
                fd = -1 if fd & TLS_SSL else fd & TLS_FD_MASK
            port = procfs.socket_local_port(record.tgid, fd) if fd >= 0 else 0
            self._ports[key] = port
        return record._replace(local_port=port) if port else record

    def _build_into(self, observed: list[ObservedExchange], out: list[HttpExchange]) -> None:
        for item in observed:
            process = self._builder.process(item.tgid, item.thread_comm, item.end_ns)
            if not self._filters.admits(item, process.comm):
                self._filtered += 1
                continue
            out.append(self._builder.build(item, process))

    def stats(self) -> ProbeStats:
        kernel = self._probe.counters()
        t = self._tracker.stats
        reader = reader_priority() if self._follows_backlog else None
        if reader is not None and reader.stuck and not self._stuck_reported:
            self._stuck_reported = True
            _log.warning(
                "the reading thread's priority no longer follows its backlog: %s",
                os.strerror(reader.stuck),
            )
        return ProbeStats(
            kernel_records=kernel.get(Counter.RECORDS, 0),
            lost_records=kernel.get(Counter.LOST, 0),
            spilled_records=kernel.get(Counter.SPILLED, 0),
            truncated_messages=kernel.get(Counter.TRUNCATED, 0),
            missed_syscalls=kernel.get(Counter.ARGS_FULL, 0),
            http2_connections=kernel.get(Counter.HTTP2, 0),
            io_uring_operations=kernel.get(Counter.IO_URING, 0),
            records=t.records,
            abi_errors=self._abi_errors,
            exchanges=t.exchanges,
            incomplete=t.incomplete,
            parse_errors=t.parser.parse_errors,
            lost_starts=t.parser.lost_starts,
            cut_heads=t.parser.cut_heads,
            unmatched_responses=t.unmatched_responses,
            dropped_requests=t.dropped_requests,
            abandoned_requests=t.abandoned_requests,
            resequenced_records=t.resequenced_records,
            late_records=t.late_records,
            evicted_connections=t.evicted_connections,
            filtered=self._filtered,
            connections=len(self._tracker),
            reader_raised=reader.raised if reader is not None else 0,
        )

    def close(self) -> None:
        if self._follows_backlog:
            stop_following()
        self._probe.close()


class ReplaySource:
    """Exchanges read back from a ``bytewatch trace --format jsonl`` file, as fast as asked."""

    def __init__(self, stream: IO[str], name: str, *, batch: int = 10_000) -> None:
        self._stream = stream
        self._exchanges: Iterator[HttpExchange] = jsonl.read(stream, name)
        self._batch = batch
        self._done = False
        self._count = 0

    @classmethod
    def open(cls, path: Path) -> ReplaySource:
        return cls(path.open(encoding="utf-8"), str(path))

    @property
    def exhausted(self) -> bool:
        return self._done

    def poll(self, timeout_s: float) -> list[HttpExchange]:
        out: list[HttpExchange] = []
        for exchange in self._exchanges:
            out.append(exchange)
            if len(out) >= self._batch:
                break
        else:
            self._done = True
        self._count += len(out)
        return out

    def stats(self) -> ProbeStats:
        return ProbeStats(exchanges=self._count)

    def close(self) -> None:
        self._exchanges = iter(())
        self._stream.close()
