"""What watching syscalls costs before the probe does any work: empty programs, pinned ping-pong.

Run as root:  .venv/bin/python -m bench.tracepoint_floor [--rounds 20] [--requests 10000]
                                                      [--nginx SECONDS]

bench/pingpong.c runs pinned to one CPU, as in bench/kernel_cost.py, while one set of empty eBPF
programs is attached to the syscalls the probe watches. Every set is compiled once and attached
in turn, so that a round of all of them takes seconds and the slow drifts of this shared machine
fall on every variant alike. Variants, in alternating order each round:

- off: nothing attached;
- entry and exit tracepoints: the layout the probe had until it read arguments at the exit;
- exit tracepoints: the probe's layout where the kernel has bpf_task_pt_regs (5.15+);
- raw sys_exit: the portable build, one program at every syscall's exit with a switch on the
  syscall's number.

The difference between the first two is the price of the entry tracepoints alone: each call
fills a perf buffer with all six arguments before the program runs. Prints medians and
quartiles of the CPU added per request (four syscalls), and writes
bench/results/tracepoint_floor.json.

``--nginx SECONDS`` measures instead what bench.probe_overhead's saturation row measures: nginx's
hello under wrk flat out for SECONDS per turn, with each set attached in turn, and prints each
set's median throughput against none. That is the least any probe watching these syscalls costs
there, before it copies a byte; writes bench/results/tracepoint_floor_nginx.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.kernel_cost import build_pingpong, cpu_us_per_request  # noqa: E402
from bench.results import write_results  # noqa: E402
from probe.loader import _import_bcc  # noqa: E402

# The syscalls bpf/http_probe.bpf.c watches, by tracepoint name.
SYSCALLS = (
    "read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg",
    "sendfile64", "accept", "accept4", "connect", "bind", "close",
)  # fmt: skip
# The same by number, for the raw tracepoint (sendfile64's number is __NR_sendfile).
NUMBERS = tuple(f"__NR_{'sendfile' if name == 'sendfile64' else name}" for name in SYSCALLS)


def tracepoint_programs(kinds: tuple[str, ...]) -> str:
    return "\n".join(
        f"TRACEPOINT_PROBE(syscalls, sys_{kind}_{name}) {{ return 0; }}"
        for name in SYSCALLS
        for kind in kinds
    )


def raw_exit_program() -> str:
    cases = " ".join(f"case {number}:" for number in NUMBERS)
    # The register read and the switch are what the portable build does before any work.
    return f"""#include <uapi/linux/ptrace.h>
#include <asm/unistd.h>
BPF_PERCPU_ARRAY(seen, u64, 1);
RAW_TRACEPOINT_PROBE(sys_exit) {{
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    u64 nr = 0;
    bpf_probe_read_kernel(&nr, sizeof(nr), &regs->orig_ax);
    switch (nr) {{
    {cases} {{
        u32 zero = 0;
        u64 *count = seen.lookup(&zero);
        if (count)
            *count += 1;
    }}
    }}
    return 0;
}}"""


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    source: Callable[[], str] | None


VARIANTS = (
    Variant("off", None),
    Variant("entry and exit tracepoints", lambda: tracepoint_programs(("enter", "exit"))),
    Variant("exit tracepoints", lambda: tracepoint_programs(("exit",))),
    Variant("raw sys_exit", raw_exit_program),
)


class Attachable:
    """One variant's programs, compiled once, attached only while it is measured."""

    def __init__(self, bcc: Any, source: str) -> None:
        self._bpf = bcc.BPF(text=source.encode())
        self._tracepoints = list(self._bpf.tracepoint_fds)
        self._raw = list(self._bpf.raw_tracepoint_fds)
        self.detach()

    def attach(self) -> None:
        for tracepoint in self._tracepoints:
            category, event = tracepoint.split(b":")
            name = b"tracepoint__" + category + b"__" + event
            self._bpf.attach_tracepoint(tp=tracepoint, fn_name=name)
        for tracepoint in self._raw:
            self._bpf.attach_raw_tracepoint(tp=tracepoint, fn_name=b"raw_tracepoint__" + tracepoint)

    def detach(self) -> None:
        for tracepoint in list(self._bpf.tracepoint_fds):
            self._bpf.detach_tracepoint(tracepoint)
        for tracepoint in list(self._bpf.raw_tracepoint_fds):
            self._bpf.detach_raw_tracepoint(tracepoint)

    def close(self) -> None:
        self._bpf.cleanup()


