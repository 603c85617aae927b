"""What ``probe.exchanges`` makes of an observed request/response pair."""

from __future__ import annotations

import pytest

from probe.abi import Role
from probe.conn import ObservedExchange
from probe.exchanges import (
    REREAD_PROCESS_NS,
    ExchangeBuilder,
    Process,
    ResponseJudge,
    RouteTemplater,
    WallClock,
    path_of,
)
from probe.http import HttpMessage, parse_head
from probe.model import NOT_INSPECTED, Direction, HttpExchange, ResponseView, Verdict
from probe.routes import Router
from probe.semantics import Classifier
from probe.services import NO_NAMES, ProcessNames, ServiceMap, ServiceRule

PATH_CASES = [
    ("origin form", "/api/v1/users/7", "/api/v1/users/7"),
    ("a query is dropped", "/search?q=a/b", "/search"),
    ("a fragment is dropped", "/docs#intro", "/docs"),
    ("a query and then a fragment", "/a?b=1#c", "/a"),
    ("a fragment and then a question mark", "/a#b?c", "/a"),
    ("only a query", "/?x=1", "/"),
    ("absolute form, as sent to proxies", "http://api.internal:8080/v1/x?y=2", "/v1/x"),
    ("absolute form without a path", "http://api.internal", "/"),
    ("authority form (CONNECT)", "api.internal:443", "api.internal:443"),
    ("asterisk form (OPTIONS *)", "*", "*"),
]


@pytest.mark.parametrize(
    ("target", "path"), [case[1:] for case in PATH_CASES], ids=[case[0] for case in PATH_CASES]
)
def test_the_path_is_the_target_without_scheme_authority_query_or_fragment(
    target: str, path: str
) -> None:
    assert path_of(target) == path


# --- ExchangeBuilder -----------------------------------------------------------------------------

REQUEST_HEAD = parse_head(b"POST /users/7/orders?draft=1 HTTP/1.1\r\nHost: api\r\n\r\n")
RESPONSE_HEAD = parse_head(
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
)
REQUEST = HttpMessage(REQUEST_HEAD, 2_000_000_000, 2_000_000_000, 120, b"", False)
RESPONSE = HttpMessage(RESPONSE_HEAD, 2_003_000_000, 2_005_000_000, 110, b'{"ok":false}', True)
DECLINED = Verdict(True, "declined", "test")


class Routes:
    def route(self, service: str, path: str) -> str:
        return f"{service}:{path.replace('7', ':id')}"


class RecordingJudge:
    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def classify(self, view: ResponseView) -> Verdict:
        fields = view._asdict()
        assert fields.pop("headers") == ()  # headers are looked up in the parsed head instead
        fields.pop("lookup")
        self.calls.append({**fields, "content-type": view.header("content-type")})
        return DECLINED


def observed(role: Role, response: HttpMessage | None, end_ns: int) -> ObservedExchange:
    return ObservedExchange(100, "worker-1", role, 8080, 51000, REQUEST, response, end_ns)


def build(exchange: ObservedExchange, judge: RecordingJudge) -> HttpExchange:
    services = ServiceMap((ServiceRule(name="orders", port=8080),))
    builder = ExchangeBuilder(
        WallClock(1_700_000_000.0),
        services=services,
        router=Routes(),
        judge=judge,
        comm_of=lambda pid: "api" if pid == 100 else None,
    )
    return builder.build(exchange)


def test_a_server_exchange_gets_its_service_route_verdict_and_wall_clock_time() -> None:
    judge = RecordingJudge()
    exchange = build(observed(Role.SERVER, RESPONSE, RESPONSE.end_ns), judge)
    assert exchange == HttpExchange(
        ts=1_700_000_002.0,
        pid=100,
        comm="api",
        service="orders",
        direction=Direction.SERVER,
        method="POST",
        path="/users/7/orders",
        route="orders:/users/:id/orders",
        status=200,
        latency_s=0.005,
        request_bytes=120,
        response_bytes=110,
        verdict=DECLINED,
        complete=True,
    )
    assert judge.calls == [
        {
            "service": "orders",
            "route": "orders:/users/:id/orders",
            "method": "POST",
            "status": 200,
            "body": b'{"ok":false}',
            "body_truncated": True,
            "content-type": "application/json",
        }
    ]


def test_a_client_exchange_is_never_matched_by_a_port_rule() -> None:
    exchange = build(observed(Role.CLIENT, RESPONSE, RESPONSE.end_ns), RecordingJudge())
    assert (exchange.direction, exchange.service) == (Direction.CLIENT, "api")


