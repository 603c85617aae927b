"""bytewatch's HTTP API (FastAPI; the OpenAPI document is at ``/openapi.json``).

``create_app`` takes every dependency, so tests and the composition root build the same app::

    app = create_app(health=scorer, registry=registry, routers=[slo_router, alert_router])

=========================  ==========================================================
``GET /health-score``      every service and endpoint, per health window (``?window=5m``)
``GET /health-score/{s}``  one service; 404 with a JSON ``detail`` when it is unknown
``GET /metrics``           Prometheus exposition of the injected registry
``GET /healthz``           liveness, plus injected checks (503 when one fails)
=========================  ==========================================================

More endpoints (``/api/v1/slos``, ``/api/v1/alerts``, ``/api/v1/silences``) come as
``APIRouter`` objects passed in ``routers``. The server binds to localhost unless told
otherwise (``DEFAULT_HOST``): the API is not authenticated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from pydantic import BaseModel, Field

from slo.errors import StoreError
from slo.model import EndpointHealth, HealthScore, ServiceHealth

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9477  # slo.settings ApiSettings.listen

WindowQuery = Annotated[
    str | None,
    Query(description="one of the configured health windows (5m, 1h by default)"),
]

Check = Callable[[], str | None]
"""A readiness check: None when fine, else one line saying what is wrong."""


class HealthProvider(Protocol):
    """``slo.health.HealthScorer``."""

    @property
    def windows_s(self) -> tuple[float, ...]: ...

    def services(
        self,
        *,
        now: float | None = None,
        windows_s: tuple[float, ...] | None = None,
        error_types: bool = True,
    ) -> list[ServiceHealth]: ...

    def service(
        self,
        name: str,
        *,
        now: float | None = None,
        windows_s: tuple[float, ...] | None = None,
        error_types: bool = True,
    ) -> ServiceHealth | None: ...


# --- response models -------------------------------------------------------------------------


class ErrorTypeOut(BaseModel):
    error_type: str
    count: int


class ScoreOut(BaseModel):
    window: str = Field(examples=["5m"])
    window_seconds: float
    score: float | None = Field(description="good / requests; null without requests")
    availability: float | None = Field(description="share without a server error (5xx, none)")
    correctness: float | None = Field(description="share without a business error")
    latency: float | None = Field(description="share answered within the latency target")
    requests: int
    good: int
    top_error_types: list[ErrorTypeOut]


class EndpointOut(BaseModel):
    method: str
    route: str
    latency_target_seconds: float
    windows: list[ScoreOut]


class ServiceOut(BaseModel):
    service: str
    windows: list[ScoreOut]
    endpoints: list[EndpointOut]


class HealthScoresOut(BaseModel):
    generated_at: datetime
    windows: list[str]
    services: list[ServiceOut]


class ErrorOut(BaseModel):
    detail: str


class HealthzOut(BaseModel):
    status: str
    problems: list[str] = []


# --- durations -------------------------------------------------------------------------------

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def format_window(seconds: float) -> str:
    """``300`` → ``5m``, ``5400`` → ``1h30m`` (Prometheus style)."""
    rest = int(seconds)
    if rest <= 0 or rest != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in _UNITS:
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def parse_window(text: str) -> float | None:
    """``5m`` → 300.0; None when it is not a duration."""
    found = _DURATION.fullmatch(text.strip())
    if found is None or not any(found.groups()):
        return None
    return float(
        sum(int(g) * size for g, (_, size) in zip(found.groups(), _UNITS, strict=True) if g)
    )


# --- app ---------------------------------------------------------------------------------------


def _score_out(score: HealthScore) -> ScoreOut:
    return ScoreOut(
        window=format_window(score.window_s),
        window_seconds=score.window_s,
        score=score.score,
        availability=score.availability,
        correctness=score.correctness,
        latency=score.latency,
        requests=score.requests,
        good=score.good,
        top_error_types=[ErrorTypeOut(error_type=n, count=c) for n, c in score.top_error_types],
    )


def _endpoint_out(endpoint: EndpointHealth) -> EndpointOut:
    return EndpointOut(
        method=endpoint.key.method,
        route=endpoint.key.route,
        latency_target_seconds=endpoint.latency_target_s,
        windows=[_score_out(s) for s in endpoint.windows],
    )


def _service_out(service: ServiceHealth) -> ServiceOut:
    return ServiceOut(
        service=service.service,
        windows=[_score_out(s) for s in service.windows],
        endpoints=[_endpoint_out(e) for e in service.endpoints],
    )


def create_app(
    *,
    health: HealthProvider,
    registry: CollectorRegistry,
    clock: Callable[[], float] = time.time,
    routers: Sequence[APIRouter] = (),
    checks: Sequence[Check] = (),
    title: str = "bytewatch",
) -> FastAPI:
    """The API over its dependencies; ``routers`` add endpoints (SLOs, alerts, silences)."""
    app = FastAPI(
        title=title,
        description="Zero-instrumentation API observability: health scores, SLOs, alerts.",
    )

    def windows_of(window: str | None) -> tuple[float, ...]:
        configured = health.windows_s
        if window is None:
            return configured
        seconds = parse_window(window)
        if seconds is None or seconds not in configured:
            known = ", ".join(format_window(w) for w in configured)
            raise HTTPException(
                status_code=400,
                detail=f"window {window!r} is not a health window; use one of: {known}",
            )
        return (seconds,)

    @app.exception_handler(StoreError)
    def store_unavailable(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.get(
        "/health-score",
        response_model=HealthScoresOut,
        responses={400: {"model": ErrorOut}, 503: {"model": ErrorOut}},
        summary="Health scores of every service and endpoint",
    )
    def health_scores(window: WindowQuery = None) -> HealthScoresOut:
        now = clock()
        windows = windows_of(window)
        services = health.services(now=now, windows_s=windows)
        return HealthScoresOut(
            generated_at=datetime.fromtimestamp(now, UTC),
            windows=[format_window(w) for w in windows],
            services=[_service_out(s) for s in services],
        )

    @app.get(
        "/health-score/{service}",
        response_model=ServiceOut,
        responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
        summary="Health score of one service and its endpoints",
    )
    def service_score(service: str, window: WindowQuery = None) -> ServiceOut:
        windows = windows_of(window)
        found = health.service(service, now=clock(), windows_s=windows)
        if found is None:
            raise HTTPException(
                status_code=404,
                detail=f"unknown service {service!r}: it has served no request within the "
                "store's retention",
            )
        return _service_out(found)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(registry), media_type=content_type)

    @app.get(
        "/healthz",
        response_model=HealthzOut,
        responses={503: {"model": HealthzOut}},
        summary="Liveness",
    )
    def healthz() -> JSONResponse:
        problems = [p for check in checks if (p := check()) is not None]
        body = HealthzOut(status="unhealthy" if problems else "ok", problems=problems)
        return JSONResponse(status_code=503 if problems else 200, content=body.model_dump())

    for router in routers:
        app.include_router(router)
    return app


# --- /api/v1: SLOs, alerts, silences ------------------------------------------------------------
#
# The routers take providers that speak plain JSON-ready values, so this module depends on no
# alerting type: the composition root (slo/app.py) adapts the evaluator and the alert pipeline.


class SloProvider(Protocol):
    def slos(self) -> list[dict[str, object]]: ...

    def slo(self, name: str) -> dict[str, object] | None: ...


class AlertsProvider(Protocol):
    def alerts(self) -> list[dict[str, object]]: ...

    def silences(self) -> list[dict[str, object]]: ...

    def create_silence(self, request: SilenceIn) -> dict[str, object]: ...

    def expire_silence(self, silence_id: str) -> dict[str, object]: ...


class SilenceIn(BaseModel):
    """A silence to create: Alertmanager matcher strings, an end, who and why."""

    matchers: list[str] = Field(min_length=1, examples=[['slo="checkout-orders"']])
    ends_at: datetime | None = Field(default=None, description="or give duration")
    duration: str | None = Field(default=None, examples=["2h"], description="from now")
    starts_at: datetime | None = None
    created_by: str = Field(min_length=1)
    comment: str = Field(min_length=1)


class ProviderError(Exception):
    """A provider refused a request; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def bearer_guard(token: str | None) -> Callable[[Request], None]:
    """A dependency that admits a request only with ``Authorization: Bearer <token>``.

    With no token configured, nothing that changes state is allowed at all: an API bound to a
    public address by mistake must not let anyone silence a page.
    """
    import hmac

    def guard(request: Request) -> None:
        if token is None:
            raise HTTPException(
                status_code=403,
                detail="changes need api.token in the configuration (BYTEWATCH_API__TOKEN)",
            )
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard


