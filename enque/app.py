"""The ASGI application: middleware, routers, error handlers and the process lifespan."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from enque import domains
from enque.config import Settings, get_settings
from enque.core import metrics
from enque.core.api import DomainRoute, JSONResponse, error_response, ok
from enque.core.cache import redis_unavailable_errors
from enque.core.db import unavailable_errors as database_unavailable_errors
from enque.core.errors import ApiError
from enque.core.logging import configure_logging
from enque.core.middleware import CrossOriginMiddleware, RequestContextMiddleware
from enque.core.ratelimit import RateLimiter
from enque.core.routeindex import RouteIndex
from enque.core.runtime import Runtime

log = logging.getLogger(__name__)

STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}


def _validation_details(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    details = []
    code = "VALIDATION_ERROR"
    for error in exc.errors():
        if error.get("type") in ("json_invalid", "json_type"):
            code = "BAD_REQUEST"
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
        details.append({"path": ".".join(loc), "message": str(error.get("msg", "invalid"))})
    return code, details


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _install_error_handlers(app: FastAPI, settings: Settings) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body_refused = any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors())
        if body_refused and content_type and not _is_json(content_type):
            return error_response(
                ApiError("UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json")
            )
        code, details = _validation_details(exc)
        message = "Malformed JSON body" if code == "BAD_REQUEST" else "Validation failed"
        return error_response(ApiError(code, message, details))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "BAD_REQUEST")
        if exc.status_code >= 500:
            code = "INTERNAL_ERROR"
        message = exc.detail if isinstance(exc.detail, str) and exc.status_code < 500 else None
        err = ApiError(code, message, headers=dict(exc.headers or {}))
        response = error_response(err)
        response.status_code = exc.status_code
        return response

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return error_response(ApiError("SERVICE_UNAVAILABLE", "The database is unavailable"))

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return error_response(ApiError("SERVICE_UNAVAILABLE", "The database is unavailable"))
        log.exception("database error", extra={"request_id": request.state.request_id})
        return error_response(ApiError("INTERNAL_ERROR"))

    @app.exception_handler(ConnectionError)
    async def dependency_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable: %s", exc)
        return error_response(ApiError("SERVICE_UNAVAILABLE", "A dependency is unavailable"))

    @app.exception_handler(TimeoutError)
    async def dependency_silent(_: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency did not answer in time")
        failure = ApiError("SERVICE_UNAVAILABLE", "A dependency did not answer in time")
        return error_response(failure)

    async def cache_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("cache unavailable: %s", exc.__class__.__name__)
        return error_response(ApiError("SERVICE_UNAVAILABLE", "The cache is unavailable"))

    for kind in redis_unavailable_errors(settings.redis_url):
        app.add_exception_handler(kind, cache_down)
    for kind in database_unavailable_errors(settings):
        app.add_exception_handler(kind, database_down)


def _install_health(app: FastAPI) -> None:
    @app.get("/health", include_in_schema=False)
    async def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/health/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        for name, probe in runtime_probes(runtime).items():
            try:
                await probe()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"failed: {exc.__class__.__name__}"
        failing = [name for name, state in checks.items() if state != "ok"]
        if failing:
            err = ApiError(
                "SERVICE_UNAVAILABLE", f"Not ready: {', '.join(failing)}", {"checks": checks}
            )
            return error_response(err)
        return ok({"status": "ready", "checks": checks})


def runtime_probes(runtime: Runtime) -> dict[str, Any]:
    """Named async checks of every dependency (database, cache, storage…)."""

    async def database() -> None:
        async with runtime.db.session(write=False) as session:
            await session.execute(text("SELECT 1"))

    probes: dict[str, Any] = {"database": database, "cache": runtime.cache.ping}
    storage = runtime.services.get("storage")
    if storage is not None and hasattr(storage, "ping"):
        probes["storage"] = storage.ping
    return probes


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else get_settings())
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = app.state.runtime
        if not app.state.runtime_owned:
            yield
            return
        await rt.start()
        for module in domains.hook_modules():
            startup = getattr(module, "on_startup", None)
            if startup is not None:
                await startup(rt)
        try:
            yield
        finally:
            for module in reversed(domains.hook_modules()):
                shutdown = getattr(module, "on_shutdown", None)
                if shutdown is not None:
                    try:
                        await shutdown(rt)
                    except Exception:
                        log.exception("shutdown of %s failed", module.__name__)
            await rt.close()

    app = FastAPI(
        title="Enque API",
        version="1.0.0",
        description="Enque help desk API. Every response is wrapped in the envelope "
        '`{"success": true, "data": …, "meta": …}` or `{"success": false, "error": …}`.',
        openapi_url="/v1/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
        telemetry=_telemetry(),
        default_response_class=JSONResponse,
    )
    # FastAPI's own routes (the OpenAPI document, the docs pages) are asked least: tried last
    documents = list(app.router.routes)
    app.router.route_class = DomainRoute  # the app's routes (health, metrics) as the domains'
    app.state.runtime_owned = runtime is None
    rt = runtime or Runtime.build(settings)
    if rt.limiter is None:
        rt.limiter = RateLimiter(settings, prefix=settings.redis_prefix)
    app.state.runtime = rt
    app.state.settings = settings

    for module in domains.hook_modules():
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(rt)

    _install_error_handlers(app, settings)
    _install_health(app)
    metrics.install(app)
    for module in domains.route_modules():
        # one flat table: FastAPI matches the routes of an included router in a second,
        # nested walk, twice per request (the domain routers document the errors themselves)
        app.router.routes.extend(module.router.routes)
    app.router.routes[:] = [r for r in app.router.routes if r not in documents] + documents
    app.router.middleware_stack = RouteIndex(app.router)

    _document_security(app)
    app.add_middleware(
        CrossOriginMiddleware,
        allow_origins=[o for o in settings.allowed_origins if "*" not in o],
        allow_origin_regex=_wildcard_origins(settings.allowed_origins),
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "If-Match", "X-Request-ID"],
        expose_headers=[
            "X-Request-ID",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "Retry-After",
        ],
    )
    app.add_middleware(
        RequestContextMiddleware,
        json_limit=settings.max_json_body_kb * 1024,
        upload_limit=settings.max_upload_bytes + 1024 * 1024,
    )
    return app


def _document_security(app: FastAPI) -> None:
    """The OpenAPI document names the bearer token on every route that needs one."""
    from enque.auth.deps import document_security

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_security(generate(), app.routes)
        return app.openapi_schema  # type: ignore[return-value]  # set by `generate`

    app.openapi = openapi  # type: ignore[method-assign]


def _telemetry() -> TelemetryConfig:
    """FastAPI's OpenTelemetry hooks stay on when the environment asks FastAPI to set up its
    exporters; otherwise they are off rather than checked on every request (Enque has its
    own metrics and logs)."""
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return TelemetryConfig()
    return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


# What requests allocate is freed by reference counting: under load the collector finds no
# garbage at all (bench/RESULTS-api.md). Python's default young generation (700 objects) is
# outgrown by what ten requests in flight keep alive at once, so it ran some 80 times a second,
# walking those live objects and, every tenth time, an older generation too, each time with
# every request stopped. At 10,000 it runs about once in five seconds.
YOUNG_GENERATION_THRESHOLD = 10_000


def serving_app(settings: Settings | None = None) -> FastAPI:
    """The application `enque serve` and `enque worker` run, built with the cyclic garbage
    collector paused.

    Building the app creates some 250,000 objects (models, schemas, routes, tables) that live
    as long as the process, and almost no garbage; a collector left on scans them again and
    again while they are made, a fifth of the start's CPU. `enque serve` pauses it before the
    app is imported, and it stays paused here while the app is built; it is resumed with those
    objects frozen out of every later collection, so full collections do not walk them either,
    and with a young generation sized for requests in flight.
    """
    gc.disable()
    app = create_app(settings)
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    gc.enable()
    return app


def _wildcard_origins(origins: list[str]) -> str | None:
    """`https://*.example.com` → a regex for subdomain origins."""
    import re

    patterns = [re.escape(o).replace(r"\*", "[a-z0-9-]+") for o in origins if "*" in o and o != "*"]
    return "^(" + "|".join(patterns) + ")$" if patterns else None
