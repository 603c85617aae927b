"""Where benchmarks leave their numbers: bench/results/NAME.json, stamped with the time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (with a UTC ``when``) to bench/results/NAME.json and say so."""
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload}
    path.write_text(json.dumps(stamped, indent=2) + "\n")
    print(f"wrote {path.relative_to(path.parents[2])}")
    return path
