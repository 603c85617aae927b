"""What the probe costs the services it watches: wrk against nginx and Node, probe off and on.

Run as root:  .venv/bin/python -m bench.probe_overhead [--pairs 5] [--seconds 5]

For each target the script alternates runs without and with the agent (``bytewatch trace
--format jsonl`` to /dev/null), in ``--pairs`` pairs whose order flips every pair so that drift
on a noisy machine hits both sides alike, and reports medians:

- throughput ratio at saturation (wrk as fast as it can go),
- p50 and p99 latency added (wrk's own percentiles),
- agent CPU seconds per 10,000 requests (utime + stime of the agent during the run),
- at a fixed ~10,000 requests/s (wrk with a per-connection delay): agent CPU in cores and lost
  records, the targets being at most 0.2 core and none lost.

Two watch modes are measured: the whole host (default: wrk's own client calls are exchanges
too, so the agent sees two per request) and the server's pid only (``--pid``).
It prints a table and writes bench/results/probe_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.probe.servers import RunningServer, start_server  # noqa: E402
from tests.probe.traffic import _WRK_SCRIPT, WrkResult, parse_wrk_report  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "probe_overhead.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RATE_CONNECTIONS = 100
RATE_DELAY_MS = 8  # 100 connections, one request per ~8 ms each + latency: about 10,000/s


@dataclass(frozen=True, slots=True)
class Run:
    requests_per_s: float
    p50_s: float
    p99_s: float
    requests: int
    agent_cpu_s: float | None = None
    lost_records: int | None = None
    exchanges: int | None = None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wrk(url: str, seconds: float, *, rate_limited: bool) -> WrkResult:
    script = _WRK_SCRIPT
    if rate_limited:
        script += f"\nfunction delay() return {RATE_DELAY_MS} end\n"
        shape = ["-t", "2", "-c", str(RATE_CONNECTIONS)]
    else:
        shape = ["-t", "1", "-c", "10"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        argv = ["wrk", *shape, "-d", f"{round(seconds)}s", "-s", lua.name, url]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return parse_wrk_report(out)


@contextmanager
def agent(extra: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "slo.cli", "trace", "--format", "jsonl", *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "attached" not in line:
        proc.kill()
        raise SystemExit(f"agent did not start: {line}{proc.stderr.read()}")
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def summary_numbers(stderr: str) -> tuple[int, int]:
    tail = stderr.strip().splitlines()[-1]
    exchanges = int(tail.split("exchanges ")[1].split(",")[0])
    lost = int(tail.split("lost records ")[1].split(",")[0])
    return exchanges, lost


def measure(url: str, seconds: float, *, probe: list[str] | None, rate_limited: bool) -> Run:
    if probe is None:
        result = wrk(url, seconds, rate_limited=rate_limited)
        return Run(
            result.requests_per_s, result.latency_p50_s, result.latency_p99_s, result.requests
        )
    with agent(probe) as proc:
        time.sleep(0.5)
        before = cpu_seconds(proc.pid)
        result = wrk(url, seconds, rate_limited=rate_limited)
        time.sleep(1.0)  # let the agent drain what wrk left in the ring buffer
        used = cpu_seconds(proc.pid) - before
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    exchanges, lost = summary_numbers(err)
    return Run(
        result.requests_per_s,
        result.latency_p50_s,
        result.latency_p99_s,
        result.requests,
        used,
        lost,
        exchanges,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_target(server: RunningServer, pairs: int, seconds: float) -> dict[str, object]:
    url = server.url("/hello")
    modes = {"host": [], "pid": ["--pid", str(server.pid)]}
    out: dict[str, object] = {"target": server.kind}
    for mode, probe_args in modes.items():
        off: list[Run] = []
        on: list[Run] = []
        for i in range(pairs):
            order = [None, probe_args] if i % 2 == 0 else [probe_args, None]
            for args in order:
                run = measure(url, seconds, probe=args, rate_limited=False)
                (off if args is None else on).append(run)
        paced = measure(url, seconds, probe=probe_args, rate_limited=True)
        cpu_per_10k = [r.agent_cpu_s / r.requests * 10_000 for r in on if r.agent_cpu_s]
        out[mode] = {
            "throughput_ratio": median([r.requests_per_s for r in on])
            / median([r.requests_per_s for r in off]),
            "rps_off": median([r.requests_per_s for r in off]),
            "rps_on": median([r.requests_per_s for r in on]),
            "p50_added_us": (median([r.p50_s for r in on]) - median([r.p50_s for r in off])) * 1e6,
            "p99_added_us": (median([r.p99_s for r in on]) - median([r.p99_s for r in off])) * 1e6,
            "agent_cpu_s_per_10k": median(cpu_per_10k),
            "lost_at_saturation": sum(r.lost_records or 0 for r in on),
            "paced_rps": paced.requests_per_s,
            "paced_agent_cores": (paced.agent_cpu_s or 0) / seconds,
            "paced_lost": paced.lost_records,
            "runs_off": [asdict(r) for r in off],
            "runs_on": [asdict(r) for r in on],
            "paced": asdict(paced),
        }
    return out


def print_table(results: list[dict[str, object]]) -> None:
    header = (
        f"{'target':<7} {'watch':<5} {'rps off':>9} {'rps on':>9} {'ratio':>6} "
        f"{'+p50 us':>8} {'+p99 us':>8} {'cpu s/10k':>9} {'paced rps':>9} "
        f"{'cores':>6} {'lost':>6}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        for mode in ("host", "pid"):
            m = result[mode]
            assert isinstance(m, dict)
            print(
                f"{result['target']:<7} {mode:<5} {m['rps_off']:>9.0f} {m['rps_on']:>9.0f} "
                f"{m['throughput_ratio']:>6.3f} {m['p50_added_us']:>8.0f} "
                f"{m['p99_added_us']:>8.0f} {m['agent_cpu_s_per_10k']:>9.3f} "
                f"{m['paced_rps']:>9.0f} {m['paced_agent_cores']:>6.3f} "
                f"{m['paced_lost']:>6}"
            )
    print("targets: ratio >= 0.95, +p50 <= 50 us, paced cores <= 0.2 at 10k rps, lost 0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--targets", default="nginx,node")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.probe_overhead: run as root (the probe loads eBPF programs)", file=sys.stderr)
        return 1
    results = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        for kind in args.targets.split(","):
            server = stack.enter_context(start_server(kind, Path(tmp)))
            results.append(bench_target(server, args.pairs, args.seconds))
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "pairs": args.pairs,
                "seconds": args.seconds,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
