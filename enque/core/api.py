"""The response envelope, API schema base, pagination cursors."""

from __future__ import annotations

import base64
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.warnings import UnsupportedFieldAttributeWarning
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.routing import Match, compile_path, get_name
from starlette.types import Scope

from enque.core.errors import ApiError
from enque.core.query import QueryModel

T = TypeVar("T")


MAX_UNIX = 32503680000  # 3000-01-01: a bound for every Unix-seconds input

# The schemas below are built on first use (`defer_build`), not when their module is imported:
# a start builds none of the ~200 models nor the body and response adapters FastAPI makes of
# them; each is built once, by the first request that needs it or by the OpenAPI document.
# FastAPI silences this warning about its own parameter fields while it makes their adapters;
# built later, outside that silence, they would print it on the first request of a route.
warnings.filterwarnings("ignore", category=UnsupportedFieldAttributeWarning)


class ApiModel(BaseModel):
    """Base of every API shape: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, from_attributes=True, defer_build=True
    )


def nul_path(value: Any, path: str = "") -> str | None:
    """Where a NUL character hides in decoded JSON (a key or a string), or None.

    No database stores it in text (PostgreSQL refuses it), so bodies with one are refused."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = nul_path(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


class ApiInput(ApiModel):
    """Base of request bodies: unknown fields are refused, strings are stripped, NUL
    characters are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=True,
        defer_build=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        where = nul_path(data)
        if where is not None:
            raise ValueError(f"{where or 'body'}: NUL characters are not allowed")
        return data


def not_null(*fields: str) -> Any:
    """A validator for PATCH bodies: these fields may be left out, but not sent as null."""

    def check(cls: Any, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not null")
        return value

    return field_validator(*fields)(classmethod(check))


class PageMeta(ApiModel):
    limit: int
    next_cursor: str | None = None
    total: int | None = None


class Envelope(BaseModel, Generic[T]):
    """`{"success": true, "data": …, "meta": …}` — for the OpenAPI document."""

    model_config = ConfigDict(defer_build=True)

    success: Literal[True] = True
    data: T
    meta: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    model_config = ConfigDict(defer_build=True)

    success: Literal[False] = False
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorEnvelope, "description": "Error in the envelope"},
    "5XX": {"model": ErrorEnvelope, "description": "Error in the envelope"},
}


_COMPILED_PATH = frozenset(("path_regex", "path_format", "param_convertors"))


class DomainRoute(APIRoute):
    """A domain's route: analysed on first use, and quick to turn a request away.

    FastAPI analyses a route when it is made: its parameters, dependencies, body and response
    models, each made a Pydantic field. For Enque's ~150 routes that is a fifth of a start, so
    a start only records each route's path and the analysis runs when the route first answers
    a request or the OpenAPI document is built, a few milliseconds once per route (the same
    trade as the schemas' `defer_build`); the path's pattern is compiled the first time a path
    passes the literal checks below. `tests/test_contract.py` builds every route, so a route
    declared wrong still fails the tests, not a user's first request.

    The app tries a request against its routes in turn, and FastAPI's match of one route costs
    a few microseconds; most routes share nothing with the path beyond `/v1/`. A path that does
    not hold the route's text before its first parameter, or does not end with its text after
    the last one, cannot match its pattern (the path may carry a `root_path` in front, so the
    start is looked for anywhere: never a wrong refusal).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # what the route table and the literal checks need, set as FastAPI sets it
        self.path = path
        self.endpoint = endpoint
        self.name = kwargs.get("name") or get_name(endpoint)
        self.include_in_schema = kwargs.get("include_in_schema", True)
        self.methods = {method.upper() for method in kwargs.get("methods") or ["GET"]}
        self.literal_start = path.split("{", 1)[0]
        self.literal_end = path.rsplit("}", 1)[-1]
        self._deferred: dict[str, Any] | None = kwargs

    def __getattr__(self, name: str) -> Any:
        """The path's pattern is compiled when a path passes the literal checks; any other
        attribute (the handler, the analysis) builds the whole route first."""
        if name in _COMPILED_PATH:
            self.path_regex, self.path_format, self.param_convertors = compile_path(self.path)
            return getattr(self, name)
        deferred = self.__dict__.get("_deferred")
        if deferred is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._deferred = None
        try:
            super().__init__(self.path, self.endpoint, **deferred)
        except BaseException:
            self._deferred = deferred  # the next use fails the same way
            raise
        return getattr(self, name)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            path = scope["path"]
            if not path.endswith(self.literal_end) or self.literal_start not in path:
                return Match.NONE, {}
        return super().matches(scope)


def api_router(**kwargs: Any) -> APIRouter:
    """A domain's router; its routes document the error envelope themselves, because the app
    serves every domain's routes from its own table rather than including the routers."""
    return APIRouter(responses=ERROR_RESPONSES, route_class=DomainRoute, **kwargs)


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, mode="json")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dump(data: Any) -> Any:
    """Turn API models (or lists of them) into plain JSON-ready values with camelCase keys."""
    if isinstance(data, BaseModel):
        return data.model_dump(by_alias=True, mode="json")
    if isinstance(data, list | tuple):
        return [dump(item) for item in data]
    return data


