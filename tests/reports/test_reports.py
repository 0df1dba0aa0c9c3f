"""Reports against a hand-built workspace whose every figure is worked out below."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import pytest

from enque.agents.models import Agent
from enque.comments.models import Comment
from enque.core.runtime import Runtime
from enque.customers.models import User
from enque.reports.queries import DAY, FIRST_MONDAY, WEEK
from enque.teams.models import TeamMember
from enque.tickets.models import Ticket
from tests.support.api import Tenant, data, error, unique
from tests.support.helpdesk import Member, add_agent, add_team, new_ticket

pytestmark = pytest.mark.asyncio

BASE = FIRST_MONDAY + 2800 * WEEK  # a Monday, 00:00 UTC, in 2023
END = BASE + 14 * DAY
RANGE = {"from": BASE, "to": END}


@dataclass
class Desk:
    tenant: Tenant
    alice: Member
    bob: Member
    team: str


async def _build(runtime: Runtime, tenant: Tenant) -> Desk:
    alice = await add_agent(runtime, tenant)
    bob = await add_agent(runtime, tenant)
    team = await add_team(runtime, tenant)
    ws = tenant.workspace_id
    async with runtime.db.transaction() as session:
        (await session.get(Agent, bob.agent_id)).display_name = "=HYPERLINK(evil)"  # type: ignore[union-attr]
        session.add(TeamMember(workspace_id=ws, team_id=team, agent_id=alice.agent_id))
        user = User(workspace_id=ws, name="Casey", email=f"{unique('c')}@customer.test")
        session.add(user)
        await session.flush()
        number = iter(range(1, 100))

        def ticket(created: int, status: str, **fields: Any) -> Ticket:
            t = Ticket(
                workspace_id=ws,
                number=next(number),
                subject="s",
                status=status,
                priority=fields.pop("priority", "Medium"),
                user_id=user.id,
                created_at=created,
                updated_at=created,
                **fields,
            )
            session.add(t)
            return t

        a, b = alice.agent_id, bob.agent_id
        first = ticket(
            BASE + 100, "Closed", assignee_id=a, team_id=team, priority="High",
            first_response_at=BASE + 160, resolved_at=BASE + 700, closed_at=BASE + 700,
        )  # fmt: skip
        ticket(BASE + 200, "Open", assignee_id=a, team_id=team, first_response_at=BASE + 320)
        ticket(
            BASE + DAY + 10, "Closed", assignee_id=b,
            first_response_at=BASE + DAY + 310, resolved_at=BASE + DAY + 1010,
            closed_at=BASE + DAY + 1010,
        )  # fmt: skip
        ticket(BASE + DAY + 20, "Open", assignee_id=b, priority="High",
               first_response_at=BASE + DAY + 50)  # fmt: skip
        ticket(BASE + 8 * DAY, "Unread")
        ticket(BASE - 10, "Open", assignee_id=a)  # before the range: backlog only
        ticket(BASE + 300, "Open", assignee_id=a, deleted_at=BASE + 400)  # deleted: not counted
        merged = ticket(BASE + 400, "Closed", assignee_id=a, closed_at=BASE + 500)
        await session.flush()
        merged.merged_into_ticket_id = first.id
        for offset in (1000, 2000, 3000):
            session.add(_comment(ws, first.id, a, "reply", BASE + offset))
        session.add(_comment(ws, first.id, a, "note", BASE + 4000))  # a note is not a reply
        session.add(_comment(ws, first.id, a, "reply", BASE - 5))  # before the range
    return Desk(tenant, alice, bob, team)


def _comment(ws: str, ticket_id: str, author: str, kind: str, at: int) -> Comment:
    return Comment(
        workspace_id=ws, ticket_id=ticket_id, kind=kind, author_type="agent",
        author_id=author, content="x", text="x", created_at=at, updated_at=at,
    )  # fmt: skip


@pytest.fixture
async def desk(app_runtime: Runtime, tenant: Tenant, make_tenant: Any) -> Desk:
    other = await make_tenant()  # another workspace's ticket inside the range is never counted
    await new_ticket(other)
    return await _build(app_runtime, tenant)


async def test_summary(desk: Desk) -> None:
    report = data(await desk.tenant.get("/v1/reports/summary", params=RANGE))
    assert report == {
        "byStatus": {"Unread": 1, "Open": 3, "In Progress": 0, "With User": 0, "Closed": 2},
        "created": 5,
        "closed": 2,
        "resolved": 2,
        "backlog": 4,
    }
    by_team = data(
        await desk.tenant.get("/v1/reports/summary", params={**RANGE, "teamId": desk.team})
    )
    assert (by_team["created"], by_team["backlog"]) == (2, 1)
    by_agent = data(
        await desk.tenant.get("/v1/reports/summary", params={**RANGE, "agentId": desk.bob.agent_id})
    )
    assert (by_agent["created"], by_agent["closed"]) == (2, 1)


async def test_response_times_median_and_p90(desk: Desk) -> None:
    report = data(await desk.tenant.get("/v1/reports/response-times", params=RANGE))
    # first responses 60, 120, 300, 30 s; resolutions 600, 1000 s (nearest rank)
    assert report["firstResponse"] == {"count": 4, "median": 60, "p90": 300}
    assert report["resolution"] == {"count": 2, "median": 600, "p90": 1000}
    by_agent = {row["agentId"]: row for row in report["byAgent"]}
    assert by_agent[desk.alice.agent_id]["firstResponse"] == {"count": 2, "median": 60, "p90": 120}
    assert by_agent[desk.bob.agent_id]["firstResponse"] == {"count": 2, "median": 30, "p90": 300}
    assert by_agent[desk.bob.agent_id]["resolution"] == {"count": 1, "median": 1000, "p90": 1000}
    assert by_agent[desk.alice.agent_id]["resolution"]["count"] == 1
    by_team = {row["teamId"]: row for row in report["byTeam"]}
    assert by_team[desk.team]["firstResponse"]["median"] == 60
    assert by_team[None]["firstResponse"] == {"count": 2, "median": 30, "p90": 300}


async def test_volume_by_day_week_and_priority(desk: Desk) -> None:
    days = data(await desk.tenant.get("/v1/reports/volume", params=RANGE))
    assert days == [
        {"bucket": BASE, "count": 2},
        {"bucket": BASE + DAY, "count": 2},
        {"bucket": BASE + 8 * DAY, "count": 1},
    ]
    weeks = data(await desk.tenant.get("/v1/reports/volume", params={**RANGE, "interval": "week"}))
    assert weeks == [{"bucket": BASE, "count": 4}, {"bucket": BASE + WEEK, "count": 1}]
    by_priority = data(
        await desk.tenant.get(
            "/v1/reports/volume", params={**RANGE, "interval": "week", "groupBy": "priority"}
        )
    )
    assert by_priority == [
        {"bucket": BASE, "key": "High", "count": 2},
        {"bucket": BASE, "key": "Medium", "count": 2},
        {"bucket": BASE + WEEK, "key": "Medium", "count": 1},
    ]


async def test_agents(desk: Desk) -> None:
    rows = {
        r["agentId"]: r for r in data(await desk.tenant.get("/v1/reports/agents", params=RANGE))
    }
    alice, bob = rows[desk.alice.agent_id], rows[desk.bob.agent_id]
    assert (alice["assigned"], alice["replied"], alice["closed"]) == (2, 3, 1)
    assert alice["medianFirstResponse"] == 60
    assert (bob["assigned"], bob["replied"], bob["closed"]) == (1, 0, 1)
    assert bob["medianFirstResponse"] == 30
    admin = rows[desk.tenant.agent_id]
    assert (admin["assigned"], admin["medianFirstResponse"]) == (0, None)
    team_rows = data(
        await desk.tenant.get("/v1/reports/agents", params={**RANGE, "teamId": desk.team})
    )
    assert [r["agentId"] for r in team_rows] == [desk.alice.agent_id]


async def test_csv_export_escapes_formulas(desk: Desk) -> None:
    response = await desk.tenant.get(
        "/v1/reports/agents", params=RANGE, headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    bob = next(r for r in rows if r["agentId"] == desk.bob.agent_id)
    assert bob["name"] == "'=HYPERLINK(evil)"
    assert (bob["closed"], bob["medianFirstResponse"]) == ("1", "30")
    times = await desk.tenant.get(
        "/v1/reports/response-times", params=RANGE, headers={"Accept": "text/csv"}
    )
    overall = next(csv.DictReader(io.StringIO(times.text)))
    assert (overall["scope"], overall["firstResponseMedian"], overall["resolutionP90"]) == (
        "all", "60", "1000",
    )  # fmt: skip
    summary = await desk.tenant.get(
        "/v1/reports/summary", params=RANGE, headers={"Accept": "text/csv"}
    )
    assert "backlog,4" in summary.text


async def test_bad_scope_is_refused(app_runtime: Runtime, tenant: Tenant, make_tenant: Any) -> None:
    err = error(await tenant.get("/v1/reports/summary", params={"from": 10, "to": 5}), 422,
                "VALIDATION_ERROR")  # fmt: skip
    assert err["details"][0]["path"] == "to"
    error(await tenant.get("/v1/reports/volume", params={"interval": "hour"}), 422,
          "VALIDATION_ERROR")  # fmt: skip
    error(await tenant.get("/v1/reports/summary", params={"from": "soon"}), 422,
          "VALIDATION_ERROR")  # fmt: skip
    other = await make_tenant()
    foreign_team = await add_team(app_runtime, other)
    error(await tenant.get("/v1/reports/summary", params={"teamId": foreign_team}), 422,
          "VALIDATION_ERROR")  # fmt: skip
    error(await tenant.get("/v1/reports/agents", params={"agentId": other.agent_id}), 422,
          "VALIDATION_ERROR")  # fmt: skip


async def test_agents_cannot_read_reports(app_runtime: Runtime, tenant: Tenant) -> None:
    agent = await add_agent(app_runtime, tenant, role="agent")
    manager = await add_agent(app_runtime, tenant, role="manager")
    error(await tenant.get("/v1/reports/summary", token=agent.token), 403, "FORBIDDEN")
    assert (await tenant.get("/v1/reports/summary", token=manager.token)).status_code == 200
