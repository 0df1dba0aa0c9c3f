"""Canned replies over the API: CRUD, placeholders, team scope, roles, usage counts."""

from __future__ import annotations

import asyncio

import pytest

from enque.core.runtime import Runtime
from tests.support.api import Tenant, data, error, unique
from tests.support.helpdesk import add_agent, new_ticket

KEYS = {
    "id",
    "name",
    "description",
    "content",
    "shortcut",
    "teamId",
    "isEnabled",
    "usageCount",
    "createdById",
    "createdAt",
    "updatedAt",
}


async def canned(tenant: Tenant, token: str | None = None, **fields) -> dict:
    body = {"name": unique("Canned "), "content": "<p>Hi {{customer.name}}</p>", **fields}
    return data(await tenant.post("/v1/canned-replies", json=body, token=token), 201)


async def team_with(tenant: Tenant, *agent_ids: str) -> str:
    body = {"name": unique("team"), "agentIds": list(agent_ids)}
    return str(data(await tenant.post("/v1/teams", json=body), 201)["id"])


async def test_create_read_update_delete(tenant: Tenant):
    made = await canned(
        tenant,
        name="Refund policy",
        description="What we say about refunds",
        content='<p>Dear {{ customer.name }},</p><script>alert(1)</script><p onclick="x()">ok</p>',
        shortcut="refund",
    )
    assert set(made) == KEYS
    assert made["content"] == "<p>Dear {{ customer.name }},</p><p>ok</p>"
    assert made["usageCount"] == 0 and made["isEnabled"] is True and made["teamId"] is None
    assert made["createdById"] == tenant.agent_id
    path = f"/v1/canned-replies/{made['id']}"
    assert data(await tenant.get(path)) == made

    second = await canned(tenant, name="Apology", shortcut="sorry")
    listed = data(await tenant.get("/v1/canned-replies"))
    assert [c["name"] for c in listed] == ["Apology", "Refund policy"]
    assert [c["id"] for c in data(await tenant.get("/v1/canned-replies?q=REFU"))] == [made["id"]]
    assert [c["id"] for c in data(await tenant.get("/v1/canned-replies?q=sor"))] == [second["id"]]
    page = await tenant.get("/v1/canned-replies?limit=1")
    assert len(data(page)) == 1 and page.json()["meta"]["nextCursor"]

    changed = data(
        await tenant.patch(path, json={"name": "Refunds", "shortcut": None, "isEnabled": False})
    )
    assert changed["name"] == "Refunds" and changed["shortcut"] is None
    assert changed["isEnabled"] is False and changed["updatedAt"] >= made["updatedAt"]
    error(await tenant.patch(path, json={"name": None}), 422, "VALIDATION_ERROR")

    assert (await tenant.delete(path)).status_code == 204
    error(await tenant.get(path), 404, "NOT_FOUND")
    error(await tenant.delete(path), 404, "NOT_FOUND")
    assert made["id"] not in {c["id"] for c in data(await tenant.get("/v1/canned-replies"))}


