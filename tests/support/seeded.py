"""The content of a seeded workspace with everything random about a run taken out (ids, the
name tag, the clock), so two runs with the same seed compare equal on either database."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents.models import Agent, AgentWorkspace
from enque.categories.models import Category
from enque.comments.models import Comment
from enque.customers.models import Company, CompanyDomain, User
from enque.teams.models import Team, TeamMember
from enque.tickets.models import Ticket, TicketBody, TicketTag
from enque.tickets.search import is_sqlite

TIMES = (
    "due_at",
    "first_response_at",
    "last_agent_reply_at",
    "last_customer_reply_at",
    "resolved_at",
    "closed_at",
    "created_at",
    "updated_at",
)


async def seeded_content(session: AsyncSession, workspace_id: str) -> dict[str, list[Any]]:
    """Every seeded row of the workspace, ids replaced by what they point at (ticket numbers,
    agent emails, customer emails, names), times made relative to the first ticket."""
    ws = workspace_id

    async def rows(table: Any, *where: Any) -> list[dict[str, Any]]:
        found = await session.execute(select(table).where(table.c.workspace_id == ws, *where))
        return [dict(r) for r in found.mappings()]

    def t(model: Any) -> Table:
        return model.__table__  # type: ignore[no-any-return]

    links = await session.execute(
        select(Agent.id, Agent.email, Agent.display_name, AgentWorkspace.role)
        .join(AgentWorkspace, AgentWorkspace.agent_id == Agent.id)
        .where(AgentWorkspace.workspace_id == ws, Agent.email.like("agent%"))
    )
    agents = {a.id: (a.email, a.display_name, a.role) for a in links}
    tag = next(iter(agents.values()))[0].split("@")[0].split(".")[-1] if agents else "-"

    def untag(value: Any) -> Any:
        return json.loads(json.dumps(value).replace(tag, "TAG")) if tag else value

    teams = {r["id"]: r["name"] for r in await rows(t(Team))}
    categories = {r["id"]: r["name"] for r in await rows(t(Category))}
    companies = {r["id"]: r for r in await rows(t(Company))}
    users = {r["id"]: r for r in await rows(t(User))}
    tickets = await rows(t(Ticket))
    base = min((r["created_at"] for r in tickets), default=0)
    numbers = {r["id"]: r["number"] for r in tickets}
    people = {**{k: v[0] for k, v in agents.items()}, **{k: u["email"] for k, u in users.items()}}

    def ticket(r: dict[str, Any]) -> list[Any]:
        return [
            r["number"],
            r["subject"],
            r["status"],
            r["priority"],
            r["priority_weight"],
            users[r["user_id"]]["email"],
            companies[r["company_id"]]["name"] if r["company_id"] else None,
            people.get(r["assignee_id"]),
            teams.get(r["team_id"]),
            categories.get(r["category_id"]),
            r["tags"],
            r["cc"],
            r["is_read"],
            r["version"],
            *[None if r[c] is None else r[c] - base for c in TIMES],
        ]

    comments = await rows(t(Comment))
    content: dict[str, list[Any]] = {
        "agents": sorted(agents.values()),
        "team_members": sorted(
            (teams[r["team_id"]], agents[r["agent_id"]][0]) for r in await rows(t(TeamMember))
        ),
        "teams": sorted(teams.values()),
        "categories": sorted(categories.values()),
        "companies": sorted((r["name"], r["email_domains"]) for r in companies.values()),
        "company_domains": sorted(
            (companies[r["company_id"]]["name"], r["domain"]) for r in await rows(t(CompanyDomain))
        ),
        "users": sorted(
            (
                r["name"],
                r["email"],
                companies[r["company_id"]]["name"] if r["company_id"] else None,
            )
            for r in users.values()
        ),
        "tickets": sorted(ticket(r) for r in tickets),
        "bodies": sorted(
            (numbers[r["ticket_id"]], r["original_html"], r["sanitized_html"], r["plain_text"])
            for r in await rows(t(TicketBody))
        ),
        "tags": sorted((numbers[r["ticket_id"]], r["tag"]) for r in await rows(t(TicketTag))),
        "comments": sorted(
            (
                numbers[r["ticket_id"]],
                r["created_at"] - base,
                r["updated_at"] - base,
                r["kind"],
                r["author_type"],
                people[r["author_id"]],
                r["content"],
                r["text"],
                r["to"],
                r["cc"],
                r["bcc"],
                r["mentions"],
                r["delivery"],
            )
            for r in comments
        ),
    }
    return {name: untag(values) for name, values in content.items()}


async def search_documents(session: AsyncSession, workspace_id: str) -> dict[str, str]:
    """The stored search document of each ticket of the workspace, by ticket id."""
    if is_sqlite(session):
        query = (
            "SELECT d.ticket_id, s.document FROM ticket_search_docs d "
            "JOIN ticket_search s ON s.rowid = d.id WHERE d.workspace_id = :w"
        )
    else:
        query = "SELECT ticket_id, document::text FROM ticket_search WHERE workspace_id = :w"
    found = await session.execute(text(query), {"w": workspace_id})
    return {ticket_id: document for ticket_id, document in found.tuples()}


def digest(content: dict[str, list[Any]]) -> str:
    """A short fingerprint of `seeded_content`, with the row count of each table."""
    counts = ",".join(f"{name}={len(values)}" for name, values in content.items())
    body = json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
    return f"{counts} sha256={hashlib.sha256(body).hexdigest()[:16]}"
