"""The agent's pipeline, this checkout against a git revision, in one run on one CPU.

Run:  .venv/bin/python -m bench.pipeline_against REV [--rounds 200] [--exchanges 4000]

What it measures is ``bench/pipeline.py``'s from-records path: ring-buffer records decoded,
tracked, parsed, routed, judged and aggregated, in microseconds per exchange. This machine's
speed flips between two levels from one second to the next, so two builds measured one after
the other in separate runs do not compare (the same build gave 10 and 18 us per exchange in
consecutive runs). Here REV is written out (``git archive``) and its extensions are built
beside it; then one resident process per build, both pinned to the same CPU, takes its turn
every few milliseconds, ``--rounds`` times, in alternating order, and the median of the paired
differences is reported. A build against itself gives about +-0.15 us per exchange this way.

Prints a table and writes bench/results/pipeline_against.json. No eBPF: it runs anywhere the
extensions build.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import pipeline_from_records
from bench.results import write_results

ROOT = Path(__file__).resolve().parent.parent

# Runs in each checkout, importing that checkout's modules: the pipeline once to warm up, then
# once more for every line read, printing microseconds per exchange. The pipeline is this
# checkout's pipeline_from_records, so that both sides run the same steps.
WORKER = f"""
import random, sys, time
sys.path.insert(0, ".")
from bench.pipeline import raw_records
from probe.source import tune_gc_for_throughput

{inspect.getsource(pipeline_from_records)}
blobs = raw_records(int(sys.argv[1]), random.Random(9))
tune_gc_for_throughput()
pipeline_from_records(blobs)
for _ in sys.stdin:
    started = time.perf_counter()
    seen = pipeline_from_records(blobs)
    print((time.perf_counter() - started) / seen * 1e6, flush=True)
"""


def checkout(revision: str, into: Path) -> Path:
    """Git ``revision`` written out under ``into``, its extensions built beside its sources."""
    tree = into / "tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tree,
        check=True,
        capture_output=True,
    )
    return tree


def worker(tree: Path, cpu: int, exchanges: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["taskset", "-c", str(cpu), sys.executable, "-c", WORKER, str(exchanges)],
        cwd=tree,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def turn(process: subprocess.Popen[str]) -> float:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("go\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--exchanges", type=int, default=4000, help="per turn")
    parser.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1)
    args = parser.parse_args()
    us: dict[str, list[float]] = {args.revision: [], "this checkout": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {args.revision: checkout(args.revision, Path(tmp)), "this checkout": ROOT}
        processes = {name: worker(tree, args.cpu, args.exchanges) for name, tree in trees.items()}
        try:
            names = list(processes)
            for i in range(args.rounds):
                for name in names if i % 2 == 0 else names[::-1]:
                    us[name].append(turn(processes[name]))
        finally:
            for process in processes.values():
                assert process.stdin is not None
                process.stdin.close()
                process.wait()
    before, after = us.values()
    differences = [b - a for a, b in zip(before, after, strict=True)]
    medians = {name: statistics.median(values) for name, values in us.items()}
    print(f"{'build':<24} {'us per exchange':>16}")
    for name, value in medians.items():
        print(f"{name:<24} {value:>16.2f}")
    difference = statistics.median(differences)
    lower = sum(d < 0 for d in differences)
    print(f"{'paired difference':<24} {difference:>+16.2f}  (lower in {lower} of {args.rounds})")
    write_results(
        "pipeline_against",
        {
            "revision": args.revision,
            "rounds": args.rounds,
            "exchanges_per_turn": args.exchanges,
            "us_per_exchange": medians,
            "median_paired_difference_us": difference,
            "rounds_lower": lower,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
