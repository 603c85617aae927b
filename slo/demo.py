"""``bytewatch demo``: the first five minutes of a new user, in one command.

It starts two small APIs that know nothing of bytewatch (``shop`` in Node, ``payments`` in
Python), a local webhook receiver that prints alerts, bytewatch itself on the embedded SQLite
store with the live probe and ``deploy/demo``'s SLOs, and a traffic generator that makes
payments fail with ``200 OK`` bodies after about a minute. The terminal shows each endpoint's
health score, each SLO's burn and the notifications as they arrive: the score drops, the page
fires within a minute, and resolves after the incident heals.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, TextIO

from slo.app import Service, TickReport, load_slos
from slo.settings import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "deploy" / "demo"
SHOP_PORT, PAYMENTS_PORT, PRINTER_PORT = 8081, 8082, 9099
READY_TIMEOUT_S = 20.0


class DemoError(Exception):
    """The demo cannot start; the message says what to do."""


class Notifications:
    """What the webhook printer has printed, one summary line per notification."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: deque[str] = deque(maxlen=8)
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if line.startswith("=== "):
                self.lines.append(line[4:].rstrip())
            elif line.strip().startswith(("alert", "slo", "summary")) and self.lines:
                self.lines.append("    " + line.strip())


@contextmanager
def process(argv: list[str], name: str, ready: str, log: Path) -> Iterator[subprocess.Popen[str]]:
    """Start a helper process, wait for its ``ready`` line, and stop it at the end."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
        cwd=DEMO_DIR,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if ready in line:
            break
        if not line and proc.poll() is not None:
            raise DemoError(f"{name} exited ({proc.returncode}); see {log}")
    else:
        proc.kill()
        raise DemoError(f"{name} did not start within {READY_TIMEOUT_S:g}s; see {log}")
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def demo_config(state_dir: Path) -> Config:
    environ = dict(os.environ, BYTEWATCH_STORE__PATH=str(state_dir / "bytewatch.db"))
    return load_config(DEMO_DIR / "bytewatch.yaml", environ=environ)


def percent(value: object) -> str:
    if not isinstance(value, float):
        return "     - "
    return f"{value * 100:6.2f}%" if value >= 0 else "  spent"


def render(
    service: Service,
    notifications: Notifications,
    started: float,
    incident_at: float,
    heal_at: float,
) -> str:
    now = time.time()
    if now < incident_at:
        phase = f"incident in {incident_at - now:.0f}s"
    elif now < heal_at:
        phase = f"INCIDENT: payments answer 200 with errors (heals in {heal_at - now:.0f}s)"
    else:
        phase = "incident healed: watch the page resolve"
    lines = [
        f"bytewatch demo  {time.strftime('%H:%M:%S')}  running {now - started:.0f}s  |  {phase}",
        "",
        f"{'SERVICE':<10} {'METHOD':<6} {'ROUTE':<22} {'REQ 1m':>7} {'HEALTH':>8} "
        f"{'AVAIL':>8} {'CORRECT':>8} {'LATENCY':>8}  TOP BUSINESS ERROR",
    ]
    window = service.health.windows_s[0]
    for svc in service.health.services(windows_s=(window,)):
        for endpoint in svc.endpoints:
            score = endpoint.windows[0]
            top = score.top_error_types[0][0] if score.top_error_types else ""
            lines.append(
                f"{endpoint.key.service:<10} {endpoint.key.method:<6} "
                f"{endpoint.key.route[:22]:<22} "
                f"{score.requests:>7} {percent(score.score)} {percent(score.availability)} "
                f"{percent(score.correctness)} {percent(score.latency)}  {top}"
            )
    lines += ["", f"{'SLO':<34} {'OBJECTIVE':>9} {'BURN (page pair)':>18} {'BUDGET':>8}  STATUS"]
    firing = {(str(a["slo"]), str(a["severity"])): str(a["state"]) for a in service.alerts_json()}
    for slo in service.slos_json():
        burns = ""
        for check in slo.get("checks") or []:  # type: ignore[attr-defined]
            if check["severity"] == "page":
                long_burn = check["long_burn"] or 0.0
                short_burn = check["short_burn"] or 0.0
                burns = f"{long_burn:6.1f}/{short_burn:6.1f}x>{check['factor']:g}"
                break
        states = [
            f"{sev.upper()} {state}" for (sid, sev), state in firing.items() if sid == slo["id"]
        ]
        status = ", ".join(states) or str(slo.get("status", ""))
        lines.append(
            f"{str(slo['id'])[:34]:<34} {percent(slo['objective'])}  {burns:>18} "
            f"{percent(slo.get('budget_remaining'))}  {status}"
        )
    lines += ["", "NOTIFICATIONS (webhook receiver on 127.0.0.1:9099)"]
    lines += list(notifications.lines) or ["  none yet"]
    return "\n".join(lines)


def start_apis(stack: ExitStack, node: str, python: str, logs: Path) -> subprocess.Popen[str]:
    """The two APIs and the webhook printer; returns the printer, whose output is shown."""
    stack.enter_context(
        process([node, "shop_api.js", str(SHOP_PORT)], "shop API", "listening", logs)
    )
    stack.enter_context(
        process([python, "payments_api.py", str(PAYMENTS_PORT)], "payments API", "listening", logs)
    )
    return stack.enter_context(
        process(
            [python, "-u", "webhook_printer.py", str(PRINTER_PORT)],
            "webhook receiver",
            "listening",
            logs,
        )
    )


def run_demo(args: Any, out: TextIO = sys.stdout) -> int:
    from probe.doctor import run_checks

    problems = run_checks(try_attach=False)
    if problems:
        for problem in problems:
            print(f"bytewatch demo: {problem}", file=sys.stderr)
        return 1
    node = shutil.which("node")
    if node is None:
        print(
            "bytewatch demo: needs Node.js for the shop API (apt-get install nodejs)",
            file=sys.stderr,
        )
        return 1
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    state = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="bytewatch-"))
    state.mkdir(parents=True, exist_ok=True)
    logs = state / "demo.log"
    with ExitStack() as stack:
        try:
            stack.enter_context(
                process([node, "shop_api.js", str(SHOP_PORT)], "shop API", "listening", logs)
            )
            stack.enter_context(
                process(
                    [python, "payments_api.py", str(PAYMENTS_PORT)],
                    "payments API",
                    "listening",
                    logs,
                )
            )
            printer = stack.enter_context(
                process(
                    [python, "-u", "webhook_printer.py", str(PRINTER_PORT)],
                    "webhook receiver",
                    "listening",
                    logs,
                )
            )
            config = demo_config(state)
            slos = load_slos(config)
        except DemoError as exc:
            print(f"bytewatch demo: {exc}", file=sys.stderr)
            return 1
        assert printer.stdout is not None
        notifications = Notifications(printer.stdout)
        ticks: deque[TickReport] = deque(maxlen=1)
        service = Service(config, slos, on_tick=ticks.append)
        runner = threading.Thread(target=service.run, name="bytewatch", daemon=True)
        runner.start()
        started = time.time()
        traffic = stack.enter_context(
            process(
                [
                    python,
                    "-u",
                    "traffic.py",
                    "--shop",
                    f"127.0.0.1:{SHOP_PORT}",
                    "--payments",
                    f"127.0.0.1:{PAYMENTS_PORT}",
                    "--incident-after",
                    str(args.incident_after),
                    "--incident-for",
                    str(args.incident_for),
                ],
                "traffic generator",
                "traffic:",
                logs,
            )
        )
        del traffic
        incident_at = started + args.incident_after
        heal_at = incident_at + args.incident_for
        print(
            f"bytewatch demo: state and logs in {state}; API on http://127.0.0.1:9477 "
            "(try /health-score, /api/v1/slos, /metrics); Ctrl-C to stop",
            file=sys.stderr,
        )
        try:
            show(
                lambda: render(service, notifications, started, incident_at, heal_at),
                out,
                until=started + args.duration if args.duration else None,
            )
        except KeyboardInterrupt:
            pass
        finally:
            service.stop()
            runner.join(timeout=30)
    return 0


def show(view: Callable[[], str], out: TextIO, until: float | None) -> None:
    """Redraw the view every 2 s on a terminal; elsewhere print it every 15 s."""
    tty = out.isatty()
    while until is None or time.time() < until:
        text = view()
        out.write(("\x1b[H\x1b[2J" + text + "\n") if tty else (text + "\n\n"))
        out.flush()
        time.sleep(2.0 if tty else 15.0)
