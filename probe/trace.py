"""``bytewatch trace``: a live view of HTTP exchanges, like ``tcplife`` for HTTP.

``--format jsonl`` prints one object per exchange (see ``probe.jsonl``); that output is also
the input of replays and backtests. With ``--config``, the config file's ``services:``,
``routes:`` and ``semantics:`` sections name, template and judge exchanges as ``bytewatch run``
does with the same file. The probe's loss counters go to stderr at the end, so a
user always learns whether the view was complete.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import TextIO

from probe import jsonl
from probe.errors import ProbeUnavailable
from probe.model import HttpExchange
from probe.routes import Router
from probe.semantics import Classifier
from probe.services import ServiceMap
from probe.source import LiveProbeSource, ProbeFilters, ProbeStats, tune_gc_for_throughput

TABLE_HEADER = (
    f"{'TIME':<15} {'PID':>7} {'COMM':<15} {'DIR':<6} {'METHOD':<7} {'STATUS':>6} "
    f"{'LAT_MS':>9} {'REQ_B':>7} {'RESP_B':>8} {'BIZ':<20} PATH"
)


def add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pid",
        type=int,
        action="append",
        default=[],
        metavar="PID",
        help="only this process (repeatable)",
    )
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        default=[],
        metavar="PORT",
        help="only servers on this local port or clients calling it (repeatable)",
    )
    parser.add_argument(
        "--comm",
        action="append",
        default=[],
        metavar="NAME",
        help="only processes with this name (repeatable)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="also HTTPS in clear, through uprobes on OpenSSL (costs CPU on every SSL call)",
    )
    parser.add_argument("--format", choices=("table", "jsonl"), default="table")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="bytewatch config file: its services:, routes: and semantics: sections apply",
    )


def table_row(exchange: HttpExchange) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(exchange.ts))
    millis = int((exchange.ts % 1) * 1_000_000)
    verdict = exchange.verdict
    biz = (verdict.error_type or "error") if verdict.business_error else "-"
    status = str(exchange.status) if exchange.complete else f"{exchange.status or '-'}!"
    return (
        f"{clock}.{millis:06d} {exchange.pid:>7} {exchange.comm[:15]:<15} "
        f"{exchange.direction.value:<6} {exchange.method:<7} {status:>6} "
        f"{exchange.latency_s * 1000:>9.3f} {exchange.request_bytes:>7} "
        f"{exchange.response_bytes:>8} {biz[:20]:<20} {exchange.path}"
    )


def summary(stats: ProbeStats) -> str:
    text = (
        f"exchanges {stats.exchanges}, incomplete {stats.incomplete}, "
        f"lost records {stats.lost_records}, truncated messages {stats.truncated_messages}, "
        f"parse errors {stats.parse_errors}, missed syscalls {stats.missed_syscalls}"
    )
    if stats.http2_connections:  # traffic the user may be looking for, and will not see
        text += f", HTTP/2 connections not decoded {stats.http2_connections}"
    if stats.io_uring_operations:
        text += f", io_uring socket operations not decoded {stats.io_uring_operations}"
    return text


def run_trace(
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    *,
    services: ServiceMap | None = None,
    router: Router | None = None,
    judge: Classifier | None = None,
) -> int:
    """``services``, ``router`` and ``judge``: as a config file sets them (default: none)."""
    filters = ProbeFilters(
        pids=frozenset(args.pid), comms=frozenset(args.comm), ports=frozenset(args.port)
    )
    try:
        source = LiveProbeSource(
            filters=filters,
            services=services,
            router=router or Router(),
            judge=judge or Classifier(),
            tls=args.tls,
        )
    except ProbeUnavailable as exc:
        print(f"bytewatch trace: {exc}", file=err)
        return 1
    stop = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    tune_gc_for_throughput()
    tls = f"TLS in clear from {len(source.tls_targets)} OpenSSL copies" if args.tls else "no TLS"
    print(f"bytewatch trace: probe attached ({tls}); Ctrl-C to stop", file=err, flush=True)
    if args.format == "table":
        print(TABLE_HEADER, file=out, flush=True)
    try:
        while not stop and (deadline is None or time.monotonic() < deadline):
            wait = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            for exchange in source.poll(wait):
                line = jsonl.dumps(exchange) if args.format == "jsonl" else table_row(exchange)
                print(line, file=out)
            out.flush()
        print(f"bytewatch trace: {summary(source.stats())}", file=err)
    finally:
        source.close()
    return 0
