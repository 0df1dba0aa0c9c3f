"""CSAT: the survey mailed on close, answered once without login, reported per agent/team."""

from __future__ import annotations

import re
from typing import Any

from tests.support.api import Tenant, data, error, unique
from tests.support.helpdesk import new_ticket

LINK = re.compile(r"http://enque\.test/csat/(\S+)")


async def close_and_get_token(tenant: Tenant, smtp_server: Any, **fields: Any) -> tuple[dict, str]:
    email = f"{unique('csat')}@customer.test"
    ticket = await new_ticket(tenant, customer={"email": email, "name": "Casey"}, **fields)
    closed = await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Closed"})
    assert closed.status_code == 200, closed.text
    [mail] = await smtp_server.wait_for(email)
    match = LINK.search(mail.text())
    assert match, mail.text()
    return ticket, match.group(1)


async def test_a_closed_ticket_gets_one_survey(tenant: Tenant, smtp_server: Any, http: Any) -> None:
    assert data(await tenant.put("/v1/csat-settings", json={"enabled": True})) == {"enabled": True}
    ticket, token = await close_and_get_token(tenant, smtp_server, assigneeId=tenant.agent_id)
    survey = data(await http.get(f"/v1/csat/{token}"))  # no login
    assert survey == {
        "ticketNumber": ticket["number"],
        "subject": ticket["subject"],
        "workspaceName": survey["workspaceName"],
        "answered": False,
    }
    answered = data(await http.post(f"/v1/csat/{token}", json={"rating": 5, "comment": "Great"}))
    assert answered["rating"] == 5 and answered["respondedAt"]
    error(await http.post(f"/v1/csat/{token}", json={"rating": 1}), 409, "CONFLICT")
    assert data(await http.get(f"/v1/csat/{token}"))["answered"] is True
    [stored] = data(await tenant.get(f"/v1/tickets/{ticket['id']}/csat"))
    assert (stored["rating"], stored["comment"], stored["agentId"]) == (5, "Great", tenant.agent_id)
    error(await http.get(f"/v1/csat/{token}x"), 404, "NOT_FOUND")
    error(await http.post(f"/v1/csat/{token}", json={"rating": 6}), 422, "VALIDATION_ERROR")


async def test_no_survey_unless_enabled(tenant: Tenant, smtp_server: Any) -> None:
    email = f"{unique('quiet')}@customer.test"
    ticket = await new_ticket(tenant, customer={"email": email, "name": "Q"})
    await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Closed"})
    assert data(await tenant.get(f"/v1/tickets/{ticket['id']}/csat")) == []
    assert smtp_server.to(email) == []


async def test_report_per_agent(tenant: Tenant, smtp_server: Any, http: Any) -> None:
    await tenant.put("/v1/csat-settings", json={"enabled": True})
    _, first = await close_and_get_token(tenant, smtp_server, assigneeId=tenant.agent_id)
    _, second = await close_and_get_token(tenant, smtp_server, assigneeId=tenant.agent_id)
    await close_and_get_token(tenant, smtp_server)  # unassigned, never answered
    await http.post(f"/v1/csat/{first}", json={"rating": 5})
    await http.post(f"/v1/csat/{second}", json={"rating": 2})
    rows = data(await tenant.get("/v1/csat/report", params={"by": "agent"}))
    assert rows == [
        {
            "groupId": tenant.agent_id,
            "sent": 2,
            "answered": 2,
            "averageRating": 3.5,
            "satisfied": 0.5,
        },
        {"groupId": None, "sent": 1, "answered": 0, "averageRating": None, "satisfied": None},
    ]
