"""Observed request/response pairs to ``HttpExchange`` records: the last step inside ``probe/``.

Here an exchange gets its process name, service, path, route and verdict, and its kernel
timestamps become wall-clock time. The raw request target and the body stop here: only the
path without its query (for ``trace``) and the route leave.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from probe.abi import Role
from probe.conn import ObservedExchange
from probe.model import NOT_INSPECTED, Direction, HttpExchange, ResponseView, Verdict, build
from probe.routes import Router
from probe.semantics import Classifier
from probe.services import NO_NAMES, ProcessNames, ServiceMap


class RouteTemplater(Protocol):
    def route(self, service: str, path: str) -> str: ...


class ResponseJudge(Protocol):
    """Decides whether a response reports a business error (see ``probe.semantics``)."""

    def classify(self, view: ResponseView) -> Verdict: ...


# Enum members read once per exchange, as globals: off their class they cost ~40 ns each.
_CLIENT_ROLE: Final = Role.CLIENT
_SERVER: Final = Direction.SERVER
_CLIENT: Final = Direction.CLIENT


# The classes built per exchange, through Final aliases (a C static each once compiled; see
# DEVELOPERS.md).
_RESPONSE_VIEW: Final = ResponseView
_HTTP_EXCHANGE: Final = HttpExchange


# What /proc says about a process is read again after this long (of the kernel's clock): a pid
# may have been reused by then.
REREAD_PROCESS_NS: Final = 60 * 1_000_000_000


class Process(NamedTuple):
    """A process as exchanges name it: its name, and the names it gives itself."""

    comm: str
    names: ProcessNames
    read_ns: int  # when /proc was read, on the kernel's clock


class _PathAsRoute:
    def route(self, service: str, path: str) -> str:
        return path


def path_of(target: str) -> str:
    """The path of a request target, without query or fragment (RFC 9112 section 3.2)."""
    if target.startswith("/"):
        path = target
    elif "://" in target:  # absolute form, as sent to proxies
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        path = rest[slash:] if slash >= 0 else "/"
    else:
        return target  # authority form (CONNECT) or asterisk form (OPTIONS *)
    # Spelled out rather than a loop over the separators: this runs once per exchange.
    if "?" in path:
        path = path[: path.index("?")]
    if "#" in path:
        path = path[: path.index("#")]
    return path or "/"


@dataclass(frozen=True, slots=True)
class WallClock:
    """Maps the kernel's CLOCK_MONOTONIC nanoseconds to Unix seconds."""

    offset_s: float  # wall time minus monotonic time, in seconds

    def to_wall(self, mono_ns: int) -> float:
        return self.offset_s + mono_ns / 1e9


class ExchangeBuilder:
    """Turns ``ObservedExchange`` into ``HttpExchange``. ``comm_of`` and ``names_of`` (given
    the sources the service map names services from) read /proc in production and are plain
    functions in tests."""

    def __init__(
        self,
        clock: WallClock,
        *,
        services: ServiceMap | None = None,
        router: RouteTemplater | None = None,
        judge: ResponseJudge | None = None,
        comm_of: Callable[[int], str | None] = lambda pid: None,
        names_of: Callable[[int, frozenset[str]], ProcessNames] = lambda pid, sources: NO_NAMES,
    ) -> None:
        self._clock = clock
        self._services = services or ServiceMap()
        self._names_from = self._services.names_from
        self._router: RouteTemplater = router or _PathAsRoute()
        self._judge = judge
        # The agent's own router and classifier, typed as what they are: compiled, a call
        # through a protocol looks the method up and boxes its arguments on every exchange,
        # where a call to a known class is a direct C call.
        self._our_router = router if isinstance(router, Router) else None
        self._our_judge = judge if isinstance(judge, Classifier) else None
        self._comm_of = comm_of
        self._names_of = names_of
        self._processes: dict[int, Process] = {}

    def process(self, tgid: int, thread_comm: str, now_ns: int) -> Process:
        """The process ``tgid`` as of ``now_ns`` (kernel clock). Its name is the process's, not
        the thread's: threads (Java's, for one) have names of their own."""
        known = self._processes.get(tgid)
        if known is not None and now_ns - known.read_ns < REREAD_PROCESS_NS:
            return known
        comm = self._comm_of(tgid)
        if comm is None and known is not None:
            # Gone since: its last exchanges are still its own.
            return known
        names = self._names_of(tgid, self._names_from) if self._names_from else NO_NAMES
        process = Process(comm or thread_comm, names, now_ns)
        if len(self._processes) > 65536:
            self._processes.clear()
        self._processes[tgid] = process
        return process

    def build(self, observed: ObservedExchange, process: Process | None = None) -> HttpExchange:
        """``process``: the exchange's process, when the caller has already looked it up."""
        # One unpack instead of a dozen attribute reads: this runs once per exchange.
        tgid, thread_comm, role, local_port, _, request, response, end_ns = observed
        if process is None:
            process = self.process(tgid, thread_comm, end_ns)
        comm = process.comm
        is_server = role is not _CLIENT_ROLE
        service = self._services.resolve(
            comm, local_port if is_server else None, tgid, process.names
        )
        head = request.head
        path = path_of(head.target)
        our_router = self._our_router
        if our_router is not None:
            route = our_router.route(service, path)
        else:
            route = self._router.route(service, path)
        method = head.method
        status = 0
        response_size = 0
        complete = False
        verdict = NOT_INSPECTED
        if response is not None:
            status = response.head.status
            response_size = response.size
            complete = response.complete
            if self._judge is not None and response.body:
                # One view: seven keyword arguments through the protocol cost ~0.6 us per
                # response, a third of a small JSON body's verdict.
                view = build(
                    _RESPONSE_VIEW, service, route, method, status, (), response.body,
                    response.body_truncated, response.head.header,
                )  # fmt: skip
                our_judge = self._our_judge
                if our_judge is not None:
                    verdict = our_judge.classify(view)
                else:
                    verdict = self._judge.classify(view)
        start_ns = request.start_ns
        # Field order of HttpExchange; build skips its keyword-parsing __new__.
        return build(
            _HTTP_EXCHANGE,
            self._clock.to_wall(start_ns),
            tgid,
            comm,
            service,
            _SERVER if is_server else _CLIENT,
            method,
            path,
            route,
            status,
            max(0, end_ns - start_ns) / 1e9,
            request.size,
            response_size,
            verdict,
            complete,
        )
