"""The load step: legacy rows, transformed, written into the new tables in batches.

Every source table that is migrated has a handler turning one batch of legacy rows into
target rows (`Batch`). The same handlers serve the verify step, which compares what they
produce with what the target holds. A batch is written in one transaction together with its
`legacy_id_map` entries and the table's checkpoint (`legacy_checkpoints.last_id`), so a run
killed at any point continues after the last committed batch; ids are derived (see
idmap.py) and every insert is `ON CONFLICT DO NOTHING`, so a batch written twice changes
nothing. Files are written to the target storage before their transaction commits (same key
on a re-run, so a crash leaves nothing behind that the next run does not overwrite).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from enque.agents.models import Agent, AgentWorkspace
from enque.attachments.models import Attachment
from enque.categories.models import Category
from enque.comments.models import Comment
from enque.core.html import sanitize_html
from enque.customers.models import Company, User
from enque.mailboxes.models import EmailMessage
from enque.migrate import files
from enque.migrate.idmap import IdSpace
from enque.migrate.models import LegacyCheckpoint, LegacyFile, LegacyIdMap
from enque.migrate.report import Report, RowContext
from enque.migrate.source import LegacySource
from enque.migrate.transform import (
    agent_role,
    attachment_source,
    auth_method,
    comment_kind,
    comment_source,
    customer_email,
    extract_inline_images,
    html_text,
    parse_recipients,
    split_original_sender,
    storage_key,
    ticket_priority,
    ticket_status,
    to_bool,
    unix_time,
)
from enque.teams.models import Team, TeamMember
from enque.tickets.models import PRIORITY_WEIGHT, Ticket, TicketBody, TicketCounter
from enque.workspaces.models import Workspace

# The source tables this step migrates, in load order (a subset of LOAD_ORDER).
MIGRATED: tuple[str, ...] = (
    "workspaces",
    "agents",
    "teams",
    "team_members",
    "companies",
    "users",
    "unassigned_users",
    "categories",
    "tickets",
    "ticket_bodies",
    "comments",
    "ticket_attachments",
    "email_ticket_mapping",
)
UNKNOWN_CUSTOMER = "unknown-customer@legacy.invalid"


@dataclass
class FileJob:
    """Bytes to copy: from a BLOB (`data`) or a legacy object (`s3_key`), to `row`'s key."""

    row: dict[str, Any]
    data: bytes | None = None
    s3_key: str | None = None


@dataclass
class Batch:
    """What one batch of legacy rows becomes: target rows per table, in write order."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    upserts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table → conflict cols
    idmap: list[tuple[str, str, str]] = field(default_factory=list)
    files: list[FileJob] = field(default_factory=list)
    loaded: int = 0
    skipped: int = 0

    def add(self, table: Table, row: dict[str, Any]) -> None:
        self.rows.setdefault(table.name, []).append(row)


def _t(model: Any) -> Table:
    return cast(Table, model.__table__)


Handler = Callable[[list[dict[str, Any]], "Env", Batch], Awaitable[None]]


def pick_time(*values: int | None, fallback: int) -> int:
    """The first known moment (NOT NULL target columns whose legacy value was invalid)."""
    for value in values:
        if value is not None:
            return value
    return fallback


class Env:
    """What the handlers read: the id space, the legacy store, the target (for lookups)."""

    def __init__(
        self,
        space: IdSpace,
        conn: AsyncConnection,
        report: Report,
        *,
        store_from: Any | None,
        agents: dict[int, str],
        source: LegacySource | None = None,
        cache: dict[str, set[str]] | None = None,
        concurrency: int = 16,
    ) -> None:
        self.source = source
        self.space = space
        self.conn = conn
        self.report = report
        self.store_from = store_from
        self.agents = agents  # legacy agent id → new agent id (same email = one agent)
        self.fallback_time = space.epoch_ms // 1000
        self._ids: dict[tuple[str, int | str], str] = {}
        self._gate = asyncio.Semaphore(concurrency)
        self._cache: dict[str, set[str]] = {} if cache is None else cache

    def id(self, table: str, old: int | str) -> str:
        key = (table, old)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = self.space.new_id(table, old)
        return found

    def ctx(self, table: str, row_id: Any) -> RowContext:
        return RowContext(self.report, table, row_id)

    async def existing(self, table: Table, ids: set[str]) -> set[str]:
        """Those of `ids` that are rows of `table` in the target."""
        found: set[str] = set()
        wanted = sorted(i for i in ids if i)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = await self.conn.execute(select(table.c.id).where(table.c.id.in_(chunk)))
            found.update(r[0] for r in rows)
        return found

    async def small(self, table: Table) -> set[str]:
        """All ids of a small target table (workspaces, teams, categories, companies)."""
        if table.name not in self._cache:
            rows = await self.conn.execute(select(table.c.id))
            self._cache[table.name] = {r[0] for r in rows}
        return self._cache[table.name]

    def forget(self) -> None:
        self._cache.clear()

    async def column(self, table: Table, ids: set[str], name: str) -> dict[str, Any]:
        """`id → column` of the target rows among `ids`."""
        found: dict[str, Any] = {}
        wanted = sorted(i for i in ids if i)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = await self.conn.execute(
                select(table.c.id, table.c[name]).where(table.c.id.in_(chunk))
            )
            found.update({r[0]: r[1] for r in rows})
        return found

    async def users_by_email(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(workspace id, lowercased email) → the id of the live customer with that address."""
        users = _t(User)
        found: dict[tuple[str, str], str] = {}
        items = sorted(pairs)
        for start in range(0, len(items), 200):
            chunk = items[start : start + 200]
            rows = await self.conn.execute(
                select(users.c.workspace_id, func.lower(users.c.email), users.c.id).where(
                    tuple_(users.c.workspace_id, func.lower(users.c.email)).in_(chunk),
                    users.c.deleted_at.is_(None),
                )
            )
            found.update({(w, e): i for w, e, i in rows})
        return found

    async def source_ids(self, table: str, ids: set[int]) -> set[int]:
        """Those of `ids` that are rows of the legacy `table`."""
        if self.source is None or not ids:
            return set()
        wanted = sorted(ids)
        found: set[int] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            rows = await self.source.fetch(
                f"SELECT id FROM {table} WHERE id IN ({marks})", tuple(chunk)
            )
            found.update(int(r[0]) for r in rows)
        return found

    async def fetch(self, key: str) -> bytes | None:
        if self.store_from is None:
            return None
        async with self._gate:
            return await files.fetch(self.store_from, key)

    async def fetch_all(self, keys: set[str]) -> dict[str, bytes | None]:
        ordered = sorted(keys)
        values = await asyncio.gather(*(self.fetch(k) for k in ordered))
        return dict(zip(ordered, values, strict=True))


