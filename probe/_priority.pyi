"""probe/_priority.c: the reading thread's scheduling policy, following the ring's backlog."""

def start(
    map_fd: int,
    tid: int,
    high: int,
    low: int,
    nice: int,
    period_ms: int,
    calm_ms: int,
    starved_ms: int,
    /,
) -> None: ...
def stop() -> None: ...
def counts() -> tuple[int, int, bool, int]: ...
