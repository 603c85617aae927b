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


# --- slo commands: validate, rules (issue 4) -------------------------------------------------


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
    # issue 4: validate, rules
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