def test_a_request_without_a_response_is_incomplete_and_not_judged() -> None:
    judge = RecordingJudge()
    exchange = build(observed(Role.SERVER, None, REQUEST.start_ns - 1), judge)
    assert (exchange.status, exchange.response_bytes, exchange.complete) == (0, 0, False)
    assert (exchange.verdict, exchange.latency_s, judge.calls) == (NOT_INSPECTED, 0.0, [])


def test_a_response_without_a_body_is_not_judged() -> None:
    judge = RecordingJudge()
    empty = RESPONSE._replace(body=b"", body_truncated=False, complete=False)
    exchange = build(observed(Role.SERVER, empty, empty.end_ns), judge)
    assert (exchange.verdict, exchange.complete, judge.calls) == (NOT_INSPECTED, False, [])


class Delegating:
    """Any other implementation of the router's and the judge's protocols."""

    def __init__(self, router: Router, judge: Classifier) -> None:
        self._router, self._judge = router, judge

    def route(self, service: str, path: str) -> str:
        return self._router.route(service, path)

    def classify(self, view: ResponseView) -> Verdict:
        return self._judge.classify(view)


def test_the_agents_own_router_and_classifier_judge_as_any_other_implementation_would() -> None:
    failing = RESPONSE._replace(body=b'{"ok":false,"error":"card_declined"}')

    def exchange_with(router: RouteTemplater, judge: ResponseJudge) -> HttpExchange:
        builder = ExchangeBuilder(WallClock(0.0), router=router, judge=judge)
        return builder.build(observed(Role.SERVER, failing, failing.end_ns))

    ours = exchange_with(Router(), Classifier())
    delegating = Delegating(Router(), Classifier())
    assert ours == exchange_with(delegating, delegating)
    assert ours.route == "/users/:int/orders"
    assert ours.verdict.business_error and ours.verdict.error_type == "card_declined"


def test_a_process_the_caller_already_looked_up_is_not_looked_up_again() -> None:
    looked_up: list[int] = []

    def comm_of(pid: int) -> str:
        looked_up.append(pid)
        return "from-proc"

    builder = ExchangeBuilder(WallClock(0.0), comm_of=comm_of)
    nginx = Process("nginx", NO_NAMES, 0)
    exchange = observed(Role.SERVER, RESPONSE, RESPONSE.end_ns)
    assert builder.build(exchange, nginx).comm == "nginx"
    assert looked_up == []
    assert builder.build(exchange).comm == "from-proc"
    assert looked_up == [100]


def test_a_process_is_read_from_proc_again_after_a_minute_since_its_pid_may_be_reused() -> None:
    comms = iter(["first", "second"])
    builder = ExchangeBuilder(WallClock(0.0), comm_of=lambda pid: next(comms))
    assert builder.process(100, "thread", 1_000).comm == "first"
    assert builder.process(100, "thread", 1_000 + REREAD_PROCESS_NS - 1).comm == "first"
    assert builder.process(100, "thread", 1_000 + REREAD_PROCESS_NS).comm == "second"


def test_a_process_gone_since_it_was_read_keeps_its_name_for_its_last_exchanges() -> None:
    comms = iter(["java", None])
    builder = ExchangeBuilder(WallClock(0.0), comm_of=lambda pid: next(comms))
    assert builder.process(100, "pool-1-thread", 0).comm == "java"
    assert builder.process(100, "pool-1-thread", REREAD_PROCESS_NS).comm == "java"


def test_the_names_a_process_gives_itself_are_read_only_when_a_rule_asks_for_them() -> None:
    asked: list[tuple[int, frozenset[str]]] = []

    def names_of(pid: int, sources: frozenset[str]) -> ProcessNames:
        asked.append((pid, sources))
        return ProcessNames(otel="checkout")

    exchange = observed(Role.SERVER, RESPONSE, RESPONSE.end_ns)
    plain = ExchangeBuilder(WallClock(0.0), comm_of=lambda pid: "node", names_of=names_of)
    assert plain.build(exchange).service == "node"
    assert asked == []
    named = ExchangeBuilder(
        WallClock(0.0),
        services=ServiceMap((ServiceRule(name=None, name_from="otel"),)),
        comm_of=lambda pid: "node",
        names_of=names_of,
    )
    assert named.build(exchange).service == "checkout"
    assert named.build(exchange).service == "checkout"
    assert asked == [(100, frozenset({"otel"}))]
