"""probe/_priority.c: the reading thread is idle while the ring's backlog is small, niced when
it grows, and idle again once it has stayed small.

The guard reads the two positions at the start of the ring's first two pages, so a memfd laid
out the same way (tests/probe/fake_ring.py) stands in for the kernel's ring: the tests move the
positions by hand.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest

from probe import priority
from tests.ci import built_extension, skip_or_fail
from tests.probe.fake_ring import FakeRing, fake_ring

HIGH, LOW, NICE, CHECK_MS, CALM_MS, STARVED_MS = 100_000, 10_000, 10, 2, 60, 50
SCHED_IDLE, SCHED_OTHER = os.SCHED_IDLE, os.SCHED_OTHER


@pytest.fixture(scope="module")
def guard() -> ModuleType:
    _priority = built_extension("probe._priority")
    if os.geteuid() != 0:
        skip_or_fail("leaving SCHED_IDLE for a nice value needs CAP_SYS_NICE: run as root")
    return _priority


@contextmanager
def reader_thread() -> Iterator[int]:
    """A thread that only waits, standing in for the agent's reader; yields its tid."""
    ready, done, tid = threading.Event(), threading.Event(), []

    def wait() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        done.wait()

    thread = threading.Thread(target=wait)
    thread.start()
    ready.wait()
    try:
        yield tid[0]
    finally:
        done.set()
        thread.join()


@pytest.fixture
def ring() -> Iterator[FakeRing]:
    with fake_ring() as fake:
        yield fake


@contextmanager
def watching(guard: ModuleType, ring: FakeRing, tid: int) -> Iterator[None]:
    """The guard watching ``ring`` for thread ``tid`` with the test thresholds."""
    guard.start(ring.fd, tid, HIGH, LOW, NICE, CHECK_MS, CALM_MS, STARVED_MS)
    try:
        yield
    finally:
        guard.stop()


def policy(tid: int) -> tuple[int, int]:
    return os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)


def eventually(check: Callable[[], bool], within_s: float = 2.0) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_the_reader_is_idle_until_it_falls_behind_and_idle_again_once_caught_up(
    guard: ModuleType, ring: FakeRing
) -> None:
    with reader_thread() as tid, watching(guard, ring, tid):
        assert policy(tid)[0] == SCHED_IDLE
        ring.backlog(HIGH - 1)
        time.sleep(10 * CHECK_MS / 1000)
        assert policy(tid)[0] == SCHED_IDLE, "a backlog under the threshold changes nothing"

        ring.backlog(HIGH)
        assert eventually(lambda: policy(tid) == (SCHED_OTHER, NICE))
        assert guard.counts() == (1, 0, False, 0)

        ring.backlog(LOW + 1)  # read down, but not below the low mark
        time.sleep(3 * CALM_MS / 1000)
        assert policy(tid)[0] == SCHED_OTHER, "lowered only once under the low mark"

        ring.backlog(LOW)
        assert eventually(lambda: policy(tid)[0] == SCHED_IDLE)
        assert guard.counts() == (1, 1, True, 0)


def test_a_reader_that_dips_under_the_low_mark_only_briefly_stays_raised(
    guard: ModuleType, ring: FakeRing
) -> None:
    with reader_thread() as tid, watching(guard, ring, tid):
        ring.backlog(HIGH)
        assert eventually(lambda: policy(tid)[0] == SCHED_OTHER)
        for _ in range(6):  # under the low mark for a third of the calm period at a time
            ring.drained()
            time.sleep(CALM_MS / 3000)
            ring.backlog(LOW * 2)
            time.sleep(CALM_MS / 3000)
        assert policy(tid)[0] == SCHED_OTHER
        assert guard.counts()[:2] == (1, 0)


