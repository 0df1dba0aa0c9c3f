"""Every people route with an id answers 404 for another workspace's resource.

Uses the factories the tenant walk uses, so this also proves they make what they claim.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Tenant, data, error
from tests.support.factories import FACTORIES

ROUTES = [
    ("GET", "/v1/workspaces/{id}", None),
    ("PATCH", "/v1/workspaces/{id}", {"name": "Taken over"}),
    ("DELETE", "/v1/workspaces/{id}", None),
    ("GET", "/v1/agents/{id}", None),
    ("PATCH", "/v1/agents/{id}", {"role": "agent"}),
    ("DELETE", "/v1/agents/{id}", None),
    ("DELETE", "/v1/agents/invitations/{id}", None),
    ("GET", "/v1/teams/{id}", None),
    ("PATCH", "/v1/teams/{id}", {"name": "Taken over"}),
    ("DELETE", "/v1/teams/{id}", None),
    ("PUT", "/v1/teams/{id}/members", {"agentIds": []}),
]


def segment(path: str) -> str:
    parts = path.split("/")
    return parts[parts.index("{id}") - 1]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_other_workspace_is_not_found(
    tenant: Tenant, make_tenant: Any, method: str, path: str, body: dict[str, Any] | None
) -> None:
    other = await make_tenant()
    resource_id = await FACTORIES[segment(path)](other)
    response = await tenant.request(method, path.format(id=resource_id), json=body)
    error(response, 404, "NOT_FOUND")
    # still there, untouched, for its own workspace
    if segment(path) == "invitations":
        pending = data(await other.get("/v1/agents/invitations"))
        assert [i["id"] for i in pending] == [resource_id]
    else:
        own = path.format(id=resource_id).removesuffix("/members")
        assert (await other.get(own)).status_code == 200
