"""The ``bytewatch`` command.

Each subcommand is a small function that parses nothing itself: ``build_parser`` declares the
arguments, the handler calls into the package that owns the work and returns an exit code.
Handlers import lazily so that ``bytewatch validate`` does not pay for BCC or FastAPI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _doctor(args: argparse.Namespace) -> int:
    from probe.doctor import run_checks

    problems = run_checks(try_attach=not args.quick)
    for line in problems:
        print(f"bytewatch doctor: {line}", file=sys.stderr)
    if not problems:
        print("bytewatch doctor: eBPF is ready (BTF, tracefs, kernel headers, BCC, attach test)")
    return 1 if problems else 0


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check that this machine can run the eBPF probe")
    p.add_argument("--quick", action="store_true", help="skip the trial compile and attach")
    p.set_defaults(handler=_doctor)


# --- probe commands: trace -------------------------------------------------------------------


def _trace(args: argparse.Namespace) -> int:
    from probe.trace import run_trace

    return run_trace(args)


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

    from probe.semantics import Classifier, ResponseView, SemanticRules, load_semantic_rules
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


# --- alert commands (issue 5) ----------------------------------------------------------------


# --- service commands: run, backtest, config (issue 6) ---------------------------------------


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
    # issue 5: alert, silence
    # issue 6: run, backtest, config
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