class JSONResponse(StarletteJSONResponse):
    """JSON with orjson; a Starlette JSONResponse, so OpenAPI documents the response models."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


def ok(
    data: Any = None,
    meta: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The success envelope."""
    body: dict[str, Any] = {"success": True, "data": dump(data)}
    if meta is not None:
        body["meta"] = dump(meta)
    return JSONResponse(body, status_code=status, headers=headers)


def created(data: Any, meta: dict[str, Any] | None = None) -> JSONResponse:
    return ok(data, meta, status=201)


def no_content() -> Response:
    return Response(status_code=204)


def error_response(err: ApiError) -> JSONResponse:
    body = {
        "success": False,
        "error": {"code": err.code, "message": err.message, "details": err.details},
    }
    return JSONResponse(body, status_code=err.status, headers=err.headers)


# ---------------------------------------------------------------- pagination


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor for keyset pagination (the last row's sort key)."""
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ApiError(
            "VALIDATION_ERROR", details=[{"path": "cursor", "message": "invalid cursor"}]
        ) from exc
    if not isinstance(values, list) or len(values) != arity:
        raise ApiError(
            "VALIDATION_ERROR", details=[{"path": "cursor", "message": "invalid cursor"}]
        )
    return values


PAGE_LIMIT, MAX_PAGE_LIMIT, MAX_CURSOR = 50, 200, 512


@dataclass(frozen=True)
class PageParams:
    """`limit` (1–200, default 50), `cursor` and `includeTotal` query parameters."""

    limit: int = PAGE_LIMIT
    cursor: str | None = None
    include_total: bool = False


class PageQuery(QueryModel):
    """The paging parameters of a route whose whole query string is one model."""

    limit: int = Field(PAGE_LIMIT, ge=1, le=MAX_PAGE_LIMIT)
    cursor: str | None = Field(None, max_length=MAX_CURSOR)
    include_total: bool = Field(False, alias="includeTotal")

    @property
    def page(self) -> PageParams:
        return PageParams(self.limit, self.cursor, self.include_total)


async def page_params(
    limit: int = Query(PAGE_LIMIT, ge=1, le=MAX_PAGE_LIMIT),
    cursor: str | None = Query(None, max_length=MAX_CURSOR),
    include_total: bool = Query(False, alias="includeTotal"),
) -> PageParams:
    """The paging query parameters (an `async` dependency: FastAPI runs plain functions and
    classes in a thread pool, a thread hop per request)."""
    return PageParams(limit, cursor, include_total)


def page_meta(limit: int, next_cursor: str | None, total: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"limit": limit, "nextCursor": next_cursor}
    if total is not None:
        meta["total"] = total
    return meta


# ---------------------------------------------------------------- common field types

_EMAIL = re.compile(
    r"^[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def normalize_email(value: str) -> str:
    """Trim, check the shape, lowercase the domain (the local part is kept as written)."""
    value = value.strip()
    if len(value) > 320 or not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def _password_bytes(value: str) -> str:
    size = len(value.encode())
    if size < 8:
        raise ValueError("password must be at least 8 characters")
    if size > 1024:
        raise ValueError("password must be at most 1024 bytes")
    return value


Email = Annotated[str, AfterValidator(normalize_email)]
# Passwords are taken exactly as typed: never stripped like other strings.
Password = Annotated[
    str, StringConstraints(strip_whitespace=False), AfterValidator(_password_bytes)
]
