"""Where benchmarks leave their numbers: bench/results/NAME.json, stamped with the time and the
machine they were measured on."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """What the numbers were measured on. Sessions run on machines of one size but not one
    model: nginx served 26,700 requests/s on one and 55,000 on the next, so results from two
    machines compare only as ratios measured within each."""
    model = "unknown"
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release()}


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (with a UTC ``when`` and the ``machine``) to bench/results/NAME.json
    and say so."""
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(stamped, indent=2) + "\n")
    print(f"wrote {path.relative_to(path.parents[2])}")
    return path
