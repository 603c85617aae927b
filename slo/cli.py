"""The ``bytewatch`` command.

Each subcommand is a small function that parses nothing itself: ``build_parser`` declares the
arguments, the handler calls into the package that owns the work and returns an exit code.
Handlers import lazily so that ``bytewatch validate`` does not pay for BCC or FastAPI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

Handler = Callable[[argparse.Namespace], int]


def _doctor(args: argparse.Namespace) -> int:
    from probe.doctor import run_checks

    problems = run_checks(try_attach=not args.quick)
    for line in problems:
        print(f"bytewatch doctor: {line}", file=sys.stderr)
    if not problems:
        print("bytewatch doctor: eBPF is ready (BTF, tracefs, kernel headers, BCC, attach test)")
    from probe import compiled

    print(f"bytewatch doctor: {compiled.describe()}")
    return 1 if problems else 0


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check that this machine can run the eBPF probe")
    p.add_argument("--quick", action="store_true", help="skip the trial compile and attach")
    p.set_defaults(handler=_doctor)


# --- probe commands: trace -------------------------------------------------------------------


def _trace(args: argparse.Namespace) -> int:
    from probe.routes import Router, RouteRules, load_route_rules
    from probe.semantics import Classifier, SemanticRules, load_semantic_rules
    from probe.services import ServiceMap, load_service_map
    from probe.trace import run_trace
    from slo.errors import InvalidSpec

    try:
        services = _load_config_section(args.config, "services", load_service_map)
        routes = _load_config_section(args.config, "routes", load_route_rules)
        semantics = _load_config_section(args.config, "semantics", load_semantic_rules)
    except InvalidSpec as exc:
        print(f"bytewatch trace: {exc}", file=sys.stderr)
        return 2
    assert isinstance(services, ServiceMap)
    assert isinstance(routes, RouteRules)
    assert isinstance(semantics, SemanticRules)
    return run_trace(args, services=services, router=Router(routes), judge=Classifier(semantics))


def _add_trace(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from probe.trace import add_trace_arguments

    p = sub.add_parser("trace", help="print HTTP exchanges live, like tcplife for HTTP")
    add_trace_arguments(p)
    p.set_defaults(handler=_trace)


# --- probe commands: routes, classify (issue 3) ---------------------------------------------


def _load_config_section(path: str | None, key: str, load: Callable[[object], object]) -> object:
    """``load`` applied to the ``key:`` section of the YAML config file at ``path``.

    Other sections are ignored. Raises ``InvalidSpec``; a field error from ``load`` gets the file,
    line and column of its field.
    """
    from probe.errors import ConfigFieldError
    from slo.errors import InvalidSpec
    from slo.yamlpos import load_file

    if path is None:
        return load(None)
    documents = load_file(path)
    if len(documents) > 1:
        raise InvalidSpec([documents[1].problem((), "a config file holds one YAML document")])
    data = documents[0].data if documents else None
    if data is not None and not isinstance(data, dict):
        message = "expected a mapping of sections such as routes: and semantics:"
        raise InvalidSpec([documents[0].problem((), message)])
    try:
        return load(None if data is None else data.get(key))
    except ConfigFieldError as exc:
        raise InvalidSpec([documents[0].problem(exc.location, exc.reason)]) from exc


def _routes(args: argparse.Namespace) -> int:
    from probe.exchanges import path_of
    from probe.routes import Router, RouteRules, load_route_rules
    from slo.errors import InvalidSpec

    try:
        rules = _load_config_section(args.config, "routes", load_route_rules)
    except InvalidSpec as exc:
        print(f"bytewatch routes: {exc}", file=sys.stderr)
        return 2
    assert isinstance(rules, RouteRules)
    router = Router(rules)
    paths = args.paths or (line.strip() for line in sys.stdin)
    for path in paths:
        if path:
            print(f"{path}\t{router.route(args.service, path_of(path))}")
    for service, count in router.overflow_counts().items():
        print(
            f"bytewatch routes: {count} path(s) of {service!r} went to the overflow route",
            file=sys.stderr,
        )
    return 0


def _add_routes(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "routes",
        help="show the route template of each path (paths from stdin when none are given)",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="raw request paths")
    p.add_argument("--config", metavar="FILE", help="bytewatch config file (its routes: section)")
    p.add_argument("--service", default="", metavar="NAME", help="apply this service's patterns")
    p.set_defaults(handler=_routes)


def _classify(args: argparse.Namespace) -> int:
    import json

    from probe.model import ResponseView
    from probe.semantics import Classifier, SemanticRules, load_semantic_rules
    from slo.errors import InvalidSpec

    try:
        rules = _load_config_section(args.config, "semantics", load_semantic_rules)
    except InvalidSpec as exc:
        print(f"bytewatch classify: {exc}", file=sys.stderr)
        return 2
    assert isinstance(rules, SemanticRules)
    classifier = Classifier(rules)
    try:
        if args.file == "-":
            body = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as handle:
                body = handle.read()
    except OSError as exc:
        print(f"bytewatch classify: {args.file}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    headers = [("content-type", args.content_type)] if args.content_type else []
    if args.content_encoding:
        headers.append(("content-encoding", args.content_encoding))
    view = ResponseView(
        service=args.service,
        route=args.route,
        method=args.method,
        status=args.status,
        headers=tuple(headers),
        body=body,
    )
    verdict = classifier.classify(view)
    result = {
        "business_error": verdict.business_error,
        "error_type": verdict.error_type,
        "rule": verdict.rule,
    }
    print(json.dumps(result))
    return 0


def _add_classify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "classify",
        help="say whether a response body reports a business error (one JSON line)",
    )
    p.add_argument("file", nargs="?", default="-", metavar="FILE", help="the body; - for stdin")
    p.add_argument("--content-type", metavar="T", help="the Content-Type header")
    p.add_argument("--content-encoding", metavar="E", help="the Content-Encoding header")
    p.add_argument("--config", metavar="FILE", help="bytewatch config file (its semantics: rules)")
    p.add_argument("--service", default="", metavar="S", help="the service, for user rules")
    p.add_argument("--route", default="", metavar="R", help="the route, for user rules")
    p.add_argument("--method", default="GET", metavar="M", help="the method, for user rules")
    p.add_argument("--status", type=int, default=200, metavar="N", help="the status (default 200)")
    p.set_defaults(handler=_classify)


# --- slo commands: validate, rules (issue 4) -------------------------------------------------


def _slo_options(args: argparse.Namespace) -> object:
    """``spec.LoadOptions`` from ``--default-period`` and ``--windows``; raises InvalidSpec."""
    from slo.spec import LoadOptions, load_catalog
    from slo.windows import parse_duration

    try:
        period_s = parse_duration(args.default_period)
    except ValueError as exc:
        raise SystemExit(f"bytewatch {args.command}: --default-period: {exc}") from exc
    catalogs = tuple(load_catalog(path) for path in args.windows)
    return LoadOptions(default_period_s=period_s, catalogs=catalogs)


def _validate(args: argparse.Namespace) -> int:
    from slo.errors import InvalidSpec
    from slo.spec import LoadOptions, load_paths

    try:
        options = _slo_options(args)
        assert isinstance(options, LoadOptions)
        loaded = load_paths(args.files, options)
    except InvalidSpec as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"bytewatch validate: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    slos, services = len(loaded.slos), len(loaded.services)
    print(
        f"bytewatch validate: {loaded.files} file{'s' if loaded.files != 1 else ''} ok: "
        f"{slos} SLO{'s' if slos != 1 else ''} for {services} service{'s' if services != 1 else ''}"
    )
    return 0


def _rules(args: argparse.Namespace) -> int:
    from slo.errors import InvalidSpec, RulesUnsupported
    from slo.rules import render_rules
    from slo.spec import LoadOptions, load_paths

    try:
        options = _slo_options(args)
        assert isinstance(options, LoadOptions)
        loaded = load_paths(args.files, options)
        text = render_rules(loaded.slos)
    except InvalidSpec as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except RulesUnsupported as exc:
        print(f"bytewatch rules: {exc}", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    return 0


def _add_slo_loading_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="SLO files (bytewatch/v1, OpenSLO v1, Sloth) or directories of them",
    )
    p.add_argument(
        "--default-period",
        default="30d",
        metavar="DURATION",
        help="period of Sloth and OpenSLO SLOs that name none (default: 30d)",
    )
    p.add_argument(
        "--windows",
        action="append",
        default=[],
        metavar="FILE",
        help="a Sloth AlertWindows catalog replacing the default windows for its "
        "period (repeatable)",
    )


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check SLO files and report every problem")
    _add_slo_loading_arguments(p)
    p.set_defaults(handler=_validate)


def _add_rules(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rules", help="write Prometheus recording and alerting rules for SLOs")
    _add_slo_loading_arguments(p)
    p.add_argument(
        "-o",
        "--output",
        default="-",
        metavar="FILE",
        help="where to write the rules (default: standard output)",
    )
    p.set_defaults(handler=_rules)


# --- service commands: run, backtest, config (issue 6) ---------------------------------------


if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="the config file (default: $BYTEWATCH_CONFIG, /etc/bytewatch/bytewatch.yaml)",
    )
    p.add_argument(
        "--secrets-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="secrets directory (default: $BYTEWATCH_SECRETS_DIR)",
    )


def _config_and_slos(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """Load and validate everything; print every problem and return None when anything is
    wrong (the caller exits 2)."""
    import os

    from slo.app import load_slos
    from slo.errors import InvalidSpec
    from slo.settings import ConfigError, config_path_from, load_config

    path = config_path_from(args.config, os.environ)
    secrets = args.secrets_dir or (
        Path(os.environ["BYTEWATCH_SECRETS_DIR"])
        if os.environ.get("BYTEWATCH_SECRETS_DIR")
        else None
    )
    try:
        config = load_config(path, secrets_dir=secrets)
        slos = load_slos(config)
    except (ConfigError, InvalidSpec) as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return None
    return config, slos


def _run(args: argparse.Namespace) -> int:
    from probe.doctor import run_checks
    from probe.errors import ProbeUnavailable
    from slo.app import Service, install_signal_handlers
    from slo.logs import setup_logging

    loaded = _config_and_slos(args)
    if loaded is None:
        return 2
    config, slos = loaded
    settings = config.settings
    setup_logging(args.log_format or settings.log.format, settings.log.level)
    import logging

    log = logging.getLogger("bytewatch")
    if settings.probe.source == "live":
        problems = run_checks(try_attach=False)
        if problems:
            for problem in problems:
                print(f"bytewatch run: {problem}", file=sys.stderr)
            return 1
    try:
        service = Service(config, slos)
    except ProbeUnavailable as exc:
        print(f"bytewatch run: {exc}", file=sys.stderr)
        return 1
    install_signal_handlers(service, lambda: _reload(args))
    from probe import compiled

    log.info(
        "bytewatch running: %d SLOs, %d receivers, API on http://%s; %s",
        len(slos.slos),
        len(config.receivers.names),
        settings.api.listen,
        compiled.describe(),
        extra={"event": "start"},
    )
    service.run(serve_api=not args.no_api)
    log.info("bytewatch stopped", extra={"event": "stopped"})
    return 0


def _reload(args: argparse.Namespace) -> tuple[Any, Any]:
    loaded = _config_and_slos(args)
    if loaded is None:
        raise ValueError("the configuration or an SLO file has problems (printed above)")
    return loaded


def _add_run(sub: Sub) -> None:
    p = sub.add_parser("run", help="run bytewatch: probe, SLOs, alerts and the API in one process")
    _add_config_arguments(p)
    p.add_argument("--log-format", choices=("auto", "text", "json"), default=None)
    p.add_argument("--no-api", action="store_true", help="do not serve the HTTP API")
    p.set_defaults(handler=_run)


def _config_check(args: argparse.Namespace) -> int:
    loaded = _config_and_slos(args)
    if loaded is None:
        return 2
    config, slos = loaded
    where = config.file or "built-in defaults"
    print(
        f"{where}: ok: {len(slos.slos)} SLOs from {slos.files} files, "
        f"{len(config.receivers.names)} receivers, API on {config.settings.api.listen}, "
        f"store {config.settings.store.path}"
    )
    return 0


def _add_config(sub: Sub) -> None:
    p = sub.add_parser("config", help="work with the configuration file")
    commands = p.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="explain every problem in a config file and its SLOs")
    check.add_argument("file", type=Path, nargs="?", default=None, metavar="FILE")
    check.add_argument("--secrets-dir", type=Path, default=None, metavar="DIR")
    check.set_defaults(
        handler=lambda a: _config_check(
            argparse.Namespace(config=a.file, secrets_dir=a.secrets_dir)
        )
    )


def _backtest(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from probe.errors import ReplayFormatError
    from probe.source import ReplaySource
    from slo.app import BacktestTransition, backtest, iter_replay
    from slo.errors import InvalidSpec
    from slo.spec import load_paths
    from slo.windows import format_duration, parse_duration

    try:
        slos = load_paths(args.slos).slos
    except InvalidSpec as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    try:
        tick_s = parse_duration(args.tick)
    except ValueError as exc:
        print(f"bytewatch backtest: --tick: {exc}", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() and not args.quiet

    def on_transition(t: BacktestTransition) -> None:
        from datetime import UTC, datetime

        print(
            json.dumps(
                {
                    "time": datetime.fromtimestamp(t.time, UTC).isoformat().replace("+00:00", "Z"),
                    "slo": t.slo,
                    "severity": t.severity,
                    "state": t.state,
                    "previous": t.previous,
                    "burn_rates": {
                        f"{format_duration(b.long_window_s)}/{format_duration(b.short_window_s)}": {
                            "long": round(b.long_burn, 3),
                            "short": round(b.short_burn, 3),
                            "factor": round(b.factor, 3),
                        }
                        for b in t.burns
                    },
                }
            ),
            flush=True,
        )

    def on_progress(ts: float) -> None:
        if progress:
            from datetime import UTC, datetime

            when = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"\rbacktest: simulated time {when}", end="", file=sys.stderr, flush=True)

    try:
        source = ReplaySource.open(args.events)
    except OSError as exc:
        print(f"bytewatch backtest: {args.events}: {exc.strerror}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bytewatch-backtest-") as tmp:
        try:
            summary = backtest(
                iter_replay(source),
                slos,
                db_path=Path(tmp) / "sli.db",
                tick_s=tick_s,
                on_transition=on_transition,
                on_progress=on_progress,
            )
        except ReplayFormatError as exc:
            print(f"bytewatch backtest: {exc}", file=sys.stderr)
            return 2
        finally:
            source.close()
    if progress:
        print(file=sys.stderr)
    budgets = ", ".join(f"{k} {v:.1%}" for k, v in sorted(summary.final_budget.items()))
    print(
        f"backtest: {summary.exchanges} exchanges, {summary.ticks} ticks, "
        f"{summary.transitions} transitions, {summary.pages} pages, {summary.tickets} tickets; "
        f"budget left: {budgets or 'no data'}",
        file=sys.stderr,
    )
    return 0


def _add_backtest(sub: Sub) -> None:
    p = sub.add_parser("backtest", help="replay recorded exchanges through SLOs and alerts")
    p.add_argument(
        "--events",
        type=Path,
        required=True,
        metavar="FILE.jsonl",
        help="exchanges as `bytewatch trace --format jsonl` prints them, in time order",
    )
    p.add_argument("--slos", type=Path, nargs="+", required=True, metavar="FILE")
    p.add_argument("--tick", default="10s", help="evaluation interval (default 10s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_backtest)


def _demo(args: argparse.Namespace) -> int:
    from slo.demo import run_demo

    return run_demo(args)


def _add_demo(sub: Sub) -> None:
    p = sub.add_parser(
        "demo",
        help="two sample APIs, live traffic, a silent-200 incident, and bytewatch catching it",
    )
    p.add_argument("--incident-after", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--incident-for", type=float, default=150.0, metavar="SECONDS")
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stop after this long (default: until Ctrl-C)",
    )
    p.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="where the demo keeps its store and logs (default: a new temp dir)",
    )
    p.set_defaults(handler=_demo)


# --- alert commands (issue 5): alert test, silence ---------------------------------------------


def _alert_test(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from alerts.errors import AlertingError
    from alerts.notifier import send_test_notification
    from alerts.receivers import new_http_client, notifier_named

    loaded = _config_and_slos(args)
    if loaded is None:
        return 2
    config, _ = loaded

    def now() -> datetime:
        return datetime.now(UTC)

    try:
        notifier = notifier_named(config.receivers, args.receiver, now)
        with new_http_client() as client:
            delivered = send_test_notification(notifier, client, now())
    except AlertingError as exc:
        print(f"bytewatch alert test: {exc}", file=sys.stderr)
        return 1
    print(
        f"bytewatch alert test: {args.receiver}: sent {len(delivered)} test notifications "
        "(firing, then resolved)"
    )
    return 0


def _add_alert(sub: Sub) -> None:
    p = sub.add_parser("alert", help="alerting tools")
    commands = p.add_subparsers(dest="alert_command", required=True, metavar="COMMAND")
    test = commands.add_parser("test", help="send a clearly marked test notification")
    test.add_argument("--receiver", required=True, metavar="NAME")
    _add_config_arguments(test)
    test.set_defaults(handler=_alert_test)


def _silences(args: argparse.Namespace) -> Any:
    from datetime import UTC, datetime

    from alerts.silences import SilenceStore

    loaded = _config_and_slos(args)
    if loaded is None:
        return None
    config, _ = loaded
    return SilenceStore(config.silences_path, lambda: datetime.now(UTC))


def _silence_add(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from alerts.errors import AlertingError
    from alerts.routing import parse_duration, parse_matchers

    store = _silences(args)
    if store is None:
        return 2
    try:
        matchers = parse_matchers(",".join(args.matcher))
        ends_at = datetime.now(UTC) + parse_duration(args.duration)
        silence = store.create(
            matchers, ends_at=ends_at, created_by=args.author, comment=args.comment
        )
    except (AlertingError, ValueError) as exc:
        print(f"bytewatch silence add: {exc}", file=sys.stderr)
        return 2
    print(silence.id)
    return 0


def _silence_list(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    store = _silences(args)
    if store is None:
        return 2
    now = datetime.now(UTC)
    for s in store.list():
        matchers = ",".join(str(m) for m in s.matchers)
        print(
            f"{s.id}\t{s.state(now).value}\t{s.ends_at.isoformat()}\t{s.created_by}\t"
            f"{{{matchers}}}\t{s.comment}"
        )
    return 0


def _silence_expire(args: argparse.Namespace) -> int:
    from alerts.errors import SilenceError

    store = _silences(args)
    if store is None:
        return 2
    try:
        store.expire(args.id)
    except SilenceError as exc:
        print(f"bytewatch silence expire: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_silence(sub: Sub) -> None:
    p = sub.add_parser("silence", help="create, list and expire silences")
    commands = p.add_subparsers(dest="silence_command", required=True, metavar="COMMAND")
    add = commands.add_parser("add", help="mute alerts matching every matcher")
    add.add_argument(
        "--matcher",
        action="append",
        required=True,
        help='Alertmanager matcher, e.g. slo="payments-health" (repeatable)',
    )
    add.add_argument("--duration", required=True, help="how long, e.g. 2h")
    add.add_argument("--author", required=True)
    add.add_argument("--comment", required=True)
    _add_config_arguments(add)
    add.set_defaults(handler=_silence_add)
    ls = commands.add_parser("list", help="every silence, the latest start first")
    _add_config_arguments(ls)
    ls.set_defaults(handler=_silence_list)
    expire = commands.add_parser("expire", help="end a silence now")
    expire.add_argument("id")
    _add_config_arguments(expire)
    expire.set_defaults(handler=_silence_expire)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bytewatch",
        description="Zero-instrumentation API observability with SLO alerting.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in ADDERS:
        add(sub)
    return parser


ADDERS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_doctor,
    # probe: trace
    _add_trace,
    # issue 3: routes, classify
    _add_routes,
    _add_classify,
    # issue 4: validate, rules
    _add_validate,
    _add_rules,
    _add_alert,
    _add_silence,
    _add_run,
    _add_demo,
    _add_config,
    _add_backtest,
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `bytewatch trace | head` closes our stdout: that is the user's choice, not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