# ---------------------------------------------------------------- handlers


def _clean(htmls: list[str]) -> list[tuple[str, str]]:
    done = []
    for html in htmls:
        content = sanitize_html(html) if html else ""
        done.append((content, html_text(content) if content else ""))
    return done


async def sanitize_all(htmls: list[str]) -> list[tuple[str, str]]:
    """(sanitized HTML, plain text) of each of `htmls`, in order.

    (Measured: two threads were slower than one here; the callbacks nh3 makes into Python
    and the text extraction hold the GIL.)"""
    return _clean(htmls)


async def h_workspaces(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    for row in rows:
        ctx = env.ctx("workspaces", row["id"])
        created = unix_time(row.get("created_at"), ctx, "created_at")
        updated = unix_time(row.get("updated_at"), ctx, "updated_at")
        subdomain = str(row.get("subdomain") or f"legacy-{row['id']}").strip().lower()
        new = env.id("workspaces", row["id"])
        out.add(
            _t(Workspace),
            {
                "id": new,
                "name": subdomain,
                "subdomain": subdomain,
                "timezone": "UTC",
                "settings": {},
                "is_active": True,
                "deleted_at": None,
                "created_at": pick_time(created, updated, fallback=env.fallback_time),
                "updated_at": pick_time(updated, created, fallback=env.fallback_time),
            },
        )
        out.idmap.append(("workspaces", str(row["id"]), new))
        out.loaded += 1


async def h_agents(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    workspaces = await env.small(_t(Workspace))
    for row in rows:
        ctx = env.ctx("agents", row["id"])
        new = env.agents[int(row["id"])]
        workspace = env.id("workspaces", row["workspace_id"])
        created = unix_time(row.get("created_at"), ctx, "created_at")
        updated = unix_time(row.get("updated_at"), ctx, "updated_at")
        created_at = pick_time(created, updated, fallback=env.fallback_time)
        updated_at = pick_time(updated, created, fallback=env.fallback_time)
        if new == env.id("agents", row["id"]):  # the first legacy row of this email
            out.add(
                _t(Agent),
                {
                    "id": new,
                    "email": str(row["email"]).strip().lower(),
                    "display_name": row.get("name") or str(row["email"]),
                    "password_hash": row.get("password") or None,  # bcrypt kept as it is
                    "auth_method": auth_method(row.get("auth_method"), ctx),
                    "microsoft_id": row.get("microsoft_id"),
                    "avatar_url": row.get("avatar_url"),
                    "job_title": row.get("job_title"),
                    "phone": row.get("phone_number"),
                    "signature": row.get("email_signature"),
                    "is_active": bool(to_bool(row.get("is_active"))),
                    "last_login_at": unix_time(row.get("last_login"), ctx, "last_login"),
                    "token_version": 0,
                    "created_at": created_at,
                    "updated_at": updated_at,
                },
            )
        if workspace in workspaces:
            out.add(
                _t(AgentWorkspace),
                {
                    "id": env.id("agent_workspaces", row["id"]),
                    "workspace_id": workspace,
                    "agent_id": new,
                    "role": agent_role(row.get("role"), ctx),
                    "is_active": bool(to_bool(row.get("is_active"))),
                    "created_at": created_at,
                    "updated_at": updated_at,
                },
            )
        else:
            ctx.issue("workspace_id", "orphan_reference", "workspace missing: no membership")
        out.idmap.append(("agents", str(row["id"]), new))
        out.loaded += 1


def _times(row: dict[str, Any], ctx: RowContext, env: Env) -> tuple[int, int]:
    created = unix_time(row.get("created_at"), ctx, "created_at")
    updated = unix_time(row.get("updated_at"), ctx, "updated_at") if "updated_at" in row else None
    return (
        pick_time(created, updated, fallback=env.fallback_time),
        pick_time(updated, created, fallback=env.fallback_time),
    )


async def _tenant(env: Env, row: dict[str, Any], ctx: RowContext, out: Batch) -> str | None:
    """The row's new workspace id; None (reported, row skipped) when it does not exist."""
    workspaces = await env.small(_t(Workspace))
    old = row.get("workspace_id")
    workspace = env.id("workspaces", old) if old is not None else None
    if workspace in workspaces:
        return workspace
    ctx.issue("workspace_id", "orphan_skipped", f"workspace {old!r} missing: row not migrated")
    out.skipped += 1
    return None


def _agent(env: Env, old: Any, ctx: RowContext, column: str) -> str | None:
    if old is None:
        return None
    new = env.agents.get(int(old))
    if new is None:
        ctx.issue(column, "orphan_reference", f"agent {old} missing: set to NULL")
    return new


async def h_teams(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    for row in rows:
        ctx = env.ctx("teams", row["id"])
        workspace = await _tenant(env, row, ctx, out)
        if workspace is None:
            continue
        created, updated = _times(row, ctx, env)
        new = env.id("teams", row["id"])
        out.add(
            _t(Team),
            {
                "id": new,
                "workspace_id": workspace,
                "name": row["name"],
                "description": row.get("description"),
                "icon": (row.get("icon_name") or None),
                "manager_id": _agent(env, row.get("manager_id"), ctx, "manager_id"),
                "deleted_at": None,
                "created_at": created,
                "updated_at": updated,
            },
        )
        out.idmap.append(("teams", str(row["id"]), new))
        out.loaded += 1


async def h_team_members(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    teams = _t(Team)
    team_ws = await env.column(teams, {env.id("teams", r["team_id"]) for r in rows}, "workspace_id")
    seen: set[tuple[str, str]] = set()
    for row in rows:
        ctx = env.ctx("team_members", row["id"])
        team = env.id("teams", row["team_id"])
        agent = env.agents.get(int(row["agent_id"]))
        if team not in team_ws or agent is None or (team, agent) in seen:
            ctx.issue(None, "orphan_skipped", "team or agent missing (or a duplicate): skipped")
            out.skipped += 1
            continue
        seen.add((team, agent))
        created, _ = _times(row, ctx, env)
        new = env.id("team_members", row["id"])
        out.add(
            _t(TeamMember),
            {
                "id": new,
                "workspace_id": team_ws[team],
                "team_id": team,
                "agent_id": agent,
                "created_at": created,
                "updated_at": created,
            },
        )
        out.idmap.append(("team_members", str(row["id"]), new))
        out.loaded += 1


async def h_companies(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    contacts = await env.source_ids(
        "users", {int(r["primary_contact_id"]) for r in rows if r.get("primary_contact_id")}
    )
    for row in rows:
        ctx = env.ctx("companies", row["id"])
        workspace = await _tenant(env, row, ctx, out)
        if workspace is None:
            continue
        created, updated = _times(row, ctx, env)
        domain = str(row.get("email_domain") or "").strip().lower()
        new = env.id("companies", row["id"])
        out.add(
            _t(Company),
            {
                "id": new,
                "workspace_id": workspace,
                "name": row["name"],
                "description": row.get("description"),
                "email_domains": [domain] if domain else [],
                "logo_url": row.get("logo_url"),
                # no foreign key in the target (users ↔ companies); the verify step checks it
                "primary_contact_id": _contact(env, row, contacts, ctx),
                "account_manager_id": _agent(
                    env, row.get("account_manager_id"), ctx, "account_manager_id"
                ),
                "deleted_at": None,
                "created_at": created,
                "updated_at": updated,
            },
        )
        out.idmap.append(("companies", str(row["id"]), new))
        out.loaded += 1


def _contact(env: Env, row: dict[str, Any], contacts: set[int], ctx: RowContext) -> str | None:
    old = row.get("primary_contact_id")
    if old is None:
        return None
    if int(old) not in contacts:
        ctx.issue("primary_contact_id", "orphan_reference", f"customer {old} missing: NULL")
        return None
    return env.id("users", old)


async def _user_rows(
    table: str, rows: list[dict[str, Any]], env: Env, out: Batch, *, merge: bool
) -> None:
    companies = await env.small(_t(Company))
    found: dict[tuple[str, str], str] = {}
    if merge:
        pairs = {
            (env.id("workspaces", r["workspace_id"]), str(r["email"]).strip().lower())
            for r in rows
            if r.get("workspace_id") is not None and r.get("email")
        }
        found = await env.users_by_email(pairs)
    for row in rows:
        ctx = env.ctx(table, row["id"])
        workspace = await _tenant(env, row, ctx, out)
        if workspace is None:
            continue
        email = customer_email(row.get("email"), ctx)
        if email is None:
            out.skipped += 1
            continue
        own = env.id(table, row["id"])
        new = found.get((workspace, email.lower()), own)
        if new != own:  # an unassigned user whose address is already a customer there
            ctx.issue("email", "merged_customer", f"same address as customer {new}", level="info")
        else:
            company_old = row.get("company_id")
            company = env.space.maybe("companies", company_old)
            if company is not None and company not in companies:
                ctx.issue("company_id", "orphan_reference", f"company {company_old} missing")
                company = None
            created, updated = _times(row, ctx, env)
            found[(workspace, email.lower())] = own
            out.add(
                _t(User),
                {
                    "id": own,
                    "workspace_id": workspace,
                    "name": row.get("name") or email,
                    "email": email,
                    "phone": row.get("phone"),
                    "avatar_url": row.get("avatar_url"),
                    "company_id": company,
                    "notes": None,
                    "is_blocked": False,
                    "deleted_at": None,
                    "created_at": created,
                    "updated_at": updated,
                },
            )
        out.idmap.append((table, str(row["id"]), new))
        out.loaded += 1


async def h_users(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    await _user_rows("users", rows, env, out, merge=False)


async def h_unassigned_users(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    await _user_rows("unassigned_users", rows, env, out, merge=True)


async def h_categories(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    for row in rows:
        ctx = env.ctx("categories", row["id"])
        workspace = await _tenant(env, row, ctx, out)
        if workspace is None:
            continue
        created, updated = _times(row, ctx, env)
        new = env.id("categories", row["id"])
        out.add(
            _t(Category),
            {
                "id": new,
                "workspace_id": workspace,
                "name": row["name"],
                "color": None,
                "deleted_at": None,
                "created_at": created,
                "updated_at": updated,
            },
        )
        out.idmap.append(("categories", str(row["id"]), new))
        out.loaded += 1


def _customer_row(
    env: Env, workspace_old: Any, workspace: str, email: str, name: str | None, at: int
) -> dict[str, Any]:
    return {
        "id": env.id("users:original_sender", f"{workspace_old}:{email.lower()}"),
        "workspace_id": workspace,
        "name": name or email.split("@", 1)[0],
        "email": email,
        "phone": None,
        "avatar_url": None,
        "company_id": None,
        "notes": None,
        "is_blocked": False,
        "deleted_at": None,
        "created_at": at,
        "updated_at": at,
    }


async def h_tickets(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    teams = await env.small(_t(Team))
    categories = await env.small(_t(Category))
    companies = await env.small(_t(Company))
    users = await env.existing(_t(User), {env.id("users", r["user_id"]) for r in rows})
    unknown: set[str] = set()
    bodies = await ticket_bodies(env, [int(r["id"]) for r in rows])
    merged = await env.existing(
        _t(Ticket),
        {env.id("tickets", r["merged_to_ticket_id"]) for r in rows if r.get("merged_to_ticket_id")},
    )
    for row in rows:
        ctx = env.ctx("tickets", row["id"])
        workspace = await _tenant(env, row, ctx, out)
        if workspace is None:
            continue
        created, updated = _times(row, ctx, env)
        user = env.id("users", row["user_id"])
        if user not in users:
            ctx.issue(
                "user_id",
                "orphan_reference",
                f"customer {row['user_id']} missing: ticket given to {UNKNOWN_CUSTOMER}",
            )
            customer = _customer_row(
                env,
                row["workspace_id"],
                workspace,
                UNKNOWN_CUSTOMER,
                "Unknown customer",
                env.fallback_time,
            )
            user = customer["id"]
            if user not in unknown:
                unknown.add(user)
                out.add(_t(User), customer)

        def ref(
            column: str,
            table: str,
            known: set[str],
            *,
            ctx: RowContext = ctx,
            row: dict[str, Any] = row,
        ) -> str | None:
            new = env.space.maybe(table, row.get(column))
            if new is not None and new not in known:
                ctx.issue(column, "orphan_reference", f"{table} {row.get(column)} missing: NULL")
                return None
            return new

        priority = ticket_priority(row.get("priority"), ctx)
        deleted = to_bool(row.get("is_deleted"))
        deleted_at = unix_time(row.get("deleted_at"), ctx, "deleted_at")
        status = ticket_status(row.get("status"), ctx)
        new = env.id("tickets", row["id"])
        into = env.space.maybe("tickets", row.get("merged_to_ticket_id"))
        out.add(
            _t(Ticket),
            {
                "id": new,
                "workspace_id": workspace,
                "number": int(row["id"]),
                "subject": (row.get("title") or "").strip() or "(no subject)",
                "status": status,
                "priority": priority,
                "priority_weight": PRIORITY_WEIGHT[priority],
                "user_id": user,
                "company_id": ref("company_id", "companies", companies),
                "assignee_id": _agent(env, row.get("assignee_id"), ctx, "assignee_id"),
                "team_id": ref("team_id", "teams", teams),
                "category_id": ref("category_id", "categories", categories),
                "mailbox_id": None,
                "tags": [],
                "cc": [
                    a.to_dict()
                    for a in parse_recipients(row.get("cc_recipients"), ctx, "cc_recipients")
                ],
                "due_at": unix_time(row.get("due_date"), ctx, "due_date"),
                "is_read": bool(to_bool(row.get("is_read"))),
                "first_response_at": None,
                "resolved_at": None,
                "closed_at": updated if status == "Closed" else None,
                "last_customer_reply_at": None,
                "last_agent_reply_at": None,
                # a later ticket is set once every ticket exists (fix_merges)
                "merged_into_ticket_id": into if into in merged else None,
                "merged_at": unix_time(row.get("merged_at"), ctx, "merged_at"),
                "linked_ticket_id": None,
                "deleted_at": (deleted_at or updated) if deleted else None,
                "version": 1,
                "conversation_id": row.get("email_conversation_id"),
                "root_message_id": row.get("email_internet_message_id"),
                "created_at": created,
                "updated_at": updated,
            },
        )
        body = bodies.get(int(row["id"]))
        html = body if body is not None else (row.get("description") or "")
        out.add(
            _t(TicketBody),
            {
                "id": env.id("ticket_bodies", f"ticket:{row['id']}"),
                "workspace_id": workspace,
                "ticket_id": new,
                "original_html": html,
                "sanitized_html": html,  # sanitized below, with the whole batch
                "plain_text": "",
                "created_at": created,
                "updated_at": created,
            },
        )
        out.idmap.append(("tickets", str(row["id"]), new))
        out.loaded += 1
    bodies_out = out.rows.get(TicketBody.__tablename__, [])
    for body_row, (content, text) in zip(
        bodies_out, await sanitize_all([b["sanitized_html"] for b in bodies_out]), strict=True
    ):
        body_row["sanitized_html"], body_row["plain_text"] = content, text


async def ticket_bodies(env: Env, tickets: list[int]) -> dict[int, str]:
    """Legacy ticket id → its `ticket_bodies.email_body` (the latest row when several)."""
    found: dict[int, str] = {}
    if env.source is None or not tickets:
        return found
    marks = ", ".join(["%s"] * len(tickets))
    rows = await env.source.fetch(
        f"SELECT ticket_id, email_body FROM ticket_bodies WHERE ticket_id IN ({marks}) ORDER BY id",
        tuple(tickets),
    )
    for ticket, body in rows:
        if body is not None:
            found[int(ticket)] = str(body)
    return found


async def h_ticket_bodies(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    """The bodies are written with their tickets (one `ticket_body` per ticket): here each
    legacy row is accounted for, and those of missing tickets reported."""
    ticket_ws = await env.column(
        _t(Ticket), {env.id("tickets", r["ticket_id"]) for r in rows}, "workspace_id"
    )
    for row in rows:
        ctx = env.ctx("ticket_bodies", row["id"])
        ticket = env.id("tickets", row["ticket_id"])
        if ticket not in ticket_ws:
            ctx.issue("ticket_id", "orphan_skipped", f"ticket {row['ticket_id']} missing")
            out.skipped += 1
            continue
        out.idmap.append(("ticket_bodies", str(row["id"]), ticket))
        out.loaded += 1


def _file_row(
    env: Env,
    *,
    new: str,
    workspace: str,
    comment: str | None,
    source_table: str,
    source_key: str,
    name: str,
    content_type: str,
    at: int,
    inline: bool = False,
    content_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new,
        "migration_id": "",  # filled by the writer
        "workspace_id": workspace,
        "comment_id": comment,
        "source_table": source_table,
        "source_key": source_key,
        "file_name": name[:255],
        "content_type": content_type[:255],
        "size": 0,
        "sha256": "",
        "storage_key": storage_key(workspace, at, new),
        "is_inline": inline,
        "content_id": content_id,
        "created_at": at,
        "updated_at": at,
    }


async def h_comments(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    tickets = _t(Ticket)
    ticket_ids = {env.id("tickets", r["ticket_id"]) for r in rows}
    ticket_user = await env.column(tickets, ticket_ids, "user_id")
    users = await env.existing(
        _t(User), {env.id("users", r["user_id"]) for r in rows if r.get("user_id")}
    )
    # HTML kept in S3
    sources = {}
    for row in rows:
        ctx = env.ctx("comments", row["id"])
        sources[row["id"]] = comment_source(row.get("content"), row.get("s3_html_url"), ctx)
    bodies = await env.fetch_all({s.s3_key for s in sources.values() if s.s3_key})
    # customers named by <original-sender> markers
    senders: dict[Any, tuple[Any, str | None]] = {}
    htmls: dict[Any, str] = {}
    for row in rows:
        ctx = env.ctx("comments", row["id"])
        source = sources[row["id"]]
        if source.kind == "s3":
            data = bodies.get(source.s3_key or "")
            if data is None:
                ctx.issue(
                    "s3_html_url",
                    "missing_object",
                    f"{source.s3_key} not in the legacy store: empty content",
                )
            htmls[row["id"]] = data.decode("utf-8", "replace") if data else ""
        elif source.kind == "inline":
            htmls[row["id"]] = source.html or ""
        else:
            htmls[row["id"]] = ""
        if source.kind != "placeholder":
            sender, rest = split_original_sender(htmls[row["id"]], ctx)
            htmls[row["id"]] = rest
            if sender is not None:
                senders[row["id"]] = (sender, sender.email)
    pairs = {
        (env.id("workspaces", r["workspace_id"]), str(senders[r["id"]][1]).lower())
        for r in rows
        if r["id"] in senders and senders[r["id"]][1]
    }
    known = await env.users_by_email(pairs)
    workspaces = await env.small(_t(Workspace))
    for row in rows:
        ctx = env.ctx("comments", row["id"])
        source = sources[row["id"]]
        if source.kind == "placeholder":
            ctx.issue(
                None, "placeholder_skipped", "attachment placeholder: not a message", level="info"
            )
            out.skipped += 1
            continue
        ticket = env.id("tickets", row["ticket_id"])
        workspace = env.id("workspaces", row["workspace_id"])
        if ticket not in ticket_user or workspace not in workspaces:
            ctx.issue(
                "ticket_id",
                "orphan_skipped",
                f"ticket {row['ticket_id']} missing: comment not migrated",
            )
            out.skipped += 1
            continue
        created, updated = _times(row, ctx, env)
        new = env.id("comments", row["id"])
        customer = row["id"] in senders
        author_type, author = "system", None
        if customer:
            sender, email = senders[row["id"]]
            if email is None:
                author = ticket_user[ticket]
            else:
                author = known.get((workspace, email.lower()))
                if author is None:
                    made = _customer_row(
                        env, row["workspace_id"], workspace, email, sender.name, created
                    )
                    author = made["id"]
                    known[(workspace, email.lower())] = author
                    out.add(_t(User), made)
                    out.idmap.append(
                        ("users:original_sender", f"{row['workspace_id']}:{email.lower()}", author)
                    )
            author_type = "user"
        elif row.get("agent_id") is not None and int(row["agent_id"]) in env.agents:
            author_type, author = "agent", env.agents[int(row["agent_id"])]
        elif row.get("user_id") is not None and env.id("users", row["user_id"]) in users:
            author_type, author = "user", env.id("users", row["user_id"])
        elif row.get("agent_id") is not None or row.get("user_id") is not None:
            ctx.issue("agent_id", "orphan_reference", "author missing: system comment")
        html, images = extract_inline_images(htmls[row["id"]], ctx)
        for image in images:
            image_id = env.id("comments:inline_image", f"{row['id']}:{image.content_id}")
            file_row = _file_row(
                env,
                new=image_id,
                workspace=workspace,
                comment=new,
                source_table="comments:inline_image",
                source_key=f"{row['id']}:{image.content_id}",
                name=image.filename,
                content_type=image.content_type,
                at=created,
                inline=True,
                content_id=image.content_id,
            )
            out.files.append(FileJob(file_row, data=image.data, s3_key=image.s3_key))
        out.add(
            _t(Comment),
            {
                "id": new,
                "workspace_id": workspace,
                "ticket_id": ticket,
                "kind": comment_kind(row.get("is_private"), customer_message=customer, ctx=ctx),
                "author_type": author_type,
                "author_id": author,
                "content": html,  # sanitized below, with the whole batch
                "text": "",
                "original_html": html or None,
                "to": [
                    a.to_dict()
                    for a in parse_recipients(row.get("to_recipients"), ctx, "to_recipients")
                ],
                "cc": [
                    a.to_dict()
                    for a in parse_recipients(
                        row.get("other_destinaries"), ctx, "other_destinaries"
                    )
                ],
                "bcc": [
                    a.to_dict()
                    for a in parse_recipients(row.get("bcc_recipients"), ctx, "bcc_recipients")
                ],
                "mentions": [],
                "message_id": None,
                "in_reply_to": None,
                "delivery": None,
                "delivery_error": None,
                "delivery_attempts": 0,
                "deleted_at": None,
                "created_at": created,
                "updated_at": updated,
            },
        )
        out.idmap.append(("comments", str(row["id"]), new))
        out.loaded += 1
    comments = out.rows.get(Comment.__tablename__, [])
    for comment, (content, text) in zip(
        comments, await sanitize_all([c["content"] for c in comments]), strict=True
    ):
        comment["content"], comment["text"] = content, text


async def h_ticket_attachments(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    comments = _t(Comment)
    comment_ws = await env.column(
        comments, {env.id("comments", r["comment_id"]) for r in rows}, "workspace_id"
    )
    for row in rows:
        ctx = env.ctx("ticket_attachments", row["id"])
        comment = env.id("comments", row["comment_id"])
        if comment not in comment_ws:
            ctx.issue(
                "comment_id",
                "orphan_skipped",
                f"comment {row['comment_id']} not migrated (placeholder or missing)",
            )
            out.skipped += 1
            continue
        where = attachment_source(row, ctx)
        if where is None:
            out.skipped += 1
            continue
        created = pick_time(
            unix_time(row.get("created_at"), ctx, "created_at"), fallback=env.fallback_time
        )
        new = env.id("ticket_attachments", row["id"])
        file_row = _file_row(
            env,
            new=new,
            workspace=comment_ws[comment],
            comment=comment,
            source_table="ticket_attachments",
            source_key=str(row["id"]),
            name=row.get("file_name") or f"attachment-{row['id']}",
            content_type=row.get("content_type") or "application/octet-stream",
            at=created,
        )
        out.files.append(FileJob(file_row, data=where.data, s3_key=where.s3_key))
        out.idmap.append(("ticket_attachments", str(row["id"]), new))
        out.loaded += 1


async def h_email_ticket_mapping(rows: list[dict[str, Any]], env: Env, out: Batch) -> None:
    tickets = _t(Ticket)
    ticket_ws = await env.column(
        tickets, {env.id("tickets", r["ticket_id"]) for r in rows}, "workspace_id"
    )
    for row in rows:
        ctx = env.ctx("email_ticket_mapping", row["id"])
        ticket = env.id("tickets", row["ticket_id"])
        if ticket not in ticket_ws:
            ctx.issue("ticket_id", "orphan_skipped", f"ticket {row['ticket_id']} missing")
            out.skipped += 1
            continue
        created, updated = _times(row, ctx, env)
        new = env.id("email_ticket_mapping", row["id"])
        out.add(
            _t(EmailMessage),
            {
                "id": new,
                "workspace_id": ticket_ws[ticket],
                "mailbox_id": None,
                "direction": "in",
                "provider_id": row["email_id"],
                "internet_message_id": None,
                "in_reply_to": None,
                "references": [],
                "conversation_id": row.get("email_conversation_id"),
                "ticket_id": ticket,
                "comment_id": None,
                "raw_size": 0,
                "received_at": unix_time(row.get("email_received_at"), ctx, "email_received_at"),
                "state": "processed" if to_bool(row.get("is_processed")) else "ignored",
                "classification": None,
                "error": None,
                "created_at": created,
                "updated_at": updated,
            },
        )
        out.idmap.append(("email_ticket_mapping", str(row["id"]), new))
        out.loaded += 1


HANDLERS: dict[str, Handler] = {
    "workspaces": h_workspaces,
    "agents": h_agents,
    "teams": h_teams,
    "team_members": h_team_members,
    "companies": h_companies,
    "users": h_users,
    "unassigned_users": h_unassigned_users,
    "categories": h_categories,
    "tickets": h_tickets,
    "ticket_bodies": h_ticket_bodies,
    "comments": h_comments,
    "ticket_attachments": h_ticket_attachments,
    "email_ticket_mapping": h_email_ticket_mapping,
}

# Target tables in the order a batch writes them (parents first).
WRITE_ORDER: tuple[Table, ...] = (
    _t(Workspace),
    _t(Agent),
    _t(AgentWorkspace),
    _t(Team),
    _t(TeamMember),
    _t(Company),
    _t(User),
    _t(Category),
    _t(Ticket),
    _t(TicketBody),
    _t(Comment),
    _t(EmailMessage),
    _t(LegacyFile),
    _t(Attachment),
)


async def legacy_agents(source: LegacySource, space: IdSpace) -> dict[int, str]:
    """Legacy agent id → new agent id: rows sharing an email (one per workspace in the old
    system) become one agent with a membership per workspace."""
    rows = await source.fetch("SELECT id, email FROM agents ORDER BY id")
    first: dict[str, int] = {}
    mapping: dict[int, str] = {}
    for old, email in rows:
        key = str(email).strip().lower()
        first.setdefault(key, int(old))
        mapping[int(old)] = space.new_id("agents", first[key])
    return mapping


# ---------------------------------------------------------------- writing


def _insert(dialect: str, table: Table) -> Any:
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


async def write_batch(
    conn: AsyncConnection, batch: Batch, *, migration_id: str, update: bool
) -> None:
    """Insert a batch's rows (existing ids left alone, or updated with `update`)."""
    dialect = conn.dialect.name
    for table in WRITE_ORDER:
        rows = batch.rows.get(table.name)
        if not rows:
            continue
        stmt = _insert(dialect, table)
        conflict = batch.upserts.get(table.name)
        if conflict or update:
            keys = conflict or ("id",)
            columns = [c for c in rows[0] if c not in keys and c != "id"]
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        await conn.execute(stmt, rows)
    if batch.idmap:
        stmt = _insert(dialect, _t(LegacyIdMap)).on_conflict_do_nothing()
        await conn.execute(
            stmt,
            [
                {"migration_id": migration_id, "source_table": t, "old_id": o, "new_id": n}
                for t, o, n in batch.idmap
            ],
        )


async def attachment_rows(
    conn: AsyncConnection, copied: list[dict[str, Any]], batch: Batch
) -> list[dict[str, Any]]:
    """The copied files of comments as attachments of the new system, so the API lists them
    with their thread. Files of no comment stay in `legacy_files` only (the orphan sweep would
    remove an attachment linked to nothing)."""
    wanted = [row for row in copied if row.get("comment_id")]
    if not wanted:
        return []
    ticket_of = {c["id"]: c["ticket_id"] for c in batch.rows.get(Comment.__tablename__, [])}
    missing = {r["comment_id"] for r in wanted} - ticket_of.keys()
    if missing:
        comments = _t(Comment)
        found = await conn.execute(
            select(comments.c.id, comments.c.ticket_id).where(comments.c.id.in_(missing))
        )
        ticket_of.update({cid: tid for cid, tid in found.all()})
    rows = []
    for row in wanted:
        ticket_id = ticket_of.get(row["comment_id"])
        if ticket_id is None:
            continue
        rows.append(
            {
                "id": row["id"],
                "workspace_id": row["workspace_id"],
                "ticket_id": ticket_id,
                "comment_id": row["comment_id"],
                "file_name": row["file_name"],
                "content_type": row["content_type"],
                "size": row["size"],
                "sha256": row["sha256"],
                "storage_key": row["storage_key"],
                "is_inline": row["is_inline"],
                "content_id": row["content_id"],
                "linked_at": row["created_at"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
        )
    return rows


async def copy_files(
    jobs: list[FileJob], env: Env, store_to: Any, *, concurrency: int = 16
) -> list[dict[str, Any]]:
    """Copy each job's bytes to the target store; rows of the copied ones (size, sha256).

    An object missing from the legacy store is reported (not fatal) and has no row.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(job: FileJob) -> dict[str, Any] | None:
        data = job.data
        if data is None and job.s3_key is not None:
            data = await env.fetch(job.s3_key)
        row = job.row
        if data is None:
            RowContext(env.report, row["source_table"], row["source_key"]).issue(
                None, "missing_object", f"{job.s3_key} not in the legacy store: not copied"
            )
            return None
        async with gate:
            await files.put(store_to, row["storage_key"], data)
        return {**row, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    done = await asyncio.gather(*(one(j) for j in jobs))
    return [r for r in done if r is not None]


class Laps:
    """Seconds spent per phase of the batch loop (read, transform, files, write…)."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.mark = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = round(self.into.get(name, 0.0) + now - self.mark, 3)
        self.mark = now


class Progress:
    """One line per table on stderr: rows, rows/s, ETA (rewritten in place on a terminal)."""

    def __init__(self, table: str, total: int, *, quiet: bool = False) -> None:
        self.table, self.total, self.quiet = table, total, quiet
        self.started = time.perf_counter()
        self.done = 0
        self._shown = 0.0

    def advance(self, n: int, *, final: bool = False) -> None:
        self.done += n
        now = time.perf_counter()
        if self.quiet or (not final and now - self._shown < 1.0):
            return
        self._shown = now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate and self.total > self.done else 0
        end = "\n" if final or not sys.stderr.isatty() else "\r"
        sys.stderr.write(
            f"{self.table:<22}{self.done:>10,}/{self.total:<10,}{rate:>10,.0f} rows/s"
            f"  ETA {left:6.0f}s{end}"
        )
        sys.stderr.flush()


async def _checkpoint(conn: AsyncConnection, migration_id: str, table: str) -> dict[str, Any]:
    cp = _t(LegacyCheckpoint)
    row = (
        (
            await conn.execute(
                select(cp).where(cp.c.migration_id == migration_id, cp.c.source_table == table)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return {"last_id": None, "rows": 0, "loaded": 0, "skipped": 0, "done_at": None}
    return dict(row)


async def _save_checkpoint(
    conn: AsyncConnection, migration_id: str, table: str, values: dict[str, Any]
) -> None:
    cp = _t(LegacyCheckpoint)
    stmt = _insert(conn.dialect.name, cp).values(
        migration_id=migration_id, source_table=table, **values
    )
    stmt = stmt.on_conflict_do_update(index_elements=["migration_id", "source_table"], set_=values)
    await conn.execute(stmt)


async def load(
    source: LegacySource,
    engine: AsyncEngine,
    space: IdSpace,
    migration_id: str,
    report: Report,
    *,
    store_from: Any | None,
    store_to: Any,
    since: int | None = None,
    batch_size: int = 1000,
    quiet: bool = False,
    tables: tuple[str, ...] = MIGRATED,
) -> None:
    """Load every migrated table, continuing from its checkpoint."""
    report.steps.append("load")
    load_started = time.perf_counter()
    seconds: dict[str, float] = report.facts.setdefault("load_seconds_by_table", {})
    present = await source.columns()
    agents = await legacy_agents(source, space) if "agents" in present else {}
    for table in tables:
        if table not in present:
            continue
        async with engine.connect() as conn:
            checkpoint = await _checkpoint(conn, migration_id, table)
        stats = report.table(table)
        if checkpoint["done_at"] is not None and since is None:
            stats.migrated, stats.skipped = checkpoint["loaded"], checkpoint["skipped"]
            continue
        table_started = time.perf_counter()
        cache: dict[str, set[str]] = {}
        total = await source.count(table, since=since)
        after = checkpoint["last_id"] if since is None else None
        counts = (
            {k: checkpoint[k] for k in ("rows", "loaded", "skipped")}
            if since is None
            else {"rows": 0, "loaded": 0, "skipped": 0}
        )
        progress = Progress(table, total, quiet=quiet)
        progress.done = counts["rows"] if since is None else 0
        stream = source.stream(table, after=after, since=since, batch_size=batch_size)
        lap = Laps(report.facts.setdefault("load_phase_seconds", {}))

        async for rows in prefetch(stream):
            lap("read")
            async with engine.begin() as conn:
                env = Env(
                    space,
                    conn,
                    report,
                    store_from=store_from,
                    agents=agents,
                    source=source,
                    cache=cache,
                )
                batch = Batch()
                lap("begin")
                await HANDLERS[table](rows, env, batch)
                lap("transform")
                if batch.files:
                    copied = await copy_files(batch.files, env, store_to)
                    for row in copied:
                        row["migration_id"] = migration_id
                    batch.rows[LegacyFile.__tablename__] = copied
                    batch.rows[Attachment.__tablename__] = await attachment_rows(
                        conn, copied, batch
                    )
                lap("files")
                await write_batch(conn, batch, migration_id=migration_id, update=since is not None)
                lap("write")
                counts["rows"] += len(rows)
                counts["loaded"] += batch.loaded
                counts["skipped"] += batch.skipped
                await _save_checkpoint(
                    conn,
                    migration_id,
                    table,
                    {"last_id": int(rows[-1]["id"]), **counts, "done_at": None},
                )
                lap("checkpoint")
            lap("commit")
            progress.advance(len(rows))
        async with engine.begin() as conn:
            if table == "tickets":
                await fix_merges(conn, source, space)
                await set_counters(conn)
            await _save_checkpoint(
                conn,
                migration_id,
                table,
                {
                    "last_id": checkpoint["last_id"]
                    if stream.last_id is None
                    else int(stream.last_id),
                    **counts,
                    "done_at": int(time.time()),
                },
            )
        progress.advance(0, final=True)
        stats.migrated, stats.skipped = counts["loaded"], counts["skipped"]
        seconds[table] = round(time.perf_counter() - table_started, 2)
    report.facts["load_seconds"] = round(time.perf_counter() - load_started, 2)


async def prefetch(
    batches: AsyncIterable[list[dict[str, Any]]], depth: int = 2
) -> AsyncIterator[list[dict[str, Any]]]:
    """The batches of `batches`, read ahead by up to `depth` while the caller works."""
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for rows in batches:
                await queue.put(rows)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while (rows := await queue.get()) is not None:
            yield rows
        await task  # raises what the reader raised
    finally:
        if not task.done():
            task.cancel()


async def fix_merges(conn: AsyncConnection, source: LegacySource, space: IdSpace) -> None:
    """`tickets.merged_to_ticket_id` (a ticket may point at a later one): set once all exist."""
    pairs = await source.fetch(
        "SELECT id, merged_to_ticket_id FROM tickets WHERE merged_to_ticket_id IS NOT NULL"
    )
    tickets = _t(Ticket)
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        targets = {space.new_id("tickets", m) for _, m in chunk}
        rows = await conn.execute(select(tickets.c.id).where(tickets.c.id.in_(targets)))
        existing = {r[0] for r in rows}
        for old, merged in chunk:
            into = space.new_id("tickets", merged)
            if into in existing:
                await conn.execute(
                    tickets.update()
                    .where(tickets.c.id == space.new_id("tickets", old))
                    .values(merged_into_ticket_id=into, updated_at=tickets.c.updated_at)
                )


async def set_counters(conn: AsyncConnection) -> None:
    """Each workspace's ticket counter past its highest number (old ids became numbers)."""
    tickets, counters = _t(Ticket), _t(TicketCounter)
    rows = await conn.execute(
        select(tickets.c.workspace_id, func.max(tickets.c.number)).group_by(tickets.c.workspace_id)
    )
    for workspace, highest in rows.all():
        stmt = _insert(conn.dialect.name, counters).values(
            workspace_id=workspace, last_number=highest
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["workspace_id"],
            set_={"last_number": func.max(counters.c.last_number, stmt.excluded.last_number)}
            if conn.dialect.name == "sqlite"
            else {"last_number": func.greatest(counters.c.last_number, stmt.excluded.last_number)},
        )
        await conn.execute(stmt)
