"""Dispatch by a path's first segments (`enque.core.routeindex`): the same answers as the
router's full walk, for less work."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute

from enque.app import create_app
from enque.core.routeindex import RouteIndex, path_key, route_key
from tests.support.api import Tenant

ID = "0191a3c4-0000-7000-8000-000000000001"


def sample_paths(route: BaseRoute) -> set[str]:
    """Paths the route matches, and near misses: the other trailing slash, a segment more,
    the part before its first parameter."""
    path = str(getattr(route, "path", ""))
    exact = re.sub(r"\{[^}]+\}", ID, path.replace(":path}", "}/a/b"))
    prefix = path.split("{", 1)[0]
    return {exact, exact.rstrip("/") or "/", exact + "/", exact + "/more", prefix, prefix + "x"}


def test_route_keys():
    assert route_key(Route("/v1/tickets/{ticket_id}/notes", lambda r: None)) == ("v1", "tickets")
    assert route_key(Route("/v1/tickets", lambda r: None)) == ("v1", "tickets")
    assert route_key(Route("/health", lambda r: None)) == ("health",)
    assert route_key(Route("/", lambda r: None)) == ("",)
    assert route_key(Route("/assets/{path:path}", lambda r: None)) == ("assets",)
    assert route_key(Route("/v1/tick{suffix}", lambda r: None)) == ("v1",)
    assert route_key(Route("/{anything}", lambda r: None)) == ()
    assert path_key("/v1/tickets/abc/notes") == ("v1", "tickets")
    assert path_key("/health") == ("health",)
    assert path_key("/") == ("",)


def test_every_route_that_can_match_a_path_is_kept_for_it():
    """For paths near every route of the app: each route that matches a path fully or
    partly (another method) is among the routes its narrowed table walks, in table order."""
    app = create_app()
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    table = list(app.router.routes)
    assert len(table) > 100
    paths = {p for route in table for p in sample_paths(route)} | {"/", "/v1", "/nowhere"}
    narrowed = 0
    for path in sorted(paths):
        walked = index.view_for(path).routes
        narrowed += len(walked) < len(table)
        for kind, method in (
            ("http", "GET"),
            ("http", "POST"),
            ("http", "DELETE"),
            ("websocket", ""),
        ):
            scope = {"type": kind, "method": method, "path": path, "root_path": ""}
            can_match = [r for r in table if r.matches(scope)[0] != Match.NONE]
            kept = [r for r in walked if r in can_match]
            assert kept == can_match, f"{kind} {method} {path}"
    assert narrowed > len(paths) / 2


def test_unknown_starts_walk_the_whole_table():
    app = create_app()
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    assert index.view_for("/nowhere/at/all") is app.router


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/auth/me"),
        ("GET", "/v1/teams"),
        ("GET", f"/v1/teams/{ID}"),
        ("GET", "/v1/workspaces/current"),
        ("DELETE", "/v1/auth/me"),  # 405
        ("GET", "/v1/teams/"),  # the other trailing slash
        ("GET", "/v1/nowhere"),
        ("GET", "/nowhere"),
        ("GET", "/health"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/"),
        ("GET", "/assets/missing.js"),
    ],
)
async def test_answers_are_those_of_the_full_walk(
    app: Any, tenant: Tenant, method: str, path: str
) -> None:
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)

    async def ask() -> httpx.Response:
        return await tenant.request(method, path)

    indexed = await ask()
    app.router.middleware_stack = app.router.app  # the full walk
    try:
        walked = await ask()
    finally:
        app.router.middleware_stack = index
    assert indexed.status_code == walked.status_code
    assert indexed.headers.get("location") == walked.headers.get("location")
    assert indexed.headers.get("allow") == walked.headers.get("allow")
    if indexed.headers.get("content-type", "").startswith("application/json"):
        assert _without_request_ids(indexed.json()) == _without_request_ids(walked.json())


def _without_request_ids(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _without_request_ids(v) for k, v in body.items() if k != "requestId"}
    return body


async def test_routes_added_after_requests_are_found(app: Any, http: httpx.AsyncClient) -> None:
    assert (await http.get("/v1/teams/late/route")).status_code == 404  # the index is built

    async def answer() -> dict[str, bool]:
        return {"late": True}

    app.add_api_route("/v1/teams/late/route", answer)
    try:
        response = await http.get("/v1/teams/late/route")
        assert response.status_code == 200 and response.json() == {"late": True}
    finally:
        app.router.routes[:] = [
            r for r in app.router.routes if getattr(r, "path", "") != "/v1/teams/late/route"
        ]


def test_websocket_routes_are_indexed_too():
    app = create_app()
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    sockets = [r for r in app.router.routes if isinstance(r, WebSocketRoute)]
    assert sockets
    for socket in sockets:
        path = re.sub(r"\{[^}]+\}", ID, socket.path)
        assert socket in index.view_for(path).routes


async def test_a_route_taken_out_of_the_table_no_longer_answers(app: Any, tenant: Tenant) -> None:
    assert (await tenant.get("/v1/teams")).status_code == 200  # the index is built
    table = list(app.router.routes)
    listing = [r for r in table if getattr(r, "path", "") == "/v1/teams" and "GET" in r.methods]
    assert len(listing) == 1
    app.router.routes[:] = [r for r in table if r not in listing]
    try:
        assert (await tenant.get("/v1/teams")).status_code == 405  # creating teams remains
    finally:
        app.router.routes[:] = table
    assert (await tenant.get("/v1/teams")).status_code == 200


async def test_a_path_redirected_to_a_route_of_another_start(
    app: Any, http: httpx.AsyncClient
) -> None:
    """`/late` starts (`late`,) as `/late/{item}` does, but the route `/late/` starts (`late`,
    ``): no route kept for the path matches, and the full walk finds the redirect."""

    async def answer(item: str = "") -> dict[str, str]:
        return {"item": item}

    app.add_api_route("/late/{item}", answer)
    app.add_api_route("/late/", answer)
    try:
        response = await http.get("/late")
        assert response.status_code == 307
        assert response.headers["location"] == "http://enque.test/late/"
        assert (await http.get("/late/one")).json() == {"item": "one"}
    finally:
        app.router.routes[:] = [
            r for r in app.router.routes if not getattr(r, "path", "").startswith("/late/")
        ]
