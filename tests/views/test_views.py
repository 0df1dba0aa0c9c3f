"""Saved views: personal, team and workspace sharing, who may change them, live counts."""

from __future__ import annotations

from typing import Any

from enque.core.runtime import Runtime
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, add_team, new_ticket


class Signed:
    """Requests as one agent of the tenant's workspace."""

    def __init__(self, tenant: Tenant, token: str | None = None) -> None:
        self.tenant, self.token = tenant, token

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        return await self.tenant.request(method, path, token=self.token, **kw)


async def make_view(who: Any, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Mine")
    return data(await who.request("POST", "/v1/views", json=body), 201)  # type: ignore[no-any-return]


async def ids(who: Any, path: str = "/v1/views") -> list[str]:
    return [v["id"] for v in data(await who.request("GET", path))]


async def test_sharing_decides_who_sees_a_view(tenant: Tenant, app_runtime: Runtime) -> None:
    alice_member = await add_agent(app_runtime, tenant)
    alice = Signed(tenant, alice_member.token)
    bob = Signed(tenant, (await add_agent(app_runtime, tenant)).token)
    team = await add_team(app_runtime, tenant)
    await tenant.put(f"/v1/teams/{team}/members", json={"agentIds": [alice_member.agent_id]})
    personal = await make_view(alice, name="Alice only", filters={"status": ["Open"]})
    assert personal["shared"] == "personal" and personal["filters"] == {"status": ["Open"]}
    shared = await make_view(alice, name="Team", shared="team", teamId=team, sort="priority")
    everyone = await make_view(
        tenant, name="All urgent", shared="workspace", filters={"priority": ["Critical"]}
    )
    assert sorted(await ids(alice)) == sorted([personal["id"], shared["id"], everyone["id"]])
    assert await ids(bob) == [everyone["id"]]
    error(await bob.request("GET", f"/v1/views/{personal['id']}"), 404, "NOT_FOUND")
    error(await bob.request("GET", f"/v1/views/{shared['id']}"), 404, "NOT_FOUND")
    # sharing rules
    error(
        await bob.request("POST", "/v1/views", json={"name": "x", "shared": "workspace"}),
        403,
        "FORBIDDEN",
    )
    error(
        await bob.request(
            "POST", "/v1/views", json={"name": "x", "shared": "team", "teamId": team}
        ),
        403,
        "FORBIDDEN",
    )
    error(
        await bob.request("POST", "/v1/views", json={"name": "x", "shared": "team"}),
        422,
        "VALIDATION_ERROR",
    )
    # changes: the owner, or a manager for shared views
    error(
        await bob.request("PATCH", f"/v1/views/{everyone['id']}", json={"name": "mine"}),
        403,
        "FORBIDDEN",
    )
    renamed = data(await tenant.patch(f"/v1/views/{shared['id']}", json={"name": "Desk"}))
    assert renamed["name"] == "Desk" and renamed["ownerId"] == alice_member.agent_id
    error(await tenant.patch(f"/v1/views/{personal['id']}", json={"name": "x"}), 404, "NOT_FOUND")
    assert (await alice.request("DELETE", f"/v1/views/{personal['id']}")).status_code == 204
    assert sorted(await ids(alice)) == sorted([shared["id"], everyone["id"]])


async def test_counts_follow_the_tickets(tenant: Tenant) -> None:
    await tenant.post(
        "/v1/custom-fields",
        json={"entity": "ticket", "key": "plan", "label": "Plan", "type": "text"},
    )
    admin = Signed(tenant)
    urgent = await make_view(admin, name="Urgent", filters={"priority": ["Critical"]})
    gold = await make_view(admin, name="Gold", filters={"cf": {"plan": "gold"}})
    everything = await make_view(admin, name="All")

    async def counts() -> dict[str, int]:
        return {c["id"]: c["count"] for c in data(await tenant.get("/v1/views/counts"))}

    assert await counts() == {urgent["id"]: 0, gold["id"]: 0, everything["id"]: 0}
    first = await new_ticket(tenant, priority="Critical")
    await new_ticket(tenant, priority="Low")
    await tenant.patch(
        f"/v1/tickets/{first['id']}/custom-fields", json={"customFields": {"plan": "gold"}}
    )
    assert await counts() == {urgent["id"]: 1, gold["id"]: 1, everything["id"]: 2}
    listed = data(await tenant.get("/v1/tickets", params={"priority": "Critical"}))
    assert [t["id"] for t in listed] == [first["id"]]
    error(
        await tenant.post("/v1/views", json={"name": "x", "filters": {"cf": {"nope": 1}}}),
        422,
        "VALIDATION_ERROR",
    )
    error(
        await tenant.post("/v1/views", json={"name": "x", "filters": {"status": ["Gone"]}}),
        422,
        "VALIDATION_ERROR",
    )
