"""``bytewatch trace --format jsonl`` run as a separate process, as a user would run it.

The probe never observes its own process, so it must not share one with the clients whose
calls the tests expect to see. One trace runs for the whole test session (compiling the probe
takes seconds); each test picks out its own exchanges by pid, port or a unique path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
Exchange = dict[str, Any]


class TraceProcess:
    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slo.cli", "trace", "--format", "jsonl", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.exchanges: list[Exchange] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(timeout=60):
            self.stop()
            raise RuntimeError(f"bytewatch trace did not attach: {''.join(self.stderr)}")

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = json.loads(line)
            with self._lock:
                self.exchanges.append(item)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if "probe attached" in line:
                self._ready.set()

    def matching(self, predicate: Callable[[Exchange], bool]) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if predicate(e)]

    def wait_for(
        self,
        predicate: Callable[[Exchange], bool],
        count: int,
        timeout: float = 10.0,
        settle: float = 0.5,
    ) -> list[Exchange]:
        """Exchanges matching ``predicate`` once ``count`` have arrived (or the timeout passed),
        waiting ``settle`` seconds more so that duplicates would show up too."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.matching(predicate)) < count:
            time.sleep(0.05)
        time.sleep(settle)
        return self.matching(predicate)

    def stop(self) -> str:
        """Stop the trace and return its stderr (which ends with the loss summary)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.1)
        return "".join(self.stderr)
