"""Where the probe's kernel time goes: each eBPF program's run time per request under load.

Run as root:  .venv/bin/python -m bench.kernel_programs [--target nginx] [--seconds 5] [--rounds 3]

The probe is loaded host-wide and its rings drained every 20 ms without parsing (the kernel's
share only), wrk drives the target as fast as it goes, and the kernel's own accounting
(``kernel.bpf_stats_enabled``, switched on for the run and restored after) gives each program's
run time and call count. Unlike a throughput ratio on this noisy two-core machine, these
numbers move only with the programs' work: a change to bpf/http_probe.bpf.c shows up here
first. At saturation a request costs nginx and wrk together ~37 us of CPU, so the issue's 5 %
throughput budget is ~1.5 us of program time per request.

Prints the median over ``--rounds`` of ns per call and per request, and writes
bench/results/kernel_programs.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.kernel_cost import probe_drained  # noqa: E402
from bench.probe_overhead import wrk  # noqa: E402
from bench.results import write_results  # noqa: E402
from probe.loader import ProbeConfig  # noqa: E402
from tests.probe.servers import start_server  # noqa: E402

BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def run_times(fds: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(run_time_ns, run_cnt) of each program, from its fd's /proc/self/fdinfo."""
    out: dict[str, tuple[int, int]] = {}
    for name, fd in fds.items():
        fields = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
            if ":\t" in line
        )
        out[name] = (int(fields.get("run_time_ns", 0)), int(fields.get("run_cnt", 0)))
    return out


def one_round(url: str, seconds: float) -> tuple[int, dict[str, tuple[int, int]]]:
    """Requests wrk made, and each program's (ns, calls) during them."""
    with probe_drained(ProbeConfig(), nice=10, listeners=True) as drained:
        assert drained.probe is not None
        fds = drained.probe.program_fds()
        before = run_times(fds)
        result = wrk(url, seconds, rate_limited=False)
        after = run_times(fds)
    spent = {
        name: (after[name][0] - before[name][0], after[name][1] - before[name][1]) for name in fds
    }
    return result.requests, spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="nginx")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.kernel_programs: run as root (it loads eBPF programs)", file=sys.stderr)
        return 1
    was = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1")
    per_call: dict[str, list[float]] = defaultdict(list)
    per_request: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp, start_server(args.target, Path(tmp)) as server:
            for _ in range(args.rounds):
                requests, spent = one_round(server.url("/hello"), args.seconds)
                for name, (ns, calls) in spent.items():
                    if calls:
                        per_call[name].append(ns / calls)
                        per_request[name].append(ns / requests)
                totals.append(sum(ns for ns, _ in spent.values()) / requests)
    finally:
        BPF_STATS.write_text(was)
    rows = sorted(
        ((statistics.median(per_request[n]), statistics.median(per_call[n]), n) for n in per_call),
        reverse=True,
    )
    print(f"{'program':<44} {'ns/call':>8} {'ns/request':>10}")
    for request_ns, call_ns, name in rows:
        print(f"{name:<44} {call_ns:>8.0f} {request_ns:>10.0f}")
    total = statistics.median(totals)
    print(f"{'all programs':<44} {'':>8} {total:>10.0f}")
    print(f"{args.target}, host-wide, wrk saturating; medians of {args.rounds} rounds")
    write_results(
        "kernel_programs",
        {
            "target": args.target,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "ns_per_request": round(total),
            "programs": {
                name: {"ns_per_call": round(call), "ns_per_request": round(request)}
                for request, call, name in rows
            },
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
