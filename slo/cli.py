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


class _ConfigProblem(Exception):
    """A config file that cannot be read or parsed; the message names the file (and line)."""


def _config_section(path: str | None, key: str) -> object:
    """The ``key:`` section of the YAML config file at ``path`` (None without a file)."""
    import yaml

    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise _ConfigProblem(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _ConfigProblem(f"{where}: not valid YAML: {problem}") from exc
    if document is None:
        return None
    if not isinstance(document, dict):
        raise _ConfigProblem(f"{path}: expected a mapping of sections at the top")
    return document.get(key)


def _config_problem(path: str | None, problem: Exception) -> str:
    """One line for a config problem; a field error gets the line the field is on."""
    from probe.routes import ConfigFieldError, format_location

    if not isinstance(problem, ConfigFieldError) or path is None:
        return str(problem)
    with open(path, encoding="utf-8") as handle:
        line = _line_of(handle.read(), problem.location)
    where = path if line is None else f"{path}:{line}"
    return f"{where}: {format_location(problem.location)}: {problem.reason}"


def _line_of(text: str, location: tuple[str | int, ...]) -> int | None:
    """The line of the deepest node of ``location`` that exists in the YAML ``text``."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    line = None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            values = [
                v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part
            ]
            if not values:
                break
            node = values[0]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _routes(args: argparse.Namespace) -> int:
    from probe.routes import ConfigFieldError, Router, load_route_rules

    try:
        router = Router(load_route_rules(_config_section(args.config, "routes")))
    except (_ConfigProblem, ConfigFieldError) as exc:
        print(f"bytewatch routes: {_config_problem(args.config, exc)}", file=sys.stderr)
        return 2
    paths = args.paths or (line.strip() for line in sys.stdin)
    for path in paths:
        if path:
            print(f"{path}\t{router.route(args.service, path)}")
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

    from probe.routes import ConfigFieldError
    from probe.semantics import Classifier, ResponseView, load_semantic_rules

    try:
        classifier = Classifier(load_semantic_rules(_config_section(args.config, "semantics")))
    except (_ConfigProblem, ConfigFieldError) as exc:
        print(f"bytewatch classify: {_config_problem(args.config, exc)}", file=sys.stderr)
        return 2
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
