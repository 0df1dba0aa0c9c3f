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


@factory("automations")
async def automation_id(tenant: Tenant) -> str:
    body = {
        "name": "Tag urgent tickets",
        "trigger": "ticket.created",
        "conditions": [{"field": "subject", "operator": "contains", "value": "urgent"}],
        "actions": [{"type": "add_tag", "value": "urgent"}],
    }
    response = await tenant.post("/v1/automations", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


@factory("mailboxes")
async def mailbox_id(tenant: Tenant) -> str:
    from tests.email.servers import imap_mailbox_body
    from tests.support.api import data

    response = await tenant.post("/v1/mailboxes/imap", json=imap_mailbox_body())
    return str(data(response, 201)["id"])


@factory("users")
async def customer_id(tenant: Tenant) -> str:
    body = {"email": f"{unique('cust')}@example.com", "name": "A Customer"}
    return str(data(await tenant.post("/v1/users", json=body), 201)["id"])


@factory("companies")
async def company_id(tenant: Tenant) -> str:
    body = {"name": unique("Company "), "emailDomains": [f"{unique('d')}.example.com"]}
    return str(data(await tenant.post("/v1/companies", json=body), 201)["id"])


@factory("categories")
async def category_id(tenant: Tenant) -> str:
    body = {"name": unique("Category ")}
    return str(data(await tenant.post("/v1/categories", json=body), 201)["id"])


@factory("tickets")
async def ticket_id(tenant: Tenant) -> str:
    body = {
        "subject": "Factory ticket",
        "body": "<p>hello</p>",
        "customer": {"email": f"{unique('cust')}@example.com"},
    }
    return str(data(await tenant.post("/v1/tickets", json=body), 201)["id"])


@factory("comments")
async def comment_id(tenant: Tenant) -> str:
    ticket = await ticket_id(tenant)
    note = await tenant.post(f"/v1/tickets/{ticket}/notes", json={"content": "a note"})
    return str(data(note, 201)["id"])


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


@factory("canned-replies")
async def canned_reply_id(tenant: Tenant) -> str:
    body = {"name": unique("Canned "), "content": "<p>Hello {{customer.name}}</p>"}
    return str(data(await tenant.post("/v1/canned-replies", json=body), 201)["id"])


@factory("scheduled-replies")
async def scheduled_reply_id(tenant: Tenant) -> str:
    import time

    ticket = await ticket_id(tenant)
    body = {"content": "<p>later</p>", "sendAt": int(time.time()) + 3600}
    response = await tenant.post(f"/v1/tickets/{ticket}/scheduled-replies", json=body)
    return str(data(response, 201)["id"])


@factory("api-tokens")
async def api_token_id(tenant: Tenant) -> str:
    body = {"name": unique("token"), "scopes": ["tickets:read"]}
    return str(data(await tenant.post("/v1/api-tokens", json=body), 201)["id"])


@factory("webhooks")
async def webhook_id(tenant: Tenant) -> str:
    body = {"url": "https://example.com/hook", "events": ["ticket.created"]}
    return str(data(await tenant.post("/v1/webhooks", json=body), 201)["id"])


@factory("sla-policies")
async def sla_policy_id(tenant: Tenant) -> str:
    body = {"name": unique("sla"), "targets": {"firstResponseMinutes": 60}}
    return str(data(await tenant.post("/v1/sla-policies", json=body), 201)["id"])


@factory("custom-fields")
async def custom_field_id(tenant: Tenant) -> str:
    body = {
        "entity": "ticket",
        "key": "k" + unique("f").replace("-", "_"),
        "label": "F",
        "type": "text",
    }
    return str(data(await tenant.post("/v1/custom-fields", json=body), 201)["id"])


@factory("views")
async def view_id(tenant: Tenant) -> str:
    body = {"name": unique("view"), "shared": "workspace"}
    return str(data(await tenant.post("/v1/views", json=body), 201)["id"])


@factory("attachments")
async def attachment_id(tenant: Tenant) -> str:
    response = await tenant.post(
        "/v1/attachments", files={"file": ("note.txt", b"walk me", "text/plain")}
    )
    return str(data(response, 201)["id"])
