"""One evaluation tick: every SLO's windows from the store, its status, and its alert verdicts.

The evaluator tracks each SLO in the store once (``SliStore.track``), again when its
fingerprint changes (an edited objective, threshold or selector is re-evaluated over the stored
history), and forgets removed ones. A tick then costs one in-memory window sum per SLO and
window, never a database query: 1,000 SLOs with four window pairs fit in the 200 ms budget
(bench/evaluator.py).

SLOs whose SLI is a raw query (imported from Sloth or OpenSLO with PromQL) cannot be measured
from the probe's counts; they are listed as ``unevaluated`` with the reason, and their rules are
for Prometheus (``bytewatch rules``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slo import burn
from slo.model import EndpointSli, Severity, Slo, SloStatus
from slo.series import Series, SeriesSpec
from slo.store import SliStore, endpoint_selector, sli_measure

TOP_ERROR_TYPES = 5


@dataclass(frozen=True, slots=True)
class WindowSli:
    """One window of an SLO at one tick."""

    window_s: float
    good: int
    total: int

    @property
    def sli(self) -> float | None:
        return None if self.total == 0 else self.good / self.total


@dataclass(frozen=True, slots=True)
class SloEvaluation:
    """An SLO at one instant: its status, its windows, and whether each severity trips."""

    slo: Slo
    at: float
    status: SloStatus
    windows: tuple[WindowSli, ...]

    def tripped(self, severity: Severity) -> bool:
        result = self.status.result(severity)
        return result is not None and result.tripped


@dataclass(frozen=True, slots=True)
class Unevaluated:
    slo: Slo
    reason: str


def series_spec(slo: Slo) -> SeriesSpec | None:
    """What the store must track for ``slo``; None when its SLI is not the probe's to measure."""
    sli = slo.sli
    if not isinstance(sli, EndpointSli):
        return None
    selector = sli.selector
    return SeriesSpec(
        name=slo.id,
        selects=endpoint_selector(
            selector.service,
            route=selector.route,
            route_regex=selector.route_regex,
            method=selector.method,
        ),
        measure=sli_measure(sli.kind.value, sli.latency_threshold_s),
        columns=2,
        max_window_s=max(burn.required_windows(slo)),
    )


class Evaluator:
    """Not thread-safe: one scheduler job calls ``set_slos`` and ``tick``."""

    def __init__(self, store: SliStore) -> None:
        self._store = store
        self._slos: dict[str, Slo] = {}
        self._series: dict[str, Series] = {}
        self._unevaluated: dict[str, Unevaluated] = {}

    @property
    def slos(self) -> tuple[Slo, ...]:
        return tuple(self._slos.values())

    @property
    def unevaluated(self) -> tuple[Unevaluated, ...]:
        return tuple(self._unevaluated.values())

    def set_slos(self, slos: Sequence[Slo]) -> None:
        """Track new and edited SLOs (rebuilding their history), forget removed ones."""
        wanted = {slo.id: slo for slo in slos}
        for gone in self._slos.keys() - wanted.keys():
            if gone in self._series:
                self._store.untrack(gone)
                del self._series[gone]
        self._unevaluated = {}
        changed: list[tuple[Slo, SeriesSpec]] = []
        for slo in wanted.values():
            spec = series_spec(slo)
            if spec is None:
                self._unevaluated[slo.id] = Unevaluated(
                    slo, "its SLI is a query for Prometheus; use `bytewatch rules`"
                )
                if slo.id in self._series:
                    self._store.untrack(slo.id)
                    del self._series[slo.id]
                continue
            previous = self._slos.get(slo.id)
            if (
                previous is None
                or previous.fingerprint != slo.fingerprint
                or (slo.id not in self._series)
            ):
                changed.append((slo, spec))
        if changed:
            tracked = self._store.track_many([spec for _, spec in changed])
            for (slo, _), series in zip(changed, tracked, strict=True):
                self._series[slo.id] = series
        self._slos = {k: v for k, v in wanted.items() if k not in self._unevaluated}

    def tick(self, now: float) -> list[SloEvaluation]:
        """Evaluate every tracked SLO at ``now`` (seconds since the epoch)."""
        out: list[SloEvaluation] = []
        for slo_id, slo in self._slos.items():
            series = self._series[slo_id]
            counts: Mapping[float, tuple[int, int]] = {
                window: series.good_total(window, now) for window in burn.required_windows(slo)
            }
            status = burn.evaluate(slo, counts)
            windows = tuple(WindowSli(w, g, t) for w, (g, t) in counts.items())
            out.append(SloEvaluation(slo, now, status, windows))
        return out

    def top_error_types(self, slo: Slo, window_s: float, now: float) -> tuple[tuple[str, int], ...]:
        """The most frequent business-error types of the SLO's endpoints (a database read:
        only for alerts about to be sent, not on every tick)."""
        spec = series_spec(slo)
        if spec is None:
            return ()
        return self._store.error_types(spec.selects, window_s, now, TOP_ERROR_TYPES)
