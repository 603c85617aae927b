"""The live agent, this checkout against a git revision, in one run: its CPU at 10,000 requests/s.

Run as root:  .venv/bin/python -m bench.agent_against REV [--rounds 6] [--seconds 8]
                                            [--target nginx|node] [--body hello|records|envelope]

bench.probe_overhead measures one build, and this machine's speed moves by tens of percent
within an hour, so two builds measured in separate runs do not compare. Here REV is written out
and built beside its sources (bench.pipeline_against's checkout), and ``bytewatch run`` from each
build in turn watches the whole host while bench/paced.c sends 10,000 requests/s to the target, in
alternating order, ``--rounds`` times. Reports each build's median agent CPU (cores, and
microseconds per request), p50 and p99 latency and records lost, and the median paired
difference.

``--body records`` has nginx serve an 8 KiB JSON list of records instead of its small hello: a
REST list endpoint, whose words (``"code"`` keys) the body checks find, cut at the 1 KiB the
probe keeps. ``--body envelope`` wraps that list as many APIs wrap every answer,
``{"code": 0, "msg": "success", "data": {"total": 100, "items": [...]}}``: there the word is
where the detectors look, and the body is parsed. Writes
bench/results/agent_against_TARGET_BODY.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline_against import checkout
from bench.probe_overhead import ROOT, Agent, measure
from bench.results import write_results
from tests.probe.servers import start_server

RECORDS = [
    {"id": i, "name": f"item-{i}", "price": i * 1.5, "code": f"SKU{i}", "tags": ["a", "b"]}
    for i in range(100)
]
BODIES = {
    "records": {"items": RECORDS},
    "envelope": {"code": 0, "msg": "success", "data": {"total": len(RECORDS), "items": RECORDS}},
}


@dataclass(frozen=True, slots=True)
class Turn:
    cores: float
    us_per_request: float
    p50_us: float
    p99_us: float
    lost: int


def one_turn(tree: Path, workdir: Path, url: str, seconds: float) -> Turn:
    run = measure(url, seconds, probe=Agent(), at_rate=True, workdir=workdir, tree=tree)
    used = run.agent_cpu_s or 0.0
    cores, per_request = used / seconds, used / max(1, run.requests) * 1e6
    return Turn(cores, per_request, run.p50_s * 1e6, run.p99_s * 1e6, run.lost_records or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--target", choices=["nginx", "node"], default="nginx")
    parser.add_argument("--body", choices=["hello", *BODIES], default="hello")
    args = parser.parse_args()
    if args.body != "hello" and args.target != "nginx":
        parser.error(f"--body {args.body} needs --target nginx (it serves the file)")
    turns: dict[str, list[Turn]] = {args.revision: [], "this checkout": []}
    with tempfile.TemporaryDirectory() as tmp, start_server(args.target, Path(tmp)) as server:
        trees = {args.revision: checkout(args.revision, Path(tmp)), "this checkout": ROOT}
        if args.body in BODIES:
            served = next(Path(tmp).glob("**/html/hello.json"))
            served.write_text(json.dumps(BODIES[args.body]))
        url = server.url("/hello")
        names = list(trees)
        for i in range(args.rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                turns[name].append(one_turn(trees[name], Path(tmp), url, args.seconds))
                last = turns[name][-1]
                print(f"round {i} {name}: {last.cores:.3f} cores, lost {last.lost}", flush=True)
    medians = {
        name: {
            "cores": statistics.median(t.cores for t in runs),
            "us_per_request": statistics.median(t.us_per_request for t in runs),
            "p50_us": statistics.median(t.p50_us for t in runs),
            "p99_us": statistics.median(t.p99_us for t in runs),
            "lost": sum(t.lost for t in runs),
        }
        for name, runs in turns.items()
    }
    before, after = turns.values()
    differences = [b.cores - a.cores for a, b in zip(before, after, strict=True)]
    lower = sum(d < 0 for d in differences)
    print(f"{'build':<16} {'cores':>6} {'us/request':>10} {'p50 us':>7} {'p99 us':>7} {'lost':>8}")
    for name, m in medians.items():
        print(
            f"{name:<16} {m['cores']:>6.3f} {m['us_per_request']:>10.1f} {m['p50_us']:>7.0f} "
            f"{m['p99_us']:>7.0f} {m['lost']:>8}"
        )
    difference = statistics.median(differences)
    print(f"paired difference {difference:+.3f} cores (lower in {lower} of {args.rounds})")
    write_results(
        f"agent_against_{args.target}_{args.body}",
        {
            "revision": args.revision,
            "target": args.target,
            "body": args.body,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "medians": medians,
            "median_paired_difference_cores": difference,
            "rounds_lower": lower,
            "turns": {name: [asdict(t) for t in runs] for name, runs in turns.items()},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
