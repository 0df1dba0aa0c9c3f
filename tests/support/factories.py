"""One factory per API resource: creates it in a workspace and returns its id.

The tenant-isolation walk finds, for each route with an id in its path, the factory of the
resource the path names (by the path segment before the id, e.g. `teams` for
`/v1/teams/{id}/members`), creates one in a second workspace and proves the first workspace
gets 404. A new resource type registers its factory here with `@factory("segment")`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.support.api import Tenant, data, unique
from tests.support.people import invite

Factory = Callable[[Tenant], Awaitable[str]]
FACTORIES: dict[str, Factory] = {}


def factory(*segments: str) -> Callable[[Factory], Factory]:
    def register(fn: Factory) -> Factory:
        for segment in segments:
            FACTORIES[segment] = fn
        return fn

    return register


@factory("workspaces")
async def workspace_id(tenant: Tenant) -> str:
    return tenant.workspace_id


@factory("agents")
async def agent_id(tenant: Tenant) -> str:
    """The tenant's admin: an agent that belongs to that workspace only."""
    return tenant.agent_id


@factory("teams")
async def team_id(tenant: Tenant) -> str:
    response = await tenant.post("/v1/teams", json={"name": unique("team")})
    return str(data(response, 201)["id"])


@factory("invitations")
async def invitation_id(tenant: Tenant) -> str:
    invitation = await invite(tenant, f"{unique('inv')}@example.com")
    return str(invitation["id"])