@contextmanager
def spinning_on_cpu_0() -> Iterator[int]:
    """A process that only burns CPU, pinned to CPU 0; yields its pid (its one thread's tid)."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(spin.pid, {0})
        yield spin.pid
    finally:
        spin.kill()
        spin.wait()


def test_a_reader_starved_of_cpu_is_raised_even_with_nothing_to_read(
    guard: ModuleType, ring: FakeRing
) -> None:
    """On a host busy with other work an idle reader hardly runs; if it holds the GIL then, the
    agent's API and alert outbox wait for it. So starvation raises it, like a backlog."""
    with spinning_on_cpu_0() as reader, watching(guard, ring, reader):
        with spinning_on_cpu_0():  # other work: as SCHED_OTHER it takes CPU 0 from the reader
            assert eventually(lambda: policy(reader) == (SCHED_OTHER, NICE))
            assert guard.counts()[:2] == (1, 0)
        # CPU 0 to itself again: being idle costs it nothing, so it goes back and stays.
        assert eventually(lambda: policy(reader)[0] == SCHED_IDLE)
        time.sleep(3 * CALM_MS / 1000)
        assert policy(reader)[0] == SCHED_IDLE
        assert guard.counts()[:2] == (1, 1)
    assert policy(threading.get_native_id())[0] == SCHED_OTHER


@contextmanager
def busy_on_cpu_0_for(share: float) -> Iterator[None]:
    """A process pinned to CPU 0 that burns ``share`` of every 10 ms and sleeps the rest."""
    code = (
        "import time\n"
        "while True:\n"
        f"    end = time.perf_counter() + {share * 0.01}\n"
        "    while time.perf_counter() < end: pass\n"
        f"    time.sleep({(1 - share) * 0.01})\n"
    )
    busy = subprocess.Popen([sys.executable, "-c", code])
    try:
        os.sched_setaffinity(busy.pid, {0})
        yield
    finally:
        busy.kill()
        busy.wait()


def test_a_reader_that_waits_for_cpu_now_and_then_but_runs_more_is_idle_again_once_caught_up(
    guard: ModuleType, ring: FakeRing
) -> None:
    """A service that keeps a CPU busy a third of the time puts the reader off it at each of its
    wakeups, niced or idle alike. That is not starvation: the reader goes back to idle once the
    backlog that raised it is read, and stays there."""
    with spinning_on_cpu_0() as reader, watching(guard, ring, reader), busy_on_cpu_0_for(0.3):
        ring.backlog(HIGH)
        assert eventually(lambda: policy(reader) == (SCHED_OTHER, NICE))
        ring.backlog(LOW)
        assert eventually(lambda: policy(reader)[0] == SCHED_IDLE)
        time.sleep(3 * CALM_MS / 1000)
        assert policy(reader)[0] == SCHED_IDLE
        assert guard.counts()[:2] == (1, 1)


def test_stopping_gives_the_reader_its_nice_value_back(guard: ModuleType, ring: FakeRing) -> None:
    with reader_thread() as tid:
        guard.start(ring.fd, tid, HIGH, LOW, NICE, CHECK_MS, CALM_MS, STARVED_MS)
        assert policy(tid)[0] == SCHED_IDLE
        guard.stop()
        assert policy(tid) == (SCHED_OTHER, NICE), "a shutdown must not be starved"


def test_the_watcher_itself_is_never_idle_even_when_started_from_an_idle_thread(
    guard: ModuleType, ring: FakeRing
) -> None:
    me = threading.get_native_id()
    before = set(os.listdir("/proc/self/task"))
    nice = os.getpriority(os.PRIO_PROCESS, me)
    os.sched_setscheduler(me, SCHED_IDLE, os.sched_param(0))
    try:
        with watching(guard, ring, me):
            watchers = set(os.listdir("/proc/self/task")) - before
            assert len(watchers) == 1
            assert os.sched_getscheduler(int(watchers.pop())) == SCHED_OTHER
    finally:  # this is pytest's own thread: as it was
        os.sched_setscheduler(me, SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, me, nice)
    # (Compared one way only: a thread of an earlier test may still have been exiting.)
    assert set(os.listdir("/proc/self/task")) <= before, "stop() ends the watcher"


