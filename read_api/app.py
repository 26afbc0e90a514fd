"""The FastAPI application: `/v1` API, `/healthz`, `/metrics`, and the monitor page at `/`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from engagement_monitor.redis_client import connect
from engagement_monitor.settings import Settings
from engagement_monitor.snapshot_codec import check_dictionaries
from models.identifiers import id_problem
from models.origin import ORIGIN_TYPES
from read_api.body_limit import BodyLimit
from read_api.commands import KafkaPublisher, Publisher
from read_api.id_paths import RawPathRouting
from read_api.metrics import ApiMetrics, MetricsMiddleware
from read_api.monitor_fast_path import MonitorFastPath
from read_api.routes import build_router
from read_api.schemas import Health, Problem, ValidationProblem
from read_api.state import AppState
from read_api.store import SnapshotStore
from read_api.tokens import TokenStore
from read_api.webhooks.routes import build_webhook_router
from read_api.webhooks.secrets import WebhookSecrets

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Swagger UI 5 as the fastapi-offline package ships it: /docs loads nothing from a CDN.
SWAGGER_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
PAGE_HEADERS = {
    # The page loads only its own script and style and calls only this API, so an injected
    # string in a contact's name can never run (the script also only ever sets textContent).
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

DESCRIPTION = """
Serves the engagement monitor snapshots and segments the worker keeps in Redis, and turns the
screen's write actions into commands on Kafka (answered with 202: the snapshot changes once the
worker has applied the command).

Every `/v1` call needs `Authorization: Bearer <token>`. A token belongs to one org and one role:

| role | read (monitor, segments, whoami) | write (edit, delete, lists, unsubscribe, send) |
|---|---|---|
| `agent` | yes | no (403) |
| `operator` | yes | yes |
| `admin` | yes | yes |

A path naming another org, or a contact without a snapshot, is a 404 with no data.
"""

_PATTERN_HINTS = {
    "phone": "not an E.164 phone number: + and the country code, up to 15 digits",
    "email": "not an e-mail address",
    "cursor": "not a cursor: pass the next_cursor of the previous page unchanged",
}


def _field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    cleaned: list[str] = []
    for i, part in enumerate(parts):
        # Tagged unions put the tag in the location (origin.csv.file); people say origin.file.
        if i > 0 and parts[i - 1] == "origin" and part in ORIGIN_TYPES:
            continue
        if part.startswith("function-") or part in ("ContactPatch", "MessageRequest"):
            continue
        cleaned.append(part)
    return ".".join(cleaned) or "body"


def _message(error: dict[str, Any], field: str) -> str:
    kind = error.get("type", "")
    msg = str(error.get("msg", "invalid"))
    if kind == "missing":
        return "required"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_unicode":  # a path segment whose %-escapes are not UTF-8 (%FF)
        return "not valid UTF-8: percent-encode the UTF-8 bytes of the text"
    if kind == "string_pattern_mismatch":
        return id_problem(error) or _PATTERN_HINTS.get(field.rsplit(".", 1)[-1], msg)
    if kind == "model_attributes_type" or kind == "dict_type":
        return "must be a JSON object"
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def validation_problem(errors: Sequence[Any]) -> ValidationProblem:
    problems = []
    for error in errors:
        field = _field_name(error.get("loc", ()))
        problems.append({"field": field, "message": _message(error, field)})
    detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
    return ValidationProblem.model_validate({"detail": detail, "errors": problems})


async def _on_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    body = validation_problem(exc.errors())
    return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _on_redis_error(_request: Request, exc: Exception) -> Response:
    """Redis is where snapshots are read: while it does not answer, say so (503), never 500.
    The client reconnects by itself, so the next request after Redis is back is answered."""
    body = Problem(
        detail=f"the snapshot store (Redis) is unavailable ({type(exc).__name__}); retry shortly"
    )
    return JSONResponse(
        body.model_dump(),
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "2"},
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """FastAPI answers 400 for a body it cannot decode (not UTF-8, bad multipart); the contract
    says bad input is a 422, so it is one, in the same shape as every other 422."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST:
        body = ValidationProblem.model_validate(
            {
                "detail": "body: cannot be read as JSON (send UTF-8 JSON)",
                "errors": [
                    {"field": "body", "message": "cannot be read as JSON (send UTF-8 JSON)"}
                ],
            }
        )
        return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await http_exception_handler(request, exc)


def create_app(
    settings: Settings,
    *,
    redis: aioredis.Redis | None = None,
    producer: Publisher | None = None,
    monitor_fast_path: bool = True,
) -> FastAPI:
    """Build the app. Injected ``redis`` / ``producer`` are the caller's to start and close;
    the ones created here are closed when the app shuts down. ``monitor_fast_path=False``
    leaves every request to FastAPI (tests compare both)."""
    check_dictionaries()  # every snapshot dictionary loads, or the API does not start
    owns_redis = redis is None
    client = (
        redis
        if redis is not None
        else connect(
            settings.redis_url,
            settings.redis_timeout_seconds,
            cluster=settings.redis_cluster,
            max_connections=64,
        )
    )
    owns_producer = producer is None
    publisher: Publisher = (
        producer if producer is not None else KafkaPublisher(settings.kafka_bootstrap)
    )
    metrics = ApiMetrics()
    state = AppState(
        settings=settings,
        store=SnapshotStore(client),
        publisher=publisher,
        tokens=TokenStore(settings.api_tokens_file),
        metrics=metrics,
        webhooks=WebhookSecrets(settings.webhook_secrets_file),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owns_producer:
            await publisher.start()
        try:
            yield
        finally:
            if owns_producer:
                await publisher.stop()
            if owns_redis:
                await client.aclose()

    app = FastAPI(
        title="Engagement Monitor API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from the package's own files: /docs works offline
        redoc_url=None,
    )
    app.state.em = state
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RedisError, _on_redis_error)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyLimit)
    app.add_middleware(RawPathRouting)  # outermost: routing sees ids exactly as encoded
    app.mount("/docs-static", StaticFiles(directory=SWAGGER_DIR), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Engagement Monitor API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon.png",
        )

    router = build_router(settings.channels)
    app.include_router(router)
    # The route's template as the metrics label it (the router's paths carry its prefix).
    monitor_route = next(
        route.path_format
        for route in router.routes
        if isinstance(route, APIRoute) and route.name == "monitor"
    )
    if monitor_fast_path:
        # Outermost: an ordinary snapshot GET is answered before any other middleware runs.
        app.add_middleware(MonitorFastPath, state=state, route=monitor_route)
    app.include_router(build_webhook_router())

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "Redis does not answer."}},
        tags=["operations"],
        summary="200 when Redis answers; Kafka's state is informational (reads work without it)",
    )
    async def healthz() -> Response:
        redis_ok = await state.store.ping()
        body = Health(
            status="ok" if redis_ok else "unavailable",
            redis="ok" if redis_ok else "unreachable",
            kafka=publisher.state,
        )
        code = status.HTTP_200_OK if redis_ok else status.HTTP_503_SERVICE_UNAVAILABLE
        return JSONResponse(body.model_dump(), status_code=code)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        tags=["operations"],
        summary="Prometheus metrics: requests by route and status, latency, commands",
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
