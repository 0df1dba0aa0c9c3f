"""SLA targets about to be missed, and missed, tell the ticket's assignee (else its team), as
the SLA due check raises them; each agent chooses how (or whether) to hear of them."""

from __future__ import annotations

from enque.core.runtime import Runtime
from enque.notifications.digest import describe
from enque.notifications.models import Notification
from enque.sla.service import WARN_BEFORE, check_due
from tests.notifications.support import join_team, person
from tests.support.api import Tenant, data
from tests.support.helpdesk import add_team, new_ticket

POLICY = {"name": "Standard", "targets": {"firstResponseMinutes": 60, "resolutionMinutes": 480}}


async def due_of(tenant: Tenant, ticket_id: str) -> int:
    return int(data(await tenant.get(f"/v1/tickets/{ticket_id}"))["firstResponseDueAt"])


async def test_assignee_hears_of_the_warning_then_the_breach(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    jane = await person(app_runtime, tenant)
    data(await tenant.post("/v1/sla-policies", json=POLICY), 201)
    ticket = await new_ticket(tenant, subject="Printer on fire", assigneeId=jane.agent_id)
    due = await due_of(tenant, ticket["id"])
    before, _ = await jane.feed()

    await check_due(app_runtime, at=due - WARN_BEFORE + 1)
    feed, _ = await jane.feed()
    [warning] = [n for n in feed if n["event"] == "sla.warning"]
    assert warning["ticketId"] == ticket["id"] and warning["payload"]["target"] == "firstResponse"

    await check_due(app_runtime, at=due + 1)
    await check_due(app_runtime, at=due + 120)  # raised once
    feed, _ = await jane.feed()
    breaches = [n for n in feed if n["event"] == "sla.breached"]
    assert len(breaches) == 1 and breaches[0]["payload"]["dueAt"] == due
    assert len(feed) == len(before) + 2
    line = describe(Notification(event="sla.breached", payload=breaches[0]["payload"]))
    assert line == f"The first response is overdue on #{ticket['number']} Printer on fire"


async def test_unassigned_ticket_tells_its_team_and_choices_are_kept(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    ann = await person(app_runtime, tenant)
    bob = await person(app_runtime, tenant)
    outsider = await person(app_runtime, tenant)
    team = await add_team(app_runtime, tenant)
    await join_team(app_runtime, tenant, team, ann.agent_id, bob.agent_id)
    await bob.settings({"event": "sla.breached", "enabled": False})
    data(await tenant.post("/v1/sla-policies", json=POLICY), 201)
    ticket = await new_ticket(tenant, teamId=team)
    lone = await new_ticket(tenant)  # neither assignee nor team: nobody to tell
    due = await due_of(tenant, ticket["id"])

    await check_due(app_runtime, at=due + 1)
    events = {p.agent_id: [n["event"] for n in (await p.feed())[0]] for p in (ann, bob, outsider)}
    assert "sla.breached" in events[ann.agent_id]
    assert "sla.breached" not in events[bob.agent_id]  # turned off
    assert "sla.breached" not in events[outsider.agent_id]
    told = [n["ticketId"] for n in (await ann.feed())[0] if n["event"] == "sla.breached"]
    assert told == [ticket["id"]] and lone["id"] not in told
