"""Where the probe's kernel time goes: each eBPF program's run time per request under load.

Run as root:  .venv/bin/python -m bench.kernel_programs [--target nginx] [--seconds 5] [--rounds 3]
                                                          [--against REV] [--pid]

The probe is loaded host-wide and its rings drained every 20 ms without parsing (the kernel's
share only), wrk drives the target as fast as it goes, and the kernel's own accounting
(``kernel.bpf_stats_enabled``, switched on for the run and restored after) gives each program's
run time and call count. Unlike a throughput ratio on this noisy two-core machine, these
numbers move only with the programs' work: a change to bpf/http_probe.bpf.c shows up here
first. At saturation a request costs nginx and wrk together ~37 us of CPU, so the issue's 5 %
throughput budget is ~1.5 us of program time per request.

Prints the median over ``--rounds`` of ns per call and per request, and writes
bench/results/kernel_programs.json. ``--against REV`` loads the kernel side of git revision REV
too, in alternating order each round, and adds the difference per round: the machine's speed
drifts by tens of percent within an hour, so only numbers from the same run compare. ``--pid``
watches the target's processes only, as ``bytewatch run`` with a pid filter does: wrk's own
reads and writes then cost only the check that turns them away.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.kernel_cost import probe_drained  # noqa: E402
from bench.load import saturate  # noqa: E402
from bench.results import write_results  # noqa: E402
from probe.loader import BPF_DIR, ProbeConfig  # noqa: E402
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


def one_round(
    url: str, seconds: float, bpf_dir: Path, config: ProbeConfig | None = None
) -> tuple[int, dict[str, tuple[int, int]]]:
    """Requests wrk made, and each program's (ns, calls) during them."""
    config = config or ProbeConfig()
    with probe_drained(config, nice=10, listeners=True, bpf_dir=bpf_dir) as drained:
        assert drained.probe is not None
        fds = drained.probe.program_fds()
        before = run_times(fds)
        result = saturate(url, seconds)
        after = run_times(fds)
    spent = {
        name: (after[name][0] - before[name][0], after[name][1] - before[name][1]) for name in fds
    }
    return result.requests, spent


def kernel_side_at(revision: str, into: Path) -> Path:
    """The bpf/ directory of git ``revision``, written out under ``into``."""

    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *argv], check=True, capture_output=True, text=True
        ).stdout

    directory = into / "bpf"
    directory.mkdir(parents=True)
    for path in git("ls-tree", "--name-only", revision, "bpf/").split():
        (directory / Path(path).name).write_text(git("show", f"{revision}:{path}"))
    return directory


@dataclass
class Tally:
    """One kernel side's program time over the rounds."""

    per_call: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    per_request: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    totals: list[float] = field(default_factory=list)  # all programs' ns per request, per round
    rates: list[float] = field(default_factory=list)  # requests per second, per round

    def add(self, requests: int, seconds: float, spent: dict[str, tuple[int, int]]) -> None:
        for name, (ns, calls) in spent.items():
            if calls:
                self.per_call[name].append(ns / calls)
                self.per_request[name].append(ns / requests)
        self.totals.append(sum(ns for ns, _ in spent.values()) / requests)
        self.rates.append(requests / seconds)

    def rows(self) -> list[tuple[float, float, str]]:
        """(ns per request, ns per call, program), dearest first, medians over the rounds."""
        return sorted(
            (
                (statistics.median(self.per_request[n]), statistics.median(self.per_call[n]), n)
                for n in self.per_call
            ),
            reverse=True,
        )

    def summary(self) -> dict[str, object]:
        return {
            "ns_per_request": round(statistics.median(self.totals)),
            "requests_per_second": round(statistics.median(self.rates)),
            "programs": {
                name: {"ns_per_call": round(call), "ns_per_request": round(request)}
                for request, call, name in self.rows()
            },
        }


def print_tally(label: str, tally: Tally) -> None:
    print(f"{label}\n{'program':<44} {'ns/call':>8} {'ns/request':>10}")
    for request_ns, call_ns, name in tally.rows():
        print(f"{name:<44} {call_ns:>8.0f} {request_ns:>10.0f}")
    total = statistics.median(tally.totals)
    print(f"{'all programs':<44} {'':>8} {total:>10.0f}")
    print(f"{'requests per second':<44} {'':>8} {statistics.median(tally.rates):>10.0f}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="nginx")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also measure git revision REV's probe")
    parser.add_argument("--pid", action="store_true", help="watch the target's processes only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.kernel_programs: run as root (it loads eBPF programs)", file=sys.stderr)
        return 1
    was = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1")
    current, other = Tally(), Tally()
    try:
        with tempfile.TemporaryDirectory() as tmp, start_server(args.target, Path(tmp)) as server:
            config = ProbeConfig(pids=frozenset(server.pids)) if args.pid else ProbeConfig()
            sides = [(BPF_DIR, current)]
            if args.against:
                sides.append((kernel_side_at(args.against, Path(tmp) / "against"), other))
            for round_number in range(args.rounds):
                for bpf_dir, tally in sides if round_number % 2 == 0 else sides[::-1]:
                    requests, spent = one_round(server.url("/hello"), args.seconds, bpf_dir, config)
                    tally.add(requests, args.seconds, spent)
    finally:
        BPF_STATS.write_text(was)
    print_tally("working tree", current)
    results: dict[str, object] = {
        "target": args.target, "seconds": args.seconds, "rounds": args.rounds,
        "watched": "the target's pids" if args.pid else "the whole host",
        **current.summary(),
    }  # fmt: skip
    if args.against:
        print_tally(args.against, other)
        pairs = zip(current.totals, other.totals, strict=True)
        differences = [mine - theirs for mine, theirs in pairs]
        print(
            f"working tree minus {args.against}, ns per request in each round: "
            + ", ".join(f"{d:+.0f}" for d in differences)
            + f" (median {statistics.median(differences):+.0f})"
        )
        results["against"] = {
            "revision": args.against,
            **other.summary(),
            "difference_per_round_ns": [round(d) for d in differences],
        }
    watched = "its pids watched" if args.pid else "host-wide"
    print(f"{args.target}, {watched}, wrk saturating; medians of {args.rounds} rounds")
    write_results("kernel_programs_pid" if args.pid else "kernel_programs", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
