"""The API contract: envelope, error codes, request ids, headers, documents, health."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.exceptions import FastAPIError

from enque.app import create_app
from enque.config import Settings
from tests.conftest import settings_from
from tests.support.api import Tenant, data, error

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_success_envelope_camel_case_ids_and_seconds(tenant: Tenant):
    body = (await tenant.get("/v1/auth/me")).json()
    assert body["success"] is True and set(body) <= {"success", "data", "meta"}
    agent = body["data"]["agent"]
    assert UUID7.match(agent["id"])
    assert "displayName" in agent and "display_name" not in agent
    assert (
        isinstance(agent["createdAt"], int) and 1_700_000_000 < agent["createdAt"] < 4_000_000_000
    )
    assert agent["avatarUrl"] is None  # empty optional values are null, not absent


async def test_malformed_json_is_bad_request(http: httpx.AsyncClient):
    response = await http.post(
        "/v1/auth/login", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    error(response, 400, "BAD_REQUEST")


async def test_wrong_types_are_validation_errors_with_paths(http: httpx.AsyncClient):
    response = await http.post("/v1/auth/login", json={"email": 42, "password": ["x"]})
    details = error(response, 422, "VALIDATION_ERROR")["details"]
    assert {d["path"] for d in details} == {"email", "password"}
    assert all(d["message"] for d in details)


async def test_unknown_fields_are_refused(tenant: Tenant):
    response = await tenant.post("/v1/teams", json={"name": "Support", "colour": "red"})
    details = error(response, 422, "VALIDATION_ERROR")["details"]
    assert details[0]["path"] == "colour"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_non_json_body_is_unsupported_media_type(http: httpx.AsyncClient, content_type: str):
    response = await http.post(
        "/v1/auth/login", content=b"email=a&password=b", headers={"content-type": content_type}
    )
    error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_nul_characters_are_refused_everywhere(tenant: Tenant):
    """PostgreSQL cannot store NUL in text: refused up front on every engine, nothing written."""
    before = data(await tenant.get("/v1/teams"))
    for body in (
        {"name": "Night\x00Shift"},
        {"name": "Night", "agentIds": ["\x00"]},
        {"name": "Night", "description": "a\x00b"},
    ):
        err = error(await tenant.post("/v1/teams", json=body), 422, "VALIDATION_ERROR")
        assert "NUL" in err["details"][0]["message"]
    assert data(await tenant.get("/v1/teams")) == before
    error(await tenant.get("/v1/tickets?companyId=%00"), 422, "VALIDATION_ERROR")
    error(await tenant.get("/v1/tickets/%00"), 422, "VALIDATION_ERROR")


async def test_unknown_route_and_wrong_method(http: httpx.AsyncClient):
    error(await http.get("/v1/no-such-thing"), 404, "NOT_FOUND")
    error(await http.delete("/v1/auth/login"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("resource", ["teams", "agents", "tickets", "users", "companies"])
@pytest.mark.parametrize("bad_id", ["01900000-0000-7000-8000-000000000000", "not-a-uuid", "1"])
async def test_unknown_and_malformed_ids_are_not_found(tenant: Tenant, resource: str, bad_id: str):
    error(await tenant.get(f"/v1/{resource}/{bad_id}"), 404, "NOT_FOUND")


async def test_oversize_body_with_content_length(http: httpx.AsyncClient, settings: Settings):
    big = b'{"email": "' + b"a" * (settings.max_json_body_kb * 1024 + 10) + b'"}'
    response = await http.post(
        "/v1/auth/login", content=big, headers={"content-type": "application/json"}
    )
    error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_oversize_body_streamed_without_length(http: httpx.AsyncClient, settings: Settings):
    chunk = b"a" * 65536
    limit = settings.max_json_body_kb * 1024

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "'
        for _ in range(limit // len(chunk) + 2):
            yield chunk
        yield b'"}'

    response = await http.post(
        "/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_request_id_echoed_or_generated(http: httpx.AsyncClient):
    echoed = await http.get("/health", headers={"X-Request-ID": "client-abc.123"})
    assert echoed.headers["x-request-id"] == "client-abc.123"
    generated = await http.get("/health")
    assert UUID7.match(generated.headers["x-request-id"])
    unsafe = await http.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    failed = await http.get("/v1/auth/me")
    assert failed.status_code == 401 and failed.headers["x-request-id"]


async def test_security_headers(http: httpx.AsyncClient):
    response = await http.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_openapi_documents_the_envelope(http: httpx.AsyncClient):
    document = data_or_raw(await http.get("/v1/openapi.json"))
    assert document["openapi"].startswith("3.")
    for path, item in document["paths"].items():
        assert path.startswith("/v1/"), path
        for method, operation in item.items():
            responses = operation["responses"]
            assert "4XX" in responses and "5XX" in responses, f"{method} {path}"
            success = [code for code in responses if code[0] in "23"]
            assert success, f"{method} {path} documents no success response"
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def data_or_raw(response: httpx.Response) -> Any:
    assert response.status_code == 200
    return response.json()


async def test_health_and_ready(http: httpx.AsyncClient):
    health = await http.get("/health")
    assert health.status_code == 200 and health.text == "ok"
    ready = data(await http.get("/health/ready"))
    assert ready["checks"]["database"] == "ok"


@pytest.fixture
async def broken_app(base_env: dict[str, str]) -> AsyncIterator[Any]:
    """An app whose database is a closed port, plus a route that fails unexpectedly."""
    settings = settings_from(base_env, database_url="postgresql://enque@127.0.0.1:9/none")
    app = create_app(settings)
    boom = APIRouter()

    @boom.get("/v1/test-only/boom")
    async def explode() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.include_router(boom)
    async with app.router.lifespan_context(app):
        yield app


async def test_ready_names_the_failing_database(broken_app: Any):
    transport = httpx.ASGITransport(app=broken_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/health")).status_code == 200  # no database needed
        response = await client.get("/health/ready")
        failure = error(response, 503, "SERVICE_UNAVAILABLE")
        assert "database" in failure["message"]
        assert failure["details"]["checks"]["cache"] == "ok"


async def test_database_down_is_service_unavailable(broken_app: Any):
    transport = httpx.ASGITransport(app=broken_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post(
            "/v1/auth/login", json={"email": "a@example.com", "password": "whatever1"}
        )
        error(response, 503, "SERVICE_UNAVAILABLE")


async def test_unexpected_error_is_a_generic_500(broken_app: Any):
    transport = httpx.ASGITransport(app=broken_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/v1/test-only/boom", headers={"X-Request-ID": "trace-1"})
        failure = error(response, 500, "INTERNAL_ERROR")
        assert failure["message"] == "Internal server error"
        assert "hunter2" not in response.text and "Traceback" not in response.text
        assert response.headers["x-request-id"] == "trace-1"


def test_no_route_answers_another_domains_paths():
    """The domains' routes share one table, in no chosen order: that is safe only while the
    paths one domain declares are answered by no route of another domain."""
    from starlette.routing import Match, Route

    def domain(route: Route) -> str:
        return route.endpoint.__module__.split(".")[1]

    routes = [r for r in create_app().router.routes if isinstance(r, Route)]
    assert len(routes) > 100
    for route in routes:
        path = route.path_format.replace("{path}", "a/b")
        path = re.sub(r"\{[^}]+\}", "0191a3c4-0000-7000-8000-000000000001", path)
        for method in route.methods or ():
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            answering = {domain(r) for r in routes if r.matches(scope)[0] == Match.FULL}
            assert answering == {domain(route)}, f"{method} {path} is answered by {answering}"


def test_every_api_route_is_turned_away_on_its_literal_text_only():
    """Domain routes refuse a path early when it lacks their text before the first parameter
    or after the last one; that check never refuses a path the route's pattern matches, with
    or without a root path."""
    from fastapi.routing import APIRoute
    from starlette.routing import Match

    from enque.core.api import DomainRoute

    routes = [r for r in create_app().router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 100
    assert all(isinstance(r, DomainRoute) for r in routes if r.path.startswith("/v1/"))
    for route in routes:
        if not isinstance(route, DomainRoute):
            continue
        path = re.sub(r"\{[^}]+\}", "0191a3c4-0000-7000-8000-000000000001", route.path_format)
        method = sorted(route.methods)[0]
        for root in ("", "/helpdesk"):
            scope = {"type": "http", "method": method, "path": root + path, "root_path": root}
            assert route.matches(scope)[0] == Match.FULL, (root, path)
        ends_with_text = not route.path_format.endswith("}")
        for elsewhere in ("/v1/elsewhere", path + "/elsewhere")[: 1 + ends_with_text]:
            other = {"type": "http", "method": method, "path": elsewhere, "root_path": ""}
            assert route.matches(other)[0] == Match.NONE, elsewhere


class Opaque:
    """A type FastAPI cannot read from a request."""


def test_domain_routes_match_as_fastapi_routes_before_their_analysis():
    """A domain route defers FastAPI's analysis to its first use; what it sets up front is
    what FastAPI would set, and any other attribute builds the whole route."""
    from enque.core.api import DomainRoute, api_router

    domain, plain = api_router(prefix="/v1/things"), APIRouter(prefix="/v1/things")
    for router in (domain, plain):

        @router.get("")
        @router.post("", status_code=201, name="make_thing")
        @router.delete("/{thing_id}/parts/{part_id}", status_code=204)
        @router.put("/{thing_id}/files/{name:path}", include_in_schema=False)
        async def endpoint(thing_id: str = "", part_id: int = 0, name: str = "") -> None:
            return None

    assert len(domain.routes) == len(plain.routes) == 4
    for route, fastapi_route in zip(domain.routes, plain.routes, strict=True):
        assert isinstance(route, DomainRoute)
        assert "dependant" not in route.__dict__ and "app" not in route.__dict__
        for attribute in ("path", "path_format", "methods", "name", "include_in_schema"):
            assert getattr(route, attribute) == getattr(fastapi_route, attribute), attribute
        assert route.path_regex.pattern == fastapi_route.path_regex.pattern
        assert route.param_convertors.keys() == fastapi_route.param_convertors.keys()
        assert route.unique_id == fastapi_route.unique_id  # built on this first use
        assert route.status_code == fastapi_route.status_code and route.app is not None
        assert route.methods == fastapi_route.methods


def test_a_route_declared_wrong_fails_on_every_use():
    from enque.core.api import DomainRoute

    async def endpoint(value: Opaque) -> None:
        return None

    route = DomainRoute("/v1/broken", endpoint)
    for _ in range(2):
        with pytest.raises(FastAPIError, match="valid Pydantic field type"):
            route.dependant  # noqa: B018


async def test_cross_origin_requests_from_allowed_origins_only(http: httpx.AsyncClient):
    allowed = "http://enque.test"  # PUBLIC_URL of the tests
    response = await http.get("/health", headers={"origin": allowed})
    assert response.headers["access-control-allow-origin"] == allowed
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]
    assert response.headers["vary"] == "Origin" and response.headers["x-request-id"]

    response = await http.get("/health", headers={"origin": "http://elsewhere.test"})
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"

    response = await http.get("/health")  # no Origin: no CORS answer, but caches told
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin" and response.headers["x-request-id"]


async def test_preflight_admits_allowed_origins_methods_and_headers(http: httpx.AsyncClient):
    asked = {
        "origin": "http://enque.test",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    response = await http.options("/v1/tickets", headers=asked)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://enque.test"
    assert "POST" in response.headers["access-control-allow-methods"]

    response = await http.options("/v1/tickets", headers={**asked, "origin": "http://x.test"})
    assert response.status_code == 400 and "access-control-allow-origin" not in response.headers
    refused = {**asked, "access-control-request-headers": "x-unknown"}
    assert (await http.options("/v1/tickets", headers=refused)).status_code == 400


async def test_routes_answer_behind_a_root_path(app: Any):
    transport = httpx.ASGITransport(app=app, root_path="/helpdesk")
    async with httpx.AsyncClient(transport=transport, base_url="http://enque.test") as client:
        response = await client.get("/helpdesk/v1/auth/me")
    error(response, 401, "UNAUTHORIZED")


def test_openapi_names_the_bearer_token_where_it_is_needed():
    spec = create_app().openapi()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    paths = spec["paths"]
    assert paths["/v1/auth/me"]["get"]["security"] == [{"HTTPBearer": []}]
    assert paths["/v1/tickets"]["get"]["security"] == [{"HTTPBearer": []}]
    assert paths["/v1/agents/{agent_id}"]["delete"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/v1/auth/login"]["post"]
    assert "security" not in paths["/v1/auth/register"]["post"]
