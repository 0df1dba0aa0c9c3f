"""Who may call what, inside one's own workspace: every people route for each role.

Refused roles get 403 (the resource exists and is theirs to see); allowed roles succeed.
Each call gets its own target, so a destructive call never spoils the next one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.api import Tenant, data, unique
from tests.support.people import Member, add_member, invite

ALL = ("admin", "manager", "agent")
MANAGERS = ("admin", "manager")
ADMIN = ("admin",)


@dataclass
class Crew:
    tenant: Tenant
    manager: Member
    agent: Member
    smtp: Any

    def token(self, role: str) -> str:
        return {
            "admin": self.tenant.token,
            "manager": self.manager.token,
            "agent": self.agent.token,
        }[role]


Call = tuple[str, str, dict[str, Any] | None]
Make = Callable[[Crew], Awaitable[Call]]


async def team(crew: Crew) -> str:
    return str(data(await crew.tenant.post("/v1/teams", json={"name": unique("t")}), 201)["id"])


async def target_agent(crew: Crew) -> str:
    return (await add_member(crew.tenant, crew.smtp)).agent_id


def fixed(method: str, path: str, body: dict[str, Any] | None = None) -> Make:
    async def make(crew: Crew) -> Call:
        ws = crew.tenant.workspace_id
        return method, path.format(ws=ws), body

    return make


async def patch_other_agent(crew: Crew) -> Call:
    return "PATCH", f"/v1/agents/{await target_agent(crew)}", {"jobTitle": "Changed"}


async def promote_other_agent(crew: Crew) -> Call:
    return "PATCH", f"/v1/agents/{await target_agent(crew)}", {"role": "manager"}


async def delete_other_agent(crew: Crew) -> Call:
    return "DELETE", f"/v1/agents/{await target_agent(crew)}", None


async def get_agent(crew: Crew) -> Call:
    return "GET", f"/v1/agents/{crew.tenant.agent_id}", None


async def invite_someone(crew: Crew) -> Call:
    return "POST", "/v1/agents/invitations", {"email": f"{unique('m')}@example.com"}


async def revoke_invitation(crew: Crew) -> Call:
    invitation = await invite(crew.tenant, f"{unique('r')}@example.com")
    return "DELETE", f"/v1/agents/invitations/{invitation['id']}", None


async def create_team(crew: Crew) -> Call:
    return "POST", "/v1/teams", {"name": unique("team")}


async def get_team(crew: Crew) -> Call:
    return "GET", f"/v1/teams/{await team(crew)}", None


async def patch_team(crew: Crew) -> Call:
    return "PATCH", f"/v1/teams/{await team(crew)}", {"description": "x"}


async def delete_team(crew: Crew) -> Call:
    return "DELETE", f"/v1/teams/{await team(crew)}", None


async def put_members(crew: Crew) -> Call:
    return "PUT", f"/v1/teams/{await team(crew)}/members", {"agentIds": [crew.agent.agent_id]}


MATRIX: list[tuple[str, Make, tuple[str, ...]]] = [
    ("list workspaces", fixed("GET", "/v1/workspaces"), ALL),
    ("get workspace", fixed("GET", "/v1/workspaces/{ws}"), ALL),
    ("patch workspace", fixed("PATCH", "/v1/workspaces/{ws}", {"timezone": "Asia/Tokyo"}), ADMIN),
    ("list agents", fixed("GET", "/v1/agents"), ALL),
    ("get agent", get_agent, ALL),
    ("patch other agent", patch_other_agent, ADMIN),
    ("change a role", promote_other_agent, ADMIN),
    ("deactivate agent", delete_other_agent, ADMIN),
    ("invite", invite_someone, ADMIN),
    ("list invitations", fixed("GET", "/v1/agents/invitations"), ADMIN),
    ("revoke invitation", revoke_invitation, ADMIN),
    ("get profile", fixed("GET", "/v1/profile"), ALL),
    ("patch profile", fixed("PATCH", "/v1/profile", {"jobTitle": "Mine"}), ALL),
    ("me", fixed("GET", "/v1/auth/me"), ALL),
    ("list teams", fixed("GET", "/v1/teams"), ALL),
    ("get team", get_team, ALL),
    ("create team", create_team, MANAGERS),
    ("patch team", patch_team, MANAGERS),
    ("delete team", delete_team, MANAGERS),
    ("set team members", put_members, MANAGERS),
    # last: it ends every token of the workspace
    ("delete workspace", fixed("DELETE", "/v1/workspaces/{ws}"), ADMIN),
]


@pytest.mark.parametrize(("name", "make", "allowed"), MATRIX, ids=[m[0] for m in MATRIX])
async def test_role_matrix(
    tenant: Tenant, smtp_server: Any, name: str, make: Make, allowed: tuple[str, ...]
) -> None:
    crew = Crew(
        tenant,
        await add_member(tenant, smtp_server, "manager"),
        await add_member(tenant, smtp_server, "agent"),
        smtp_server,
    )
    refused = [r for r in ALL if r not in allowed]
    for role in refused + list(allowed):  # refusals first: they must change nothing
        method, path, body = await make(crew)
        response = await tenant.request(method, path, token=crew.token(role), json=body)
        if role in allowed:
            assert response.status_code < 300, f"{role} {method} {path}: {response.text}"
        else:
            assert response.status_code == 403, f"{role} {method} {path}: {response.text}"
            assert response.json()["error"]["code"] == "FORBIDDEN"
