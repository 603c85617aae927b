"""``bytewatch backtest``: recorded exchanges through the SLOs and alerts on a simulated clock.

The events are generated into a temporary file: six hours of good traffic to payments at one
request a second (enough history for the page's 6h/30m pair), then a five minute silent-200
outage, then an hour of recovery. With requests at half seconds and ticks every 10 s, the
1h/5m page pair trips once 52 of the 3,600 requests in its hour failed: at the first tick at
least 52 s after the outage started.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from probe.source import ReplaySource
from slo.app import BacktestTransition, backtest, iter_replay
from slo.cli import main
from slo.spec import load_paths
from tests.conftest import ROOT
from tests.slo.app_scenario import (
    CREATE_PAYMENT,
    DATA,
    T0,
    Outage,
    traffic,
    write_jsonl,
)

SLOS = DATA / "slos.yaml"
HISTORY_S = 6 * 3600
OUTAGE = Outage(T0 + 8, T0 + 308)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def events(path: Path, outage: Outage = OUTAGE, *, recovery_s: float = 3600) -> int:
    end = outage.end + recovery_s
    return write_jsonl(path, traffic(T0 - HISTORY_S, end, rate=1, outages=[outage]))


def test_a_backtest_prints_each_transition_as_a_json_line_at_the_times_the_math_gives(
    tmp_path: Path,
) -> None:
    written = events(tmp_path / "events.jsonl")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "slo.cli",
            "backtest",
            "--events",
            str(tmp_path / "events.jsonl"),
            "--slos",
            str(SLOS),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["time"], x["slo"], x["severity"], x["previous"], x["state"]) for x in lines] == [
        # 3d/6h sees only the six hours recorded: 22 errors in 21,630 requests is over 0.1 %.
        (rfc3339(T0 + 30), CREATE_PAYMENT, "ticket", "inactive", "firing"),
        # 52 errors in the hour's 3,600 requests: a burn of 14.44, over 14.4.
        (rfc3339(T0 + 60), CREATE_PAYMENT, "page", "inactive", "firing"),
        # The 6h/30m pair burns while more than 10.8 of the 1,800 requests of its 30 minutes
        # failed, the last time at T0 + 2090; the page keeps firing 10 minutes after that.
        (rfc3339(T0 + 2690), CREATE_PAYMENT, "page", "firing", "resolved"),
    ]
    page = lines[1]["burn_rates"]
    assert page["1h/5m"] == {"long": 14.444, "short": 173.333, "factor": 14.4}
    assert page["6h/30m"]["factor"] == 6.0
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith(
        f"backtest: {written} exchanges, 2551 ticks, 3 transitions, 1 pages, 1 tickets; "
        "budget left: payments-create-payment "
    )


@pytest.mark.parametrize(
    ("offset_s", "pages_at"),
    [
        pytest.param(0, 60, id="outage on a tick: 50 s of errors is not enough, 60 s is"),
        pytest.param(3, 60, id="3 s after a tick: the first tick 52 s on is 57 s in"),
        pytest.param(8, 60, id="8 s after a tick: the tick exactly 52 s in"),
        pytest.param(9, 70, id="9 s after a tick: 51 s in is too early, 61 s it is"),
    ],
)
def test_the_page_fires_at_the_first_tick_at_least_52_seconds_into_the_outage(
    tmp_path: Path, offset_s: int, pages_at: int
) -> None:
    outage = Outage(T0 + offset_s, T0 + offset_s + 300)
    events(tmp_path / "events.jsonl", outage, recovery_s=0)
    fired: list[float] = []

    def on_transition(transition: BacktestTransition) -> None:
        if (transition.severity, transition.state) == ("page", "firing"):
            fired.append(transition.time)

    source = ReplaySource.open(tmp_path / "events.jsonl")
    try:
        slos = load_paths([SLOS]).slos
        backtest(
            iter_replay(source), slos, db_path=tmp_path / "sli.db", on_transition=on_transition
        )
    finally:
        source.close()
    assert fired == [T0 + pages_at]
    assert fired[0] - outage.start >= 52


GOOD = json.dumps(
    {
        "ts": rfc3339(T0),
        "method": "POST",
        "path": "/payments",
        "service": "payments",
        "status": 200,
        "latency_ms": 4,
    }
)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        pytest.param("{not json", "not JSON (Expecting property name", id="not JSON"),
        pytest.param(
            GOOD.replace('"status": 200', '"status": "200"'),
            "status: expected a number, got str",
            id="a status in quotes",
        ),
        pytest.param(
            GOOD.replace(f'"ts": "{rfc3339(T0)}"', '"ts": "yesterday"'),
            "ts: not an RFC 3339 timestamp",
            id="a timestamp that is not one",
        ),
        pytest.param('["a", "list"]', "expected a JSON object", id="a JSON list"),
    ],
)
def test_a_malformed_event_line_is_named_by_file_and_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_line: str, message: str
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(f"{GOOD}\n\n{bad_line}\n{GOOD}\n", encoding="utf-8")
    code = main(["backtest", "--events", str(path), "--slos", str(SLOS)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"bytewatch backtest: {path}:3: {message}")
    assert "Traceback" not in err


def test_a_missing_events_file_or_a_broken_slo_file_exits_2_saying_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["backtest", "--events", str(missing), "--slos", str(SLOS)]) == 2
    assert capsys.readouterr().err == (
        f"bytewatch backtest: {missing}: No such file or directory\n"
    )
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(GOOD + "\n", encoding="utf-8")
    broken = DATA / "slos-broken.yaml"
    assert main(["backtest", "--events", str(events_file), "--slos", str(broken)]) == 2
    problems = capsys.readouterr().err.splitlines()
    assert [re.sub(r":\d+:\d+:.*", "", p) for p in problems] == [str(broken), str(broken)]
    assert "selector.rout: unknown field" in problems[0]
