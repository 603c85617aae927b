"""What the probe costs the services it watches: nginx and Node under load, probe off and on.

Run as root:  .venv/bin/python -m bench.probe_overhead [--pairs 5] [--seconds 5] [--reader nice]

For each target the script alternates runs without and with the agent (``bytewatch run`` on the
live probe, with its defaults: ``nice 10``, and its reading thread SCHED_IDLE while it keeps up,
or at nice 10 throughout with ``--reader nice``; it reads its loss counters from /metrics), in
``--pairs`` pairs whose order flips every pair so that drift on a noisy machine hits both sides
alike, and reports medians:

- throughput ratio at saturation (wrk as fast as it can go),
- the same ratio with the kernel side alone: the probe loaded and its records taken out of the
  ring buffer every 20 ms and dropped unparsed, which bounds what any agent could reach,
- p50 and p99 latency added at saturation (wrk's own percentiles; wrk's closed loop turns lost
  throughput into latency there, so this mostly repeats the throughput ratio),
- agent CPU seconds per 10,000 requests at saturation (utime + stime of the agent),
- at 10,000 requests/s (bench/paced.c: an open loop, Poisson arrivals, latency counted from when
  each request was due; see bench/load.py), again in pairs: agent CPU in cores, lost records and
  the p50 and p99 latency added, the targets being at most 0.2 core, none lost and at most 50 us;
  and the p50 and p99 added by the kernel side alone at that rate, which splits the latency
  added between the kernel and the agent.

Two watch modes are measured: the whole host (default: the load's own client calls are exchanges
too, so the agent sees two per request) and the server's pid only (``--pid``).
It prints a table and writes bench/results/probe_overhead.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.kernel_cost import probe_drained  # noqa: E402
from bench.load import load  # noqa: E402
from bench.results import write_results  # noqa: E402
from probe.loader import ProbeConfig  # noqa: E402
from tests.probe.servers import RunningServer, start_server  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Run:
    requests_per_s: float
    p50_s: float
    p99_s: float
    requests: int
    agent_cpu_s: float | None = None
    lost_records: int | None = None
    exchanges: int | None = None
    spilled_records: int | None = None
    reader_raised: int | None = None  # times the reading thread left SCHED_IDLE (fell behind)
    waited: int = 0  # requests at a set rate that found every connection busy (bench/load.py)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class Agent:
    """How ``bytewatch run`` is configured for a run."""

    pids: tuple[int, ...] = ()  # the only processes watched; empty: the whole host
    idle_reader: bool = True  # its default; False (--reader nice): nice 10 throughout


@contextmanager
def agent(
    settings: Agent, workdir: Path, tree: Path = ROOT
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``bytewatch run`` on the live probe (niced as its default config says), API on a free
    port, from the source tree ``tree`` (another build, for bench.agent_against); yields the
    process and the base URL once its API answers."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pids, idle = list(settings.pids), str(settings.idle_reader).lower()
    config = workdir / f"agent-{port}.yaml"
    config.write_text(
        f"probe: {{filters: {{pids: {pids}}}, idle_reader: {idle}}}\n"
        f"store: {{path: {workdir / f'sli-{port}.db'}}}\n"
        f"api: {{listen: 127.0.0.1:{port}}}\n"
        "log: {format: json, level: warning}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "slo.cli", "run", "--config", str(config)],
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):  # noqa: S310 (http only)
                break
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                reason = proc.stderr.read() if proc.stderr else ""
                raise SystemExit(f"agent did not start: {reason}") from exc
            time.sleep(0.2)
    try:
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def probe_counters(base: str) -> dict[str, float]:
    """The agent's own counters from its /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as answer:  # noqa: S310
        text = answer.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("bytewatch_probe_") and " " in line and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def measure(
    url: str,
    seconds: float,
    *,
    probe: Agent | None,
    at_rate: bool,
    workdir: Path,
    tree: Path = ROOT,
) -> Run:
    """One run of the load, without the agent or with it (from the source tree ``tree``)."""
    if probe is None:
        result = load(url, seconds, at_rate=at_rate)
        return Run(
            result.requests_per_s, result.p50_s, result.p99_s, result.requests, waited=result.waited
        )
    with agent(probe, workdir, tree) as (proc, base):
        time.sleep(0.5)
        before = cpu_seconds(proc.pid)
        counted = probe_counters(base)
        result = load(url, seconds, at_rate=at_rate)
        time.sleep(1.0)  # let the agent drain what the load left in the ring buffer
        used = cpu_seconds(proc.pid) - before
        after = probe_counters(base)
    lost = after.get("bytewatch_probe_lost_records_total", 0.0)
    spilled = after.get("bytewatch_probe_spilled_records_total", 0.0)
    raised = after.get("bytewatch_probe_reader_raised_total", 0.0)
    exchanges = after.get("bytewatch_probe_exchanges_total", 0.0) - counted.get(
        "bytewatch_probe_exchanges_total", 0.0
    )
    return Run(
        result.requests_per_s,
        result.p50_s,
        result.p99_s,
        result.requests,
        used,
        int(lost),
        int(exchanges),
        int(spilled),
        int(raised),
        result.waited,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure_kernel_side(
    url: str, seconds: float, pids: frozenset[int], *, at_rate: bool = False
) -> Run:
    """The probe's records taken out of the ring every 20 ms at the agent's nice 10 and dropped
    unparsed: what the kernel side costs the services, without the agent's work."""
    with probe_drained(ProbeConfig(pids=pids), nice=10, listeners=True) as drained:
        result = load(url, seconds, at_rate=at_rate)
    return Run(
        result.requests_per_s,
        result.p50_s,
        result.p99_s,
        result.requests,
        lost_records=drained.lost,
        spilled_records=drained.spilled,
        waited=result.waited,
    )


def bench_target(
    server: RunningServer, pairs: int, seconds: float, workdir: Path, *, idle_reader: bool
) -> dict[str, object]:
    url = server.url("/hello")
    modes = {
        "host": Agent(idle_reader=idle_reader),
        "pid": Agent(pids=(server.pid,), idle_reader=idle_reader),
    }
    out: dict[str, object] = {"target": server.kind}
    load(url, 2, at_rate=True)  # warmed up: Node's first seconds at this rate queue behind its JIT
    for mode, watching in modes.items():
        pids = frozenset(watching.pids)
        off: list[Run] = []
        on: list[Run] = []
        kernel: list[Run] = []
        paced_off: list[Run] = []
        paced_on: list[Run] = []
        paced_kernel: list[Run] = []
        run_load = partial(measure, url, seconds, workdir=workdir)
        saturated: list[tuple[list[Run], Callable[[], Run]]] = [
            (off, partial(run_load, probe=None, at_rate=False)),
            (on, partial(run_load, probe=watching, at_rate=False)),
            (kernel, partial(measure_kernel_side, url, seconds, pids)),
        ]
        paced: list[tuple[list[Run], Callable[[], Run]]] = [
            (paced_off, partial(run_load, probe=None, at_rate=True)),
            (paced_on, partial(run_load, probe=watching, at_rate=True)),
            (paced_kernel, partial(measure_kernel_side, url, seconds, pids, at_rate=True)),
        ]
        for i in range(pairs):
            # Each pair runs without the probe, with the agent and with the kernel side alone,
            # at saturation and then at 10,000 requests/s; the order flips every pair so that
            # drift hits every variant alike.
            for runs, run in (saturated + paced) if i % 2 == 0 else saturated[::-1] + paced[::-1]:
                runs.append(run())
        cpu_per_10k = [r.agent_cpu_s / r.requests * 10_000 for r in on if r.agent_cpu_s]
        rps_off = median([r.requests_per_s for r in off])
        out[mode] = {
            "throughput_ratio": median([r.requests_per_s for r in on]) / rps_off,
            "kernel_side_ratio": median([r.requests_per_s for r in kernel]) / rps_off,
            "rps_off": rps_off,
            "rps_on": median([r.requests_per_s for r in on]),
            "p50_added_us": (median([r.p50_s for r in on]) - median([r.p50_s for r in off])) * 1e6,
            "p99_added_us": (median([r.p99_s for r in on]) - median([r.p99_s for r in off])) * 1e6,
            # At saturation wrk's closed loop turns lost throughput into latency (p50 = 10
            # connections / rate); at a fixed rate the added latency is what a request pays.
            "paced_p50_added_us": (
                median([r.p50_s for r in paced_on]) - median([r.p50_s for r in paced_off])
            )
            * 1e6,
            "paced_p99_added_us": (
                median([r.p99_s for r in paced_on]) - median([r.p99_s for r in paced_off])
            )
            * 1e6,
            # The same with the kernel side alone: what is left is the agent's share, which on
            # this two-core machine follows its CPU time, SCHED_IDLE or not.
            "paced_kernel_side_p50_added_us": (
                median([r.p50_s for r in paced_kernel]) - median([r.p50_s for r in paced_off])
            )
            * 1e6,
            "paced_kernel_side_p99_added_us": (
                median([r.p99_s for r in paced_kernel]) - median([r.p99_s for r in paced_off])
            )
            * 1e6,
            "agent_cpu_s_per_10k": median(cpu_per_10k),
            "lost_at_saturation": sum(r.lost_records or 0 for r in on),
            "lost_kernel_side_only": sum(r.lost_records or 0 for r in kernel),
            "spilled_kernel_side_only": sum(r.spilled_records or 0 for r in kernel),
            # Exchanges the agent processed per request made: 1 for the server's side, 2
            # when the whole host is watched (the load's own calls are exchanges too).
            "seen_per_request_at_saturation": median(
                [(r.exchanges or 0) / r.requests for r in on if r.requests]
            ),
            "paced_seen_per_request": median(
                [(r.exchanges or 0) / max(1, r.requests) for r in paced_on]
            ),
            "paced_rps": median([r.requests_per_s for r in paced_on]),
            "paced_agent_cores": median([(r.agent_cpu_s or 0) / seconds for r in paced_on]),
            "paced_agent_cores_max": max((r.agent_cpu_s or 0) / seconds for r in paced_on),
            "paced_lost": sum(r.lost_records or 0 for r in paced_on),
            "paced_spilled": sum(r.spilled_records or 0 for r in paced_on),
            "spilled_at_saturation": sum(r.spilled_records or 0 for r in on),
            "reader_raised_at_saturation": sum(r.reader_raised or 0 for r in on),
            "paced_reader_raised": sum(r.reader_raised or 0 for r in paced_on),
            "runs_off": [asdict(r) for r in off],
            "runs_on": [asdict(r) for r in on],
            "runs_kernel_side": [asdict(r) for r in kernel],
            "paced_off": [asdict(r) for r in paced_off],
            "paced_on": [asdict(r) for r in paced_on],
            "paced_kernel_side": [asdict(r) for r in paced_kernel],
        }
    return out


def rows(results: list[dict[str, object]]) -> Iterator[tuple[object, str, dict[str, object]]]:
    """(target, watch mode, that mode's results) for every line of the table."""
    for result in results:
        for mode in ("host", "pid"):
            m = result[mode]
            assert isinstance(m, dict)
            yield result["target"], mode, m


def print_table(results: list[dict[str, object]]) -> None:
    header = (
        f"{'target':<7} {'watch':<5} {'rps off':>9} {'rps on':>9} {'ratio':>6} {'kernel':>6} "
        f"{'+p50 us':>8} {'cpu s/10k':>9} {'paced rps':>9} {'+p50@10k':>8} {'+p99@10k':>8} "
        f"{'k+p50':>6} {'cores':>6} {'max':>6} {'lost':>5} {'spill':>5} {'seen/req':>8}"
    )
    print(header)
    print("-" * len(header))
    for target, mode, m in rows(results):
        print(
            f"{target:<7} {mode:<5} {m['rps_off']:>9.0f} {m['rps_on']:>9.0f} "
            f"{m['throughput_ratio']:>6.3f} {m['kernel_side_ratio']:>6.3f} "
            f"{m['p50_added_us']:>8.0f} {m['agent_cpu_s_per_10k']:>9.3f} "
            f"{m['paced_rps']:>9.0f} {m['paced_p50_added_us']:>8.0f} "
            f"{m['paced_p99_added_us']:>8.0f} {m['paced_kernel_side_p50_added_us']:>6.0f} "
            f"{m['paced_agent_cores']:>6.3f} "
            f"{m['paced_agent_cores_max']:>6.3f} "
            f"{m['paced_lost']:>5} {m['paced_spilled']:>5} {m['paced_seen_per_request']:>8.2f}"
        )
    for target, mode, m in rows(results):
        print(
            f"{target} {mode}: at saturation lost {m['lost_at_saturation']} "
            f"(spilled {m['spilled_at_saturation']}, reader raised "
            f"{m['reader_raised_at_saturation']} times), kernel side alone lost "
            f"{m['lost_kernel_side_only']} (spilled {m['spilled_kernel_side_only']}); "
            f"at 10k/s the reader was raised {m['paced_reader_raised']} times"
        )
    print("targets: ratio >= 0.95, +p50 <= 50 us, paced cores <= 0.2 at 10k rps, lost 0")
    print("ratio: with the agent; kernel: the kernel side alone (records drained, not parsed)")
    print("+p50 us: at saturation (queueing included); @10k: at 10,000 requests/s (medians)")
    print("k+p50: +p50 at 10,000 requests/s with the kernel side alone (the rest is the agent's)")
    print("cores, max: the agent at 10,000 requests/s, median and worst of the pairs")
    print("lost, spill: records lost, and records the spill ring saved, summed over the pairs")
    print("seen/req: exchanges the agent processed per request (1: server side; 2: host-wide)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--targets", default="nginx,node")
    parser.add_argument(
        "--reader",
        choices=["idle", "nice"],
        default="idle",
        help="the agent's reading thread: SCHED_IDLE while it keeps up (the default), or nice 10",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.probe_overhead: run as root (the probe loads eBPF programs)", file=sys.stderr)
        return 1
    results = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        for kind in args.targets.split(","):
            server = stack.enter_context(start_server(kind, Path(tmp)))
            results.append(
                bench_target(
                    server, args.pairs, args.seconds, Path(tmp), idle_reader=args.reader == "idle"
                )
            )
    print_table(results)
    write_results(
        "probe_overhead",
        {"pairs": args.pairs, "seconds": args.seconds, "reader": args.reader, "results": results},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
