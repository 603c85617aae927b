"""The README's main command: `bytewatch demo` catches the silent-200 incident it injects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.kernel
def test_the_demo_pages_within_a_minute_of_its_silent_200_incident(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "slo.cli",
            "demo",
            "--incident-after",
            "15",
            "--incident-for",
            "60",
            "--duration",
            "80",
            "--state-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    views = result.stdout.split("bytewatch demo  ")
    assert any("INCIDENT" in v for v in views)
    last = views[-1]
    assert "payments   POST   /payments" in last
    assert "insufficient_balance" in result.stdout or "card_declined" in result.stdout
    assert "FIRING  receiver demo-webhook" in last, last
    # The availability SLO, which only sees status codes, stays green throughout.
    assert "PAGE firing" not in "".join(
        line for v in views for line in v.splitlines() if "payments-availability" in line
    )
