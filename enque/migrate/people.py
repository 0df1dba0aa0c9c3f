"""Workspaces and the people in them: agents, teams, companies, customers, categories."""

from __future__ import annotations

from typing import Any

from enque.agents.models import Agent, AgentWorkspace
from enque.categories.models import Category
from enque.customers.models import Company, User
from enque.migrate.idmap import IdSpace
from enque.migrate.source import LegacySource
from enque.migrate.spec import Env, Folded, Item, Row, TableSpec, table_of
from enque.migrate.transform import agent_role, auth_method, customer_email, to_bool, unix_time
from enque.teams.models import Team, TeamMember
from enque.workspaces.models import Workspace


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


def workspace_row(item: Item) -> Row:
    row = item.row
    subdomain = str(row.get("subdomain") or f"legacy-{row['id']}").strip().lower()
    return {
        "name": subdomain,
        "subdomain": subdomain,
        "timezone": "UTC",
        "settings": {},
        "is_active": True,
        "deleted_at": None,
    }


async def _workspaces(rows: list[Row], env: Env) -> set[str]:
    return await env.small(table_of(Workspace))


def agent_row(item: Item) -> Row | Folded:
    """The first legacy row of an email is the agent; each row is a membership of its
    workspace (none, reported, when the workspace is gone)."""
    row, ctx, env = item.row, item.ctx, item.env
    new = env.agents[int(row["id"])]
    workspace = env.id("workspaces", row["workspace_id"])
    active = bool(to_bool(row.get("is_active")))
    if workspace in item.ahead:
        item.out.add(
            table_of(AgentWorkspace),
            {
                "id": env.id("agent_workspaces", row["id"]),
                "workspace_id": workspace,
                "agent_id": new,
                "role": agent_role(row.get("role"), ctx),
                "is_active": active,
                "created_at": item.created,
                "updated_at": item.updated,
            },
        )
    else:
        ctx.issue("workspace_id", "orphan_reference", "workspace missing: no membership")
    if new != env.id("agents", row["id"]):  # the same person, met in an earlier workspace
        return Folded(new)
    return {
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
        "is_active": active,
        "last_login_at": unix_time(row.get("last_login"), ctx, "last_login"),
        "token_version": 0,
    }


def team_row(item: Item) -> Row:
    row = item.row
    return {
        "name": row["name"],
        "description": row.get("description"),
        "icon": row.get("icon_name") or None,
        "manager_id": item.env.agent(row.get("manager_id"), item.ctx, "manager_id"),
        "deleted_at": None,
    }


async def _team_workspaces(
    rows: list[Row], env: Env
) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """Each team's workspace, and the (team, agent) pairs met so far in the batch."""
    teams = {env.id("teams", r["team_id"]) for r in rows}
    return await env.column(table_of(Team), teams, "workspace_id"), set()


def team_member_row(item: Item) -> Row | None:
    row, env = item.row, item.env
    team_ws, seen = item.ahead
    team = env.id("teams", row["team_id"])
    agent = env.agents.get(int(row["agent_id"]))
    if team not in team_ws or agent is None or (team, agent) in seen:
        item.ctx.issue(None, "orphan_skipped", "team or agent missing (or a duplicate): skipped")
        return None
    seen.add((team, agent))
    return {"workspace_id": team_ws[team], "team_id": team, "agent_id": agent}


async def _contacts(rows: list[Row], env: Env) -> set[int]:
    """The legacy customers that company rows name as their primary contact."""
    contacts = {int(r["primary_contact_id"]) for r in rows if r.get("primary_contact_id")}
    return await env.source_ids("users", contacts)


def company_row(item: Item) -> Row:
    row, ctx, env = item.row, item.ctx, item.env
    domain = str(row.get("email_domain") or "").strip().lower()
    contact = row.get("primary_contact_id")
    if contact is not None and int(contact) not in item.ahead:
        ctx.issue("primary_contact_id", "orphan_reference", f"customer {contact} missing: NULL")
        contact = None
    return {
        "name": row["name"],
        "description": row.get("description"),
        "email_domains": [domain] if domain else [],
        "logo_url": row.get("logo_url"),
        # no foreign key in the target (users ↔ companies); the verify step checks it
        "primary_contact_id": env.maybe("users", contact),
        "account_manager_id": env.agent(row.get("account_manager_id"), ctx, "account_manager_id"),
        "deleted_at": None,
    }


def _customer(table: str) -> Any:
    def transform(item: Item) -> Row | Folded | None:
        row, ctx, env = item.row, item.ctx, item.env
        companies, found = item.ahead
        email = customer_email(row.get("email"), ctx)
        if email is None:
            return None
        own = env.id(table, row["id"])
        known = found.get((item.workspace, email.lower()), own)
        if known != own:  # an unassigned user whose address is already a customer there
            ctx.issue("email", "merged_customer", f"same address as customer {known}", level="info")
            return Folded(known)
        found[(item.workspace, email.lower())] = own
        company = env.maybe("companies", row.get("company_id"))
        if company is not None and company not in companies:
            ctx.issue("company_id", "orphan_reference", f"company {row.get('company_id')} missing")
            company = None
        return {
            "name": row.get("name") or email,
            "email": email,
            "phone": row.get("phone"),
            "avatar_url": row.get("avatar_url"),
            "company_id": company,
            "notes": None,
            "is_blocked": False,
            "deleted_at": None,
        }

    return transform


async def companies_of(rows: list[Row], env: Env) -> set[str]:
    """The companies `rows` name (legacy `company_id`) that were migrated."""
    return await env.known(
        table_of(Company), (env.maybe("companies", r.get("company_id")) for r in rows)
    )


async def _users(rows: list[Row], env: Env) -> tuple[set[str], dict[tuple[str, str], str]]:
    return await companies_of(rows, env), {}


async def _unassigned(rows: list[Row], env: Env) -> tuple[set[str], dict[tuple[str, str], str]]:
    pairs = {
        (env.id("workspaces", r["workspace_id"]), str(r["email"]).strip().lower())
        for r in rows
        if r.get("workspace_id") is not None and r.get("email")
    }
    return await companies_of(rows, env), await env.users_by_email(pairs)


def category_row(item: Item) -> Row:
    return {"name": item.row["name"], "color": None, "deleted_at": None}


SPECS: tuple[TableSpec, ...] = (
    TableSpec("workspaces", Workspace, workspace_row, tenant=False),
    TableSpec("agents", Agent, agent_row, prepare=_workspaces, tenant=False),
    TableSpec("teams", Team, team_row),
    TableSpec("team_members", TeamMember, team_member_row, prepare=_team_workspaces, tenant=False),
    TableSpec("companies", Company, company_row, prepare=_contacts),
    TableSpec("users", User, _customer("users"), prepare=_users),
    TableSpec("unassigned_users", User, _customer("unassigned_users"), prepare=_unassigned),
    TableSpec("categories", Category, category_row),
)
