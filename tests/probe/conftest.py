"""Fixtures shared by the probe's tests: the real servers and one live trace for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.probe.probe_process import TraceProcess
from tests.probe.servers import (  # noqa: F401  (fixtures shared by every module here)
    asgi_server,
    java_server,
    nginx_server,
    node_server,
    python_server,
)


@pytest.fixture(scope="session")
def live_trace() -> Iterator[TraceProcess]:
    """``bytewatch trace --format jsonl`` watching the whole host for the whole session."""
    trace = TraceProcess()
    yield trace
    trace.stop()
