"""The report queries. Every figure is computed by the database, the same SQL on SQLite and
PostgreSQL: percentiles use the nearest-rank method through window functions (SQLite has no
`percentile_cont`), time buckets are integer arithmetic on Unix seconds (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from enque.tickets.models import STATUSES

DAY = 86_400
WEEK = 7 * DAY
# 1970-01-05 was a Monday: weeks start on Monday, 00:00 UTC.
FIRST_MONDAY = 4 * DAY
PERCENTILES = (50, 90)


@dataclass(frozen=True)
class Scope:
    """The range and the optional team / agent every report is limited to."""

    workspace_id: str
    start: int
    end: int
    team_id: str | None = None
    agent_id: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "ws": self.workspace_id,
            "start": self.start,
            "end": self.end,
            "team": self.team_id,
            "agent": self.agent_id,
        }

    def ticket_filter(self, alias: str = "t") -> str:
        """Live tickets of the workspace, narrowed to the team and agent when given."""
        parts = [
            f"{alias}.workspace_id = :ws",
            f"{alias}.deleted_at IS NULL",
            f"{alias}.merged_into_ticket_id IS NULL",
        ]
        if self.team_id:
            parts.append(f"{alias}.team_id = :team")
        if self.agent_id:
            parts.append(f"{alias}.assignee_id = :agent")
        return " AND ".join(parts)


async def summary(session: AsyncSession, scope: Scope) -> dict[str, Any]:
    where = scope.ticket_filter()
    row = (
        await session.execute(
            text(
                f"""
                SELECT
                  SUM(CASE WHEN t.created_at >= :start AND t.created_at < :end
                      THEN 1 ELSE 0 END) AS created,
                  SUM(CASE WHEN t.closed_at >= :start AND t.closed_at < :end
                      THEN 1 ELSE 0 END) AS closed,
                  SUM(CASE WHEN t.resolved_at >= :start AND t.resolved_at < :end
                      THEN 1 ELSE 0 END) AS resolved,
                  SUM(CASE WHEN t.created_at < :end
                      AND (t.closed_at IS NULL OR t.closed_at >= :end)
                      THEN 1 ELSE 0 END) AS backlog
                FROM tickets t WHERE {where}
                """
            ),
            scope.params(),
        )
    ).one()
    statuses = await session.execute(
        text(f"SELECT t.status, COUNT(*) FROM tickets t WHERE {where} GROUP BY t.status"),
        scope.params(),
    )
    by_status = dict.fromkeys(STATUSES, 0)
    by_status.update({status: count for status, count in statuses.all()})
    return {
        "byStatus": by_status,
        "created": int(row.created or 0),
        "closed": int(row.closed or 0),
        "resolved": int(row.resolved or 0),
        "backlog": int(row.backlog or 0),
    }


def _percentile_sql(source: str) -> str:
    """Count, nearest-rank median and p90 of `value` per (`dim`, `grp`) over the rows of
    `source`."""
    picks = ",\n".join(
        f"MIN(CASE WHEN rn = (n * {p} + 99) / 100 THEN value END) AS p{p}" for p in PERCENTILES
    )
    return f"""
        WITH src AS ({source}),
        ranked AS (
          SELECT dim, grp, value,
                 ROW_NUMBER() OVER (PARTITION BY dim, grp ORDER BY value) AS rn,
                 COUNT(*) OVER (PARTITION BY dim, grp) AS n
          FROM src
        )
        SELECT dim, grp, MAX(n) AS n, {picks}
        FROM ranked GROUP BY dim, grp
    """


def _stats(row: Any) -> dict[str, Any]:
    return {"count": int(row.n), "median": row.p50, "p90": row.p90}


EMPTY_STATS = {"count": 0, "median": None, "p90": None}
DIMENSIONS = {"all": "NULL", "agent": "t.assignee_id", "team": "t.team_id"}


async def _times_by(
    session: AsyncSession, scope: Scope, until: str, dims: tuple[str, ...]
) -> dict[str, dict[str | None, dict[str, Any]]]:
    """Time from creation to `until` per group of each dimension (overall, agent, team), in
    one query: the matching tickets are read once and ranked per (dimension, group)."""
    where = scope.ticket_filter()
    source = " UNION ALL ".join(
        f"""
        SELECT '{dim}' AS dim, {DIMENSIONS[dim]} AS grp, t.{until} - t.created_at AS value
        FROM tickets t
        WHERE {where} AND t.created_at >= :start AND t.created_at < :end
          AND t.{until} IS NOT NULL
        """
        for dim in dims
    )
    rows = await session.execute(text(_percentile_sql(source)), scope.params())
    found: dict[str, dict[str | None, dict[str, Any]]] = {dim: {} for dim in dims}
    for row in rows:
        found[row.dim][row.grp] = _stats(row)
    return found


async def response_times(session: AsyncSession, scope: Scope) -> dict[str, Any]:
    """First response and resolution times in seconds, overall, per agent and per team."""
    measures = {"firstResponse": "first_response_at", "resolution": "resolved_at"}
    times = {
        key: await _times_by(session, scope, column, ("all", "agent", "team"))
        for key, column in measures.items()
    }
    result: dict[str, Any] = {key: times[key]["all"].get(None, EMPTY_STATS) for key in measures}
    result["byAgent"] = _merge_groups({key: times[key]["agent"] for key in measures}, "agentId")
    result["byTeam"] = _merge_groups({key: times[key]["team"] for key in measures}, "teamId")
    return result


def _merge_groups(
    figures: dict[str, dict[str | None, dict[str, Any]]], id_key: str
) -> list[dict[str, Any]]:
    ids = sorted({g for groups in figures.values() for g in groups}, key=lambda g: (g is None, g))
    return [
        {id_key: group, **{key: figures[key].get(group, EMPTY_STATS) for key in figures}}
        for group in ids
    ]


VOLUME_GROUPS = {
    "none": "NULL",
    "mailbox": "t.mailbox_id",
    "category": "t.category_id",
    "priority": "t.priority",
}


async def volume(
    session: AsyncSession, scope: Scope, *, interval: str, group_by: str
) -> list[dict[str, Any]]:
    """Tickets created per day or week (UTC), optionally split by mailbox/category/priority."""
    size, origin = (DAY, 0) if interval == "day" else (WEEK, FIRST_MONDAY)
    bucket = f"((t.created_at - {origin}) / {size}) * {size} + {origin}"
    group = VOLUME_GROUPS[group_by]
    grouping = bucket if group_by == "none" else f"{bucket}, {group}"
    rows = await session.execute(
        text(
            f"""
            SELECT {bucket} AS bucket, {group} AS grp, COUNT(*) AS n
            FROM tickets t
            WHERE {scope.ticket_filter()} AND t.created_at >= :start AND t.created_at < :end
            GROUP BY {grouping}
            ORDER BY bucket, grp
            """
        ),
        scope.params(),
    )
    return [
        {
            "bucket": int(row.bucket),
            **({"key": row.grp} if group_by != "none" else {}),
            "count": int(row.n),
        }
        for row in rows
    ]


async def agents(session: AsyncSession, scope: Scope) -> list[dict[str, Any]]:
    """Per agent of the workspace: tickets assigned now, replies sent, tickets closed, and the
    median first response of the tickets assigned to them that were created in the range."""
    params = scope.params()
    team_join = ""
    if scope.team_id:
        team_join = (
            "JOIN team_members tm ON tm.agent_id = a.id AND tm.team_id = :team "
            "AND tm.workspace_id = :ws"
        )
    agent_filter = "AND a.id = :agent" if scope.agent_id else ""
    members = (
        await session.execute(
            text(
                f"""
                SELECT a.id, a.display_name, a.email FROM agents a
                JOIN agent_workspaces aw ON aw.agent_id = a.id AND aw.workspace_id = :ws
                {team_join}
                WHERE aw.is_active = TRUE {agent_filter}
                ORDER BY a.display_name, a.id
                """
            ),
            params,
        )
    ).all()
    live = "t.workspace_id = :ws AND t.deleted_at IS NULL AND t.merged_into_ticket_id IS NULL"
    team_only = " AND t.team_id = :team" if scope.team_id else ""
    assigned = await _count_by(
        session,
        f"SELECT t.assignee_id, COUNT(*) FROM tickets t WHERE {live}{team_only} "
        "AND t.status <> 'Closed' GROUP BY t.assignee_id",
        params,
    )
    closed = await _count_by(
        session,
        f"SELECT t.assignee_id, COUNT(*) FROM tickets t WHERE {live}{team_only} "
        "AND t.closed_at >= :start AND t.closed_at < :end GROUP BY t.assignee_id",
        params,
    )
    replied = await _count_by(
        session,
        "SELECT c.author_id, COUNT(*) FROM comments c JOIN tickets t ON t.id = c.ticket_id "
        f"WHERE c.workspace_id = :ws AND {live}{team_only} AND c.kind = 'reply' "
        "AND c.author_type = 'agent' AND c.deleted_at IS NULL "
        "AND c.created_at >= :start AND c.created_at < :end GROUP BY c.author_id",
        params,
    )
    first = (await _times_by(session, scope, "first_response_at", ("agent",)))["agent"]
    return [
        {
            "agentId": member.id,
            "name": member.display_name,
            "email": member.email,
            "assigned": assigned.get(member.id, 0),
            "replied": replied.get(member.id, 0),
            "closed": closed.get(member.id, 0),
            "medianFirstResponse": first.get(member.id, EMPTY_STATS)["median"],
        }
        for member in members
    ]


async def _count_by(session: AsyncSession, sql: str, params: dict[str, Any]) -> dict[str, int]:
    rows = await session.execute(text(sql), params)
    return {key: int(count) for key, count in rows.all() if key is not None}
