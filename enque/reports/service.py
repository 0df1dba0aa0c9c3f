"""Report scope checks and the reports as rows for CSV."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents.models import AgentWorkspace
from enque.core.errors import validation_error
from enque.reports.queries import DAY, Scope
from enque.teams.models import Team

DEFAULT_RANGE = 30 * DAY
MAX_RANGE = 366 * 2 * DAY


async def make_scope(
    session: AsyncSession,
    *,
    workspace_id: str,
    start: int | None,
    end: int | None,
    team_id: str | None,
    agent_id: str | None,
) -> Scope:
    """The report scope, with defaults (the last 30 days) and every id checked."""
    end = int(time.time()) + 1 if end is None else end
    start = end - DEFAULT_RANGE if start is None else start
    if start < 0:
        raise validation_error("from", "must not be negative")
    if end <= start:
        raise validation_error("to", "must be after from")
    if end - start > MAX_RANGE:
        raise validation_error("to", "the range may cover at most two years")
    if team_id is not None:
        found = await session.scalar(
            select(Team.id).where(
                Team.id == team_id, Team.workspace_id == workspace_id, Team.deleted_at.is_(None)
            )
        )
        if found is None:
            raise validation_error("teamId", "no such team in this workspace")
    if agent_id is not None:
        found = await session.scalar(
            select(AgentWorkspace.id).where(
                AgentWorkspace.agent_id == agent_id, AgentWorkspace.workspace_id == workspace_id
            )
        )
        if found is None:
            raise validation_error("agentId", "no such agent in this workspace")
    return Scope(workspace_id, start, end, team_id, agent_id)


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"metric": f"status:{s}", "value": n} for s, n in report["byStatus"].items()]
    rows += [
        {"metric": k, "value": report[k]} for k in ("created", "closed", "resolved", "backlog")
    ]
    return rows


def response_time_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    def row(scope: str, group: str | None, figures: dict[str, Any]) -> dict[str, Any]:
        first, resolution = figures["firstResponse"], figures["resolution"]
        return {
            "scope": scope,
            "id": group,
            "firstResponseCount": first["count"],
            "firstResponseMedian": first["median"],
            "firstResponseP90": first["p90"],
            "resolutionCount": resolution["count"],
            "resolutionMedian": resolution["median"],
            "resolutionP90": resolution["p90"],
        }

    rows = [row("all", None, report)]
    rows += [row("agent", g["agentId"], g) for g in report["byAgent"]]
    rows += [row("team", g["teamId"], g) for g in report["byTeam"]]
    return rows


RESPONSE_TIME_COLUMNS = (
    "scope",
    "id",
    "firstResponseCount",
    "firstResponseMedian",
    "firstResponseP90",
    "resolutionCount",
    "resolutionMedian",
    "resolutionP90",
)
AGENT_COLUMNS = ("agentId", "name", "email", "assigned", "replied", "closed", "medianFirstResponse")
