"""ASGI middleware: request id, body size limits, security headers, errors in the envelope."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from enque.core.db import new_id
from enque.core.errors import ApiError
from enque.core.metrics import observe_request

log = logging.getLogger("enque.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def _envelope(code: str, message: str) -> bytes:
    body = {"success": False, "error": {"code": code, "message": message, "details": None}}
    return orjson.dumps(body)


def _route_label(scope: Scope) -> str | None:
    """The matched route's template; a plain route without parameters is its own path."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None)
    if "endpoint" in scope and not scope.get("path_params"):
        return str(scope.get("path"))
    return None


class CrossOriginMiddleware(CORSMiddleware):
    """Starlette's CORS, for the requests a browser sends with an `Origin`.

    A request without one (servers, scripts, same-origin pages) has nothing to check or
    answer: it skips this layer, and `RequestContextMiddleware` adds the `Vary: Origin` that
    the CORS layer would have added, so a shared cache keeps the answers apart.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(name == b"origin" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _vary_on_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response's headers with `Origin` added to its `Vary` (or a new `Vary: Origin`)."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            headers = list(headers)
            headers[index] = (name, value + b", Origin")
            return headers
    return [*headers, (b"vary", b"Origin")]


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__("PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes")


class RequestContextMiddleware:
    """Outermost layer: every response gets `X-Request-ID` and security headers, every
    request body is bounded, and an unhandled exception becomes a 500 in the envelope."""

    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else new_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        cross_origin = b"origin" in headers  # CrossOriginMiddleware answers for those
        started = time.perf_counter()
        response_started = False
        status_code = 500

        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            await self._reply(
                send, 422, "VALIDATION_ERROR", "NUL characters are not allowed", request_id
            )
            status_code = 422
            self._log(scope, state, status_code, started)
            return

        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = self.upload_limit if content_type.startswith("multipart/") else self.json_limit
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reply(
                send, 413, "PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes", request_id
            )
            return

        received = 0
        too_large = False
        replaced = False

        async def bounded_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge(limit)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started, status_code, replaced
            if too_large:
                # whatever the app made of the aborted body, the answer is 413
                if not replaced:
                    replaced = response_started = True
                    status_code = 413
                    await self._reply(
                        send,
                        413,
                        "PAYLOAD_TOO_LARGE",
                        f"Request body exceeds {limit} bytes",
                        request_id,
                    )
                return
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode())]
                extra.extend(SECURITY_HEADERS)
                extra.extend(state.get("rate_limit_headers") or ())
                headers = message.get("headers", [])
                if not cross_origin:
                    headers = _vary_on_origin(headers)
                existing = {k.lower() for k, _ in headers}
                message["headers"] = [*headers, *(h for h in extra if h[0] not in existing)]
            await send(message)

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except BodyTooLarge as exc:
            if not response_started:
                await self._reply(send, 413, exc.code, exc.message, request_id)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not response_started:
                await self._reply(send, 500, "INTERNAL_ERROR", "Internal server error", request_id)
        finally:
            self._log(scope, state, status_code, started)

    def _log(self, scope: Scope, state: dict[str, Any], status: int, started: float) -> None:
        route = scope.get("route")
        elapsed = time.perf_counter() - started
        observe_request(scope.get("method", ""), _route_label(scope), status, elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                status,
                extra={
                    "request_id": state.get("request_id"),
                    "workspace_id": state.get("workspace_id"),
                    "agent_id": state.get("agent_id"),
                    "route": getattr(route, "path", None),
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 2),
                },
            )

    async def _reply(self, send: Send, status: int, code: str, message: str, rid: str) -> None:
        body = _envelope(code, message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", rid.encode()),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