def test_follow_backlog_sets_the_thresholds_from_the_ring_size(
    guard: ModuleType, ring: FakeRing
) -> None:
    ring_bytes = 1 << 20
    with reader_thread() as tid:
        assert priority.follow_backlog(ring.fd, ring_bytes, tid, NICE)
        try:
            ring.backlog(int(ring_bytes * priority.RAISE_AT) - 1)
            time.sleep(10 * priority.CHECK_EVERY_MS / 1000)
            assert priority.reader_priority() == priority.ReaderPriority(idle=True)
            ring.backlog(int(ring_bytes * priority.RAISE_AT))
            assert eventually(lambda: priority.reader_priority().raised == 1)
            assert policy(tid) == (SCHED_OTHER, NICE)
        finally:
            priority.stop_following()


def test_a_ring_that_cannot_be_mapped_leaves_the_reader_as_it_was(
    guard: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    with reader_thread() as tid:
        before = policy(tid)
        assert not priority.follow_backlog(-1, 1 << 20, tid, NICE)
        assert policy(tid) == before
    assert "stays at nice 10" in caplog.text


@pytest.mark.parametrize(
    "args",
    [
        (0, 1, 10, 20, 10, 5, 10, 50),
        (0, 1, 20, 10, 10, 0, 10, 50),
        (0, 1, 20, 10, 25, 5, 10, 50),
        (0, 1, 20, 10, 10, 5, 10, 0),
    ],
    ids=["low above high", "no period", "nice out of range", "no starvation threshold"],
)
def test_nonsense_thresholds_are_refused(guard: ModuleType, args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="start wants"):
        guard.start(*args)


CAP_SYS_NICE = 1 << priority.CAP_SYS_NICE


@pytest.mark.parametrize(
    ("cap_eff", "nice_limit", "trapped"),
    [
        pytest.param(CAP_SYS_NICE, 0, False, id="CAP_SYS_NICE"),
        pytest.param(0, 10, False, id="an RLIMIT_NICE that allows nice 10"),
        pytest.param(0, resource.RLIM_INFINITY, False, id="an unlimited RLIMIT_NICE"),
        pytest.param(0, 9, True, id="an RLIMIT_NICE one short"),
        pytest.param(0, 0, True, id="neither: the default, even for root in a container"),
    ],
)
def test_the_reader_goes_idle_only_where_it_can_come_back(
    cap_eff: int, nice_limit: int, trapped: bool
) -> None:
    trap = priority.why_idle_would_be_a_trap(10, cap_eff, nice_limit)
    assert (trap is not None) == trapped
    if trap is not None:
        assert "CAP_SYS_NICE" in trap and "RLIMIT_NICE of at least 10" in trap


def test_without_cap_sys_nice_the_reader_keeps_its_policy(
    guard: ModuleType, ring: FakeRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(priority, "effective_capabilities", lambda status: 0)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (0, 0))
    with reader_thread() as tid:
        before = policy(tid)
        assert not priority.follow_backlog(ring.fd, 1 << 20, tid, NICE)
        assert policy(tid) == before


class _Watcher:
    def __init__(self, idle: bool) -> None:
        self.idle = idle

    def counts(self) -> tuple[int, int, bool, int]:
        return (1, 0, self.idle, 0)


@pytest.mark.parametrize(("idle", "yields"), [(True, 1), (False, 0)])
def test_the_reader_yields_the_cpu_only_while_it_is_idle_never_while_behind(
    monkeypatch: pytest.MonkeyPatch, idle: bool, yields: int
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(priority, "_watcher", _Watcher(idle))
    monkeypatch.setattr(os, "sched_yield", lambda: calls.append(None))
    priority.yield_while_idle()
    assert len(calls) == yields