async def test_shortcut_unique_per_workspace_and_freed_by_delete(tenant: Tenant, make_tenant):
    first = await canned(tenant, shortcut="Hello")
    err = error(
        await tenant.post(
            "/v1/canned-replies", json={"name": "x", "content": "y", "shortcut": "hello"}
        ),
        409,
        "CONFLICT",
    )
    assert err["details"] == [{"path": "shortcut", "message": "taken"}]
    other = await canned(tenant, shortcut="other")
    error(
        await tenant.patch(f"/v1/canned-replies/{other['id']}", json={"shortcut": "HELLO"}),
        409,
        "CONFLICT",
    )
    elsewhere = await make_tenant()
    await canned(elsewhere, shortcut="hello")  # another workspace may use it
    assert (await tenant.delete(f"/v1/canned-replies/{first['id']}")).status_code == 204
    await canned(tenant, shortcut="hello")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{{customer.password}}", "unknown placeholder {{customer.password}}"),
        ("{{customer.__class__}}", "unknown placeholder {{customer.__class__}}"),
        ("{{ customer }}", "'customer' alone is not a placeholder"),
        ("{{ customer.name.upper() }}", "call is not allowed"),
        ('{{ "".__class__.__mro__ }}', "only placeholders"),
        ("{% for c in customer %}x{% endfor %}", "for is not allowed"),
        ("{{ customer.name | attr('x') }}", "unknown filter 'attr'"),
        ("{{ customer.name", "line 1:"),
        ("{% include 'x' %}", "include is not allowed"),
    ],
)
async def test_unsafe_or_unknown_placeholders_are_refused(
    tenant: Tenant, content: str, message: str
):
    err = error(
        await tenant.post("/v1/canned-replies", json={"name": "bad", "content": content}),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"][0]["path"] == "content"
    assert message in err["details"][0]["message"]


async def test_unknown_team_is_refused(tenant: Tenant, make_tenant):
    elsewhere = await make_tenant()
    foreign_team = await team_with(elsewhere)
    for team in (foreign_team, "no-such-team"):
        err = error(
            await tenant.post(
                "/v1/canned-replies", json={"name": "x", "content": "y", "teamId": team}
            ),
            422,
            "VALIDATION_ERROR",
        )
        assert err["details"][0]["path"].startswith("teamId")


async def test_render_fills_placeholders_escaped_and_counts(tenant: Tenant, app_runtime: Runtime):
    ticket = await new_ticket(
        tenant,
        subject="Broken <b>thing</b>",
        customer={"email": "bob@customer.test", "name": 'Bob <script>x()</script> & "Al"'},
    )
    reply = await canned(
        tenant,
        content=(
            "<p>Hi {{ customer.name }} ({{customer.email}}),</p>"
            "<p>about #{{ticket.number}} “{{ ticket.subject }}” [{{ticket.id}}]</p>"
            '<p>{{ agent.name | default("the team") }} at {{ workspace.name | upper }}</p>'
            "{% if agent.email %}<p>{{agent.email}}</p>{% endif %}"
        ),
    )
    path = f"/v1/canned-replies/{reply['id']}/render"
    rendered = data(await tenant.post(path, json={"ticketId": ticket["id"]}))
    assert rendered["cannedReplyId"] == reply["id"] and rendered["ticketId"] == ticket["id"]
    me = data(await tenant.get("/v1/auth/me"))
    workspace = me["workspace"]["name"].upper()
    assert rendered["content"] == (
        '<p>Hi Bob &lt;script&gt;x()&lt;/script&gt; &amp; "Al" (bob@customer.test),</p>'
        f"<p>about #{ticket['number']} “Broken &lt;b&gt;thing&lt;/b&gt;” [{ticket['id']}]</p>"
        f"<p>{me['agent']['displayName']} at {workspace}</p>"
        f"<p>{me['agent']['email']}</p>"
    )
    assert rendered["usageCount"] == 1

    # usage counts are atomic under concurrent renders
    results = await asyncio.gather(
        *(tenant.post(path, json={"ticketId": ticket["id"]}) for _ in range(8))
    )
    counts = sorted(data(r)["usageCount"] for r in results)
    assert counts == list(range(2, 10))
    after = data(await tenant.get(f"/v1/canned-replies/{reply['id']}"))
    assert after["usageCount"] == 9 and after["updatedAt"] == reply["updatedAt"]


async def test_render_needs_a_ticket_of_the_workspace(tenant: Tenant, make_tenant):
    reply = await canned(tenant)
    elsewhere = await make_tenant()
    foreign = await new_ticket(elsewhere)
    path = f"/v1/canned-replies/{reply['id']}/render"
    for ticket_id in (foreign["id"], "no-such-ticket"):
        error(await tenant.post(path, json={"ticketId": ticket_id}), 404, "NOT_FOUND")
    assert data(await tenant.get(f"/v1/canned-replies/{reply['id']}"))["usageCount"] == 0


async def test_disabled_cannot_be_rendered(tenant: Tenant):
    reply = await canned(tenant, isEnabled=False)
    ticket = await new_ticket(tenant)
    error(
        await tenant.post(
            f"/v1/canned-replies/{reply['id']}/render", json={"ticketId": ticket["id"]}
        ),
        409,
        "CONFLICT",
    )


async def test_team_scope(tenant: Tenant, app_runtime: Runtime):
    inside = await add_agent(app_runtime, tenant, "agent")
    outside = await add_agent(app_runtime, tenant, "agent")
    manager = await add_agent(app_runtime, tenant, "manager")
    team = await team_with(tenant, inside.agent_id)
    other_team = await team_with(tenant, manager.agent_id)
    everyone = await canned(tenant, name="A everyone")
    teams_own = await canned(tenant, name="B team", teamId=team)
    others = await canned(tenant, name="C other team", teamId=other_team)
    disabled = await canned(tenant, name="D disabled", isEnabled=False)
    ticket = await new_ticket(tenant)

    async def visible(token: str) -> list[str]:
        return [c["id"] for c in data(await tenant.get("/v1/canned-replies", token=token))]

    assert await visible(inside.token) == [everyone["id"], teams_own["id"]]
    assert await visible(outside.token) == [everyone["id"]]
    every = [everyone["id"], teams_own["id"], others["id"], disabled["id"]]
    assert await visible(manager.token) == every
    assert await visible(tenant.token) == every
    filtered = await tenant.get(f"/v1/canned-replies?teamId={team}", token=inside.token)
    assert [c["id"] for c in data(filtered)] == [teams_own["id"]]

    for hidden in (teams_own, others, disabled):
        path = f"/v1/canned-replies/{hidden['id']}"
        error(await tenant.get(path, token=outside.token), 404, "NOT_FOUND")
        error(
            await tenant.post(
                f"{path}/render", json={"ticketId": ticket["id"]}, token=outside.token
            ),
            404,
            "NOT_FOUND",
        )
    rendered = await tenant.post(
        f"/v1/canned-replies/{teams_own['id']}/render",
        json={"ticketId": ticket["id"]},
        token=inside.token,
    )
    assert data(rendered)["usageCount"] == 1
    data(await tenant.get(f"/v1/canned-replies/{others['id']}", token=manager.token))


async def test_roles(tenant: Tenant, app_runtime: Runtime):
    agent = await add_agent(app_runtime, tenant, "agent")
    manager = await add_agent(app_runtime, tenant, "manager")
    mine = await canned(tenant)
    path = f"/v1/canned-replies/{mine['id']}"
    body = {"name": "x", "content": "y"}
    error(await tenant.post("/v1/canned-replies", json=body, token=agent.token), 403, "FORBIDDEN")
    error(await tenant.patch(path, json={"name": "z"}, token=agent.token), 403, "FORBIDDEN")
    error(await tenant.delete(path, token=agent.token), 403, "FORBIDDEN")
    assert data(await tenant.get(path, token=agent.token))["id"] == mine["id"]

    made = await canned(tenant, token=manager.token)
    assert made["createdById"] == manager.agent_id
    data(await tenant.patch(path, json={"name": "by manager"}, token=manager.token))
    assert (await tenant.delete(path, token=manager.token)).status_code == 204


async def test_automation_sends_a_canned_reply(tenant: Tenant, app_runtime: Runtime):
    reply = await canned(
        tenant, content="<p>Thanks {{customer.name}}, we got #{{ticket.number}}.</p>"
    )
    rule = {
        "name": "acknowledge",
        "trigger": "ticket.created",
        "conditions": [{"field": "subject", "operator": "contains", "value": "ack me"}],
        "actions": [{"type": "send_canned_reply", "value": reply["id"]}],
    }
    data(await tenant.post("/v1/automations", json=rule), 201)
    ticket = await new_ticket(
        tenant, subject="please ack me", customer={"email": "ann@customer.test", "name": "Ann"}
    )
    thread = data(await tenant.get(f"/v1/tickets/{ticket['id']}/comments"))
    replies = [c for c in thread if c["kind"] == "reply"]
    assert len(replies) == 1
    assert replies[0]["content"] == f"<p>Thanks Ann, we got #{ticket['number']}.</p>"
    assert replies[0]["author"]["type"] == "automation"
    assert replies[0]["to"] == ["ann@customer.test"] and replies[0]["delivery"] == "pending"
    after = data(await tenant.get(f"/v1/canned-replies/{reply['id']}"))
    assert after["usageCount"] == 1

    # the rule's reference is checked against the canned replies of the workspace
    bad = {**rule, "actions": [{"type": "send_canned_reply", "value": "no-such-reply"}]}
    error(await tenant.post("/v1/automations", json=bad), 422, "VALIDATION_ERROR")


async def test_list_and_render_take_a_constant_number_of_queries(
    tenant: Tenant, app_runtime: Runtime
):
    from tests.tickets.test_queries import statements

    agent = await add_agent(app_runtime, tenant, "agent")
    team = await team_with(tenant, agent.agent_id)
    ticket = await new_ticket(tenant)
    made = [await canned(tenant, teamId=team if i % 2 else None) for i in range(2)]

    async def list_queries() -> int:
        with statements(app_runtime) as seen:
            data(await tenant.get("/v1/canned-replies", token=agent.token))
        return len(seen)

    await list_queries()  # the first request also loads the caller's auth context
    small = await list_queries()
    for i in range(10):
        await canned(tenant, teamId=team if i % 2 else None)
    assert await list_queries() == small

    with statements(app_runtime) as seen:
        data(
            await tenant.post(
                f"/v1/canned-replies/{made[1]['id']}/render",
                json={"ticketId": ticket["id"]},
                token=agent.token,
            )
        )
    assert len(seen) <= 5, seen  # scope, canned reply, ticket + customer + workspace, agent, count


async def test_custom_field_placeholders(tenant: Tenant) -> None:
    """`{{ticket.custom.<key>}}` and `{{customer.custom.<key>}}` give custom field values (lists
    joined, missing ones empty or their default)."""
    for entity, key, kind in (("ticket", "plan", "text"), ("user", "tier", "multiselect")):
        body = {"entity": entity, "key": key, "label": key.title(), "type": kind}
        if kind == "multiselect":
            body["options"] = ["gold", "vip"]
        data(await tenant.post("/v1/custom-fields", json=body), 201)
    ticket = await new_ticket(tenant, customFields={"plan": "Pro <b>annual</b>"})
    customer = ticket["customer"]["id"]
    path = f"/v1/users/{customer}/custom-fields"
    data(await tenant.patch(path, json={"customFields": {"tier": ["gold", "vip"]}}))
    reply = await canned(
        tenant,
        content=(
            "<p>{{ticket.custom.plan}} / {{customer.custom.tier}} / "
            '{{ ticket.custom.missing | default("none") }}</p>'
        ),
    )
    path = f"/v1/canned-replies/{reply['id']}/render"
    rendered = data(await tenant.post(path, json={"ticketId": ticket["id"]}))
    assert rendered["content"] == "<p>Pro &lt;b&gt;annual&lt;/b&gt; / gold, vip / none</p>"
    refused = await tenant.post(
        "/v1/canned-replies", json={"name": "x", "content": "{{agent.custom.x}}"}
    )
    error(refused, 422, "VALIDATION_ERROR")
