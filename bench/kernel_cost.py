"""What the probe's kernel side costs a service, apart from the agent reading its records.

Run as root:  .venv/bin/python -m bench.kernel_cost [--rounds 8] [--requests 50000]

A small C client and server (bench/pingpong.c) exchange HTTP/1.1 requests and responses on one
loopback connection, pinned to one CPU, and report the CPU time they spent per request. That
number moves only with the work done per syscall, so it isolates what the eBPF programs add to
the four syscalls of each request (client write, server read, server write, client read) from
the scheduler noise that makes throughput tests on a shared two-core machine wander by 30 %.

Records are drained every 20 ms, as the agent does, but not decoded: this is the kernel's share
of bench/probe_overhead.py's numbers. Variants, in alternating order each round:

- off: no probe;
- server, exit tracepoints / raw sys_exit: the probe watches the server process only (by name),
  seeing syscalls through their own exit tracepoints or through the raw tracepoint at every
  syscall's exit (the portable build, see probe/loader.py);
- host, exit tracepoints / raw sys_exit: the probe watches every process, so both sides are
  exchanges;
- tls off / tls server / tls host: the same over TLS (OpenSSL on both sides), where the probe
  adds uprobes on SSL_read and SSL_write to its syscall tracepoints; compared with tls off.

It prints medians and writes bench/results/kernel_cost.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import write_results  # noqa: E402
from probe.abi import Counter  # noqa: E402
from probe.loader import BPF_DIR, LoadedProbe, ProbeConfig  # noqa: E402
from probe.procfs import listening_sockets  # noqa: E402

SERVER_COMM = "pp-server"
CPU = "1"
DRAIN_EVERY_S = 0.02


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    probe: ProbeConfig | None
    tls: bool = False

    @property
    def baseline(self) -> str:
        return "tls off" if self.tls else "off"


VARIANTS = (
    Variant("off", None),
    Variant("server, exit tracepoints", ProbeConfig(comms=frozenset({SERVER_COMM}))),
    Variant("server, raw sys_exit", ProbeConfig(comms=frozenset({SERVER_COMM}), task_btf=False)),
    Variant("host, exit tracepoints", ProbeConfig()),
    Variant("host, raw sys_exit", ProbeConfig(task_btf=False)),
    Variant("tls off", None, tls=True),
    Variant("tls server", ProbeConfig(comms=frozenset({SERVER_COMM}), tls=True), tls=True),
    Variant("tls host", ProbeConfig(tls=True), tls=True),
)


def build_pingpong(workdir: Path) -> list[str]:
    """The ping-pong's command line without its arguments; a certificate for its TLS mode."""
    binary = workdir / "pingpong"
    source = ROOT / "bench" / "pingpong.c"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source), "-lssl", "-lcrypto"], check=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(workdir / "key.pem"),
         "-out", str(workdir / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return [str(binary)]


@dataclass
class Drained:
    records: int = 0
    lost: int = 0  # the kernel's count of records both ring buffers refused
    spilled: int = 0  # records the main ring refused and the spill ring took
    syscall_exits: str = "-"
    probe: LoadedProbe | None = None  # while loaded


@contextmanager
def probe_drained(
    config: ProbeConfig | None, *, nice: int = 0, listeners: bool = False, bpf_dir: Path = BPF_DIR
) -> Iterator[Drained]:
    """The probe loaded and drained in the background, its records dropped unparsed; counts
    what it drained and lost. ``nice`` is the draining thread's (the agent runs at 10);
    ``listeners`` seeds the listening ports the agent would seed; ``bpf_dir`` holds the kernel
    side's source."""
    drained = Drained()
    if config is None:
        yield drained
        return
    with LoadedProbe(config, bpf_dir=bpf_dir) as probe:
        drained.probe = probe
        drained.syscall_exits = probe.syscall_exits
        if listeners:
            probe.seed_listen_ports(listening_sockets())
        stop = threading.Event()

        def drain() -> None:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            while not stop.wait(DRAIN_EVERY_S):
                drained.records += probe.discard()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            yield drained
        finally:
            stop.set()
            reader.join()
            drained.records += probe.discard()
            counters = probe.counters()
            drained.lost = counters.get(Counter.LOST, 0)
            drained.spilled = counters.get(Counter.SPILLED, 0)
            drained.probe = None


def cpu_us_per_request(binary: list[str], requests: int, tls: bool) -> float:
    workdir = Path(binary[0]).parent
    certificate = [str(workdir / "cert.pem"), str(workdir / "key.pem")] if tls else []
    out = subprocess.run(
        ["taskset", "-c", CPU, *binary, str(requests), *certificate],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50_000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.kernel_cost: run as root (the probe loads eBPF programs)", file=sys.stderr)
        return 1
    runs: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    records: dict[str, int] = {v.name: 0 for v in VARIANTS}
    syscall_exits: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_pingpong(Path(tmp))
        for i in range(args.rounds):
            for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                with probe_drained(variant.probe) as drained:
                    time.sleep(0.2)
                    cpu = cpu_us_per_request(binary, args.requests, variant.tls)
                    runs[variant.name].append(cpu)
                records[variant.name] += drained.records
                syscall_exits[variant.name] = drained.syscall_exits
    rows = []
    for variant in VARIANTS:
        base = statistics.median(runs[variant.baseline])
        median = statistics.median(runs[variant.name])
        rows.append(
            {
                "variant": variant.name,
                "cpu_us_per_request": median,
                "min_us": min(runs[variant.name]),
                "added_us": median - base,
                "throughput_equivalent": base / median,
                "records_per_request": records[variant.name] / (args.rounds * args.requests),
                "syscall_exits": syscall_exits[variant.name],
                "runs_us": runs[variant.name],
            }
        )
    print(f"{'variant':<26} {'us/req':>7} {'min':>6} {'added':>6} {'ratio':>6} {'rec/req':>7}")
    for row in rows:
        print(
            f"{row['variant']:<26} {row['cpu_us_per_request']:>7.2f} {row['min_us']:>6.2f} "
            f"{row['added_us']:>6.2f} {row['throughput_equivalent']:>6.3f} "
            f"{row['records_per_request']:>7.2f}"
        )
    print("us/req: client + server CPU per request (median); ratio: off / on (tls off for tls)")
    write_results(
        "kernel_cost",
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
