"""The reading thread's scheduling: idle while it keeps up with the ring, niced when behind.

Measured with Node at ~11,000 requests/s (4 pairs, medians), the agent's reading thread added
+92 us to the service's median latency at nice 10 and none as SCHED_IDLE (-38 us, as without the
agent): a niced thread still runs for a scheduler slice before a waking service thread gets its
CPU back, an idle one gives it up at once. But an idle thread hardly runs on a saturated host,
and there it lost a third of the records. probe/_priority.c switches between the two, from a
thread of its own that watches the ring's backlog and the reader's waits for a CPU (see its
header for why not from Python).
"""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final

from probe.doctor import effective_capabilities

_log = logging.getLogger(__name__)

# The reader drains every 20 ms (probe.source.BATCH_INTERVAL_S): at 10,000 requests/s watched
# host-wide that leaves ~130 KiB behind between reads, at saturation ~350 KiB. Raised past 1/8
# of the ring (2 MiB of 16: ~130 ms of saturated traffic, ~15 % of what the ring can hold
# before it refuses records), or when it waited on a run queue for more than half of the last
# 100 ms and ran for less than a quarter of that (a host busy with other work, where a reader
# starved while holding the GIL would stall the API and the alert outbox); lowered after half
# a second under 1/32 and waiting at most 5 ms of 100 or at most twice as long as it ran
# (probe/_priority.c says why waits alone do not tell). Checked every 20 ms, a small part of
# the ~0.9 s the ring takes to fill from 1/8 at saturation: each check is a wakeup and a read
# of /proc, and every 5 ms they cost an idle agent 0.011 of a core, half of all it spent.
RAISE_AT: Final = 1 / 8
LOWER_UNDER: Final = 1 / 32
STARVED_MS: Final = 50
CALM_MS: Final = 500
CHECK_EVERY_MS: Final = 20
CAP_SYS_NICE: Final = 23  # include/uapi/linux/capability.h


def _load_watcher() -> ModuleType | None:
    try:
        from probe import _priority
    except ImportError:  # BYTEWATCH_PURE_PYTHON=1, or a source tree never built
        return None
    return _priority


_watcher: Final = _load_watcher()


@dataclass(frozen=True, slots=True)
class ReaderPriority:
    """How the reading thread's priority has moved since it started to follow its backlog."""

    raised: int = 0  # times it fell behind or was starved, and went to its nice value
    lowered: int = 0  # times it caught up and went back to SCHED_IDLE
    idle: bool = False  # SCHED_IDLE now
    stuck: int = 0  # errno of a switch that failed: the thread then keeps the policy it had


def why_idle_would_be_a_trap(nice: int, cap_eff: int, nice_limit: int) -> str | None:
    """Why a thread that went SCHED_IDLE could not come back to ``nice``, or None if it could.
    Linux lets a thread leave SCHED_IDLE only when it may set its own nice value: with
    CAP_SYS_NICE, or an RLIMIT_NICE of at least 20 - nice (``can_nice`` in the scheduler).
    Being root is not enough: containers drop the capability."""
    if cap_eff & (1 << CAP_SYS_NICE):
        return None
    if nice_limit == resource.RLIM_INFINITY or nice_limit >= 20 - nice:
        return None
    return (
        f"leaving SCHED_IDLE for nice {nice} needs CAP_SYS_NICE or an RLIMIT_NICE of at least "
        f"{20 - nice} (this process has {nice_limit}; see deploy/systemd/bytewatch.service)"
    )


def follow_backlog(ring_fd: int, ring_bytes: int, tid: int, nice: int) -> bool:
    """Run thread ``tid`` as SCHED_IDLE from now on, and at ``nice`` whenever the ring behind
    ``ring_fd`` (``ring_bytes`` of data) holds more than RAISE_AT of its size unread or the
    thread is starved of CPU. False, with a warning, where that cannot be done: the thread then
    keeps its policy."""
    trap = why_idle_would_be_a_trap(
        nice,
        effective_capabilities(Path(f"/proc/self/task/{tid}/status").read_text()),
        resource.getrlimit(resource.RLIMIT_NICE)[0],
    )
    if trap is not None:
        _log.warning("the reading thread stays at nice %d: %s", nice, trap)
        return False
    if _watcher is None:
        _log.warning("the reading thread stays at nice %d: probe._priority is not built", nice)
        return False
    try:
        _watcher.start(
            ring_fd,
            tid,
            int(ring_bytes * RAISE_AT),
            int(ring_bytes * LOWER_UNDER),
            nice,
            CHECK_EVERY_MS,
            CALM_MS,
            STARVED_MS,
        )
    except OSError as exc:
        _log.warning("the reading thread stays at nice %d: %s", nice, exc.strerror or exc)
        return False
    return True


def reader_priority() -> ReaderPriority:
    if _watcher is None:
        return ReaderPriority()
    raised, lowered, idle, stuck = _watcher.counts()
    return ReaderPriority(raised=raised, lowered=lowered, idle=idle, stuck=stuck)


def yield_while_idle() -> None:
    """Give the CPU to whatever waits for it, while the reading thread is SCHED_IDLE: a thread
    that has fallen behind (raised to its nice value) keeps it, or records would be lost."""
    if _watcher is not None and _watcher.counts()[2]:
        os.sched_yield()


def stop_following() -> None:
    """Stop switching; the thread gets its nice value back (a shutdown is never starved)."""
    if _watcher is not None:
        _watcher.stop()
