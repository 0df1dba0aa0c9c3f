"""Who is calling: the bearer token checked against the database on every request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute

from enque.auth.context import AuthContext, load_context
from enque.core.deps import READ_METHODS
from enque.core.errors import ApiError, forbidden, unauthorized
from enque.core.runtime import Runtime
from enque.core.security import InvalidToken, decode_token

# The bearer token is read by `current_principal` itself: a security dependency of its own
# would cost every request one more dependency to solve. `document_security` writes the
# scheme into the OpenAPI document as that dependency would have.
SECURITY_SCHEMES = {
    "HTTPBearer": {"type": "http", "description": "JWT from /v1/auth/login", "scheme": "bearer"}
}

# Extra token kinds (API tokens) plug in here: prefix → resolver.
TokenResolver = Callable[[Request, AsyncSession, str], Awaitable["Principal"]]
TOKEN_RESOLVERS: dict[str, TokenResolver] = {}


@dataclass(frozen=True)
class Principal:
    agent_id: str
    workspace_id: str
    role: str
    jti: str
    expires_at: int
    kind: str = "agent"  # or "api_token"
    scopes: frozenset[str] = frozenset()
    context: AuthContext | None = None  # the cached agent + workspace, for agent tokens

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_manager(self) -> bool:
        return self.role in ("admin", "manager")


async def principal_from_jwt(runtime: Runtime, token: str) -> Principal:
    """Decode and check a JWT: signature, expiry, revocation, agent and workspace still live."""
    settings = runtime.settings
    try:
        claims = decode_token(
            token, secret=settings.resolved_secret_key(), algorithm=settings.jwt_algorithm
        )
    except InvalidToken as exc:
        raise unauthorized("Invalid or expired token") from exc
    context = await load_context(
        runtime,
        agent_id=claims.agent_id,
        workspace_id=claims.workspace_id,
        jti=claims.jti,
    )
    if context.token_version != claims.token_version:
        raise unauthorized("Token has been revoked")
    return Principal(
        claims.agent_id,
        claims.workspace_id,
        context.role,
        claims.jti,
        claims.expires_at,
        context=context,
    )


async def current_principal(request: Request) -> Principal:
    """The authenticated caller, rate-limited per agent (reads and writes apart)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("Missing bearer token")
    runtime: Runtime = request.app.state.runtime
    resolver = next((r for p, r in TOKEN_RESOLVERS.items() if token.startswith(p)), None)
    if resolver is not None:
        async with runtime.db.session(write=False) as session:
            principal = await resolver(request, session, token)
    else:
        principal = await principal_from_jwt(runtime, token)
    request.state.agent_id = principal.agent_id
    request.state.workspace_id = principal.workspace_id
    if runtime.limiter is not None:
        kind = "read" if request.method in READ_METHODS else "write"
        who = principal.jti if principal.kind == "api_token" else principal.agent_id
        key = f"{principal.kind}:{who}"  # API tokens are limited each on its own
        state = await runtime.limiter.hit(kind, key)
        if state is not None:
            request.state.rate_limit_headers = state.raw_headers()
    return principal


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only the given roles (403 otherwise)."""

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in roles:
            raise forbidden(f"This action needs the role {' or '.join(roles)}")
        return principal

    return dependency


CurrentAgent = Depends(current_principal)


def _needs_token(dependant: Dependant) -> bool:
    return any(
        dependency.call is current_principal or _needs_token(dependency)
        for dependency in dependant.dependencies
    )


def document_security(openapi: dict[str, Any], routes: Iterable[BaseRoute]) -> None:
    """Mark every operation whose route depends on `current_principal` as needing the token."""
    for route in routes:
        if (
            isinstance(route, APIRoute)
            and route.include_in_schema
            and _needs_token(route.dependant)
        ):
            for method in route.methods or ():
                operation = openapi["paths"][route.path_format].get(method.lower())
                if operation is not None:
                    operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
    openapi.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES


Manager = Depends(require_role("admin", "manager"))
Admin = Depends(require_role("admin"))


async def limit_public(request: Request, key: str) -> None:
    """Rate-limit a public auth route by client IP and the identity it names."""
    runtime: Runtime = request.app.state.runtime
    if runtime.limiter is None:
        return
    ip = request.client.host if request.client else "unknown"
    state = await runtime.limiter.hit("auth", f"{ip}|{key.lower()}")
    if state is not None:
        request.state.rate_limit_headers = state.raw_headers()


__all__ = ["Admin", "ApiError", "CurrentAgent", "Manager", "Principal", "require_role"]