def slo_router(provider: SloProvider) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["slos"])

    @router.get("/slos", summary="Every SLO: status, SLI and burn rate per window, budget")
    def list_slos() -> dict[str, object]:
        return {"slos": provider.slos()}

    @router.get(
        "/slos/{name}",
        summary="One SLO by id (service-name) or by name",
        responses={404: {"model": ErrorOut}},
    )
    def one_slo(name: str) -> dict[str, object]:
        found = provider.slo(name)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no SLO named {name!r}")
        return found

    return router


def alerts_router(provider: AlertsProvider, token: str | None) -> APIRouter:
    from fastapi import Depends

    router = APIRouter(prefix="/api/v1", tags=["alerts"])
    guarded = [Depends(bearer_guard(token))]

    def call(action: Callable[[], dict[str, object]]) -> dict[str, object]:
        try:
            return action()
        except ProviderError as exc:
            raise HTTPException(status_code=exc.status, detail=exc.detail) from exc

    @router.get("/alerts", summary="Pending and firing alerts, with silenced/inhibited flags")
    def list_alerts() -> dict[str, object]:
        return {"alerts": provider.alerts()}

    @router.get("/silences", summary="Every silence, the latest start first")
    def list_silences() -> dict[str, object]:
        return {"silences": provider.silences()}

    @router.post(
        "/silences",
        status_code=201,
        dependencies=guarded,
        summary="Create a silence (bearer token required)",
        responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    def create_silence(body: SilenceIn) -> dict[str, object]:
        return call(lambda: provider.create_silence(body))

    @router.delete(
        "/silences/{silence_id}",
        dependencies=guarded,
        summary="Expire a silence now (bearer token required)",
        responses={
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
            404: {"model": ErrorOut},
            409: {"model": ErrorOut},
        },
    )
    def expire_silence(silence_id: str) -> dict[str, object]:
        return call(lambda: provider.expire_silence(silence_id))

    return router
