"""A thin client for the API under test, and a factory of isolated workspaces."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

_counter = itertools.count(1)

PASSWORD = "correct horse battery staple"


def unique(prefix: str = "t") -> str:
    return f"{prefix}{next(_counter)}-{uuid.uuid4().hex[:8]}"


@dataclass
class Tenant:
    """A workspace with its admin signed in; request helpers send the admin's token."""

    http: httpx.AsyncClient
    token: str
    agent_id: str
    workspace_id: str
    email: str
    password: str
    subdomain: str

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kw)

    async def put(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kw)


async def register(http: httpx.AsyncClient, **overrides: Any) -> Tenant:
    name = unique("ws")
    body = {
        "email": f"admin-{name}@example.com",
        "password": PASSWORD,
        "displayName": f"Admin {name}",
        "workspaceName": f"Workspace {name}",
        "subdomain": name,
        **overrides,
    }
    response = await http.post("/v1/auth/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return Tenant(
        http=http,
        token=data["token"],
        agent_id=data["agent"]["id"],
        workspace_id=data["workspace"]["id"],
        email=body["email"],
        password=body["password"],
        subdomain=body["subdomain"],
    )


def data(response: httpx.Response, status: int = 200) -> Any:
    """The `data` of a success envelope, after checking the status."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert body["success"] is True, body
    return body["data"]


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The `error` of a failure envelope, after checking status and code."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]