def in_turn(bcc: Any, rounds: int, measure: Callable[[], float]) -> dict[str, list[float]]:
    """``measure()`` with each variant's programs attached in turn, ``rounds`` times, in
    alternating order; every variant's measurements."""
    programs = {v.name: Attachable(bcc, v.source()) for v in VARIANTS if v.source is not None}
    runs: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    try:
        for i in range(rounds):
            for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                attached = programs.get(variant.name)
                if attached is not None:
                    attached.attach()
                try:
                    runs[variant.name].append(measure())
                finally:
                    if attached is not None:
                        attached.detach()
    finally:
        for attached in programs.values():
            attached.close()
    return runs


def nginx_floor(bcc: Any, rounds: int, seconds: float) -> int:
    """Each set's median throughput on nginx at saturation, against none attached."""
    from bench.load import saturate
    from tests.probe.servers import start_server

    with tempfile.TemporaryDirectory() as tmp, start_server("nginx", Path(tmp)) as server:
        url = server.url("/hello")
        saturate(url, seconds)  # warm-up
        runs = in_turn(bcc, rounds, lambda: saturate(url, seconds).requests_per_s)
    off = statistics.median(runs["off"])
    rows = [
        {
            "variant": v.name,
            "requests_per_s": statistics.median(runs[v.name]),
            "ratio": statistics.median(runs[v.name]) / off,
            "runs": runs[v.name],
        }
        for v in VARIANTS
    ]
    print(f"{'variant':<28} {'req/s':>8} {'ratio':>6}")
    for row in rows:
        print(f"{row['variant']:<28} {row['requests_per_s']:>8.0f} {row['ratio']:>6.3f}")
    print("req/s: nginx's hello under wrk flat out (median of the rounds); ratio: against off")
    write_results(
        "tracepoint_floor_nginx",
        {"kernel": os.uname().release, "rounds": rounds, "seconds": seconds, "results": rows},
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--nginx", type=float, metavar="SECONDS")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.tracepoint_floor: run as root (it loads eBPF programs)", file=sys.stderr)
        return 1
    bcc = _import_bcc()
    if args.nginx is not None:
        return nginx_floor(bcc, args.rounds, args.nginx)
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_pingpong(Path(tmp))
        runs = in_turn(
            bcc, args.rounds, lambda: cpu_us_per_request(binary, args.requests, tls=False)
        )
    off = statistics.median(runs["off"])
    rows = []
    for variant in VARIANTS:
        quartiles = statistics.quantiles(runs[variant.name], n=4)
        median = statistics.median(runs[variant.name])
        rows.append(
            {
                "variant": variant.name,
                "cpu_us_per_request": median,
                "added_us": median - off,
                "added_q1_us": quartiles[0] - off,
                "added_q3_us": quartiles[2] - off,
                "runs_us": runs[variant.name],
            }
        )
    print(f"{'variant':<28} {'us/req':>7} {'added':>6} {'q1':>6} {'q3':>6}")
    for row in rows:
        print(
            f"{row['variant']:<28} {row['cpu_us_per_request']:>7.2f} {row['added_us']:>6.2f} "
            f"{row['added_q1_us']:>6.2f} {row['added_q3_us']:>6.2f}"
        )
    print("us/req: client + server CPU per request of four syscalls (median of the rounds);")
    print("added, q1, q3: the median and quartiles less the median with nothing attached")
    write_results(
        "tracepoint_floor",
        {
            "kernel": os.uname().release,
            "rounds": args.rounds,
            "requests": args.requests,
            "results": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
