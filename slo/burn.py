"""Burn rates, window checks and budgets: pure functions of (good, total) counts.

    error ratio = (total - good) / total
    burn rate   = error ratio / (1 - objective)      1.0 spends the budget exactly over the period
    budget left = 1 - burn rate over the whole period

How the evaluator calls this, once per SLO and tick::

    windows = burn.required_windows(slo)                  # seconds: 300.0, 1800.0, ..., period
    counts = {w: store.good_total(slo, now - w, now) for w in windows}   # (good, total) each
    status = burn.evaluate(slo, counts)                   # model.SloStatus
    for result in status.results:                         # one BurnResult per severity
        if result.tripped and slo.alerting.alert_for(result.severity): ...

A window with no events has no burn (None) and never trips: silence is not an outage. The
low-traffic guard is ``AlertPolicy.min_events``: a pair whose long window saw fewer events
does not trip, however bad its ratio (one failure in three requests is a 33 % error ratio and
a burn of 333 against a 99.9 % objective, but it is not a reason to page anyone). Comparisons
are strict (burn > factor), as in the SRE Workbook's and Sloth's rules.
"""

from __future__ import annotations

from collections.abc import Mapping

from slo.model import (
    BurnResult,
    BurnWindow,
    Severity,
    Slo,
    SloStatus,
    WindowCheck,
)

GoodTotal = tuple[int, int]
"""Events in one window: (good, total), with 0 <= good <= total."""


def error_ratio(good: int, total: int) -> float | None:
    """The share of bad events, or None when there were none at all."""
    if total <= 0:
        return None
    bad = min(max(total - good, 0), total)
    return bad / total


def burn_rate(good: int, total: int, objective: float) -> float | None:
    """How many times faster than sustainable the budget burns; None without events."""
    ratio = error_ratio(good, total)
    return None if ratio is None else ratio / (1.0 - objective)


def check_window(
    window: BurnWindow, long: GoodTotal, short: GoodTotal, objective: float, min_events: int = 0
) -> WindowCheck:
    """One window pair against the counts of its long and short windows."""
    return WindowCheck(
        window=window,
        long_burn=burn_rate(*long, objective),
        short_burn=burn_rate(*short, objective),
        long_total=long[1],
        short_total=short[1],
        enough_events=long[1] >= min_events,
    )


def budget_remaining(good: int, total: int, objective: float) -> float:
    """The share of the period's error budget left (1.0 untouched; negative when overspent)."""
    burn = burn_rate(good, total, objective)
    return 1.0 if burn is None else 1.0 - burn


def time_to_exhaustion(remaining: float, burn: float | None, period_s: float) -> float | None:
    """Seconds until the budget is gone at a steady ``burn``; None when nothing burns.

    A burn of 1.0 spends the whole budget in one period, so ``remaining`` lasts
    remaining * period / burn.
    """
    if remaining <= 0:
        return 0.0
    if burn is None or burn <= 0:
        return None
    return remaining * period_s / burn


def required_windows(slo: Slo) -> tuple[float, ...]:
    """Every window length (seconds) ``evaluate`` needs counts for, shortest first."""
    lengths = {slo.period_s}
    for window in slo.alerting.windows:
        lengths.update((window.long_window_s, window.short_window_s))
    return tuple(sorted(lengths))


def current_burn_window(slo: Slo) -> float:
    """The window whose burn ``SloStatus.current_burn`` reports: the shortest long window."""
    longs = [w.long_window_s for w in slo.alerting.windows]
    return min(longs) if longs else slo.period_s


def evaluate(slo: Slo, counts: Mapping[float, GoodTotal]) -> SloStatus:
    """The SLO's status from (good, total) per window length; see the module docstring.

    Raises ``KeyError`` naming the window when ``counts`` lacks one of ``required_windows``.
    """

    def get(length: float) -> GoodTotal:
        if length not in counts:
            raise KeyError(f"no counts for the {length:g}s window of SLO {slo.id}")
        return counts[length]

    results = []
    for severity in Severity:
        checks = tuple(
            check_window(
                window,
                get(window.long_window_s),
                get(window.short_window_s),
                slo.objective,
                slo.alerting.min_events,
            )
            for window in slo.alerting.windows_for(severity)
        )
        if checks:
            results.append(BurnResult(severity=severity, checks=checks))
    period_good, period_total = get(slo.period_s)
    remaining = budget_remaining(period_good, period_total, slo.objective)
    ratio = error_ratio(period_good, period_total)
    current = burn_rate(*get(current_burn_window(slo)), slo.objective)
    return SloStatus(
        slo_id=slo.id,
        fingerprint=slo.fingerprint,
        sli=None if ratio is None else 1.0 - ratio,
        budget_remaining=remaining,
        current_burn=current,
        time_to_exhaustion_s=time_to_exhaustion(remaining, current, slo.period_s),
        results=tuple(results),
    )
