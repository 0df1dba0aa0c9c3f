"""Route dispatch by a path's first segments.

The router tries its routes in order until one matches, a call each. With some 150 routes in
one table, a request for a route far down the table walked a hundred before its own. A route's
path fixes the first segments a request path must start with to match it (`/v1/agents/{id}`:
`v1`, `agents`), so `RouteIndex` keeps, for each such start, the routes that can match a path
beginning with it, in table order, and lets FastAPI's own dispatch walk only those. The answer
is the same: routes left out cannot match the path, and what none of the kept ones takes
(a 404, a 405, a redirect to the other trailing slash) is left to the full table walk.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.routing import BaseRoute, Match, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send

KEY_SEGMENTS = 2  # `/v1/<domain>`: enough to tell the domains apart

Key = tuple[str, ...]


def route_key(route: BaseRoute) -> Key:
    """The complete literal segments (up to two) every path this route matches starts with;
    empty for mounts, hosts and anything else, which are tried for every path."""
    path = getattr(route, "path", None)
    if not isinstance(route, Route | WebSocketRoute) or not isinstance(path, str):
        return ()
    if not path.startswith("/"):
        return ()
    literal, parameter, _ = path.partition("{")
    segments = literal[1:].split("/")
    if parameter:
        segments.pop()  # the segment the parameter starts in is not fixed
    return tuple(segments[:KEY_SEGMENTS])


def path_key(path: str) -> Key:
    return tuple(path[1:].split("/", KEY_SEGMENTS)[:KEY_SEGMENTS])


class _FullWalk(BaseRoute):
    """Last in every narrowed table: what no kept route took goes to the whole table."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return Match.FULL, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router.app(scope, receive, send)


class RouteIndex:
    """Installed as the router's dispatch (`router.middleware_stack`): each request is walked
    by a copy of the router whose table holds only the routes its path can match, then the
    full walk. Rebuilt whenever the router's table changes (routes added after start)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.snapshot: list[BaseRoute] = []
        self.views: dict[Key, Router] = {}

    def _rebuild(self) -> None:
        routes = list(self.router.routes)
        keys = [route_key(route) for route in routes]
        fallback = _FullWalk(self.router)
        self.views = {}
        for key in set(keys):
            view = copy.copy(self.router)
            view.routes = [r for r, k in zip(routes, keys, strict=True) if key[: len(k)] == k]
            view.routes.append(fallback)
            self.views[key] = view
        self.snapshot = routes

    def view_for(self, path: str) -> Router:
        """The narrowed router for a path: by its longest start that some route has."""
        if self.router.routes != self.snapshot:
            self._rebuild()
        key = path_key(path)
        views = self.views
        while key not in views:
            if not key:
                return self.router
            key = key[:-1]
        return views[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope.get("root_path"):
            await self.router.app(scope, receive, send)
            return
        scope.setdefault("router", self.router)  # url_for looks at every route
        view: Any = self.view_for(scope["path"])
        await view.app(scope, receive, send)
