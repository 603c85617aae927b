"""The loads the live benches put on a server: wrk flat out, or an open loop at a set rate.

``saturate`` is wrk's closed loop, 10 connections on one thread: throughput at saturation.

``paced`` is bench/paced.c: requests arrive as a Poisson process at a set mean rate over 64
keep-alive connections, and each latency counts from when its request was due. It replaced wrk
with a per-connection delay, whose 100 connections' timers fired together: requests came in
bursts, and each one's latency was mostly the queue behind the rest of its burst, so that any
per-request cost was multiplied by the burst's depth (wrk's p50 for nginx's 30 us hello was
~500 us, against ~100 us here). A fixed rate also makes "at 10,000 requests/s" exact.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.probe.traffic import _WRK_SCRIPT, parse_wrk_report

ROOT = Path(__file__).resolve().parent.parent
PACED_RATE = 10_000  # requests/s: the rate issue 2's targets are set at
PACED_CONNECTIONS = 64  # enough that a request almost never finds them all busy
PACED_SEED = 1  # the same arrivals in every run, so that runs differ only in what they measure


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    requests_per_s: float
    p50_s: float
    p99_s: float
    waited: int = 0  # paced requests that found every connection busy


def saturate(url: str, seconds: float) -> LoadResult:
    """wrk as fast as it goes: one thread, 10 connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(_WRK_SCRIPT)
        lua.flush()
        argv = ["wrk", "-t", "1", "-c", "10", "-d", f"{round(seconds)}s", "-s", lua.name, url]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    result = parse_wrk_report(out)
    return LoadResult(
        result.requests, result.requests_per_s, result.latency_p50_s, result.latency_p99_s
    )


@functools.cache
def _paced_binary() -> str:
    workdir = Path(tempfile.mkdtemp(prefix="bytewatch-paced-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    binary = workdir / "paced"
    source = ROOT / "bench" / "paced.c"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source), "-lm"], check=True)
    return str(binary)


def paced(url: str, seconds: float, rate: int = PACED_RATE) -> LoadResult:
    """``rate`` requests/s on average for ``seconds``, open loop (bench/paced.c)."""
    parts = urlsplit(url)
    argv = [
        _paced_binary(), parts.hostname or "127.0.0.1", str(parts.port or 80),
        parts.path or "/", str(rate), str(seconds), str(PACED_CONNECTIONS), str(PACED_SEED),
    ]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, check=False)
    fields = run.stdout.split()
    if run.returncode != 0 or len(fields) != 10 or fields[0] != "paced":
        raise SystemExit(f"bench/paced.c failed ({run.returncode}): {run.stderr or run.stdout}")
    requests, _, rps, p50_us, _, p99_us, _, waited, _ = fields[1:]
    return LoadResult(
        int(requests), float(rps), float(p50_us) / 1e6, float(p99_us) / 1e6, int(waited)
    )


def load(url: str, seconds: float, *, at_rate: bool) -> LoadResult:
    """``paced`` at 10,000 requests/s when ``at_rate``, else ``saturate``."""
    return paced(url, seconds) if at_rate else saturate(url, seconds)
