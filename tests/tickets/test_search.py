from typing import Any

from enque.comments.service import IncomingMessage, add_customer_message
from enque.core.runtime import Runtime
from enque.tickets import search
from enque.tickets.search import fold, query_terms
from tests.support.api import Tenant, data
from tests.support.helpdesk import new_ticket


async def found(tenant: Tenant, q: str, **params: Any) -> list[str]:
    return [t["id"] for t in data(await tenant.get("/v1/tickets", params={"q": q, **params}))]


def test_folding():
    assert fold("Crème Brûlée — ALICE@Example.com!") == "creme brulee alice example com"
    assert query_terms("  _ ") == []
    assert query_terms("naïve_user 42") == ["naive", "user", "42"]


async def test_search_covers_subject_body_comments_and_customer(
    tenant: Tenant, app_runtime: Runtime
):
    printer = await new_ticket(
        tenant,
        subject="Printer jammed",
        body="<p>Paper stuck in tray</p>",
        customer={"email": "zoe.quinn@acme-corp.test", "name": "Zoë Quinn"},
    )
    vpn = await new_ticket(
        tenant,
        subject="VPN down",
        body="<p>Cannot connect</p>",
        customer={"email": "max@globex.test", "name": "Max Power"},
    )
    assert await found(tenant, "printer") == [printer["id"]]
    assert await found(tenant, "STUCK tray") == [printer["id"]]
    assert await found(tenant, "zoe") == [printer["id"]]  # accents folded
    assert await found(tenant, "acme-corp") == [printer["id"]]
    assert await found(tenant, "max@globex.test") == [vpn["id"]]
    assert await found(tenant, "conn") == [vpn["id"]]  # prefix
    assert await found(tenant, "printer connect") == []  # every word must match
    assert await found(tenant, str(vpn["number"])) == [vpn["id"]]
    assert await found(tenant, "connect", status="Closed") == []

    data(
        await tenant.post(
            f"/v1/tickets/{vpn['id']}/reply",
            json={"content": "<p>Try the <b>split-tunnel</b> profile</p>"},
        ),
        201,
    )
    note = data(
        await tenant.post(
            f"/v1/tickets/{vpn['id']}/notes", json={"content": "escalated to networking"}
        ),
        201,
    )
    async with app_runtime.db.transaction() as session:
        await add_customer_message(
            session,
            workspace_id=tenant.workspace_id,
            message=IncomingMessage(
                ticket_id=printer["id"],
                user_id=printer["customer"]["id"],
                content="<p>Now it smells of toner</p>",
            ),
        )
    assert await found(tenant, "tunnel") == [vpn["id"]]
    assert await found(tenant, "networking") == [vpn["id"]]
    assert await found(tenant, "toner") == [printer["id"]]
    assert await found(tenant, "max tunnel") == [vpn["id"]]  # customer and comment together

    edited = await tenant.patch(f"/v1/comments/{note['id']}", json={"content": "sent to security"})
    data(edited)
    assert await found(tenant, "networking") == []
    assert await found(tenant, "security") == [vpn["id"]]
    assert (await tenant.delete(f"/v1/comments/{note['id']}")).status_code == 204
    assert await found(tenant, "security") == []


async def test_common_words_take_the_other_plan(tenant: Tenant, monkeypatch):
    made = [await new_ticket(tenant, subject=f"Broken keyboard {i}") for i in range(3)]
    await new_ticket(tenant, subject="Broken mouse")
    expected = [t["id"] for t in reversed(made)]
    assert await found(tenant, "keyboard broken") == expected
    monkeypatch.setattr(search, "COMMON_MATCH", 1)
    assert await found(tenant, "keyboard broken") == expected
    assert await found(tenant, "trackpad") == []


async def test_search_follows_changes(tenant: Tenant):
    ticket = await new_ticket(
        tenant, subject="Old subject", customer={"email": "kim@example.com", "name": "Kim"}
    )
    data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"subject": "Fresh title"}))
    assert await found(tenant, "old") == []
    assert await found(tenant, "fresh") == [ticket["id"]]

    data(
        await tenant.patch(
            f"/v1/users/{ticket['customer']['id']}",
            json={"name": "Kimberly Jones", "email": "kj@newmail.test"},
        )
    )
    assert await found(tenant, "jones newmail") == [ticket["id"]]
    assert await found(tenant, "kim@example") == []

    assert (await tenant.delete(f"/v1/tickets/{ticket['id']}")).status_code == 204
    assert await found(tenant, "fresh") == []


async def test_search_stays_in_the_workspace(tenant: Tenant, make_tenant):
    other = await make_tenant()
    await new_ticket(other, subject="Quarterly invoice")
    mine = await new_ticket(tenant, subject="Quarterly report")
    assert await found(tenant, "quarterly") == [mine["id"]]
    assert await found(tenant, "invoice") == []


async def test_merged_thread_is_searchable_on_the_target(tenant: Tenant):
    target = await new_ticket(tenant, subject="Laptop battery")
    source = await new_ticket(tenant, subject="Charger broken", body="<p>sparks everywhere</p>")
    data(
        await tenant.post(
            f"/v1/tickets/{target['id']}/merge", json={"sourceTicketIds": [source["id"]]}
        )
    )
    assert await found(tenant, "sparks") == [target["id"]]
    assert set(await found(tenant, "sparks", includeMerged="true")) == {target["id"], source["id"]}
