"""The semantic health score: the share of an endpoint's requests that were good.

Good means answered without a server error, without a business error, and within the
endpoint's latency target; availability, correctness and latency are reported beside the score
(see ``slo.model.good_of``: the score is exactly a ``health`` SLI). A service's score is the
same ratio over all the endpoints it serves. An endpoint without requests in a window has no
score there (None), never 1.0 or 0.0.

The latency target of an endpoint is, first match wins: the threshold of an SLO covering it
(``slo_target``, given by the service), the ``per_route`` override, the ``per_service`` one,
the default (500 ms). When a target changes, the endpoint's window sums are rebuilt from the
stored history, so a score always means one target over the whole window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from slo.model import (
    SERVER_SIDE,
    Counts,
    EndpointHealth,
    EndpointKey,
    HealthScore,
    ServiceHealth,
    merge_error_types,
)
from slo.series import Measure, Series, SeriesSpec
from slo.store import SliStore

DEFAULT_TARGET_S = 0.5
DEFAULT_WINDOWS_S: tuple[float, ...] = (300.0, 3600.0)
SERIES_PREFIX = "health:"  # health series names never collide with SLO ids

SloTarget = Callable[[EndpointKey], float | None]
"""The latency threshold of an SLO covering the endpoint, or None."""


@dataclass(frozen=True, slots=True)
class LatencyTargets:
    """Latency targets in seconds. ``per_route`` is keyed by (service, route)."""

    default_s: float = DEFAULT_TARGET_S
    per_service: Mapping[str, float] = field(default_factory=dict)
    per_route: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = [self.default_s, *self.per_service.values(), *self.per_route.values()]
        for value in values:
            if not value > 0:
                raise ValueError(f"latency target {value!r}: expected a positive number")

    def target(self, key: EndpointKey) -> float:
        found = self.per_route.get((key.service, key.route))
        if found is None:
            found = self.per_service.get(key.service, self.default_s)
        return found

    def thresholds(self) -> set[float]:
        """Every target configured: the histogram bounds must include them."""
        return {self.default_s, *self.per_service.values(), *self.per_route.values()}


@dataclass(frozen=True, slots=True)
class HealthConfig:
    windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S  # the first one is the headline
    targets: LatencyTargets = field(default_factory=LatencyTargets)
    top_error_types: int = 5

    def __post_init__(self) -> None:
        if not self.windows_s or any(w <= 0 for w in self.windows_s):
            raise ValueError("health windows must be positive durations, at least one")


def health_measure(target_s: float) -> Measure:
    """Counts to (requests, available, correct, fast, good) under one latency target."""

    def measure(counts: Counts) -> tuple[int, int, int, int, int]:
        return (
            counts.total,
            counts.total - counts.server_errors,
            counts.total - counts.business_errors,
            counts.within(target_s),
            counts.within(target_s, clean_only=True),
        )

    return measure


@dataclass(slots=True)
class _Tracked:
    target_s: float
    series: Series


class HealthScorer:
    """Health scores of every served endpoint and service, from the store's window sums.

    Thread-safe: the API and the metrics endpoint call it from their own threads.
    """

    def __init__(
        self,
        store: SliStore,
        config: HealthConfig | None = None,
        *,
        slo_target: SloTarget | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config or HealthConfig()
        self._slo_target = slo_target
        self._clock = clock
        self._tracked: dict[EndpointKey, _Tracked] = {}
        self._lock = threading.Lock()

    @property
    def windows_s(self) -> tuple[float, ...]:
        return self._config.windows_s

    def set_slo_target(self, slo_target: SloTarget | None) -> None:
        """SLOs were loaded or edited: targets are resolved again on the next read."""
        self._slo_target = slo_target

    def target(self, key: EndpointKey) -> float:
        if self._slo_target is not None:
            found = self._slo_target(key)
            if found is not None:
                return found
        return self._config.targets.target(key)

    def services(
        self,
        *,
        now: float | None = None,
        windows_s: tuple[float, ...] | None = None,
        error_types: bool = True,
    ) -> list[ServiceHealth]:
        """Every service that served something within the retention, by name."""
        at = self._clock() if now is None else now
        windows = self._windows(windows_s)
        tracked = self._sync()
        types = self._error_types(_served, windows, at) if error_types else None
        endpoints: dict[str, list[EndpointHealth]] = {}
        for key, found in tracked.items():
            endpoints.setdefault(key.service, []).append(
                self._endpoint(key, found, at, windows, types)
            )
        top = self._config.top_error_types
        return [_service(name, found, windows, top) for name, found in sorted(endpoints.items())]

    def service(
        self,
        name: str,
        *,
        now: float | None = None,
        windows_s: tuple[float, ...] | None = None,
        error_types: bool = True,
    ) -> ServiceHealth | None:
        """One service's health, or None when the store has never seen it serve anything."""
        at = self._clock() if now is None else now
        windows = self._windows(windows_s)
        tracked = {key: t for key, t in self._sync().items() if key.service == name}
        if not tracked:
            return None

        def selects(key: EndpointKey) -> bool:
            return key.service == name and _served(key)

        types = self._error_types(selects, windows, at) if error_types else None
        found = [self._endpoint(key, t, at, windows, types) for key, t in tracked.items()]
        return _service(name, found, windows, self._config.top_error_types)

    def _error_types(
        self, selects: Callable[[EndpointKey], bool], windows: tuple[float, ...], now: float
    ) -> list[dict[EndpointKey, tuple[tuple[str, int], ...]]]:
        """Per window, the top error types of every selected endpoint (one store scan each)."""
        top = self._config.top_error_types
        return [self._store.error_types_by_endpoint(selects, w, now, top) for w in windows]

    def _windows(self, windows_s: tuple[float, ...] | None) -> tuple[float, ...]:
        if windows_s is None:
            return self._config.windows_s
        longest = max(self._config.windows_s)
        for window in windows_s:
            if not 0 < window <= longest:
                raise ValueError(f"health windows go up to {longest:g} s, not {window:g} s")
        return windows_s

    def _sync(self) -> dict[EndpointKey, _Tracked]:
        with self._lock:
            return self._sync_locked()

    def _sync_locked(self) -> dict[EndpointKey, _Tracked]:
        """Track every served endpoint under its current target; returns them sorted."""
        longest = max(self._config.windows_s)
        wanted: dict[EndpointKey, float] = {}
        for key in self._store.endpoints():
            if key.direction != SERVER_SIDE:
                continue
            target = self.target(key)
            known = self._tracked.get(key)
            if known is None or known.target_s != target:
                wanted[key] = target
        if wanted:
            specs = [
                SeriesSpec(
                    name=f"{SERIES_PREFIX}{key.service}\x00{key.method}\x00{key.route}",
                    selects=_exactly(key),
                    measure=health_measure(target),
                    columns=5,
                    max_window_s=longest,
                )
                for key, target in wanted.items()
            ]
            made = self._store.track_many(specs)
            for (key, target), series in zip(wanted.items(), made, strict=True):
                self._tracked[key] = _Tracked(target, series)
        return dict(sorted(self._tracked.items()))

    def _endpoint(
        self,
        key: EndpointKey,
        tracked: _Tracked,
        now: float,
        windows: tuple[float, ...],
        error_types: list[dict[EndpointKey, tuple[tuple[str, int], ...]]] | None,
    ) -> EndpointHealth:
        scores = []
        for i, window in enumerate(windows):
            requests, available, correct, fast, good = tracked.series.sums(window, now)
            top = error_types[i].get(key, ()) if error_types is not None else ()
            scores.append(HealthScore(window, requests, available, correct, fast, good, top))
        return EndpointHealth(key, tracked.target_s, tuple(scores))


def _served(key: EndpointKey) -> bool:
    return key.direction == SERVER_SIDE


def _exactly(key: EndpointKey) -> Callable[[EndpointKey], bool]:
    return key.__eq__


def _service(
    name: str, endpoints: list[EndpointHealth], windows: tuple[float, ...], top: int
) -> ServiceHealth:
    totals = []
    for i, window in enumerate(windows):
        total = HealthScore(window, 0, 0, 0, 0, 0)
        for endpoint in endpoints:
            total = total + endpoint.windows[i]
        totals.append(
            HealthScore(
                window,
                total.requests,
                total.available,
                total.correct,
                total.fast,
                total.good,
                merge_error_types(total.top_error_types, limit=top),
            )
        )
    return ServiceHealth(name, tuple(totals), tuple(endpoints))
