"""Shared test plumbing.

Tests that need the kernel carry ``@pytest.mark.kernel``. Outside CI they skip with the reason
when eBPF cannot run here; with ``CI=true`` a missing capability fails them instead, because CI
runs as root on a machine that can run them and a skip there would hide a broken probe.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from tests.ci import IN_CI

ROOT = Path(__file__).resolve().parent.parent


def _find_conformance() -> Path:
    """The shared conformance data: $BYTEWATCH_CONFORMANCE, else ../shared/conformance beside
    the checkout, else the workplace's /work/shared/conformance (a fresh clone elsewhere)."""
    candidates = [
        Path(os.environ["BYTEWATCH_CONFORMANCE"])
        if "BYTEWATCH_CONFORMANCE" in os.environ
        else None,
        ROOT.parent / "shared" / "conformance",
        Path("/work/shared/conformance"),
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "conformance"


CONFORMANCE = _find_conformance()


def ebpf_unavailable_reason() -> str | None:
    """None when this process can load eBPF programs, else one line saying why not."""
    from probe.doctor import run_checks

    problems = run_checks(try_attach=False)
    return "; ".join(problems) if problems else None


@functools.cache
def _cached_reason() -> str | None:
    return ebpf_unavailable_reason()


def pytest_sessionstart(session: pytest.Session) -> None:
    """A compiled module older than its source would run the old code under the new tests."""
    from probe.compiled import REBUILD_HINT, stale_modules

    stale = stale_modules()
    if stale:
        names = ", ".join(m.name for m in stale)
        raise pytest.UsageError(f"{names} changed after being compiled: {REBUILD_HINT}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") is None:
        return
    reason = _cached_reason()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true, so a kernel test may not skip, but eBPF is unavailable: {reason}")
    pytest.skip(f"needs eBPF: {reason}")


@pytest.fixture
def conformance() -> Path:
    """The shared conformance data (read in place, never copied)."""
    if not CONFORMANCE.is_dir():
        pytest.fail(f"conformance data not found at {CONFORMANCE}")
    return CONFORMANCE
