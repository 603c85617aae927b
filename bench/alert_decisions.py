"""How long the alert decisions take per evaluation tick: state machine, then dispatcher.

A service evaluates every SLO at both severities each tick, steps every alert and calls
``dispatch`` once. This simulates an hour of 30-second ticks for fleets of SLOs whose conditions
flip at random (a pessimistic load: real burns change far less often), then prints a table and
writes bench/results/alert_decisions.json.

    /work/main/.venv/bin/python -m bench.alert_decisions [--slos 100 1000] [--ticks 120]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from alerts.grouping import GroupState, dispatch
from alerts.model import Severity, labels_of
from alerts.routing import RootRouteConfig, build_route_tree
from alerts.state import DEFAULT_TIMINGS, AlertRecord, BurnEvaluation, step
from bench.results import write_results

TREE = {
    "receiver": "default",
    "group_by": ["slo"],
    "routes": [
        {"matchers": ['severity="page"', 'team=~"team-[0-4]"'], "receiver": "pager-a"},
        {"matchers": ['severity="page"'], "receiver": "pager-b", "continue": True},
        {"matchers": ['team=~"team-[5-9]"'], "receiver": "tickets", "group_by": ["..."]},
    ],
}


def simulate(slos: int, ticks: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    tree = build_route_tree(
        RootRouteConfig.model_validate(TREE), ["default", "pager-a", "pager-b", "tickets"]
    )
    start = datetime(2024, 5, 1, tzinfo=UTC)
    records: dict[tuple[int, Severity], AlertRecord] = {}
    groups: tuple[GroupState, ...] = ()
    burning = {n: rng.random() < 0.1 for n in range(slos)}
    step_s = dispatch_s = 0.0
    notifications = 0
    for tick in range(ticks):
        now = start + tick * timedelta(seconds=30)
        for n in range(slos):
            if rng.random() < 0.05:
                burning[n] = not burning[n]
        began = time.perf_counter()
        for n in range(slos):
            for severity in Severity:
                evaluation = BurnEvaluation(
                    slo=f"slo-{n}",
                    severity=severity,
                    condition_holds=burning[n],
                    service=f"svc-{n % 50}",
                    objective=0.999,
                    period_s=30 * 86400,
                    burns=(),
                    budget_remaining=0.5,
                    labels=labels_of(team=f"team-{n % 10}"),
                )
                key = (n, severity)
                record = step(records.get(key), evaluation, now, DEFAULT_TIMINGS[severity]).record
                if record is None:
                    records.pop(key, None)
                else:
                    records[key] = record
        stepped = time.perf_counter()
        alerts = [r.alert for r in records.values()]
        result = dispatch(groups, alerts, tree, now)
        groups = result.groups
        notifications += len(result.notifications)
        dispatch_s += time.perf_counter() - stepped
        step_s += stepped - began
    return {
        "slos": slos,
        "alerts_per_tick": 2 * slos,
        "ticks": ticks,
        "step_ms_per_tick": 1000 * step_s / ticks,
        "step_us_per_alert": 1e6 * step_s / (ticks * 2 * slos),
        "dispatch_ms_per_tick": 1000 * dispatch_s / ticks,
        "groups_at_end": len(groups),
        "notifications": notifications,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--ticks", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = [simulate(n, args.ticks, args.seed) for n in args.slos]
    header = f"{'SLOs':>6} {'alerts':>7} {'step ms/tick':>13} {'µs/alert':>9} "
    header += f"{'dispatch ms/tick':>17} {'groups':>7} {'sent':>6}"
    print(header)
    for row in rows:
        print(
            f"{row['slos']:>6} {row['alerts_per_tick']:>7} {row['step_ms_per_tick']:>13.2f} "
            f"{row['step_us_per_alert']:>9.1f} {row['dispatch_ms_per_tick']:>17.2f} "
            f"{row['groups_at_end']:>7} {row['notifications']:>6}"
        )
    write_results("alert_decisions", {"rows": rows})


if __name__ == "__main__":
    main()
