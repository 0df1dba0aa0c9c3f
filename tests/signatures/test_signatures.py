"""Workspace and agent signatures, and how they end public replies."""

from __future__ import annotations

import asyncio

from enque.activity.service import Actor
from enque.comments.service import add_note, add_reply
from enque.core.runtime import Runtime
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, new_ticket

PATH = "/v1/signatures/workspace"


async def test_workspace_signature_defaults_set_and_sanitized(tenant: Tenant):
    assert data(await tenant.get(PATH)) == {
        "content": "",
        "isEnabled": True,
        "updatedById": None,
        "updatedAt": None,
    }
    body = {
        "content": "<p>Acme <b>Support</b></p><script>x()</script>"
        '<a href="javascript:alert(1)" onclick="y()">site</a>'
    }
    saved = data(await tenant.put(PATH, json=body))
    assert saved["content"] == '<p>Acme <b>Support</b></p><a rel="noopener noreferrer">site</a>'
    assert saved["isEnabled"] is True and saved["updatedById"] == tenant.agent_id
    assert data(await tenant.get(PATH)) == saved
    off = data(await tenant.put(PATH, json={"content": "<p>x</p>", "isEnabled": False}))
    assert off["isEnabled"] is False and off["content"] == "<p>x</p>"
    error(await tenant.put(PATH, json={"isEnabled": True}), 422, "VALIDATION_ERROR")


async def test_only_admins_change_it(tenant: Tenant, app_runtime: Runtime):
    await tenant.put(PATH, json={"content": "<p>Acme</p>"})
    for role in ("manager", "agent"):
        member = await add_agent(app_runtime, tenant, role)
        assert data(await tenant.get(PATH, token=member.token))["content"] == "<p>Acme</p>"
        error(
            await tenant.put(PATH, json={"content": "<p>mine</p>"}, token=member.token),
            403,
            "FORBIDDEN",
        )
    assert data(await tenant.get(PATH))["content"] == "<p>Acme</p>"


async def test_concurrent_first_writes_keep_one_signature(tenant: Tenant):
    results = await asyncio.gather(
        *(tenant.put(PATH, json={"content": f"<p>v{i}</p>"}) for i in range(6))
    )
    assert [r.status_code for r in results] == [200] * 6
    final = data(await tenant.get(PATH))["content"]
    assert final in {f"<p>v{i}</p>" for i in range(6)}


async def test_replies_end_with_workspace_then_agent_signature(
    tenant: Tenant, make_tenant, app_runtime: Runtime
):
    other = await make_tenant()
    await other.put(PATH, json={"content": "<p>Other Corp</p>"})
    ticket = await new_ticket(tenant)
    reply_path = f"/v1/tickets/{ticket['id']}/reply"

    plain = data(await tenant.post(reply_path, json={"content": "<p>Hello</p>"}), 201)
    assert plain["content"] == "<p>Hello</p>"  # no signature anywhere yet

    await tenant.put(PATH, json={"content": "<p>Acme Support</p>"})
    data(await tenant.patch("/v1/profile", json={"signature": "<p>Zoe, <i>Tier 2</i></p>"}))
    signed = data(await tenant.post(reply_path, json={"content": "<p>Hello</p>"}), 201)
    assert signed["content"] == (
        "<p>Hello</p><div><p>Acme Support</p></div><div><p>Zoe, <i>Tier 2</i></p></div>"
    )
    assert signed["text"].startswith("Hello") and signed["text"].index("Acme") < signed[
        "text"
    ].index("Zoe")

    # another agent: the workspace signature only (they have none of their own)
    member = await add_agent(app_runtime, tenant, "agent")
    theirs = data(
        await tenant.post(reply_path, json={"content": "<p>Hi</p>"}, token=member.token), 201
    )
    assert theirs["content"] == "<p>Hi</p><div><p>Acme Support</p></div>"

    # disabled workspace signature: the agent's only
    await tenant.put(PATH, json={"content": "<p>Acme Support</p>", "isEnabled": False})
    mine = data(await tenant.post(reply_path, json={"content": "<p>Yo</p>"}), 201)
    assert mine["content"] == "<p>Yo</p><div><p>Zoe, <i>Tier 2</i></p></div>"

    # a signature never makes an empty reply acceptable; notes are never signed
    error(await tenant.post(reply_path, json={"content": "<p> </p>"}), 422, "VALIDATION_ERROR")
    note = data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json={"content": "n"}), 201)
    assert note["content"] == "n"


async def test_automation_replies_carry_the_workspace_signature_only(
    tenant: Tenant, app_runtime: Runtime
):
    await tenant.put(PATH, json={"content": "<p>Acme</p>"})
    data(await tenant.patch("/v1/profile", json={"signature": "<p>Admin</p>"}))
    ticket = await new_ticket(tenant)
    async with app_runtime.db.transaction() as session:
        comment = await add_reply(
            session,
            workspace_id=tenant.workspace_id,
            actor=Actor("automation", "rule-1"),
            ticket_id=ticket["id"],
            content="<p>Auto</p>",
        )
        note = await add_note(
            session,
            workspace_id=tenant.workspace_id,
            actor=Actor("agent", tenant.agent_id),
            ticket_id=ticket["id"],
            content="<p>Note</p>",
        )
    assert comment.content == "<p>Auto</p><div><p>Acme</p></div>"
    assert note.content == "<p>Note</p>"
